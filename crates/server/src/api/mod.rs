//! The HTTP handlers and their request and response shapes (DESIGN §7; the OpenAPI document
//! at `/openapi.json` is generated from these types).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::problem::ApiError;

mod health;
mod session;
mod shapes;
mod users;

pub use health::*;
pub use session::*;
pub use shapes::*;
pub use users::*;

/// A JSON body whose rejections become problem responses.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        // The body limit (DefaultBodyLimit) applies here.
        let body = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::body_too_large()
            } else {
                ApiError::invalid_json("the body could not be read")
            }
        })?;
        parse_json(&body).map(Self)
    }
}

/// Whether the request's `Content-Type` is JSON (`application/json` or `application/*+json`).
pub(crate) fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json")
                || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// A request body as `T`: 400 for a body that is not JSON, 422 for JSON of the wrong shape
/// (an array included, where the API takes objects only).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // serde's derived structs also accept arrays; the API takes objects only. Checked on
    // the bytes, so the body is parsed once.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[') => return Err(ApiError::invalid("the body must be a JSON object")),
        _ => {}
    }
    serde_json::from_slice(body).map_err(|e| {
        let detail = crate::problem::redact(&e.to_string());
        match e.classify() {
            serde_json::error::Category::Data => ApiError::invalid(detail),
            _ => ApiError::invalid_json(detail),
        }
    })
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        // Sized for a typical session answer (about 500 bytes), so it is written once instead
        // of regrown from axum's 128-byte start.
        let mut buf = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                buf,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a response");
                ApiError::internal().into_response()
            }
        }
    }
}

/// Proof that the request carried a valid management API key (`Authorization: Bearer`).
/// An extractor rather than a middleware layer: it costs nothing on public routes and runs
/// before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        if s.bearer_ok(&parts.headers) {
            return Ok(Self);
        }
        tracing::info!(target: "security", path = parts.uri.path(), "management request without a valid API key");
        Err(ApiError::unauthorized())
    }
}

/// The CSRF purpose used when a request names none.
pub const DEFAULT_PURPOSE: &str = "default";
