//! The log: its set-up (format, colour, one stream), request ids, the access line, and the
//! sampling of noisy security events (docs/operations.md, "Logs").
//!
//! Every line goes to standard error, in one format: `TESSERA_LOG_FORMAT=json` (one JSON
//! object a line) or human-readable text, with ANSI colour only when standard error is a
//! terminal. `TESSERA_LOG` filters (default `info`).
//!
//! | target | what | level |
//! |---|---|---|
//! | [`ACCESS_TARGET`] | one line per request ([`access`]), `[server] access_log` | info |
//! | [`crate::kask::LOG_TARGET`] | the Kask detail of a Kask request (key digest, value size) | info for refusals, debug otherwise |
//! | `security` | refused keys and tokens, sampled per reason ([`Sampler`]) | info, warn |
//! | [`STARTUP_TARGET`] | what `tessera serve` prepared, where it listens, how it stopped | info |

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// The target of the access line.
pub const ACCESS_TARGET: &str = "tessera::access";

/// The target of the start-up and shutdown lines of `tessera serve` and `tessera verifier`.
pub const STARTUP_TARGET: &str = "tessera::startup";

/// The request id header, read from the request and set on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// [`REQUEST_ID_HEADER`] as a header name: a `&str` is parsed again on every lookup.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// The longest request id taken from a request; a longer one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// How many lines of one security reason pass in one [`SAMPLE_WINDOW`].
pub const SAMPLE_BURST: u32 = 10;

/// The window of [`SAMPLE_BURST`].
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(60);

/// How many distinct reasons are kept apart; past that they share the reason `other`.
const MAX_REASONS: usize = 64;

/// Sets up the log: `TESSERA_LOG` filters (default `info`), `TESSERA_LOG_FORMAT=json` for
/// log shippers, text otherwise; standard error only, colour only on a terminal, security
/// events sampled. `env` looks a variable up.
pub fn init(env: impl Fn(&str) -> Option<String>) {
    use std::io::IsTerminal as _;
    let filter = env("TESSERA_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let json = json_requested(&env);
    let ansi = !json && std::io::stderr().is_terminal() && env("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(Sampler::default());
    // `try_init`: a second set-up (tests) keeps the first.
    let _ = if json {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt).try_init()
    };
}

/// Whether `TESSERA_LOG_FORMAT` asks for JSON lines.
pub fn json_requested(env: impl Fn(&str) -> Option<String>) -> bool {
    env("TESSERA_LOG_FORMAT").is_some_and(|f| f == "json")
}

/// A request's id: the client's `X-Request-Id` when it is usable, else a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id of a request with these headers: the first `X-Request-Id` if it is 1 to
    /// [`MAX_REQUEST_ID_LEN`] characters of `A-Z a-z 0-9 - _ . :`, otherwise a generated one
    /// (so a header cannot smuggle anything into the log).
    #[must_use]
    pub fn of(headers: &HeaderMap) -> Self {
        headers
            .get(&REQUEST_ID)
            .filter(|v| usable(v.as_bytes()))
            .map_or_else(Self::generate, |v| Self(v.clone()))
    }

    /// A new id: 16 hex digits drawn once per process, a dash, and a counter.
    #[must_use]
    pub fn generate() -> Self {
        static PREFIX: LazyLock<String> = LazyLock::new(|| {
            let mut b = [0u8; 8];
            if getrandom::fill(&mut b).is_err() {
                // The ids only need to differ between processes.
                return prefix_text(u64::from(std::process::id()) << 32);
            }
            prefix_text(u64::from_le_bytes(b))
        });
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(generated(&PREFIX, NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ids of the checked charset are ever built.
        self.0.to_str().unwrap_or("-")
    }

    /// The id as a header value.
    #[must_use]
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

fn usable(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The access line of one request, on [`ACCESS_TARGET`] at info: method, route template
/// (never the raw path), status, latency, response body bytes and request id. Nothing from
/// the headers, the query or the body.
pub fn access(
    method: &str,
    route: &str,
    status: u16,
    latency: Duration,
    bytes: Option<u64>,
    id: &RequestId,
) {
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        target: ACCESS_TARGET,
        method,
        route,
        status,
        latency_us,
        bytes,
        request_id = id.as_str(),
        "request"
    );
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    reason: String,
}

/// `tessera_log_suppressed_total{reason}`: the security lines [`Sampler`] left out. One
/// family for the process (the log is the process'), registered by each app's registry.
pub(crate) fn suppressed() -> &'static Family<ReasonLabels, Counter> {
    static SUPPRESSED: LazyLock<Family<ReasonLabels, Counter>> = LazyLock::new(Family::default);
    &SUPPRESSED
}

/// Registers [`suppressed`] as `tessera_log_suppressed_total` in `registry`.
pub(crate) fn register_suppressed(registry: &mut prometheus_client::registry::Registry) {
    registry.register(
        "tessera_log_suppressed",
        "Security log lines left out by the sampling (at most 10 a minute per reason), by reason",
        suppressed().clone(),
    );
}

/// Lets at most [`SAMPLE_BURST`] `security` lines of one reason through per
/// [`SAMPLE_WINDOW`] and counts the rest in `tessera_log_suppressed_total{reason}`, so one
/// client sending bad tokens (or a fleet sending soft-expired ones) cannot flood the log.
/// The reason is the event's `code` field when it has one (`expired`, `bad_signature`…),
/// else its message. Other targets pass untouched.
#[derive(Debug, Default)]
pub struct Sampler {
    limiter: Mutex<Limiter>,
}

impl<S: Subscriber> Layer<S> for Sampler {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        if event.metadata().target() != "security" {
            return true;
        }
        let mut reason = Reason::default();
        event.record(&mut reason);
        let reason = reason.code.or(reason.message).unwrap_or_default();
        let allowed = self
            .limiter
            .lock()
            .map(|mut l| l.allow(&reason, Instant::now()))
            .unwrap_or(Ok(()));
        if let Err(reason) = allowed {
            suppressed().get_or_create(&ReasonLabels { reason }).inc();
            return false;
        }
        true
    }
}

#[derive(Default)]
struct Reason {
    code: Option<String>,
    message: Option<String>,
}

impl Visit for Reason {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "code" => self.code = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "code" => self.code = Some(format!("{value:?}")),
            "message" => self.message = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// The windows of each reason.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    windows: HashMap<String, (Instant, u32)>,
}

impl Limiter {
    /// `Ok` if a line of `reason` may pass at `now`, else `Err` with the reason label to
    /// count it under.
    pub(crate) fn allow(&mut self, reason: &str, now: Instant) -> Result<(), String> {
        let key = if self.windows.contains_key(reason) || self.windows.len() < MAX_REASONS {
            reason
        } else {
            "other"
        };
        let (start, n) = self.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(*start) >= SAMPLE_WINDOW {
            *start = now;
            *n = 0;
        }
        if *n < SAMPLE_BURST {
            *n += 1;
            Ok(())
        } else {
            Err(key.to_owned())
        }
    }
}

/// The process' part of generated ids, `format!("{prefix:016x}-")`, made once.
fn prefix_text(prefix: u64) -> String {
    let mut text = String::with_capacity(17);
    tessera_core::push_hex(&mut text, &prefix.to_be_bytes());
    text.push('-');
    text
}

/// `format!("{prefix}{n:x}")` as a header value, written by hand into the buffer the
/// value keeps: `format!` and `HeaderValue::from_str` (a second copy) were about a third of
/// what `tessera serve` adds to a cached `GET /v1/verify` over `tessera verifier`.
fn generated(prefix: &str, n: u64) -> HeaderValue {
    let mut text = String::with_capacity(prefix.len() + 16);
    text.push_str(prefix);
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        let d = u32::try_from((n >> (4 * i)) & 0xf).unwrap_or(0);
        text.push(char::from_digit(d, 16).unwrap_or('0'));
    }
    // Hex digits and a dash are always a valid header value.
    HeaderValue::from_maybe_shared(axum::body::Bytes::from(text.into_bytes()))
        .unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_the_prefix_a_dash_and_the_counter_in_hex() {
        for prefix in [0, 1, 0xdead_beef, u64::MAX] {
            for n in [0, 1, 9, 10, 15, 16, 255, 256, 0x1234_5678_9abc, u64::MAX] {
                let want = format!("{prefix:016x}-{n:x}");
                assert_eq!(generated(&prefix_text(prefix), n).to_str().unwrap(), want);
            }
        }
    }

    #[test]
    fn request_ids_are_taken_when_usable_and_replaced_otherwise() {
        let id = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(REQUEST_ID_HEADER, HeaderValue::from_bytes(v).unwrap());
            RequestId::of(&h)
        };
        for good in [
            "abc",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "req_1.2:3",
            &"a".repeat(64),
        ] {
            assert_eq!(id(good.as_bytes()).as_str(), good);
        }
        for bad in [
            &b""[..],
            "a b".as_bytes(),
            b"a\"b",
            b"a\tb",
            "x".repeat(65).as_bytes(),
            b"{\"k\":1}",
            b"\xff\xfe",
            b"%0d%0a",
        ] {
            let got = id(bad);
            assert_ne!(got.as_bytes(), bad, "{bad:?}");
            assert!(usable(got.as_str().as_bytes()), "{got:?}");
        }
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert!(
            usable(a.as_str().as_bytes()) && a.as_str().len() > 17,
            "{a:?}"
        );
        assert!(RequestId::of(&HeaderMap::new()).as_str().len() > 17);
    }

    impl RequestId {
        fn as_bytes(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }

    #[test]
    fn the_limiter_passes_a_burst_per_reason_and_window() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..SAMPLE_BURST {
            assert!(l.allow("expired", t0).is_ok());
        }
        assert_eq!(l.allow("expired", t0), Err("expired".to_owned()));
        // Another reason has its own budget.
        assert!(l.allow("bad_signature", t0).is_ok());
        // A new window, a new burst.
        let later = t0 + SAMPLE_WINDOW;
        assert!(l.allow("expired", later).is_ok());
        // Reasons past the cap share one budget.
        for i in 0..MAX_REASONS {
            let _ = l.allow(&format!("r{i}"), t0);
        }
        let over: Vec<_> = (0..=SAMPLE_BURST)
            .map(|i| l.allow(&format!("new{i}"), t0))
            .collect();
        assert_eq!(over.last(), Some(&Err("other".to_owned())));
    }
}
