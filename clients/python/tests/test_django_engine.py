"""What the Django engine maps onto Tessera beyond Django's own tests: login (the user index,
log out everywhere), key cycling of a logged-in session, the configuration it needs."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tessera_server import API_KEY, Server
from tessera_sessions import Client
from tessera_sessions.django import AUTH_USER_KEY, SessionStore


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


def test_client_side_anonymous_sessions_are_refused_with_the_setting_to_change(
    tessera: Server,
) -> None:
    with override_settings(TESSERA_URL=tessera.url, TESSERA_API_KEY=API_KEY):
        s = SessionStore()
        s["a"] = 1
        with pytest.raises(ImproperlyConfigured, match='anonymous = "server"'):
            s.save()
