"""The errors of the client: every problem type of the HTTP API is an exception class.

A problem response (RFC 7807, ``application/problem+json``) raises the class of its ``type``
(``urn:tessera:problem:<code>``, listed in Tessera's ``docs/problems.md``); an unknown code
raises :class:`ProblemError` itself, so a newer server never breaks an older client. The
Kask-compatible API answers with Kask's own problem types: :class:`KaskError`.
"""

from __future__ import annotations

from typing import Any

PROBLEM_PREFIX = "urn:tessera:problem:"


class TesseraError(Exception):
    """Every error this package raises."""


class TransportError(TesseraError):
    """The service could not be reached, or did not answer within the timeout."""


class ProtocolError(TesseraError):
    """The service answered something this client does not understand."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ProblemError(TesseraError):
    """A problem response of the HTTP API.

    Attributes:
        status: the HTTP status.
        type: the problem type, ``urn:tessera:problem:<code>``.
        code: the stable code, the last part of ``type``.
        title: a short summary of the problem type.
        detail: what was wrong with this request (never a handle, token or key).
        set_cookie: for problems about the session cookie, the ``Set-Cookie`` values that
            clear it; send them to the browser.
    """

    code: str = ""

    def __init__(
        self,
        *,
        status: int,
        type: str,
        title: str,
        detail: str,
        set_cookie: list[str] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.set_cookie = list(set_cookie or [])
        if not self.code:
            self.code = type.removeprefix(PROBLEM_PREFIX)


class InvalidJson(ProblemError):
    """400: the body was not JSON."""

    code = "invalid-json"


class InvalidQuery(ProblemError):
    """400: a query string the endpoint does not accept."""

    code = "invalid-query"


class MalformedCookie(ProblemError):
    """400: the session cookie is not a value Tessera issued; ``set_cookie`` clears it."""

    code = "malformed-cookie"


class Unauthorized(ProblemError):
    """401: missing or wrong API key."""

    code = "unauthorized"


class NotFound(ProblemError):
    """404: no such endpoint."""

    code = "not-found"


class SessionNotFound(ProblemError):
    """404: the cookie names no live session (``set_cookie`` clears it), or no such reference."""

    code = "session-not-found"


class TokensDisabled(ProblemError):
    """404: the service issues no session tokens."""

    code = "tokens-disabled"


class MethodNotAllowed(ProblemError):
    """405: known path, other method."""

    code = "method-not-allowed"


class Contention(ProblemError):
    """409: an edit lost too many compare-and-set races; retry."""

    code = "contention"


class BodyTooLarge(ProblemError):
    """413: the request body is over the service's limit."""

    code = "body-too-large"


class DataTooLarge(ProblemError):
    """413: the session's data would exceed its limit."""

    code = "data-too-large"


class UnsupportedMediaType(ProblemError):
    """415: the body was not sent as JSON."""

    code = "unsupported-media-type"


class InvalidRequest(ProblemError):
    """422: valid JSON, invalid content (a bad user id, key, purpose or claim...)."""

    code = "invalid-request"


class HeadersTooLarge(ProblemError):
    """431: the request headers are over the service's limit."""

    code = "headers-too-large"


class Internal(ProblemError):
    """500: a bug in the service; the cause is in its log."""

    code = "internal"


class NoRevocationLog(ProblemError):
    """501: the configured store keeps no revocation log."""

    code = "no-revocation-log"


class StoreUnavailable(ProblemError):
    """503: the session store failed or did not answer (nothing was partly written)."""

    code = "store-unavailable"


class VerifierNotReady(ProblemError):
    """503: the verifier has not loaded its keys or revocations yet."""

    code = "verifier-not-ready"


PROBLEM_CLASSES: dict[str, type[ProblemError]] = {
    cls.code: cls
    for cls in (
        InvalidJson,
        InvalidQuery,
        MalformedCookie,
        Unauthorized,
        NotFound,
        SessionNotFound,
        TokensDisabled,
        MethodNotAllowed,
        Contention,
        BodyTooLarge,
        DataTooLarge,
        UnsupportedMediaType,
        InvalidRequest,
        HeadersTooLarge,
        Internal,
        NoRevocationLog,
        StoreUnavailable,
        VerifierNotReady,
    )
}


class KaskError(TesseraError):
    """A problem of the Kask-compatible API (Kask's own types).

    Attributes:
        status: the HTTP status.
        kind: ``bad_request``, ``not_authorized``, ``not_found`` or ``server_error``.
        detail: what was wrong.
    """

    def __init__(self, *, status: int, kind: str, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail


def problem_from(status: int, body: Any) -> ProblemError:
    """The exception for a problem document (``body`` already parsed from JSON)."""
    if not isinstance(body, dict):
        body = {}
    kind = str(body.get("type", f"{PROBLEM_PREFIX}unknown"))
    raw_cookies = body.get("set_cookie")
    cookies = [str(c) for c in raw_cookies] if isinstance(raw_cookies, list) else None
    cls = PROBLEM_CLASSES.get(kind.removeprefix(PROBLEM_PREFIX), ProblemError)
    return cls(
        status=status,
        type=kind,
        title=str(body.get("title", "")),
        detail=str(body.get("detail", "")),
        set_cookie=cookies,
    )


def kask_error_from(status: int, body: Any) -> KaskError:
    """The exception for a Kask problem document."""
    if not isinstance(body, dict):
        body = {}
    kind = str(body.get("type", "")).rsplit("/", 1)[-1] or "server_error"
    return KaskError(
        status=status,
        kind=kind,
        title=str(body.get("title", "")),
        detail=str(body.get("detail", "")),
    )
