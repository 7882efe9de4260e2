"""What the sync and async clients share: every operation as a :class:`Call` (the request to
send and how its answer is read), the settings, the retry policy and the transport errors.
The clients only send, and wait."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from .errors import ProtocolError, TransportError, kask_error_from, problem_from
from .models import (
    JSON,
    Revocation,
    RevocationFeed,
    RevokeAll,
    SessionResult,
    SessionSummary,
    Verdict,
)

DEFAULT_TIMEOUT = 5.0
"""Seconds for connecting, and for each read and write."""
DEFAULT_RETRIES = 2
"""How many times a 503 is retried (the store failed or timed out; repeating is safe: README)."""
DEFAULT_BACKOFF = 0.1
"""The first retry waits up to this many seconds; each next one up to twice as long."""
MAX_BACKOFF = 2.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to the service."""

    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: bool = True


def resolve_settings(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The base URL and API key: the arguments, else ``TESSERA_URL`` and ``TESSERA_API_KEY``."""
    url = url or os.environ.get("TESSERA_URL")
    if not url:
        raise ValueError("no Tessera URL: pass url= or set TESSERA_URL")
    return url.rstrip("/"), api_key if api_key is not None else os.environ.get("TESSERA_API_KEY")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One operation of the API: the request to send, and how its answer is read."""

    request: Request
    read: Callable[[httpx.Response], T]


def headers_for(req: Request, api_key: str | None) -> dict[str, str]:
    h = dict(req.headers)
    if req.auth and api_key:
        h["Authorization"] = f"Bearer {api_key}"
    return h


def build(
    http: httpx.Client | httpx.AsyncClient, req: Request, api_key: str | None
) -> httpx.Request:
    """The ``httpx`` request of ``req``, on either client."""
    return http.build_request(
        req.method,
        req.path,
        json=req.json,
        content=req.content,
        params=req.params,
        headers=headers_for(req, api_key),
    )


def transport_error(req: Request, e: httpx.HTTPError) -> TransportError:
    if isinstance(e, httpx.TimeoutException):
        return TransportError(f"{req.method} {req.path}: timed out")
    return TransportError(f"{req.method} {req.path}: {e}")


def backoff(attempt: int, base: float) -> float:
    """Full jitter: a random wait below ``base * 2**attempt`` (capped)."""
    return random.uniform(0, min(MAX_BACKOFF, base * (2**attempt)))


def retry_wait(r: httpx.Response, attempt: int, retries: int, base: float) -> float | None:
    """How long to wait before sending again, or ``None`` to take this answer: only a 503 (the
    store failed or timed out; repeating is safe) is retried, ``retries`` times at most."""
    if r.status_code != 503 or attempt >= retries:
        return None
    return backoff(attempt, base)


def segment(value: str | bytes) -> str:
    """A path segment, every reserved character percent-encoded."""
    return quote(value, safe="")


def body_of(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError as e:
        raise ProtocolError(f"not JSON: {r.text[:200]!r}", status=r.status_code) from e


def check(r: httpx.Response) -> httpx.Response:
    """Raises the problem of a 4xx/5xx answer."""
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = {
                "type": "urn:tessera:problem:unknown",
                "title": r.reason_phrase,
                "detail": r.text[:200],
            }
        raise problem_from(r.status_code, body)
    return r


def check_kask(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        try:
            body = r.json()
        except ValueError:
            body = {}
        raise kask_error_from(r.status_code, body)
    return r


# === requests ===


def session_request(op: str, cookie: str, **fields: Any) -> Request:
    body: dict[str, Any] = {"cookie": cookie}
    body.update({k: v for k, v in fields.items() if v is not None})
    return Request("POST", f"/v1/session/{op}", json=body)


class Unchanged:
    """The type of :data:`UNCHANGED`."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = Unchanged()
"""``update(expiry=UNCHANGED)``: leave the session's own expiry as it is (``None`` resets it)."""

Expiry = dict[str, int] | str | None
"""A session's own expiry: ``{"at": unix_seconds}``, ``{"idle": seconds}``, ``"browser"`` or
``None`` (the server's defaults)."""


def users_path(user_id: str) -> str:
    return f"/v1/users/{segment(user_id)}/sessions"


def kask_path(key: str | bytes) -> str:
    """The path of a Kask key. A key with ``/`` cannot be addressed (Kask answers 404)."""
    if (b"/" in key) if isinstance(key, bytes) else ("/" in key):
        raise ValueError("a Kask key cannot contain '/'")
    if not key:
        raise ValueError("a Kask key cannot be empty")
    return f"/sessions/v1/{segment(key)}"


# === answers ===


def session_result(r: httpx.Response) -> SessionResult:
    return SessionResult.from_json(body_of(check(r)))


def csrf_valid(r: httpx.Response) -> bool:
    return bool(body_of(check(r)).get("valid"))


def session_list(r: httpx.Response) -> list[SessionSummary]:
    return [SessionSummary.from_json(s) for s in body_of(check(r)).get("sessions", [])]


def revoked_all(r: httpx.Response) -> RevokeAll:
    o = body_of(check(r))
    return RevokeAll(revoked=int(o["revoked"]), revoked_at_ms=int(o["revoked_at_ms"]))


def revocation_feed(r: httpx.Response) -> RevocationFeed | None:
    if r.status_code == 304:
        return None
    o = body_of(check(r))
    return RevocationFeed(
        revocations=[
            Revocation(seq=int(e["seq"]), kind=str(e["kind"]), id=str(e["id"]), at=int(e["at"]))
            for e in o.get("revocations", [])
        ],
        next=int(o["next"]),
        etag=r.headers.get("etag"),
    )


def minted(r: httpx.Response) -> str:
    return str(body_of(check(r))["token"])


def verdict(r: httpx.Response) -> Verdict:
    if r.status_code not in (200, 401):
        check(r)
        raise ProtocolError(f"unexpected status {r.status_code}", status=r.status_code)
    subject = r.headers.get("x-tessera-subject")
    claims = {
        k.removeprefix("x-tessera-claim-"): v
        for k, v in r.headers.items()
        if k.lower().startswith("x-tessera-claim-")
    }
    return Verdict(
        valid=r.status_code == 200 and subject is not None and subject != "anon",
        status_code=r.status_code,
        subject=subject,
        session=r.headers.get("x-tessera-session"),
        token_status=r.headers.get("x-tessera-token-status", ""),
        claims=claims,
    )


def kask_value(r: httpx.Response) -> bytes | None:
    if r.status_code == 404:
        return None
    return check_kask(r).content


def checked(r: httpx.Response) -> None:
    check(r)


def checked_kask(r: httpx.Response) -> None:
    check_kask(r)


def is_ready(r: httpx.Response) -> bool:
    if r.status_code == 503:
        return False
    check(r)
    return True


def jwk_set(r: httpx.Response) -> dict[str, Any]:
    return dict(body_of(check(r)))


# === operations: one Call each, named as the clients' methods (documented there) ===


def resolve(
    cookie: str,
    *,
    create: bool,
    csrf_purpose: str | None,
    secrets: bool,
    storage: str | None,
    renew: bool,
) -> Call[SessionResult]:
    req = session_request(
        "resolve",
        cookie,
        create=create or None,
        csrf_purpose=csrf_purpose,
        secrets=secrets or None,
        storage=storage,
        renew=None if renew else False,
    )
    return Call(req, session_result)


def update(
    cookie: str,
    set: Mapping[str, JSON] | None,
    remove: Sequence[str] | None,
    secrets: Mapping[str, JSON] | None,
    remove_secrets: Sequence[str] | None,
    *,
    expiry: Expiry | Unchanged,
    storage: str | None,
) -> Call[SessionResult]:
    req = session_request(
        "update",
        cookie,
        set=dict(set) if set else None,
        remove=list(remove) if remove else None,
        secrets=dict(secrets) if secrets else None,
        remove_secrets=list(remove_secrets) if remove_secrets else None,
        storage=storage,
    )
    if not isinstance(expiry, Unchanged):
        # ``None`` is sent as ``null``: back to the defaults.
        req.json["expiry"] = expiry
    return Call(req, session_result)


def rotate(cookie: str) -> Call[SessionResult]:
    return Call(session_request("rotate", cookie), session_result)


def login(
    cookie: str,
    user_id: str,
    *,
    name: str | None,
    provider: str | None,
    claims: Mapping[str, JSON] | None,
    remember: bool,
) -> Call[SessionResult]:
    user: dict[str, str] = {"id": user_id}
    if name is not None:
        user["name"] = name
    if provider is not None:
        user["provider"] = provider
    claims = dict(claims) if claims else None
    req = session_request("login", cookie, user=user, claims=claims, remember=remember)
    return Call(req, session_result)


def logout(cookie: str) -> Call[SessionResult]:
    return Call(session_request("logout", cookie), session_result)


def check_csrf(cookie: str, token: str, purpose: str | None) -> Call[bool]:
    return Call(session_request("csrf/check", cookie, token=token, purpose=purpose), csrf_valid)


def list_sessions(user_id: str) -> Call[list[SessionSummary]]:
    return Call(Request("GET", users_path(user_id)), session_list)


def revoke_all(user_id: str) -> Call[RevokeAll]:
    return Call(Request("DELETE", users_path(user_id)), revoked_all)


def revoke_session(user_id: str, ref: str) -> Call[None]:
    return Call(Request("DELETE", f"{users_path(user_id)}/{segment(ref)}"), checked)


def mint(sub: str, claims: Mapping[str, JSON] | None) -> Call[str]:
    body = {"sub": sub, "claims": dict(claims or {})}
    return Call(Request("POST", "/v1/tokens", json=body), minted)


def jwks() -> Call[dict[str, Any]]:
    return Call(Request("GET", "/.well-known/jwks.json", auth=False), jwk_set)


def verify(cookie: str | None, authorization: str | None) -> Call[Verdict]:
    h: dict[str, str] = {}
    if cookie is not None:
        h["Cookie"] = cookie
    if authorization is not None:
        h["Authorization"] = authorization
    return Call(Request("GET", "/v1/verify", headers=h, auth=False), verdict)


def revocations(after: int, limit: int | None, etag: str | None) -> Call[RevocationFeed | None]:
    params = {"after": str(after)}
    if limit is not None:
        params["limit"] = str(limit)
    req = Request(
        "GET",
        "/v1/revocations",
        params=params,
        headers={"If-None-Match": etag} if etag else {},
        auth=False,
    )
    return Call(req, revocation_feed)


def kask_get(key: str | bytes) -> Call[bytes | None]:
    return Call(Request("GET", kask_path(key)), kask_value)


def kask_put(key: str | bytes, value: bytes) -> Call[None]:
    headers = {"Content-Type": "application/octet-stream"}
    return Call(Request("POST", kask_path(key), content=value, headers=headers), checked_kask)


def kask_delete(key: str | bytes) -> Call[None]:
    return Call(Request("DELETE", kask_path(key)), checked_kask)


def ready() -> Call[bool]:
    return Call(Request("GET", "/readyz", auth=False), is_ready)


def share_docs(twin: type, original: type) -> None:
    """Gives each public method of ``twin`` without a docstring the docstring of ``original``'s
    method of that name: the async client's methods are the sync client's, awaited."""
    for name, method in vars(twin).items():
        if name.startswith("_") or not callable(method) or method.__doc__:
            continue
        source = getattr(original, name, None)
        if source is not None and source.__doc__:
            method.__doc__ = source.__doc__
