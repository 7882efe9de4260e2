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
//! | `POST /v1/session/rotate` | API key | a new handle for the same session, the old retired |
//! | `POST /v1/session/csrf/check` | API key | check a CSRF token |
//! | `GET`, `DELETE /v1/users/{id}/sessions` | API key | list, log out everywhere |
//! | `DELETE /v1/users/{id}/sessions/{ref}` | API key | revoke one |
//! | `GET`, `POST`, `DELETE /sessions/v1/{key}` | API key (configurable) | Kask-compatible key-value store |
//! | `GET`, `PUT`, `PATCH`, `DELETE /v1/kv/{namespace}/{key}`; `GET`, `DELETE /v1/kv/{namespace}` | API key | the keyed store (express-session's `Store`): values, count, clear |
//! | `POST /v1/tokens` | API key | mint a token for a session that is not stored |
//! | `GET /v1/verify` | none | the edge verifier (`auth_request`, ForwardAuth, `ext_authz`) |
//! | `GET /.well-known/jwks.json` | none | the public keys of session tokens |
//! | `GET /v1/revocations` | none | the revocation feed for edge verifiers |
//! | `GET /healthz`, `/readyz`, `/metrics`, `/openapi.json` | none | operations |
//! | `GET /v1/admin/backup` | API key | a consistent copy of a redb store, for `tessera backup` |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod backup;
pub mod cli;
#[cfg(test)]
mod codes;
pub mod config;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
mod http_metrics;
pub mod kask;
mod key_metrics;
pub mod keys;
pub mod kv;
pub mod logs;
mod openapi;
pub mod problem;
pub mod revocations;
mod seal_keys;
pub mod startup;
mod state;
pub mod store_keys;
mod store_metrics;
pub mod tokens;
pub mod verifier;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, any, delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;

pub use openapi::ApiDoc;
pub use state::{ApiKeys, AppState, Settings, VerifyPem};

use crate::problem::ApiError;

/// Every route of [`app`]: its pattern and its handlers. The router is built from this list
/// and the metrics' route labels are its patterns ([`ROUTES`]), so no route can be left
/// without its label.
fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/v1/session/resolve", post(api::resolve)),
        ("/v1/session/update", post(api::update)),
        ("/v1/session/login", post(api::login)),
        ("/v1/session/logout", post(api::logout)),
        ("/v1/session/rotate", post(api::rotate)),
        ("/v1/session/csrf/check", post(api::csrf_check)),
        (
            "/v1/users/{id}/sessions",
            get(api::list_sessions).delete(api::revoke_all),
        ),
        ("/v1/users/{id}/sessions/{ref}", delete(api::revoke_one)),
        ("/v1/kv/{namespace}", get(kv::count).delete(kv::clear)),
        (
            "/v1/kv/{namespace}/{key}",
            get(kv::get_value)
                .put(kv::put_value)
                .patch(kv::touch_value)
                .delete(kv::delete_value),
        ),
        ("/healthz", get(api::healthz)),
        ("/readyz", get(api::readyz)),
        ("/metrics", get(api::metrics)),
        ("/openapi.json", get(openapi::serve)),
        ("/v1/revocations", get(revocations::feed)),
        ("/v1/tokens", post(tokens::mint)),
        ("/v1/verify", get(tokens::verify)),
        ("/.well-known/jwks.json", get(tokens::jwks)),
        // For `tessera backup`; not in the OpenAPI document (see the module).
        ("/v1/admin/backup", get(backup::backup)),
        // Kask answers 404/400 itself for empty keys and other methods: route them all there.
        ("/sessions/v1", any(kask::handle)),
        ("/sessions/v1/", any(kask::handle)),
        ("/sessions/v1/{*key}", any(kask::handle)),
    ]
}

/// Every route pattern of [`app`], in the order of [`routes`]: the metrics' route labels.
pub(crate) static ROUTES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| routes().into_iter().map(|(pattern, _)| pattern).collect());

/// The service's router. Session and management endpoints need the API key (their handlers
/// take the [`api::ApiKey`] extractor); health, metrics and the OpenAPI document do not.
pub fn app(state: AppState) -> Router {
    let limits = state.limits();
    routes()
        .into_iter()
        .fold(Router::new(), |router, (pattern, handlers)| {
            router.route(pattern, handlers)
        })
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        // One `layer` call for the three: axum boxes each route once per call and clones
        // the box on every request, so three calls cost three boxes, clones and oneshots a
        // request (about a fifth of what the service adds to a cached `GET /v1/verify`
        // over `tessera verifier`). Outermost first, as the three calls had it: panics
        // caught around everything, the body limit, then the request's id, metrics and
        // access line next to the handler.
        .layer(
            tower::ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    ApiError::internal().into_response()
                }))
                .layer(DefaultBodyLimit::max(limits.max_body_bytes))
                .layer(http_metrics::TrackLayer::new(
                    state.http().clone(),
                    limits.max_header_bytes,
                    state.access_log(),
                )),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_has_one_label() {
        let mut labels = super::ROUTES.clone();
        assert_eq!(labels.len(), super::routes().len());
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(
            labels.len(),
            super::ROUTES.len(),
            "a pattern is routed twice"
        );
        assert!(!labels.contains(&"unmatched") && !labels.contains(&"other"));
    }
}
