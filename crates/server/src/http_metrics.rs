use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::logs::RequestId;
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
/// so user ids and references do not become labels). One `Arc`: the middleware clones it
/// for every request.
#[derive(Debug, Clone)]
pub(crate) struct HttpMetrics(std::sync::Arc<Metrics>);

#[derive(Debug)]
struct Metrics {
    requests: Family<RequestLabels, Counter>,
    /// The request counter of each (route label, method label, status of
    /// [`CACHED_STATUSES`]), in the order of [`route_labels`], [`METHODS`] and
    /// [`CACHED_STATUSES`]: taken from `requests` the first time, so later requests count
    /// without hashing their labels into the family (the same counter, shared).
    counts: Box<[std::sync::OnceLock<Counter>]>,
    /// The latency histogram of each route label, in the order of [`route_labels`]: made
    /// once, so a request finds its own without a lookup in the family.
    latency: Box<[Histogram]>,
    purged: Family<BackendLabels, Counter>,
}

/// The method labels, in the order of the index [`method_label`] gives.
const METHODS: [&str; 6] = ["GET", "POST", "DELETE", "PUT", "HEAD", "other"];

/// The statuses whose counters [`Metrics::counts`] keeps at hand; others go through the
/// family.
const CACHED_STATUSES: [u16; 16] = [
    200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 412, 413, 422, 429, 500, 503,
];

/// Every route label: the router's patterns, then `unmatched` and `other`.
fn route_labels() -> impl Iterator<Item = &'static str> {
    crate::ROUTES.iter().copied().chain(["unmatched", "other"])
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
        crate::logs::register_suppressed(registry);
        registry.register(
            "tessera_store_purged",
            "Expired records and tombstones removed by the background purge, by backend",
            purged.clone(),
        );
        let latency = route_labels()
            .map(|route| latency.get_or_create_owned(&RouteLabels { route }))
            .collect();
        let counts = (0..route_labels().count() * METHODS.len() * CACHED_STATUSES.len())
            .map(|_| std::sync::OnceLock::new())
            .collect();
        Self(std::sync::Arc::new(Metrics {
            requests,
            counts,
            latency,
            purged,
        }))
    }

    pub(crate) fn purged(&self, backend: &'static str, n: u64) {
        self.0
            .purged
            .get_or_create(&BackendLabels { backend })
            .inc_by(n);
    }

    /// Counts one request of route label `route` (at `index` in [`route_labels`]) and
    /// method label [`METHODS`]`[method]` that answered `status`.
    fn count(&self, index: usize, route: &'static str, method: usize, status: u16) {
        let labels = || RequestLabels {
            method: METHODS.get(method).copied().unwrap_or("other"),
            route,
            status,
        };
        let slot = CACHED_STATUSES
            .iter()
            .position(|s| *s == status)
            .map(|s| (index * METHODS.len() + method) * CACHED_STATUSES.len() + s)
            .filter(|_| method < METHODS.len())
            .and_then(|i| self.0.counts.get(i));
        match slot {
            Some(cell) => cell
                .get_or_init(|| self.0.requests.get_or_create(&labels()).clone())
                .inc(),
            None => self.0.requests.get_or_create(&labels()).inc(),
        };
    }
}

/// The label for a matched route: one of the router's patterns, so labels are static strings
/// (no allocation per request) and user ids or references never become labels.
fn route_label(req: &Request) -> (usize, &'static str) {
    let unmatched = crate::ROUTES.len();
    let Some(m) = req.extensions().get::<MatchedPath>() else {
        return (unmatched, "unmatched");
    };
    // A map rather than a scan of the patterns: a scan compared about 25 strings a request.
    static INDEX: std::sync::LazyLock<std::collections::HashMap<&'static str, usize>> =
        std::sync::LazyLock::new(|| {
            crate::ROUTES
                .iter()
                .enumerate()
                .map(|(i, r)| (*r, i))
                .collect()
        });
    INDEX
        .get(m.as_str())
        .and_then(|i| crate::ROUTES.get(*i).map(|r| (*i, *r)))
        .unwrap_or((unmatched + 1, "other"))
}

/// The method's label: its index in [`METHODS`].
fn method_label(m: &axum::http::Method) -> usize {
    match *m {
        axum::http::Method::GET => 0,
        axum::http::Method::POST => 1,
        axum::http::Method::DELETE => 2,
        axum::http::Method::PUT => 3,
        axum::http::Method::HEAD => 4,
        _ => 5,
    }
}

/// The outermost middleware: gives the request its id ([`RequestId`], also on the response
/// as `X-Request-Id`), refuses oversized headers, counts and times the request, and writes
/// its access line.
///
/// A hand-written layer rather than `middleware::from_fn`: that one clones and boxes the
/// inner service and extracts the state on every request, which cost about 12 % of the
/// throughput of `GET /v1/verify` (the verifier's hot path, measured against the same
/// endpoint without it). Here a request costs one boxed future.
#[derive(Debug, Clone)]
pub(crate) struct TrackLayer {
    metrics: HttpMetrics,
    max_header_bytes: usize,
    access_log: bool,
}

impl TrackLayer {
    /// `access_log`: whether each request gets its access line ([`crate::logs::access`]).
    pub(crate) fn new(metrics: HttpMetrics, max_header_bytes: usize, access_log: bool) -> Self {
        Self {
            metrics,
            max_header_bytes,
            access_log,
        }
    }
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`TrackLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Track<S> {
    inner: S,
    layer: TrackLayer,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let (index, route) = route_label(&req);
        let method = method_label(req.method());
        let start = tokio::time::Instant::now();
        let metrics = self.layer.metrics.clone();
        let limit = self.layer.max_header_bytes;
        let access_log = self.layer.access_log;
        let id = RequestId::of(req.headers());
        req.extensions_mut().insert(id.clone());
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        // The inner service is called here, after its own `poll_ready`, so no clone of it
        // has to travel into the future.
        let inner = (header_bytes <= limit).then(|| self.inner.call(req));
        Box::pin(async move {
            let mut res = match inner {
                Some(f) => f.await?,
                None => ApiError::headers_too_large(limit).into_response(),
            };
            let elapsed = start.elapsed();
            if let Some(h) = metrics.0.latency.get(index) {
                h.observe(elapsed.as_secs_f64());
            }
            let status = res.status().as_u16();
            metrics.count(index, route, method, status);
            if access_log {
                let bytes = res.body().size_hint().exact();
                let method = METHODS.get(method).copied().unwrap_or("other");
                crate::logs::access(method, route, status, elapsed, bytes, &id);
            }
            res.headers_mut()
                .insert(crate::logs::REQUEST_ID, id.header_value());
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request counted through the kept counter and one counted through the family land
    /// in the same series of `tessera_http_requests_total`, with the same labels.
    #[test]
    fn kept_counters_are_the_family_s() {
        let mut registry = Registry::default();
        let m = HttpMetrics::register(&mut registry);
        let verify = crate::ROUTES
            .iter()
            .position(|r| *r == "/v1/verify")
            .unwrap();
        for _ in 0..3 {
            m.count(verify, "/v1/verify", 0, 200);
        }
        // 299 is not kept at hand: the family directly.
        m.count(verify, "/v1/verify", 0, 299);
        m.count(verify, "/v1/verify", 5, 401);
        let unmatched = crate::ROUTES.len();
        m.count(unmatched, "unmatched", 1, 404);
        // The family's own counter for the same labels is the kept one.
        m.0.requests
            .get_or_create(&RequestLabels {
                method: "GET",
                route: "/v1/verify",
                status: 200,
            })
            .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"tessera_http_requests_total{method="GET",route="/v1/verify",status="200"} 4"#,
            r#"tessera_http_requests_total{method="GET",route="/v1/verify",status="299"} 1"#,
            r#"tessera_http_requests_total{method="other",route="/v1/verify",status="401"} 1"#,
            r#"tessera_http_requests_total{method="POST",route="unmatched",status="404"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
