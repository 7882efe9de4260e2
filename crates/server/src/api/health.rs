//! Health, readiness and metrics: the routes an orchestrator and a scraper call.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use tessera_core::{Handle, SessionKind};

use crate::AppState;
use crate::problem::{ApiError, Problem};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "alive", body = String, content_type = "text/plain", example = "ok\n")),
    tag = "operations")]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for each store.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// Readiness: every configured store answers a read within a second.
#[utoipa::path(get, path = "/readyz",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain", example = "ready\n"),
        (status = 503, description = "a store did not answer within a second", body = Problem, content_type = "application/problem+json")),
    tag = "operations")]
pub async fn readyz(State(s): State<AppState>) -> Response {
    let now = s.clock().now();
    for kind in [SessionKind::Anonymous, SessionKind::Authenticated] {
        let store = s.engine().stores().for_kind(kind).clone();
        let Ok(probe) = Handle::generate(kind) else {
            return ApiError::internal().into_response();
        };
        let key = probe.store_key();
        match tokio::time::timeout(READY_TIMEOUT, store.load(&key, now)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(
                    backend = store.backend(),
                    code = e.code(),
                    "store not ready"
                );
                return ApiError::store_unavailable().into_response();
            }
            Err(_) => {
                tracing::warn!(
                    backend = store.backend(),
                    "store did not answer readiness probe"
                );
                return ApiError::store_unavailable().into_response();
            }
        }
    }
    "ready\n".into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus metrics in the OpenMetrics text format", body = String,
        content_type = "application/openmetrics-text")),
    tag = "operations")]
pub async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, s.registry()).is_err() {
        return ApiError::internal().into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
