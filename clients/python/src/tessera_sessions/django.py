"""Django sessions kept in Tessera: ``SESSION_ENGINE = "tessera_sessions.django"``.

Configured by the Django settings ``TESSERA_URL`` and ``TESSERA_API_KEY`` (or the environment
variables of the same names), and ``TESSERA_COOKIE_NAME``, the name of Tessera's session
cookie (default ``__Host-tessera``). Django's session key is the Tessera session's handle
(the value of that cookie), kept in Django's own cookie (``SESSION_COOKIE_NAME``).

How Django maps onto Tessera:

- Each session's keys are Tessera data keys; a save sends only the keys that changed, and
  Tessera applies them per key (compare-and-set), so concurrent requests changing different
  keys both keep their change.
- ``django.contrib.auth.login()`` puts ``_auth_user_id`` in the session: the next save logs
  that user in with Tessera (a new handle, the data carried over), so the user index, "log out
  everywhere" (``DELETE /v1/users/{id}/sessions``) and session tokens see Django's users.
- ``logout()`` (``flush()``) ends the Tessera session; a session ended elsewhere (logged out
  everywhere, expired) loads as empty, and saving it raises ``UpdateError`` (Django answers
  ``SessionInterrupted``), never resurrects it.
- ``cycle_key()`` is Tessera's rotation (``POST /v1/session/rotate``): a new handle for the
  same session (user, data, claims, remember-me, expiry), the old one retired at once.
- ``set_expiry()`` is Tessera's per-session expiry: seconds become ``{"idle": s}``, a
  datetime ``{"at": t}``, ``0`` ``"browser"`` and ``None`` the server's defaults; Tessera
  ends the session at it (an expiry in the past ends it at once). Django's ``_session_expiry``
  stays in the data, as Django keeps it, for ``get_expiry_age()``.
- A new session is created in Tessera's store with its data in one write (``storage:
  "store"``, whatever ``[session] anonymous`` says): Tessera chooses the key, so "must create"
  cannot collide. ``exists()`` is a read that renews nothing.
- The session token cookie (with ``[tokens]`` on) is sent to the browser by
  ``tessera_sessions.django.TesseraCookieMiddleware`` (after ``SessionMiddleware``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from . import _cookies, _core
from .client import Client
from .errors import MalformedCookie, SessionNotFound
from .models import Session, SessionResult

EXPIRY_KEY = "_session_expiry"
"""Where Django's ``set_expiry()`` keeps the expiry."""
AUTH_USER_KEY = "_auth_user_id"
"""Where ``django.contrib.auth`` keeps the logged-in user's id."""
DEFAULT_COOKIE_NAME = "__Host-tessera"


def _setting(name: str) -> str | None:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    return None if value is None else str(value)


@lru_cache(maxsize=8)
def _client_for(url: str, api_key: str | None) -> Client:
    return Client(url, api_key)


def client() -> Client:
    """The client for the configured Tessera service."""
    url = _setting("TESSERA_URL")
    if not url:
        raise ImproperlyConfigured("set TESSERA_URL (a Django setting or the environment)")
    return _client_for(url, _setting("TESSERA_API_KEY"))


def tessera_expiry(value: Any) -> _core.Expiry:
    """Django's ``_session_expiry`` as Tessera's ``expiry``."""
    if value is None:
        return None
    if isinstance(value, int):
        if value == 0:
            return "browser"
        if value < 0:
            return {"at": 0}
        return {"idle": value}
    if isinstance(value, str):
        return {"at": max(0, int(datetime.fromisoformat(value).timestamp()))}
    return None


class SessionStore(SessionBase):
    """Django's session store over Tessera's HTTP API."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._tessera: Session | None = None
        self._stored: dict[str, Any] = {}
        self.tessera_set_cookie: list[str] = []
        """The ``Set-Cookie`` values Tessera answered for this session (its token cookie...)."""

    # --- helpers ---

    @staticmethod
    def _cookie_for(session_key: str | None) -> str:
        if not session_key:
            return ""
        name = _setting("TESSERA_COOKIE_NAME") or DEFAULT_COOKIE_NAME
        return f"{name}={session_key}"

    @staticmethod
    def _handle_in(result: SessionResult) -> str | None:
        name = _setting("TESSERA_COOKIE_NAME") or DEFAULT_COOKIE_NAME
        for sc in result.set_cookie:
            n, value, removal = _cookies.set_cookie_name_value(sc)
            if n == name and not removal:
                return value
        return None

    def _adopt(self, result: SessionResult, key: str | None) -> None:
        """Takes Tessera's answer as what is stored under ``key``."""
        self.tessera_set_cookie = _cookies.merge(self.tessera_set_cookie, result.set_cookie)
        self._tessera = result.session
        self._stored = copy.deepcopy(dict(result.session.data)) if result.session else {}
        self._session_key = key

    def _resolve(self, session_key: str | None, *, renew: bool = True) -> SessionResult | None:
        if not session_key:
            return None
        try:
            result = client().resolve(self._cookie_for(session_key), renew=renew)
        except MalformedCookie:
            # Not a handle Tessera issued: like an unknown key.
            return None
        return result if result.session is not None else None

    # --- SessionBase ---

    def exists(self, session_key: str | None) -> bool:
        return self._resolve(session_key, renew=False) is not None

    def load(self) -> dict[str, Any]:
        result = self._resolve(self.session_key)
        if result is None:
            self._tessera = None
            self._stored = {}
            self._session_key = None
            return {}
        self._adopt(result, self.session_key)
        return dict(result.session.data) if result.session else {}

    def create(self) -> None:
        self._create_with({})
        self.modified = True

    def _create_with(self, data: dict[str, Any]) -> None:
        """A new stored session holding ``data`` (and its expiry), in one write."""
        expiry = tessera_expiry(data.get(EXPIRY_KEY)) if EXPIRY_KEY in data else _core.UNCHANGED
        result = client().update("", set=data, expiry=expiry, storage="store")
        if result.session is None:
            # Created already past its own expiry: nothing lives.
            self._adopt(result, None)
            return
        key = self._handle_in(result)
        if key is None:
            name = _setting("TESSERA_COOKIE_NAME") or DEFAULT_COOKIE_NAME
            raise ImproperlyConfigured(
                f"Tessera's answer sets no session cookie named {name!r}: set TESSERA_COOKIE_NAME"
            )
        self._adopt(result, key)

    def _data(self, *, load: bool) -> dict[str, Any]:
        """The session's data: the cache, else (``load``) what the store has."""
        cache = getattr(self, "_session_cache", None)
        if isinstance(cache, dict):
            return dict(cache)
        return dict(self.items()) if load else {}

    def save(self, must_create: bool = False) -> None:
        if must_create and self.session_key is not None and self.exists(self.session_key):
            raise CreateError
        data = self._data(load=not must_create)
        if self.session_key is None or must_create:
            # No key, or one that names no live session (load() forgot it): a new session, as
            # Django's backends do for an unknown key. Tessera chooses the key.
            if data.get(AUTH_USER_KEY) is None:
                self._create_with(data)
                return
            self._create_with({})
            self._session_cache = data
        self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        cookie = self._cookie_for(self.session_key)
        c = client()
        user_id = data.get(AUTH_USER_KEY)
        current = self._tessera.user.id if self._tessera and self._tessera.user else None
        if user_id is not None and str(user_id) != current:
            self._login(str(user_id), self._tessera)
            cookie = self._cookie_for(self.session_key)
        changed = {k: v for k, v in data.items() if k not in self._stored or self._stored[k] != v}
        removed = [k for k in self._stored if k not in data]
        if not changed and not removed:
            return
        expiry: _core.Expiry | _core.Unchanged = _core.UNCHANGED
        if EXPIRY_KEY in changed or EXPIRY_KEY in removed:
            expiry = tessera_expiry(data.get(EXPIRY_KEY))
        try:
            result = c.update(cookie, set=changed, remove=removed, expiry=expiry)
        except SessionNotFound as e:
            raise UpdateError from e
        self._adopt(result, self.session_key)

    def _login(self, user_id: str, old: Session | None) -> None:
        cookie = self._cookie_for(self.session_key)
        try:
            result = client().login(
                cookie,
                user_id,
                claims=old.claims if old else None,
                remember=old.remember if old else False,
            )
        except SessionNotFound as e:
            raise UpdateError from e
        key = self._handle_in(result)
        if key is None:
            raise UpdateError
        self._adopt(result, key)

    def cycle_key(self) -> None:
        data = self._data(load=True)
        if self.session_key is not None and self._tessera is not None:
            # Tessera's rotation: the same session under a new handle, the old one retired.
            try:
                result = client().rotate(self._cookie_for(self.session_key))
            except SessionNotFound:
                result = None
            key = self._handle_in(result) if result is not None else None
            if result is not None and key is not None:
                self._adopt(result, key)
                self._session_cache = data
                self.modified = True
                return
        key = self.session_key
        self.create()
        self._session_cache = data
        if key:
            self.delete(key)

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        try:
            result = client().logout(self._cookie_for(session_key))
        except MalformedCookie:
            return
        self.tessera_set_cookie = _cookies.merge(self.tessera_set_cookie, result.set_cookie)

    @classmethod
    def clear_expired(cls) -> None:
        # Tessera purges expired sessions itself; none ever loads.
        return None


class TesseraCookieMiddleware:
    """Sends the cookies Tessera answered besides the session's own (the session token
    cookie after a login, their removal after a logout) to the browser.

    Django's ``SessionMiddleware`` sends only its own cookie; put this one right after it in
    ``MIDDLEWARE``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        extra = getattr(session, "tessera_set_cookie", None)
        if not extra:
            return response
        own = _setting("TESSERA_COOKIE_NAME") or DEFAULT_COOKIE_NAME
        for sc in extra:
            name, _value, _removal = _cookies.set_cookie_name_value(sc)
            if name and name != own:
                response.cookies.load(sc)
        return response
