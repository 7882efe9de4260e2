"""What the HTTP API answers, as typed values. Times are Unix seconds unless named ``_ms``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError

JSON = Any
"""A JSON value."""


def _obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ProtocolError(f"{what}: expected a JSON object", status=200)
    return v


@dataclass(frozen=True, slots=True)
class User:
    """A user as the API shows it."""

    id: str
    name: str | None = None
    provider: str | None = None

    @classmethod
    def from_json(cls, v: Any) -> User:
        o = _obj(v, "user")
        return cls(id=str(o["id"]), name=o.get("name"), provider=o.get("provider"))


@dataclass(frozen=True, slots=True)
class Session:
    """A live session."""

    ref: str
    """Its public reference, for the management API (not a credential)."""
    sid: str
    """What its tokens and the revocation feed name it by."""
    kind: str
    """``anonymous`` or ``authenticated``."""
    storage: str
    """``cookie`` (a client-side anonymous session) or ``store``."""
    user: User | None
    data: dict[str, JSON]
    claims: dict[str, JSON]
    created_at: int
    idle_expires_at: int
    absolute_expires_at: int
    remember: bool
    secrets: dict[str, JSON] | None = None
    """Only when the request asked for them."""
    expires_at: int = 0
    """The effective expiry: the earliest of idle, absolute and its own end."""
    expiry: dict[str, int] | str | None = None
    """Its own expiry (``{"at": t}``, ``{"idle": s}``, ``"browser"``), ``None`` for the defaults."""

    @classmethod
    def from_json(cls, v: Any) -> Session:
        o = _obj(v, "session")
        user = o.get("user")
        secrets = o.get("secrets")
        return cls(
            ref=str(o["ref"]),
            sid=str(o["sid"]),
            kind=str(o["kind"]),
            storage=str(o["storage"]),
            user=None if user is None else User.from_json(user),
            data=dict(_obj(o.get("data", {}), "data")),
            claims=dict(_obj(o.get("claims", {}), "claims")),
            created_at=int(o["created_at"]),
            idle_expires_at=int(o["idle_expires_at"]),
            absolute_expires_at=int(o["absolute_expires_at"]),
            remember=bool(o["remember"]),
            secrets=None if secrets is None else dict(_obj(secrets, "secrets")),
            expires_at=int(o.get("expires_at", 0)),
            expiry=o.get("expiry"),
        )


@dataclass(frozen=True, slots=True)
class SessionResult:
    """The answer of every ``/v1/session/*`` operation."""

    session: Session | None
    set_cookie: list[str]
    """``Set-Cookie`` values to send to the browser, in order, untouched."""
    status: str
    """What happened: ``none``, ``loaded``, ``renewed``, ``created``, ``updated``, ..."""
    csrf_token: str | None
    token_status: str
    """The session token's status (``ok``, ``issued``, ``soft_expired``, ``none``, ...)."""

    @classmethod
    def from_json(cls, v: Any) -> SessionResult:
        o = _obj(v, "answer")
        s = o.get("session")
        return cls(
            session=None if s is None else Session.from_json(s),
            set_cookie=[str(c) for c in o.get("set_cookie", [])],
            status=str(o.get("status", "")),
            csrf_token=o.get("csrf_token"),
            token_status=str(o.get("token_status", "")),
        )


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One session in a user's list."""

    ref: str
    created_at: int
    idle_expires_at: int
    absolute_expires_at: int
    remember: bool

    @classmethod
    def from_json(cls, v: Any) -> SessionSummary:
        o = _obj(v, "session")
        return cls(
            ref=str(o["ref"]),
            created_at=int(o["created_at"]),
            idle_expires_at=int(o["idle_expires_at"]),
            absolute_expires_at=int(o["absolute_expires_at"]),
            remember=bool(o["remember"]),
        )


@dataclass(frozen=True, slots=True)
class RevokeAll:
    """The answer of "log out everywhere"."""

    revoked: int
    """How many live sessions the user had."""
    revoked_at_ms: int
    """Every session and token of the user issued up to this time (Unix ms) is dead."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """One entry of the revocation feed."""

    seq: int
    kind: str
    """``user`` (``id`` is a token ``sub``) or ``session`` (``id`` is a ``sid``)."""
    id: str
    at: int


@dataclass(frozen=True, slots=True)
class RevocationFeed:
    """A page of the revocation feed."""

    revocations: list[Revocation]
    next: int
    """The cursor for the next request (``after=``)."""
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The edge verifier's answer."""

    valid: bool
    """Whether a valid token came (``subject`` is then its ``sub``)."""
    status_code: int
    subject: str | None
    session: str | None
    token_status: str
    claims: dict[str, str] = field(default_factory=dict)
    """The configured ``X-Tessera-Claim-<name>`` headers, by lower-case name."""
