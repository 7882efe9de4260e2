"""The asynchronous client of Tessera's HTTP API (``AsyncClient``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _core
from ._core import Call, Request
from .client import Client
from .models import (
    JSON,
    RevocationFeed,
    RevokeAll,
    SessionResult,
    SessionSummary,
    Verdict,
)

T = TypeVar("T")


class AsyncClient:
    """An asynchronous client of one Tessera service: :class:`~tessera_sessions.Client`'s
    arguments (``transport`` an ``httpx.AsyncBaseTransport``) and methods, each awaited, with
    the same answers and errors. Each method's docstring is the sync client's.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = _core.DEFAULT_TIMEOUT,
        retries: int = _core.DEFAULT_RETRIES,
        backoff: float = _core.DEFAULT_BACKOFF,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, self._api_key = _core.resolve_settings(url, api_key)
        self._retries = retries
        self._backoff = backoff
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, transport=transport)

    async def close(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, req: Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                r = await self._http.send(_core.build(self._http, req, self._api_key))
            except httpx.HTTPError as e:
                raise _core.transport_error(req, e) from e
            wait = _core.retry_wait(r, attempt, self._retries, self._backoff)
            if wait is None:
                return r
            await asyncio.sleep(wait)
            attempt += 1

    async def _call(self, call: Call[T]) -> T:
        return call.read(await self._send(call.request))

    # === sessions ===

    async def resolve(
        self,
        cookie: str,
        *,
        create: bool = False,
        csrf_purpose: str | None = None,
        secrets: bool = False,
        storage: str | None = None,
        renew: bool = True,
    ) -> SessionResult:
        return await self._call(
            _core.resolve(
                cookie,
                create=create,
                csrf_purpose=csrf_purpose,
                secrets=secrets,
                storage=storage,
                renew=renew,
            )
        )

    async def update(
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
        return await self._call(
            _core.update(
                cookie, set, remove, secrets, remove_secrets, expiry=expiry, storage=storage
            )
        )

    async def rotate(self, cookie: str) -> SessionResult:
        return await self._call(_core.rotate(cookie))

    async def login(
        self,
        cookie: str,
        user_id: str,
        *,
        name: str | None = None,
        provider: str | None = None,
        claims: Mapping[str, JSON] | None = None,
        remember: bool = False,
    ) -> SessionResult:
        return await self._call(
            _core.login(
                cookie, user_id, name=name, provider=provider, claims=claims, remember=remember
            )
        )

    async def logout(self, cookie: str) -> SessionResult:
        return await self._call(_core.logout(cookie))

    async def check_csrf(self, cookie: str, token: str, *, purpose: str | None = None) -> bool:
        return await self._call(_core.check_csrf(cookie, token, purpose))

    # === users ===

    async def list_sessions(self, user_id: str) -> list[SessionSummary]:
        return await self._call(_core.list_sessions(user_id))

    async def revoke_all(self, user_id: str) -> RevokeAll:
        return await self._call(_core.revoke_all(user_id))

    async def revoke_session(self, user_id: str, ref: str) -> None:
        await self._call(_core.revoke_session(user_id, ref))

    # === tokens ===

    async def mint(self, sub: str, claims: Mapping[str, JSON] | None = None) -> str:
        return await self._call(_core.mint(sub, claims))

    async def jwks(self) -> dict[str, Any]:
        return await self._call(_core.jwks())

    async def verify(
        self, *, cookie: str | None = None, authorization: str | None = None
    ) -> Verdict:
        return await self._call(_core.verify(cookie, authorization))

    async def revocations(
        self, *, after: int = 0, limit: int | None = None, etag: str | None = None
    ) -> RevocationFeed | None:
        return await self._call(_core.revocations(after, limit, etag))

    # === the Kask-compatible key-value API ===

    async def kask_get(self, key: str | bytes) -> bytes | None:
        return await self._call(_core.kask_get(key))

    async def kask_put(self, key: str | bytes, value: bytes) -> None:
        await self._call(_core.kask_put(key, value))

    async def kask_delete(self, key: str | bytes) -> None:
        await self._call(_core.kask_delete(key))

    # === operations ===

    async def ready(self) -> bool:
        return await self._call(_core.ready())


_core.share_docs(AsyncClient, Client)

__all__ = ["AsyncClient"]
