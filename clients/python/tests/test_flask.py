"""Flask's sessions in Tessera, through Flask's test client, against a real ``tessera serve``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, abort, jsonify, request, session
from flask.testing import FlaskClient

from tessera_server import API_KEY, Server
from tessera_sessions import Client
from tessera_sessions.flask import TesseraSession, TesseraSessionInterface


def make_app(client: Client) -> Flask:
    app = Flask(__name__)
    app.session_interface = TesseraSessionInterface(client)

    def s() -> TesseraSession:
        assert isinstance(session, TesseraSession)
        return session

    @app.get("/")
    def index() -> object:
        user = s().user
        return jsonify(data=dict(session), user=user.id if user else None, csrf=s().csrf_token)

    @app.post("/set")
    def set_() -> object:
        for k, v in (request.json or {}).items():
            session[k] = v
        return jsonify(ok=True)

    @app.post("/remove/<key>")
    def remove(key: str) -> object:
        session.pop(key, None)
        return jsonify(ok=True)

    @app.post("/login/<user>")
    def login(user: str) -> object:
        s().login(user)
        return jsonify(user=user)

    @app.post("/edit")
    def edit() -> object:
        if not s().check_csrf(request.headers.get("X-CSRF-Token", "")):
            abort(403)
        session["edited"] = True
        return jsonify(ok=True)

    @app.post("/logout")
    def logout() -> object:
        s().logout()
        return jsonify(ok=True)

    @app.post("/boom")
    def boom() -> object:
        session["lost"] = True
        return "failed", 500

    return app


@pytest.fixture
def flask_client(tessera: Server) -> Iterator[FlaskClient]:
    with Client(tessera.url, API_KEY) as c:
        app = make_app(c)
        # https: Tessera's cookies are Secure (and __Host-).
        app.config["PREFERRED_URL_SCHEME"] = "https"
        client = app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        yield client


def cookie_names(client: FlaskClient) -> set[str]:
    return {c.key for c in client._cookies.values()}


def test_data_lives_in_tessera_and_only_changes_are_sent(flask_client: FlaskClient) -> None:
    assert flask_client.get("/").json == {"data": {}, "user": None, "csrf": None}
    assert flask_client.post("/set", json={"a": 1, "b": "x"}).status_code == 200
    assert "__Host-tessera-anon" in cookie_names(flask_client), "client-side anonymous session"
    assert flask_client.get("/").json["data"] == {"a": 1, "b": "x"}
    flask_client.post("/remove/a")
    assert flask_client.get("/").json["data"] == {"b": "x"}


def test_login_edit_behind_csrf_and_logout(flask_client: FlaskClient) -> None:
    flask_client.post("/set", json={"cart": [3]})
    r = flask_client.post("/login/alice")
    assert r.status_code == 200
    names = cookie_names(flask_client)
    assert {"__Host-tessera", "__Host-tessera-token"} <= names
    assert "__Host-tessera-anon" not in names, "the anonymous cookie is cleared at login"
    page = flask_client.get("/").json
    assert page["user"] == "alice"
    assert page["data"] == {"cart": [3]}
    assert flask_client.post("/edit", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert flask_client.post("/edit", headers={"X-CSRF-Token": page["csrf"]}).status_code == 200
    assert flask_client.get("/").json["data"] == {"cart": [3], "edited": True}
    flask_client.post("/logout")
    assert cookie_names(flask_client) == set()
    assert flask_client.get("/").json == {"data": {}, "user": None, "csrf": None}


def test_nothing_is_saved_or_sent_on_a_5xx(flask_client: FlaskClient) -> None:
    r = flask_client.post("/boom")
    assert r.status_code == 500
    assert "Set-Cookie" not in r.headers
    assert flask_client.get("/").json["data"] == {}
