//! The keyed store on `/v1/kv` (docs/api.md, "The keyed store"): JSON values under the
//! application's own keys, each with its TTL, in named namespaces with a count and an O(1)
//! clear. Built for express-session's `Store` (issue 14), whose session ids are its own.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /v1/kv/{namespace}/{key}` `{"value": <json>, "ttl": <s>}` | 204 |
//! | `GET /v1/kv/{namespace}/{key}` | 200 `{"value", "expires_at", "ttl"}`, 404 |
//! | `PATCH /v1/kv/{namespace}/{key}` `{"ttl": <s>}` | 204, 404 |
//! | `DELETE /v1/kv/{namespace}/{key}` | 204, also when there was nothing |
//! | `GET /v1/kv/{namespace}` | 200 `{"count": n}` |
//! | `DELETE /v1/kv/{namespace}` | 204 |
//!
//! Keys are stored as their SHA-256 digests ([`KvKey`]), so the store holds no key an
//! application uses; they are never logged. A TTL over `kv.max_ttl` is cut to it (the answer
//! of a `GET` says the expiry kept). Every route needs the API key.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tessera_core::{KvKey, KvNamespace, KvStore, MAX_KV_KEY_LEN, SessionKind, Timestamp};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{ApiJson, ApiKey, is_json, parse_json};
use crate::openapi::problems::{JsonBodyProblems, KvProblems};
use crate::problem::{ApiError, Problem};

/// How the keyed store behaves (`[kv]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvSettings {
    /// The largest value accepted, as compact JSON, in bytes (default 256 KiB, as Kask's).
    pub max_value_bytes: usize,
    /// The longest TTL kept (default 30 days, the remember-me absolute lifetime); a longer
    /// one is cut to it.
    pub max_ttl: Duration,
}

impl Default for KvSettings {
    fn default() -> Self {
        Self {
            max_value_bytes: 256 * 1024,
            max_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Room for the JSON around the value (`{"value": …, "ttl": …}`) and its whitespace.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// `PUT /v1/kv/{namespace}/{key}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    /// Any JSON value (`null` included), at most `kv.max_value_bytes` (default 256 KiB) as
    /// compact JSON.
    #[schema(value_type = Value)]
    pub value: Value,
    /// Seconds the value lives from now (at least 1; more than `kv.max_ttl`, default 30
    /// days, is cut to it).
    #[schema(minimum = 1, maximum = 4_294_967_295_u32)]
    #[serde(deserialize_with = "whole_seconds")]
    pub ttl: u32,
}

/// A TTL in whole seconds: a JSON integer, or a number with no fraction (`60.0`: JSON Schema
/// counts it an integer too), 0 to `u32::MAX`.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    let whole = match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => u32::try_from(u).ok(),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
            // In range and integral: the cast is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(f as u32)
        }
        _ => None,
    };
    whole.ok_or_else(|| {
        serde::de::Error::custom("ttl must be a whole number of seconds from 1 to 4294967295")
    })
}

/// `PATCH /v1/kv/{namespace}/{key}`: a new TTL for the value, which is not rewritten.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TouchRequest {
    /// Seconds the value lives from now (at least 1; cut to `kv.max_ttl`).
    #[schema(minimum = 1, maximum = 4_294_967_295_u32)]
    #[serde(deserialize_with = "whole_seconds")]
    pub ttl: u32,
}

/// `GET /v1/kv/{namespace}/{key}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ValueResponse {
    /// The value stored.
    #[schema(value_type = Value)]
    pub value: Box<RawValue>,
    /// When it expires, in Unix seconds (rounded down).
    pub expires_at: i64,
    /// Seconds left (rounded up, at least 1).
    pub ttl: u64,
}

/// `GET /v1/kv/{namespace}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountResponse {
    /// How many values the namespace holds: those put since its last clear, less those
    /// deleted, and less those expired once the purge has run (`[session] purge_interval`;
    /// Redis counts expired values out at once).
    pub count: u64,
}

/// The keyed store of the service: the authenticated sessions' backend, as for Kask.
fn store(s: &AppState) -> Result<&dyn KvStore, ApiError> {
    s.engine()
        .stores()
        .for_kind(SessionKind::Authenticated)
        .as_kv()
        .ok_or_else(ApiError::no_kv_store)
}

fn failed(e: &tessera_core::Error) -> ApiError {
    tracing::error!(code = e.code(), error = ?e, "keyed store failure");
    ApiError::store_unavailable()
}

fn namespace(raw: &str) -> Result<KvNamespace, ApiError> {
    KvNamespace::try_new(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

fn key(raw: &str) -> Result<KvKey, ApiError> {
    if raw.len() > MAX_KV_KEY_LEN {
        return Err(ApiError::invalid(format!(
            "a key is 1 to {MAX_KV_KEY_LEN} bytes"
        )));
    }
    Ok(KvKey::digest(raw.as_bytes()))
}

/// The namespace and key of a value's path; a path that does not decode is a 422.
fn value_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(KvNamespace, KvKey), ApiError> {
    let Path((ns, k)) = path.map_err(|_| {
        ApiError::invalid("the namespace and the key must be percent-encoded UTF-8")
    })?;
    Ok((namespace(&ns)?, key(&k)?))
}

fn namespace_path(path: Result<Path<String>, PathRejection>) -> Result<KvNamespace, ApiError> {
    let Path(ns) =
        path.map_err(|_| ApiError::invalid("the namespace must be percent-encoded UTF-8"))?;
    namespace(&ns)
}

/// `now + ttl`, the TTL cut to `kv.max_ttl`.
fn expiry(s: &AppState, now: Timestamp, ttl: u32) -> Result<Timestamp, ApiError> {
    if ttl == 0 {
        return Err(ApiError::invalid("ttl must be at least 1 second"));
    }
    let ttl = Duration::from_secs(u64::from(ttl)).min(s.kv().max_ttl);
    Ok(now.saturating_add(ttl))
}

/// Reads a value.
#[utoipa::path(get, path = "/v1/kv/{namespace}/{key}",
    params(
        ("namespace" = String, Path, description = "1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with `.`", pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"),
        ("key" = String, Path, description = "the application's key, percent-encoded UTF-8, 1 to 1024 bytes decoded (stored as its SHA-256)", min_length = 1, max_length = 1024)),
    responses(
        (status = 200, description = "the value and its expiry", body = ValueResponse,
            links(("kv_delete" = (operation_id = "kv_delete",
                parameters(("namespace" = "$request.path.namespace"), ("key" = "$request.path.key")),
                description = "delete the value read")))),
        (status = 404, description = "no live value under the key (`kv-not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a namespace or key out of bounds", body = Problem, content_type = "application/problem+json"),
        KvProblems),
    security(("api_key" = [])), tag = "kv", operation_id = "kv_get")]
pub async fn get_value(
    _key: ApiKey,
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<ApiJson<ValueResponse>, ApiError> {
    let (ns, k) = value_path(path)?;
    let now = s.clock().now();
    let Some(entry) = store(&s)?
        .ns_get(&ns, &k, now)
        .await
        .map_err(|e| failed(&e))?
    else {
        return Err(ApiError::kv_not_found());
    };
    let value: Box<RawValue> = serde_json::from_slice(&entry.value).map_err(|e| {
        tracing::error!(error = %e, "a stored value of the keyed store is not JSON");
        ApiError::internal()
    })?;
    let left = entry.expires_at.duration_since(now);
    let response = ValueResponse {
        value,
        expires_at: entry.expires_at.unix_secs(),
        ttl: left.as_secs() + u64::from(left.subsec_nanos() > 0),
    };
    Ok(ApiJson(response))
}

/// The body of a `PUT`: its own limit (`kv.max_value_bytes` and room for the JSON around
/// it), not `limits.max_body_bytes`.
#[derive(Debug)]
pub struct PutBody(PutRequest);

impl FromRequest<AppState> for PutBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        let limit = s.kv().max_value_bytes.saturating_add(ENVELOPE_BYTES);
        let body: Bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::body_too_large())?;
        parse_json(&body).map(Self)
    }
}

/// Stores a value with its TTL, replacing any value under the key.
#[utoipa::path(put, path = "/v1/kv/{namespace}/{key}",
    params(
        ("namespace" = String, Path, description = "1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with `.`", pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"),
        ("key" = String, Path, description = "the application's key, percent-encoded UTF-8, 1 to 1024 bytes decoded (stored as its SHA-256)", min_length = 1, max_length = 1024)),
    request_body = PutRequest,
    responses(
        (status = 204, description = "stored",
            links(
                ("kv_get" = (operation_id = "kv_get",
                    parameters(("namespace" = "$request.path.namespace"), ("key" = "$request.path.key")),
                    description = "read the value stored")),
                ("kv_touch" = (operation_id = "kv_touch",
                    parameters(("namespace" = "$request.path.namespace"), ("key" = "$request.path.key")),
                    description = "give the value stored a new TTL")),
                ("kv_delete" = (operation_id = "kv_delete",
                    parameters(("namespace" = "$request.path.namespace"), ("key" = "$request.path.key")),
                    description = "delete the value stored")),
                ("kv_count" = (operation_id = "kv_count",
                    parameters(("namespace" = "$request.path.namespace")),
                    description = "count the namespace's values")))),
        (status = 413, description = "the value is over `kv.max_value_bytes` (`value-too-large`), or the body over that and 64 KiB (`body-too-large`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a namespace or key out of bounds, or a body of the wrong shape", body = Problem, content_type = "application/problem+json"),
        KvProblems, JsonBodyProblems),
    security(("api_key" = [])), tag = "kv", operation_id = "kv_put")]
pub async fn put_value(
    _key: ApiKey,
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<PutBody, ApiError>,
) -> Result<StatusCode, ApiError> {
    let (ns, k) = value_path(path)?;
    let PutBody(body) = body?;
    let now = s.clock().now();
    let until = expiry(&s, now, body.ttl)?;
    let value = serde_json::to_vec(&body.value).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise a JSON value");
        ApiError::internal()
    })?;
    let max = s.kv().max_value_bytes;
    if value.len() > max {
        return Err(ApiError::value_too_large(max));
    }
    store(&s)?
        .ns_put(&ns, &k, &value, until, now)
        .await
        .map_err(|e| failed(&e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a live value a new TTL without rewriting it (express-session's `touch`).
#[utoipa::path(patch, path = "/v1/kv/{namespace}/{key}",
    params(
        ("namespace" = String, Path, description = "1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with `.`", pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"),
        ("key" = String, Path, description = "the application's key, percent-encoded UTF-8, 1 to 1024 bytes decoded (stored as its SHA-256)", min_length = 1, max_length = 1024)),
    request_body = TouchRequest,
    responses(
        (status = 204, description = "the value has its new TTL",
            links(("kv_get" = (operation_id = "kv_get",
                parameters(("namespace" = "$request.path.namespace"), ("key" = "$request.path.key")),
                description = "read the value touched")))),
        (status = 404, description = "no live value under the key (`kv-not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is over `limits.max_body_bytes`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a namespace or key out of bounds, or a body of the wrong shape", body = Problem, content_type = "application/problem+json"),
        KvProblems, JsonBodyProblems),
    security(("api_key" = [])), tag = "kv", operation_id = "kv_touch")]
pub async fn touch_value(
    _key: ApiKey,
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<ApiJson<TouchRequest>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let (ns, k) = value_path(path)?;
    let ApiJson(body) = body?;
    let now = s.clock().now();
    let until = expiry(&s, now, body.ttl)?;
    let touched = store(&s)?
        .ns_touch(&ns, &k, until, now)
        .await
        .map_err(|e| failed(&e))?;
    if touched {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::kv_not_found())
    }
}

/// Deletes a value; idempotent.
#[utoipa::path(delete, path = "/v1/kv/{namespace}/{key}",
    params(
        ("namespace" = String, Path, description = "1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with `.`", pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$"),
        ("key" = String, Path, description = "the application's key, percent-encoded UTF-8, 1 to 1024 bytes decoded (stored as its SHA-256)", min_length = 1, max_length = 1024)),
    responses(
        (status = 204, description = "deleted, or there was nothing to delete",
            links(("kv_get" = (operation_id = "kv_get",
                parameters(("namespace" = "$request.path.namespace"), ("key" = "$request.path.key")),
                description = "the deleted value is gone")))),
        (status = 422, description = "a namespace or key out of bounds", body = Problem, content_type = "application/problem+json"),
        KvProblems),
    security(("api_key" = [])), tag = "kv", operation_id = "kv_delete")]
pub async fn delete_value(
    _key: ApiKey,
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let (ns, k) = value_path(path)?;
    store(&s)?
        .ns_delete(&ns, &k, s.clock().now())
        .await
        .map_err(|e| failed(&e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Counts a namespace's values, without a scan (express-session's `length`).
#[utoipa::path(get, path = "/v1/kv/{namespace}",
    params(("namespace" = String, Path, description = "1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with `.`", pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")),
    responses(
        (status = 200, description = "the count", body = CountResponse),
        (status = 422, description = "a namespace out of bounds", body = Problem, content_type = "application/problem+json"),
        KvProblems),
    security(("api_key" = [])), tag = "kv", operation_id = "kv_count")]
pub async fn count(
    _key: ApiKey,
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<ApiJson<CountResponse>, ApiError> {
    let ns = namespace_path(path)?;
    let count = store(&s)?
        .ns_count(&ns, s.clock().now())
        .await
        .map_err(|e| failed(&e))?;
    Ok(ApiJson(CountResponse { count }))
}

/// Deletes every value of a namespace at once, in one write whatever their number
/// (express-session's `clear`).
#[utoipa::path(delete, path = "/v1/kv/{namespace}",
    params(("namespace" = String, Path, description = "1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with `.`", pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")),
    responses(
        (status = 204, description = "the namespace is empty"),
        (status = 422, description = "a namespace out of bounds", body = Problem, content_type = "application/problem+json"),
        KvProblems),
    security(("api_key" = [])), tag = "kv", operation_id = "kv_clear")]
pub async fn clear(
    _key: ApiKey,
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let ns = namespace_path(path)?;
    store(&s)?
        .ns_clear(&ns, s.clock().now())
        .await
        .map_err(|e| failed(&e))?;
    Ok(StatusCode::NO_CONTENT)
}
