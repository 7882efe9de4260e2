//! Every error response is built here: RFC 7807 `application/problem+json` with a stable
//! `type` (`urn:tessera:problem:<code>`). [`ProblemKind`] is the one table of codes, statuses
//! and titles; a test checks that `docs/problems.md` lists exactly its kinds.
//!
//! 5xx bodies are generic; their cause goes to the log. No body ever carries a handle, a
//! token, a key or a CSRF token: client-supplied strings are redacted from parser messages.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Declares [`ProblemKind`] from one table: each kind's code, status and title, and the list
/// of them all, so no problem can be answered that the table (and `docs/problems.md`, which a
/// test compares with it) does not have.
macro_rules! problem_kinds {
    ($($(#[doc = $doc:literal])* $kind:ident = ($status:ident, $code:literal, $title:literal),)*) => {
        /// Every kind of problem the service answers with (the Kask API has its own, see
        /// [`crate::kask`]). Its `type` is `urn:tessera:problem:<code>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ProblemKind {
            $($(#[doc = $doc])* $kind,)*
        }

        impl ProblemKind {
            /// Every kind, by status.
            pub const ALL: &'static [Self] = &[$(Self::$kind),*];

            /// Every code, in the order of [`ProblemKind::ALL`].
            pub const CODES: &'static [&'static str] = &[$($code),*];

            /// The stable code (kebab-case).
            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$kind => $code,)*
                }
            }

            /// The problem `type`: `urn:tessera:problem:<code>`.
            pub fn type_uri(self) -> &'static str {
                match self {
                    $(Self::$kind => concat!("urn:tessera:problem:", $code),)*
                }
            }

            /// The HTTP status.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$kind => StatusCode::$status,)*
                }
            }

            /// A short summary of the kind.
            pub fn title(self) -> &'static str {
                match self {
                    $(Self::$kind => $title,)*
                }
            }
        }
    };
}

problem_kinds! {
    /// The body is not JSON.
    InvalidJson = (BAD_REQUEST, "invalid-json", "Invalid JSON"),
    /// A query string the endpoint does not accept.
    InvalidQuery = (BAD_REQUEST, "invalid-query", "Invalid query"),
    /// The session cookie is not a value Tessera issued.
    MalformedCookie = (BAD_REQUEST, "malformed-cookie", "Malformed session cookie"),
    /// A missing or wrong API key.
    Unauthorized = (UNAUTHORIZED, "unauthorized", "Unauthorized"),
    /// No such endpoint.
    NotFound = (NOT_FOUND, "not-found", "Not found"),
    /// No live value under the key of the keyed store (`/v1/kv`).
    KvNotFound = (NOT_FOUND, "kv-not-found", "No such key"),
    /// No live session under the cookie or the reference.
    SessionNotFound = (NOT_FOUND, "session-not-found", "No such session"),
    /// The service issues no session tokens.
    TokensDisabled = (NOT_FOUND, "tokens-disabled", "Session tokens are disabled"),
    /// A known path with another method.
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
    /// Another backup is being made or sent.
    BackupInProgress = (CONFLICT, "backup-in-progress", "A backup is in progress"),
    /// An edit kept losing compare-and-set races.
    Contention = (CONFLICT, "contention", "Too many concurrent writes"),
    /// The request body is over the limit.
    BodyTooLarge = (PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large"),
    /// The session's data would be over the limit.
    DataTooLarge = (PAYLOAD_TOO_LARGE, "data-too-large", "Session data too large"),
    /// A value of the keyed store over `kv.max_value_bytes`.
    ValueTooLarge = (PAYLOAD_TOO_LARGE, "value-too-large", "Value too large"),
    /// A body that is not `application/json`.
    UnsupportedMediaType = (UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type"),
    /// Valid JSON with invalid content.
    InvalidRequest = (UNPROCESSABLE_ENTITY, "invalid-request", "Invalid request"),
    /// The request headers are over the limit.
    HeadersTooLarge = (REQUEST_HEADER_FIELDS_TOO_LARGE, "headers-too-large", "Request headers too large"),
    /// A bug; the cause is in the log.
    Internal = (INTERNAL_SERVER_ERROR, "internal", "Internal error"),
    /// The store keeps no revocation log.
    NoRevocationLog = (NOT_IMPLEMENTED, "no-revocation-log", "No revocation log"),
    /// The store is not one the service can copy (not redb).
    BackupUnsupported = (NOT_IMPLEMENTED, "backup-unsupported", "No backup of this store"),
    /// The store has no key-value namespace (`/v1/kv`).
    NoKvStore = (NOT_IMPLEMENTED, "no-kv-store", "No key-value store"),
    /// The store failed or did not answer.
    StoreUnavailable = (SERVICE_UNAVAILABLE, "store-unavailable", "Session store unavailable"),
    /// `tessera verifier` has not loaded its keys or revocations yet.
    VerifierNotReady = (SERVICE_UNAVAILABLE, "verifier-not-ready", "Verifier not ready"),
}

/// An RFC 7807 problem body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the problem kind: `urn:tessera:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A short summary of the problem kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What was wrong with this request.
    pub detail: String,
    /// Cookies to clear, when the problem is about the session cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_cookie: Option<Vec<String>>,
}

/// An error on its way to becoming an HTTP response.
#[derive(Debug)]
pub struct ApiError {
    kind: ProblemKind,
    detail: String,
    set_cookie: Option<Vec<String>>,
}

impl ApiError {
    /// Every code an [`ApiError`] can have.
    pub const CODES: &'static [&'static str] = ProblemKind::CODES;

    /// A problem of this kind with this detail.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            set_cookie: None,
        }
    }

    /// 401 for a missing or wrong API key.
    pub fn unauthorized() -> Self {
        Self::new(
            ProblemKind::Unauthorized,
            "this endpoint needs a valid API key as Authorization: Bearer <key>",
        )
    }

    /// 404 for an unknown path.
    pub fn no_route() -> Self {
        Self::new(ProblemKind::NotFound, "no such endpoint")
    }

    /// 404 for a session reference the user does not have.
    pub fn no_such_reference() -> Self {
        Self::new(
            ProblemKind::SessionNotFound,
            "this user has no live session with this reference",
        )
    }

    /// 404 for a token endpoint of a service without tokens.
    pub fn tokens_disabled() -> Self {
        Self::new(
            ProblemKind::TokensDisabled,
            "this service issues no session tokens ([tokens] enabled = false)",
        )
    }

    /// 405 for a known path with another method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            ProblemKind::MethodNotAllowed,
            "this endpoint does not take this method",
        )
    }

    /// 400 for a body that is not JSON; `detail` says where (quoted values redacted).
    pub fn invalid_json(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::InvalidJson, detail)
    }

    /// 400 for a query string the endpoint does not take (quoted values redacted).
    pub fn invalid_query(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::InvalidQuery, detail)
    }

    /// 413 for a body over the limit.
    pub fn body_too_large() -> Self {
        Self::new(
            ProblemKind::BodyTooLarge,
            "the request body is over the configured limit",
        )
    }

    /// 415 for a body that is not `application/json`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            ProblemKind::UnsupportedMediaType,
            "send the body as Content-Type: application/json",
        )
    }

    /// 431 for headers over the limit.
    pub fn headers_too_large(limit: usize) -> Self {
        Self::new(
            ProblemKind::HeadersTooLarge,
            format!("request headers may total at most {limit} bytes"),
        )
    }

    /// 422 for a field that is out of bounds.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::InvalidRequest, detail)
    }

    /// 500 for a panic caught by the middleware.
    pub fn internal() -> Self {
        Self::new(
            ProblemKind::Internal,
            "the server failed; the cause is in its log",
        )
    }

    /// 501 for the revocation feed of a store without a revocation log.
    pub fn no_revocation_log() -> Self {
        Self::new(
            ProblemKind::NoRevocationLog,
            "the configured store keeps no revocation log",
        )
    }

    /// 409 for a backup while another is being made or sent.
    pub fn backup_in_progress() -> Self {
        Self::new(
            ProblemKind::BackupInProgress,
            "another backup is being made or sent; try again when it is done",
        )
    }

    /// 501 for a backup of a store that is not an embedded (redb) one.
    pub fn backup_unsupported(store: &str) -> Self {
        Self::new(
            ProblemKind::BackupUnsupported,
            format!(
                "the {store} store is not an embedded redb store here: back it up with its own \
                 tools (docs/operations.md)"
            ),
        )
    }

    /// 404 for a key of the keyed store with no live value.
    pub fn kv_not_found() -> Self {
        Self::new(
            ProblemKind::KvNotFound,
            "no live value under this key (never stored, deleted, expired or cleared)",
        )
    }

    /// 413 for a keyed-store value over `kv.max_value_bytes` (`max`).
    pub fn value_too_large(max: usize) -> Self {
        Self::new(
            ProblemKind::ValueTooLarge,
            format!("values may be at most {max} bytes as compact JSON"),
        )
    }

    /// 501 for `/v1/kv` on a store without a key-value namespace.
    pub fn no_kv_store() -> Self {
        Self::new(
            ProblemKind::NoKvStore,
            "the configured store has no key-value namespace",
        )
    }

    /// 503 for `tessera verifier` before its keys and first revocations are in.
    pub fn verifier_not_ready() -> Self {
        Self::new(
            ProblemKind::VerifierNotReady,
            "the keys or the first copy of the revocations are not loaded yet",
        )
    }

    /// The kind.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl ApiError {
    /// The problem for an engine error. Problems about the session cookie carry `removal`
    /// (the `Set-Cookie` value that clears it) so the application can clear it.
    pub fn from_engine(e: tessera::Error, removal: &str) -> Self {
        use tessera::Error as E;
        let clear = || Some(vec![removal.to_owned()]);
        match &e {
            E::MalformedCookie => Self {
                set_cookie: clear(),
                ..Self::new(
                    ProblemKind::MalformedCookie,
                    "the session cookie is not a value Tessera issued (or appears twice with \
                     different values); clear it with set_cookie",
                )
            },
            E::SessionNotFound => Self {
                set_cookie: clear(),
                ..Self::new(
                    ProblemKind::SessionNotFound,
                    "the cookie names no live session: it expired, was logged out, or never \
                     existed; clear it with set_cookie",
                )
            },
            E::InvalidInput(d) => Self::invalid(d.clone()),
            E::DataTooLarge { .. } => Self::new(ProblemKind::DataTooLarge, e.to_string()),
            E::Contention => Self::new(
                ProblemKind::Contention,
                "the session kept changing under concurrent writes; retry",
            ),
            E::Store(inner) => {
                tracing::error!(code = inner.code(), error = ?inner, "store failure");
                Self::store_unavailable()
            }
            _ => {
                tracing::error!(code = e.code(), error = ?e, "internal failure");
                Self::internal()
            }
        }
    }

    /// 503 for a store that failed or did not answer.
    pub fn store_unavailable() -> Self {
        Self::new(
            ProblemKind::StoreUnavailable,
            "the session store failed or did not answer; retry later",
        )
    }
}

/// Replaces quoted strings in a parser message with `"…"`, so a value the client put in the
/// wrong field (a cookie, a token) is never echoed.
pub(crate) fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut in_quotes = false;
    for c in msg.chars() {
        if c == '"' {
            if in_quotes {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            in_quotes = !in_quotes;
        } else if !in_quotes {
            out.push(c);
        }
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let body = Problem {
            kind: self.kind.type_uri(),
            title: self.kind.title(),
            status: status.as_u16(),
            detail: self.detail,
            set_cookie: self.set_cookie,
        };
        let mut res = (status, Json(body)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_quoted_values() {
        assert_eq!(
            redact("invalid type: string \"aSECRET\", expected a map at line 1"),
            "invalid type: string \"…\", expected a map at line 1"
        );
        assert_eq!(redact("missing field `cookie`"), "missing field `cookie`");
    }
}
