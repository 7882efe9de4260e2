"""What the Django engine maps onto Tessera beyond Django's own tests: login (the user index,
log out everywhere), key cycling of a logged-in session, the configuration it needs."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.http import HttpRequest, HttpResponse
from django.test import override_settings

from tessera_server import API_KEY, Server
from tessera_sessions import Client
from tessera_sessions.django import AUTH_USER_KEY, SessionStore, TesseraCookieMiddleware


def test_a_django_login_is_a_tessera_login(tessera_stored: Server) -> None:
    s = SessionStore()
    s["cart"] = [1]
    s.save()
    anonymous_key = s.session_key
    # What django.contrib.auth.login() does: cycle the key, then name the user.
    s.cycle_key()
    s[AUTH_USER_KEY] = "42"
    s.save()
    assert s.session_key not in (None, anonymous_key)
    with Client(tessera_stored.url, API_KEY) as c:
        sessions = c.list_sessions("42")
        assert len(sessions) == 1, "the user index has the Django session"
        assert any(x.startswith("__Host-tessera-token=") for x in s.tessera_set_cookie)
        loaded = SessionStore(s.session_key)
        assert loaded["cart"] == [1]
        assert loaded[AUTH_USER_KEY] == "42"

        # Cycling a logged-in session is a Tessera login of the same user: new key, same data.
        before = s.session_key
        s.cycle_key()
        assert s.session_key != before
        assert not s.exists(before)
        assert SessionStore(s.session_key)["cart"] == [1]

        # Log out everywhere: the Django session is gone, and saving it does not bring it back.
        c.revoke_all("42")
        assert SessionStore(s.session_key).load() == {}
        s["cart"] = [1, 2]
        with pytest.raises(UpdateError):
            s.save()


def test_the_engine_works_whatever_the_anonymous_mode(tessera: Server) -> None:
    # Tessera's defaults keep anonymous sessions in a sealed cookie; the engine asks for
    # stored ones (`storage: "store"`), its data in the one write that creates it.
    with override_settings(TESSERA_URL=tessera.url, TESSERA_API_KEY=API_KEY):
        s = SessionStore()
        s["a"] = 1
        s.save()
        assert s.session_key is not None
        assert SessionStore(s.session_key)["a"] == 1
        with Client(tessera.url, API_KEY) as c:
            r = c.resolve(f"__Host-tessera={s.session_key}")
            assert r.session is not None and r.session.storage == "store"


def test_set_expiry_cycle_key_and_exists_are_tesseras(tessera_stored: Server) -> None:
    s = SessionStore()
    s["a"] = 1
    s.set_expiry(300)
    s.save()
    with Client(tessera_stored.url, API_KEY) as c:
        cookie = f"__Host-tessera={s.session_key}"
        r = c.resolve(cookie, renew=False)
        assert r.session is not None
        assert r.session.expiry == {"idle": 300}
        assert r.session.expires_at - r.session.created_at == 300
        assert r.set_cookie == []
        s.set_expiry(0)
        s.save()
        r = c.resolve(cookie)
        assert r.session is not None and r.session.expiry == "browser"
        s.set_expiry(None)
        s.save()
        r = c.resolve(cookie)
        assert r.session is not None and r.session.expiry is None
        # cycle_key of an anonymous session is Tessera's rotation: the old key dies at once.
        old = s.session_key
        s.cycle_key()
        assert s.session_key not in (None, old)
        assert not s.exists(old)
        assert s.exists(s.session_key)
        r = c.resolve(f"__Host-tessera={s.session_key}")
        assert r.session is not None and r.session.data["a"] == 1


def test_the_middleware_sends_tesseras_other_cookies() -> None:
    request = HttpRequest()
    session = SessionStore()
    session.tessera_set_cookie = [
        "__Host-tessera=abc; Path=/; Secure; HttpOnly; SameSite=Lax",
        "__Host-tessera-token=eyJ.x.y; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax",
    ]
    request.session = session
    response = TesseraCookieMiddleware(lambda r: HttpResponse("ok"))(request)
    assert "__Host-tessera" not in response.cookies, "Django sends its own session cookie"
    token = response.cookies["__Host-tessera-token"]
    assert token.value == "eyJ.x.y"
    assert token["max-age"] == "600"
    assert token["httponly"] and token["secure"]
    assert token["samesite"] == "Lax"
