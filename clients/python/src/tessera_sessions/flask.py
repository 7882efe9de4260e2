"""Flask sessions kept in Tessera: ``app.session_interface = TesseraSessionInterface(client)``.

``flask.session`` then reads and writes the Tessera session the browser's cookies name. Only
the keys a request changed are sent (Tessera applies them per key, so two requests that change
different keys both keep their change), and Tessera's ``Set-Cookie`` values are forwarded
untouched: the session cookie, the session token cookie, the sealed anonymous cookie. Nothing
is written and no cookie is sent on a 5xx answer.

Besides the mapping, the session has :meth:`TesseraSession.login` (a new session for a user:
the fixation defence, the user index, session tokens), :meth:`TesseraSession.logout`,
:attr:`TesseraSession.csrf_token` and :meth:`TesseraSession.check_csrf`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from . import _cookies
from .client import Client
from .models import JSON, SessionResult, User


class TesseraSession(CallbackDict[str, Any], SessionMixin):
    """``flask.session`` when the app uses :class:`TesseraSessionInterface`."""

    def __init__(self, client: Client, cookie: str, result: SessionResult) -> None:
        data = dict(result.session.data) if result.session else {}

        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(data, on_update)
        self._client = client
        self._cookie = cookie
        self._result = result
        self._original: dict[str, Any] = copy.deepcopy(data)
        self.set_cookie: list[str] = list(result.set_cookie)
        """The ``Set-Cookie`` values to send, so far."""
        self.modified = False

    # --- what Tessera knows ---

    @property
    def user(self) -> User | None:
        """The logged-in user, or ``None``."""
        s = self._result.session
        return s.user if s else None

    @property
    def csrf_token(self) -> str | None:
        """A CSRF token of the live session (purpose ``default``), or ``None`` without one."""
        return self._result.csrf_token

    @property
    def result(self) -> SessionResult:
        """Tessera's last answer about this session."""
        return self._result

    def check_csrf(self, token: str, purpose: str | None = None) -> bool:
        """Whether ``token`` is a valid CSRF token of this session and purpose."""
        return self._client.check_csrf(self._cookie, token, purpose=purpose)

    # --- lifecycle ---

    def _follow(self, result: SessionResult) -> None:
        self._cookie = _cookies.apply(self._cookie, result.set_cookie)
        self.set_cookie = _cookies.merge(self.set_cookie, result.set_cookie)
        self._result = result

    def _edits(self) -> tuple[dict[str, JSON], list[str]]:
        changed = {
            k: v for k, v in self.items() if k not in self._original or self._original[k] != v
        }
        removed = [k for k in self._original if k not in self]
        return changed, removed

    def flush_changes(self) -> None:
        """Sends the keys changed since the session was read (done at the end of the request)."""
        changed, removed = self._edits()
        if not changed and not removed:
            return
        self._follow(self._client.update(self._cookie, set=changed, remove=removed))
        self._original = copy.deepcopy(dict(self))
        self.modified = False

    def login(
        self,
        user_id: str,
        *,
        name: str | None = None,
        provider: str | None = None,
        claims: Mapping[str, JSON] | None = None,
        remember: bool = False,
    ) -> None:
        """Logs ``user_id`` in: a new session (new handle) carrying this one's data."""
        self.flush_changes()
        self._follow(
            self._client.login(
                self._cookie,
                user_id,
                name=name,
                provider=provider,
                claims=claims,
                remember=remember,
            )
        )
        self._reset_to_result()

    def logout(self) -> None:
        """Ends the session; every cookie it set is cleared."""
        self._follow(self._client.logout(self._cookie))
        self._reset_to_result()

    def _reset_to_result(self) -> None:
        data = dict(self._result.session.data) if self._result.session else {}
        dict.clear(self)
        dict.update(self, data)
        self._original = copy.deepcopy(data)
        self.modified = False


class TesseraSessionInterface(SessionInterface):
    """Keeps Flask's sessions in Tessera.

    Args:
        client: the :class:`~tessera_sessions.Client` of the Tessera service (default: one
            from ``TESSERA_URL`` and ``TESSERA_API_KEY`` in the app's config or the
            environment, made at the first request).
    """

    def __init__(self, client: Client | None = None) -> None:
        self._client = client

    def client(self, app: Flask) -> Client:
        if self._client is None:
            self._client = Client(app.config.get("TESSERA_URL"), app.config.get("TESSERA_API_KEY"))
        return self._client

    def open_session(self, app: Flask, request: Request) -> TesseraSession:
        cookie = request.headers.get("Cookie", "")
        client = self.client(app)
        return TesseraSession(client, cookie, client.resolve(cookie))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, TesseraSession) or response.status_code >= 500:
            return
        session.flush_changes()
        for value in session.set_cookie:
            response.headers.add("Set-Cookie", value)
        if session.set_cookie:
            response.vary.add("Cookie")
