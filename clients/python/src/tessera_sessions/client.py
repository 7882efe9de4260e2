"""The synchronous client of Tessera's HTTP API (``Client``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from . import _core
from ._core import Request
from .errors import TransportError
from .models import (
    JSON,
    RevocationFeed,
    RevokeAll,
    SessionResult,
    SessionSummary,
    Verdict,
)


class Client:
    """A synchronous client of one Tessera service.

    Args:
        url: the service's base URL (default: the ``TESSERA_URL`` environment variable).
        api_key: the management API key (default: ``TESSERA_API_KEY``).
        timeout: seconds for connecting and for each read and write (or an ``httpx.Timeout``).
        retries: how many times an answer of 503 (the store unavailable; nothing was written)
            is retried, with exponential backoff and full jitter. Nothing else is retried.
        backoff: the first retry waits up to this many seconds, each next one up to twice as
            long (at most 2 s).
        transport: an ``httpx`` transport, for tests.

    Every ``cookie`` argument is the browser's raw ``Cookie`` header (may be empty); every
    :class:`~tessera_sessions.models.SessionResult` carries the ``Set-Cookie`` values to send
    back, untouched. Problem answers raise the exception classes of
    :mod:`tessera_sessions.errors`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = _core.DEFAULT_TIMEOUT,
        retries: int = _core.DEFAULT_RETRIES,
        backoff: float = _core.DEFAULT_BACKOFF,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, self._api_key = _core.resolve_settings(url, api_key)
        self._retries = retries
        self._backoff = backoff
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, req: Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                r = self._http.request(
                    req.method,
                    req.path,
                    json=req.json,
                    content=req.content,
                    params=req.params,
                    headers=_core.headers_for(req, self._api_key),
                )
            except httpx.TimeoutException as e:
                raise TransportError(f"{req.method} {req.path}: timed out") from e
            except httpx.HTTPError as e:
                raise TransportError(f"{req.method} {req.path}: {e}") from e
            if r.status_code != 503 or attempt >= self._retries:
                return r
            time.sleep(_core.backoff(attempt, self._backoff))
            attempt += 1

    # === sessions ===

    def resolve(
        self,
        cookie: str,
        *,
        create: bool = False,
        csrf_purpose: str | None = None,
        secrets: bool = False,
        storage: str | None = None,
        renew: bool = True,
    ) -> SessionResult:
        """Reads (and renews) the session the cookie names; ``create`` starts an anonymous one.

        ``storage="store"`` keeps a created session in the store whatever the anonymous mode;
        ``renew=False`` is a pure read (nothing written, no cookie re-sent).
        """
        req = _core.resolve_request(
            cookie,
            create=create,
            csrf_purpose=csrf_purpose,
            secrets=secrets,
            storage=storage,
            renew=renew,
        )
        return _core.session_result(self._send(req))

    def update(
        self,
        cookie: str,
        *,
        set: Mapping[str, JSON] | None = None,
        remove: Sequence[str] | None = None,
        secrets: Mapping[str, JSON] | None = None,
        remove_secrets: Sequence[str] | None = None,
        expiry: _core.Expiry | _core.Unchanged = _core.UNCHANGED,
        storage: str | None = None,
    ) -> SessionResult:
        """Sets and removes keys (per key: concurrent edits of other keys survive).

        ``expiry`` sets the session's own expiry (``{"at": t}``, ``{"idle": s}``,
        ``"browser"``, or ``None`` for the defaults; an end in the past ends the session);
        ``storage="store"`` keeps the session in the store (with no cookie: a new stored
        session with these edits, in one write).

        Raises:
            SessionNotFound: the cookie names no live session (it expired or was logged out).
        """
        req = _core.update_request(
            cookie, set, remove, secrets, remove_secrets, expiry=expiry, storage=storage
        )
        return _core.session_result(self._send(req))

    def rotate(self, cookie: str) -> SessionResult:
        """A new handle for the stored session the cookie names; the old one is retired.

        Raises:
            SessionNotFound: the cookie names no live stored session.
        """
        return _core.session_result(self._send(_core.session_request("rotate", cookie)))

    def login(
        self,
        cookie: str,
        user_id: str,
        *,
        name: str | None = None,
        provider: str | None = None,
        claims: Mapping[str, JSON] | None = None,
        remember: bool = False,
    ) -> SessionResult:
        """Binds a user to a new session (a new handle; the old session's data carried over)."""
        req = _core.login_request(
            cookie, user_id, name=name, provider=provider, claims=claims, remember=remember
        )
        return _core.session_result(self._send(req))

    def logout(self, cookie: str) -> SessionResult:
        """Ends the session; ``set_cookie`` clears every cookie it set."""
        return _core.session_result(self._send(_core.session_request("logout", cookie)))

    def check_csrf(self, cookie: str, token: str, *, purpose: str | None = None) -> bool:
        """Whether ``token`` is a valid CSRF token of the live session and purpose."""
        req = _core.session_request("csrf/check", cookie, token=token, purpose=purpose)
        return _core.csrf_valid(self._send(req))

    # === users ===

    def list_sessions(self, user_id: str) -> list[SessionSummary]:
        """The user's live sessions."""
        return _core.session_list(self._send(Request("GET", _core.users_path(user_id))))

    def revoke_all(self, user_id: str) -> RevokeAll:
        """Logs the user out everywhere: every session and token issued up to now dies."""
        return _core.revoke_all(self._send(Request("DELETE", _core.users_path(user_id))))

    def revoke_session(self, user_id: str, ref: str) -> None:
        """Ends one session of the user.

        Raises:
            SessionNotFound: the user has no live session with this reference.
        """
        path = f"{_core.users_path(user_id)}/{_core.segment(ref)}"
        _core.check(self._send(Request("DELETE", path)))

    # === tokens ===

    def mint(self, sub: str, claims: Mapping[str, JSON] | None = None) -> str:
        """A session token for a session that is not stored (an API client)."""
        req = Request("POST", "/v1/tokens", json={"sub": sub, "claims": dict(claims or {})})
        return _core.minted(self._send(req))

    def jwks(self) -> dict[str, Any]:
        """The JWK set that verifies session tokens."""
        return dict(
            _core.body_of(
                _core.check(self._send(Request("GET", "/.well-known/jwks.json", auth=False)))
            )
        )

    def verify(self, *, cookie: str | None = None, authorization: str | None = None) -> Verdict:
        """Asks the edge verifier about a ``Cookie`` and/or ``Authorization`` header."""
        return _core.verdict(self._send(_core.verify_request(cookie, authorization)))

    def revocations(
        self, *, after: int = 0, limit: int | None = None, etag: str | None = None
    ) -> RevocationFeed | None:
        """The revocation feed after ``after``; ``None`` when unchanged since ``etag``."""
        return _core.revocation_feed(self._send(_core.feed_request(after, limit, etag)))

    # === the Kask-compatible key-value API ===

    def kask_get(self, key: str | bytes) -> bytes | None:
        """The value under ``key``, or ``None``."""
        return _core.kask_value(self._send(Request("GET", _core.kask_path(key))))

    def kask_put(self, key: str | bytes, value: bytes) -> None:
        """Stores ``value`` (1 byte or more) under ``key`` with the server's TTL."""
        req = Request(
            "POST",
            _core.kask_path(key),
            content=value,
            headers={"Content-Type": "application/octet-stream"},
        )
        _core.check_kask(self._send(req))

    def kask_delete(self, key: str | bytes) -> None:
        """Deletes the value under ``key`` (nothing there is fine)."""
        _core.check_kask(self._send(Request("DELETE", _core.kask_path(key))))

    # === operations ===

    def ready(self) -> bool:
        """Whether every store answers (``/readyz``)."""
        r = self._send(Request("GET", "/readyz", auth=False))
        if r.status_code == 503:
            return False
        _core.check(r)
        return True


__all__ = ["Client"]
