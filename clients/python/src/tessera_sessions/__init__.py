"""Tessera sessions from Python: sync and async clients of Tessera's HTTP API, a Flask session
interface (:mod:`tessera_sessions.flask`) and a Django session engine
(``SESSION_ENGINE = "tessera_sessions.django"``)."""

from . import errors
from .aio import AsyncClient
from .client import Client
from .errors import ProblemError, TesseraError
from .models import (
    Revocation,
    RevocationFeed,
    RevokeAll,
    Session,
    SessionResult,
    SessionSummary,
    User,
    Verdict,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ProblemError",
    "Revocation",
    "RevocationFeed",
    "RevokeAll",
    "Session",
    "SessionResult",
    "SessionSummary",
    "TesseraError",
    "User",
    "Verdict",
    "errors",
]
__version__ = "0.1.0"
