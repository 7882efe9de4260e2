//! The extractors ([`Session`], [`LiveSession`]) and engine errors as responses.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use super::Session;
use crate::{Error, LiveSession};

/// Why a session extractor failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionRejection {
    /// The router has no [`SessionLayer`](super::SessionLayer).
    MissingLayer,
    /// Reading the session failed.
    Engine(Error),
}

impl SessionRejection {
    /// The HTTP status of this rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Engine(e) => status_of(e),
        }
    }

    /// The plain-text body of this rejection.
    pub fn body_text(&self) -> String {
        match self {
            Self::MissingLayer => "Session extractor used without tessera::tower::SessionLayer: \
                                   add the layer to the router"
                .to_owned(),
            Self::Engine(e) => body_of(e),
        }
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        if let Self::MissingLayer = self {
            tracing::error!("tessera::tower::Session extracted without a SessionLayer");
        }
        (self.status(), self.body_text()).into_response()
    }
}

/// The engine's one status mapping ([`Error::status`]), the service's too.
fn status_of(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn body_of(e: &Error) -> String {
    match e {
        // 5xx bodies stay generic; the cause is logged.
        Error::Store(_) => "the session store is unavailable; retry later".to_owned(),
        e if status_of(e).is_server_error() => "internal error".to_owned(),
        e => e.to_string(),
    }
}

/// Engine errors in handlers become plain-text responses: client errors say what was wrong,
/// server errors are generic and logged.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = ?self, "session operation failed");
        }
        (status, body_of(&self)).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(SessionRejection::MissingLayer)
    }
}

/// [`LiveSession`] as an extractor: the live session, read eagerly; extracting it fails
/// with 401 when there is none. `Option<LiveSession>` is the optional form: `None` when
/// there is no live session, while a store failure still rejects (503) rather than looking
/// like "logged out".
impl<S: Send + Sync> OptionalFromRequestParts<S> for LiveSession {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let handle = <Session as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        handle.load().await.map_err(SessionRejection::Engine)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LiveSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match <Self as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err((StatusCode::UNAUTHORIZED, "no live session").into_response()),
            Err(r) => Err(r.into_response()),
        }
    }
}
