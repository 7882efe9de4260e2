//! Tessera's HTTP service as a library: [`app`] builds the router from an [`AppState`];
//! [`startup`] turns a [`Config`](config::Config) into a running service. The `tessera` binary
//! is a thin shell over both.
//!
//! Endpoints (DESIGN §7; `/openapi.json` is the reference):
//!
//! | method and path | auth | purpose |
//! |---|---|---|
//! | `POST /v1/session/resolve` | API key | read (and renew) the session named by a cookie |
//! | `POST /v1/session/update` | API key | per-key set/remove |
//! | `POST /v1/session/login` | API key | bind a user: new handle, cookies |
//! | `POST /v1/session/logout` | API key | end the session, cookies to clear |
//! | `POST /v1/session/csrf/check` | API key | check a CSRF token |
//! | `GET`, `DELETE /v1/users/{id}/sessions` | API key | list, log out everywhere |
//! | `DELETE /v1/users/{id}/sessions/{ref}` | API key | revoke one |
//! | `GET`, `POST`, `DELETE /sessions/v1/{key}` | API key (configurable) | Kask-compatible key-value store |
//! | `POST /v1/tokens` | API key | mint a token for a session that is not stored |
//! | `GET /v1/verify` | none | the edge verifier (`auth_request`, ForwardAuth, `ext_authz`) |
//! | `GET /.well-known/jwks.json` | none | the public keys of session tokens |
//! | `GET /v1/revocations` | none | the revocation feed for edge verifiers |
//! | `GET /healthz`, `/readyz`, `/metrics`, `/openapi.json` | none | operations |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod cli;
pub mod config;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
mod http_metrics;
pub mod kask;
pub mod keys;
mod openapi;
pub mod problem;
pub mod revocations;
mod seal_keys;
pub mod startup;
mod state;
mod store_metrics;
pub mod tokens;
pub mod verifier;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;

pub use openapi::ApiDoc;
pub use state::{ApiKeys, AppState, Settings};

use crate::problem::ApiError;

/// Every route pattern of [`app`], for metric labels.
pub(crate) const ROUTES: &[&str] = &[
    "/v1/session/resolve",
    "/v1/session/update",
    "/v1/session/login",
    "/v1/session/logout",
    "/v1/session/csrf/check",
    "/v1/users/{id}/sessions",
    "/v1/users/{id}/sessions/{ref}",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/v1/revocations",
    "/v1/tokens",
    "/v1/verify",
    "/.well-known/jwks.json",
    "/sessions/v1",
    "/sessions/v1/",
    "/sessions/v1/{*key}",
];

/// The service's router. Session and management endpoints need the API key (their handlers
/// take the [`api::ApiKey`] extractor); health, metrics and the OpenAPI document do not.
pub fn app(state: AppState) -> Router {
    let limits = state.limits();
    let protected = Router::new()
        .route("/v1/session/resolve", post(api::resolve))
        .route("/v1/session/update", post(api::update))
        .route("/v1/session/login", post(api::login))
        .route("/v1/session/logout", post(api::logout))
        .route("/v1/session/csrf/check", post(api::csrf_check))
        .route(
            "/v1/users/{id}/sessions",
            get(api::list_sessions).delete(api::revoke_all),
        )
        .route("/v1/users/{id}/sessions/{ref}", delete(api::revoke_one))
        .route("/v1/tokens", post(tokens::mint));
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/v1/revocations", get(revocations::feed))
        .route("/v1/verify", get(tokens::verify))
        .route("/.well-known/jwks.json", get(tokens::jwks))
        // Kask answers 404/400 itself for empty keys and other methods: route them all there.
        .route("/sessions/v1", any(kask::handle))
        .route("/sessions/v1/", any(kask::handle))
        .route("/sessions/v1/{*key}", any(kask::handle))
        .merge(protected)
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(http_metrics::TrackLayer::new(
            state.http().clone(),
            limits.max_header_bytes,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal().into_response()
        }))
        .with_state(state)
}
