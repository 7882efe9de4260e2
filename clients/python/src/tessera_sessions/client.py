"""The synchronous client of Tessera's HTTP API (``Client``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _core
from ._core import Call, Request
from .models import (
    JSON,
    RevocationFeed,
    RevokeAll,
    SessionResult,
    SessionSummary,
    Verdict,
)

T = TypeVar("T")


class Client:
    """A synchronous client of one Tessera service.

    Args:
        url: the service's base URL (default: the ``TESSERA_URL`` environment variable).
        api_key: the management API key (default: ``TESSERA_API_KEY``).
        timeout: seconds for connecting and for each read and write (or an ``httpx.Timeout``).
        retries: how many times an answer of 503 (the store failed or timed out; repeating
            is safe) is retried, with exponential backoff and full jitter. Nothing else is
            retried.
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
                r = self._http.send(_core.build(self._http, req, self._api_key))
            except httpx.HTTPError as e:
                raise _core.transport_error(req, e) from e
            wait = _core.retry_wait(r, attempt, self._retries, self._backoff)
            if wait is None:
                return r
            time.sleep(wait)
            attempt += 1

    def _call(self, call: Call[T]) -> T:
        return call.read(self._send(call.request))

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
        return self._call(
            _core.resolve(
                cookie,
                create=create,
                csrf_purpose=csrf_purpose,
                secrets=secrets,
                storage=storage,
                renew=renew,
            )
        )

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
        return self._call(
            _core.update(
                cookie, set, remove, secrets, remove_secrets, expiry=expiry, storage=storage
            )
        )

    def rotate(self, cookie: str) -> SessionResult:
        """A new handle for the stored session the cookie names; the old one is retired.

        Raises:
            SessionNotFound: the cookie names no live stored session.
        """
        return self._call(_core.rotate(cookie))

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
        return self._call(
            _core.login(
                cookie, user_id, name=name, provider=provider, claims=claims, remember=remember
            )
        )

    def logout(self, cookie: str) -> SessionResult:
        """Ends the session; ``set_cookie`` clears every cookie it set."""
        return self._call(_core.logout(cookie))

    def check_csrf(self, cookie: str, token: str, *, purpose: str | None = None) -> bool:
        """Whether ``token`` is a valid CSRF token of the live session and purpose."""
        return self._call(_core.check_csrf(cookie, token, purpose))

    # === users ===

    def list_sessions(self, user_id: str) -> list[SessionSummary]:
        """The user's live sessions."""
        return self._call(_core.list_sessions(user_id))

    def revoke_all(self, user_id: str) -> RevokeAll:
        """Logs the user out everywhere: every session and token issued up to now dies."""
        return self._call(_core.revoke_all(user_id))

    def revoke_session(self, user_id: str, ref: str) -> None:
        """Ends one session of the user.

        Raises:
            SessionNotFound: the user has no live session with this reference.
        """
        self._call(_core.revoke_session(user_id, ref))

    # === tokens ===

    def mint(self, sub: str, claims: Mapping[str, JSON] | None = None) -> str:
        """A session token for a session that is not stored (an API client)."""
        return self._call(_core.mint(sub, claims))

    def jwks(self) -> dict[str, Any]:
        """The JWK set that verifies session tokens."""
        return self._call(_core.jwks())

    def verify(self, *, cookie: str | None = None, authorization: str | None = None) -> Verdict:
        """Asks the edge verifier about a ``Cookie`` and/or ``Authorization`` header."""
        return self._call(_core.verify(cookie, authorization))

    def revocations(
        self, *, after: int = 0, limit: int | None = None, etag: str | None = None
    ) -> RevocationFeed | None:
        """The revocation feed after ``after``; ``None`` when unchanged since ``etag``."""
        return self._call(_core.revocations(after, limit, etag))

    # === the Kask-compatible key-value API ===

    def kask_get(self, key: str | bytes) -> bytes | None:
        """The value under ``key``, or ``None``."""
        return self._call(_core.kask_get(key))

    def kask_put(self, key: str | bytes, value: bytes) -> None:
        """Stores ``value`` (1 byte or more) under ``key`` with the server's TTL."""
        self._call(_core.kask_put(key, value))

    def kask_delete(self, key: str | bytes) -> None:
        """Deletes the value under ``key`` (nothing there is fine)."""
        self._call(_core.kask_delete(key))

    # === operations ===

    def ready(self) -> bool:
        """Whether every store answers (``/readyz``)."""
        return self._call(_core.ready())


__all__ = ["Client"]
