use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::problem::ApiError;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BackendLabels {
    backend: &'static str,
}

/// Service metrics: HTTP request counts and latencies by route (the matched pattern, never the raw path,
/// so user ids and references do not become labels).
#[derive(Debug, Clone)]
pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    purged: Family<BackendLabels, Counter>,
}

impl HttpMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "tessera_http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "tessera_http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let purged = Family::<BackendLabels, Counter>::default();
        registry.register(
            "tessera_store_purged",
            "Expired records and tombstones removed by the background purge, by backend",
            purged.clone(),
        );
        Self {
            requests,
            latency,
            purged,
        }
    }

    pub(crate) fn purged(&self, backend: &'static str, n: u64) {
        self.purged
            .get_or_create(&BackendLabels { backend })
            .inc_by(n);
    }
}

/// The label for a matched route: one of the router's patterns, so labels are static strings
/// (no allocation per request) and user ids or references never become labels.
fn route_label(req: &Request) -> &'static str {
    let Some(m) = req.extensions().get::<MatchedPath>() else {
        return "unmatched";
    };
    crate::ROUTES
        .iter()
        .find(|r| **r == m.as_str())
        .copied()
        .unwrap_or("other")
}

fn method_label(m: &axum::http::Method) -> &'static str {
    match *m {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// The outermost middleware: refuses oversized headers, then counts and times the request.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_label(&req);
    let method = method_label(req.method());
    let start = tokio::time::Instant::now();
    let limit = state.limits().max_header_bytes;
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let res = if header_bytes > limit {
        ApiError::headers_too_large(limit).into_response()
    } else {
        next.run(req).await
    };
    let m = state.http();
    m.latency
        .get_or_create(&RouteLabels { route })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: res.status().as_u16(),
        })
        .inc();
    res
}
