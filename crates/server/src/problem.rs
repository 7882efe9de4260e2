//! Every error response is built here: RFC 7807 `application/problem+json` with a stable
//! `type` (`urn:tessera:problem:<code>`, listed in `docs/problems.md`).
//!
//! 5xx bodies are generic; their cause goes to the log. No body ever carries a handle, a
//! token, a key or a CSRF token: client-supplied strings are redacted from parser messages.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 7807 problem body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the problem kind: `urn:tessera:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
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
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    set_cookie: Option<Vec<String>>,
}

impl ApiError {
    /// A problem with this status, stable code, title and detail.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            set_cookie: None,
        }
    }

    /// 401 for a missing or wrong API key.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "this endpoint needs a valid API key as Authorization: Bearer <key>",
        )
    }

    /// 404 for an unknown path.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "no such endpoint",
        )
    }

    /// 405 for a known path with another method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this endpoint does not take this method",
        )
    }

    /// 431 for headers over the limit.
    pub fn headers_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request headers too large",
            format!("request headers may total at most {limit} bytes"),
        )
    }

    /// 422 for a field that is out of bounds.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    /// 500 for a panic caught by the middleware.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; the cause is in its log",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
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
                    StatusCode::BAD_REQUEST,
                    "malformed-cookie",
                    "Malformed session cookie",
                    "the session cookie is not a value Tessera issued (or appears twice with \
                     different values); clear it with set_cookie",
                )
            },
            E::SessionNotFound => Self {
                set_cookie: clear(),
                ..Self::new(
                    StatusCode::NOT_FOUND,
                    "session-not-found",
                    "No such session",
                    "the cookie names no live session: it expired, was logged out, or never \
                     existed; clear it with set_cookie",
                )
            },
            E::InvalidInput(d) => Self::invalid(d.clone()),
            E::DataTooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "data-too-large",
                "Session data too large",
                e.to_string(),
            ),
            E::Contention => Self::new(
                StatusCode::CONFLICT,
                "contention",
                "Too many concurrent writes",
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
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "Session store unavailable",
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
        let body = Problem {
            kind: format!("urn:tessera:problem:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: self.detail,
            set_cookie: self.set_cookie,
        };
        let mut res = (self.status, Json(body)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
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
