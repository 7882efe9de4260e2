//! The Kask-compatible key-value API on `/sessions/v1/{key}`, so MediaWiki's `RESTBagOStuff`
//! can keep its sessions in Tessera's store unchanged (`docs/kask.md`).
//!
//! It behaves as Kask does (`mediawiki-services-kask`, `http.go`):
//!
//! | request | answer |
//! |---|---|
//! | `GET /sessions/v1/{key}` | 200 `application/octet-stream` with the value, or 404 |
//! | `POST /sessions/v1/{key}` with a body | 201; an empty body is 400 |
//! | `DELETE /sessions/v1/{key}` | 204, also when there was nothing to delete |
//! | `PUT` or any other method | 400 |
//! | any query string | 400 |
//! | an empty key, or a `/` in the key | 404 |
//!
//! Errors are RFC 7807 documents with Kask's own `type` URIs
//! (`https://www.mediawiki.org/wiki/Kask/errors/{bad_request|not_authorized|not_found|server_error}`),
//! `Content-Type: application/json` and `X-Content-Type-Options: nosniff`, as Kask sends
//! them. Every value gets the one server-side TTL of the configuration (clients cannot set
//! one; MediaWiki ignores its own expiry argument with this backend). Keys arrive
//! percent-encoded and are decoded once, so `wiki%3AMWSession%3Ax` and `wiki:MWSession:x`
//! name the same key on every method.
//!
//! Unlike Kask, the API key can be required (`Authorization: Bearer`, which `RESTBagOStuff`
//! sends through the `readHeaders`, `writeHeaders` and `deleteHeaders` of its `httpParams`),
//! and it is by default.
//!
//! Every request is logged in one line on the target [`LOG_TARGET`]: method, a hash of the
//! key ([`key_digest`]), status, value size, latency and the request id; never the key or the
//! value. Failures are logged at `info` (a store failure at `warn`), the rest (including a
//! `GET` that finds nothing, a normal miss) at `debug`: `TESSERA_LOG=info,tessera::kask=debug`
//! shows them all. The access line of the same request (`tessera::access`, at info, see
//! [`crate::logs`]) has the same `request_id`: by default an operator has an access line for
//! every Kask request and the Kask line, with the key digest, for every refused one.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tessera_core::{KvStore, MAX_KV_KEY_LEN, SessionKind};
use tokio::time::Instant;

use crate::AppState;
use crate::logs::RequestId;

/// The path prefix of the API.
pub const PREFIX: &str = "/sessions/v1/";

/// The `tracing` target of the request log: one line per request.
pub const LOG_TARGET: &str = "tessera::kask";

/// How a key appears in the request log: the first 16 hex digits (64 bits) of the SHA-256
/// of the key as stored (percent-decoded), e.g. `mywiki:MWSession:<id>`.
///
/// Unkeyed on purpose, so an operator can find the requests behind a MediaWiki log line
/// (`Failed to store mywiki:MWSession:<id>`, which has the key in clear):
/// `printf %s 'mywiki:MWSession:<id>' | sha256sum | cut -c1-16`. The session ids in those
/// keys are random (MediaWiki's: 160 bits), so the digest tells nothing about the id to
/// whoever does not have it already.
///
/// # Examples
///
/// ```
/// assert_eq!(tessera_server::kask::key_digest(b"abc"), "ba7816bf8f01cfea");
/// ```
#[must_use]
pub fn key_digest(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    tessera_core::to_hex(digest.get(..8).unwrap_or_default())
}

/// How the Kask-compatible API behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KaskSettings {
    /// The TTL of every value (default 1 day, Wikimedia's; it must cover MediaWiki's
    /// `$wgObjectCacheSessionExpiry`).
    pub ttl: Duration,
    /// The largest value accepted, in bytes (default 256 KiB; Kask has no limit).
    pub max_value_bytes: usize,
    /// Whether requests need the management API key (default yes).
    pub require_api_key: bool,
}

impl Default for KaskSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(86_400),
            max_value_bytes: 256 * 1024,
            require_api_key: true,
        }
    }
}

impl KaskSettings {
    /// The startup line saying whether the API is on (it is when the session store keeps
    /// key-value data: `has_kv`), and with which TTL, size limit and API key rule.
    #[must_use]
    pub fn startup_note(&self, has_kv: bool) -> String {
        if !has_kv {
            return format!(
                "Kask API off: the session store keeps no key-value data ({PREFIX} answers 501)"
            );
        }
        let key = if self.require_api_key {
            "API key required"
        } else {
            "NO API key required (kask.require_api_key = false)"
        };
        format!(
            "Kask API on {PREFIX}: values kept {} (kask.ttl), at most {} bytes, {key}",
            crate::config::settings::show_duration(self.ttl),
            self.max_value_bytes
        )
    }
}

#[derive(Debug, Serialize)]
struct KaskProblem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    detail: &'a str,
    instance: &'a str,
}

fn problem(status: StatusCode, kind: &str, title: &str, detail: &str, instance: &str) -> Response {
    let body = KaskProblem {
        kind: format!("https://www.mediawiki.org/wiki/Kask/errors/{kind}"),
        title,
        detail,
        instance,
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn bad_request(detail: &str, instance: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "Bad request",
        detail,
        instance,
    )
}

fn not_found(instance: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not_found",
        "Not found",
        "Not found",
        instance,
    )
}

fn unavailable(instance: &str) -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "Server error",
        "the store failed or did not answer; retry later",
        instance,
    )
}

/// Decodes `%XX` escapes; `None` for a malformed escape.
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Why a path names no usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadKey {
    /// Empty, or with an extra segment: 404, as Kask's router answers.
    NoSuchPath,
    /// A 400 with this detail.
    Invalid(&'static str),
}

impl BadKey {
    fn response(self, path: &str) -> Response {
        match self {
            Self::NoSuchPath => not_found(path),
            Self::Invalid(detail) => bad_request(detail, path),
        }
    }
}

/// The key named by a request path.
fn key_of(path: &str) -> Result<Vec<u8>, BadKey> {
    let raw = path.strip_prefix(PREFIX).unwrap_or_default();
    if raw.is_empty() || raw.contains('/') {
        return Err(BadKey::NoSuchPath);
    }
    let key =
        percent_decode(raw).ok_or(BadKey::Invalid("malformed percent-encoding in the key"))?;
    // Kask's router sees the decoded path: an encoded slash is an extra segment there too.
    if key.contains(&b'/') {
        return Err(BadKey::NoSuchPath);
    }
    if key.len() > MAX_KV_KEY_LEN {
        return Err(BadKey::Invalid("the key is too long"));
    }
    Ok(key)
}

/// Every request under [`PREFIX`] (and the prefix itself) comes here, and is logged.
pub(crate) async fn handle(State(s): State<AppState>, req: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    // Decoded once: the answer and the log line use the same key.
    let key = key_of(parts.uri.path());
    let (res, bytes) = respond(&s, &parts, &key, body).await;
    log_request(
        &parts.method,
        key.as_deref().ok(),
        res.status(),
        bytes,
        start.elapsed(),
        parts
            .extensions
            .get::<RequestId>()
            .map_or("-", RequestId::as_str),
    );
    res
}

/// One line on [`LOG_TARGET`]; its level says how much it matters (the module docs).
fn log_request(
    method: &Method,
    key: Option<&[u8]>,
    status: StatusCode,
    bytes: usize,
    latency: Duration,
    request_id: &str,
) {
    let status_code = status.as_u16();
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    // The digest (a SHA-256) is computed only for a line that is written: most lines are at
    // debug, off by default, and the Kask API's hot path should not pay for them.
    macro_rules! line {
        ($level:ident, $lvl:expr) => {
            if tracing::enabled!(target: LOG_TARGET, $lvl) {
                let key = key.map_or_else(|| "-".to_owned(), key_digest);
                tracing::$level!(
                    target: LOG_TARGET,
                    method = method.as_str(),
                    key_sha256 = key.as_str(),
                    status = status_code,
                    bytes,
                    latency_us,
                    request_id,
                    "Kask request"
                )
            }
        };
    }
    if status.is_server_error() {
        line!(warn, tracing::Level::WARN);
    } else if status.is_client_error()
        && !(status == StatusCode::NOT_FOUND && method == Method::GET)
    {
        line!(info, tracing::Level::INFO);
    } else {
        line!(debug, tracing::Level::DEBUG);
    }
}

/// The response to a request, and the size of the value it carried (the body written, or
/// the value read; 0 for none).
async fn respond(
    s: &AppState,
    parts: &axum::http::request::Parts,
    key: &Result<Vec<u8>, BadKey>,
    body: axum::body::Body,
) -> (Response, usize) {
    let path = parts.uri.path();
    let settings = s.kask();
    if settings.require_api_key && !s.bearer_ok(&parts.headers) {
        tracing::info!(target: "security", "Kask request without a valid API key");
        let mut res = problem(
            StatusCode::UNAUTHORIZED,
            "not_authorized",
            "Not authorized",
            "this endpoint needs a valid API key as Authorization: Bearer <key>",
            path,
        );
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return (res, 0);
    }
    if parts.uri.query().is_some() {
        return (bad_request("query strings are not supported", path), 0);
    }
    let key = match key {
        Ok(k) => k.as_slice(),
        Err(bad) => return (bad.response(path), 0),
    };
    let method = &parts.method;
    if !matches!(*method, Method::GET | Method::POST | Method::DELETE) {
        return (bad_request("unsupported method", path), 0);
    }
    // The values live with the authenticated sessions' backend.
    let store = s.engine().stores().for_kind(SessionKind::Authenticated);
    let Some(kv) = store.as_kv() else {
        let res = problem(
            StatusCode::NOT_IMPLEMENTED,
            "server_error",
            "Not implemented",
            "the configured store has no key-value namespace",
            path,
        );
        return (res, 0);
    };
    let now = s.clock().now();
    match *method {
        Method::GET => get(kv, key, now, path).await,
        Method::POST => {
            let limit = settings.max_value_bytes;
            let Ok(body) = axum::body::to_bytes(body, limit).await else {
                let res = problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "bad_request",
                    "Value too large",
                    &format!("values may be at most {limit} bytes"),
                    path,
                );
                return (res, 0);
            };
            let bytes = body.len();
            let until = now.saturating_add(settings.ttl);
            (post(kv, key, body, now, until, path).await, bytes)
        }
        _ => match kv.kv_delete(key).await {
            Ok(()) => (StatusCode::NO_CONTENT.into_response(), 0),
            Err(e) => (store_failed(&e, path), 0),
        },
    }
}

fn store_failed(e: &tessera_core::Error, path: &str) -> Response {
    tracing::error!(code = e.code(), error = ?e, "Kask API store failure");
    unavailable(path)
}

async fn get(
    kv: &dyn KvStore,
    key: &[u8],
    now: tessera_core::Timestamp,
    path: &str,
) -> (Response, usize) {
    match kv.kv_get(key, now).await {
        Ok(Some(v)) => {
            let bytes = v.len();
            let res = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                )],
                v,
            )
                .into_response();
            (res, bytes)
        }
        Ok(None) => (not_found(path), 0),
        Err(e) => (store_failed(&e, path), 0),
    }
}

async fn post(
    kv: &dyn KvStore,
    key: &[u8],
    body: Bytes,
    now: tessera_core::Timestamp,
    until: tessera_core::Timestamp,
    path: &str,
) -> Response {
    if body.is_empty() {
        return bad_request("the value is empty", path);
    }
    match kv.kv_put(key, &body, until, now).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => store_failed(&e, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_note_says_whether_the_api_is_on_and_its_ttl() {
        let d = KaskSettings::default();
        assert_eq!(
            d.startup_note(true),
            "Kask API on /sessions/v1/: values kept 1d (kask.ttl), at most 262144 bytes, \
             API key required"
        );
        let open = KaskSettings {
            ttl: Duration::from_secs(5400),
            require_api_key: false,
            ..d
        };
        let note = open.startup_note(true);
        assert!(
            note.contains("values kept 90m") && note.contains("NO API key"),
            "{note}"
        );
        assert!(d.startup_note(false).starts_with("Kask API off"));
        let sub_second = KaskSettings {
            ttl: Duration::from_millis(1500),
            ..d
        };
        assert!(
            sub_second.startup_note(true).contains("values kept 1500ms"),
            "a TTL of 1.5 s is not shown rounded down"
        );
    }

    #[test]
    fn key_digest_is_a_truncated_sha256() {
        // printf %s 'wiki:MWSession:abc' | sha256sum | cut -c1-16
        assert_eq!(key_digest(b"wiki:MWSession:abc"), "32132e79bc24b859");
        assert_eq!(key_digest(b"abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn keys_decode_once_and_refuse_slashes() {
        assert_eq!(key_of("/sessions/v1/a%3Ab").unwrap(), b"a:b");
        assert_eq!(key_of("/sessions/v1/a:b").unwrap(), b"a:b");
        assert_eq!(key_of("/sessions/v1/%25").unwrap(), b"%");
        for p in [
            "/sessions/v1/",
            "/sessions/v1",
            "/sessions/v1/a/b",
            "/sessions/v1/a%2Fb",
        ] {
            assert_eq!(key_of(p), Err(BadKey::NoSuchPath), "{p}");
        }
        for p in ["/sessions/v1/a%2", "/sessions/v1/a%zz"] {
            assert!(matches!(key_of(p), Err(BadKey::Invalid(_))), "{p}");
        }
        let long = format!("/sessions/v1/{}", "k".repeat(MAX_KV_KEY_LEN + 1));
        assert!(matches!(key_of(&long), Err(BadKey::Invalid(_))));
    }
}
