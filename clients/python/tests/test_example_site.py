"""The example Django site (examples/django_site), run as its docstring says, driven over HTTP
against a real ``tessera serve``: log in, an edit refused without and accepted with the CSRF
token, log out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tessera_server import API_KEY, Server
from tessera_sessions import Client

SITE = Path(__file__).resolve().parents[1] / "examples" / "django_site" / "site_app.py"


def _token(html: str) -> str:
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def test_the_example_site_logs_in_edits_behind_csrf_and_logs_out(tessera: Server) -> None:
    env = dict(os.environ, TESSERA_URL=tessera.url, TESSERA_API_KEY=API_KEY)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src
    proc = subprocess.Popen(
        [sys.executable, str(SITE), "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        base = f"http://127.0.0.1:{m.group(1)}"
        with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as web:
            token = _token(web.get("/").text)
            r = web.post("/login", data={"user": "ada", "csrfmiddlewaretoken": token})
            assert r.status_code == 200
            assert "<b id='user'>ada</b>" in r.text
            with Client(tessera.url, API_KEY) as c:
                assert len(c.list_sessions("ada")) == 1, "a Tessera login"
                refused = web.post("/edit", data={"note": "no token"})
                assert refused.status_code == 403
                r = web.post("/edit", data={"note": "hello", "csrfmiddlewaretoken": _token(r.text)})
                assert "<p id='note'>hello</p>" in r.text
                r = web.post("/logout", data={"csrfmiddlewaretoken": _token(r.text)})
                assert 'action="/login"' in r.text
                assert c.list_sessions("ada") == [], "a Tessera logout"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        time.sleep(0)
