//! `GET /v1/revocations`: the feed of revocations that verifiers at the edge poll, so they
//! refuse tokens of sessions that ended (and of users logged out everywhere) before the tokens
//! expire.
//!
//! Public, like the JWKS. Incremental: `?after=<seq>` returns only newer entries, and `next`
//! is the cursor for the following request. Bounded: entries older than `revocations.keep`
//! (the longest token lifetime plus skew) are dropped, since every token they could refuse has
//! expired. Cacheable: an `ETag` over the body, `If-None-Match` answers 304, and
//! `Cache-Control: public, max-age=5`.

// utoipa's code generated for `params(FeedQuery)` (an item beside the handler) qualifies the
// handler's argument type, which trips this lint on our line.
#![allow(unused_qualifications)]

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tessera_core::{RevokedSubject, SessionKind};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::ApiJson;
use crate::problem::ApiError;

/// The default of `revocations.keep`: tokens live at most 4 h, plus 5 min of clock skew.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(4 * 3600 + 300);
const MAX_LIMIT: usize = 10_000;

/// The feed's query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Only entries after this sequence number (the `next` of the previous answer; 0 for all).
    #[serde(default)]
    #[param(
        required = false,
        format = "uint64",
        minimum = 0,
        maximum = 18_446_744_073_709_551_615_u64
    )]
    pub after: u64,
    /// At most this many entries (1 to 10000; default 10000).
    #[serde(default)]
    #[param(required = false, value_type = usize, minimum = 1, maximum = 10_000)]
    pub limit: Option<usize>,
}

/// One revocation.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedEntry {
    /// Its sequence number.
    pub seq: u64,
    /// `user`: every token with this `sub` issued at or before `at` is revoked; `session`:
    /// every token with this `sid`.
    pub kind: &'static str,
    /// The token `sub` of the user (the user id in the configured subject format), or the
    /// session's `sid`.
    pub id: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// The feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feed {
    /// Entries, oldest first.
    pub revocations: Vec<FeedEntry>,
    /// The cursor for the next request (`?after=`).
    pub next: u64,
}

/// The revocation feed.
#[utoipa::path(get, path = "/v1/revocations", params(FeedQuery),
    responses(
        (status = 200, description = "revocations after the cursor", body = Feed,
            headers(("ETag" = String, description = "a digest of the body"), ("Cache-Control" = String))),
        (status = 304, description = "unchanged (If-None-Match)"),
        (status = 400, description = "an invalid query (`invalid-query`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 501, description = "the store keeps no revocation log", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer", body = crate::problem::Problem, content_type = "application/problem+json")),
    tag = "tokens")]
pub async fn feed(
    State(s): State<AppState>,
    q: Result<Query<FeedQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(r) => {
            return ApiError::invalid_query(crate::problem::redact(&r.body_text())).into_response();
        }
    };
    let limit = match q.limit {
        None => MAX_LIMIT,
        Some(n @ 1..=MAX_LIMIT) => n,
        Some(_) => {
            return ApiError::invalid_query(format!("limit must be 1 to {MAX_LIMIT}"))
                .into_response();
        }
    };
    let store = s
        .engine()
        .stores()
        .for_kind(SessionKind::Authenticated)
        .clone();
    let Some(log) = store.as_revocation_log() else {
        return ApiError::no_revocation_log().into_response();
    };
    let horizon = s.clock().now().saturating_sub(s.revocation_keep());
    let subject = s
        .engine()
        .tokens()
        .map(|t| t.subject.clone())
        .unwrap_or_default();
    let entries = match log.revocations_since(q.after, limit).await {
        Ok(e) => e,
        Err(e) => return ApiError::from_engine(tessera::Error::Store(e), "").into_response(),
    };
    let next = entries.last().map_or(q.after, |(n, _)| *n);
    let revocations = entries
        .into_iter()
        .filter(|(_, r)| r.at >= horizon)
        .map(|(seq, r)| {
            let (kind, id) = match r.subject {
                // As it appears in tokens, so a verifier matches `sub` without knowing how
                // this service writes it (e.g. `mw:CentralAuth::123`).
                RevokedSubject::User(u) => ("user", subject.subject(&u)),
                RevokedSubject::Session(sid) => ("session", sid),
            };
            FeedEntry {
                seq,
                kind,
                id,
                at: r.at.unix_secs(),
            }
        })
        .collect();
    let body = Feed { revocations, next };
    let Ok(bytes) = serde_json::to_vec(&body) else {
        return ApiError::internal().into_response();
    };
    let digest = Sha256::digest(&bytes);
    let etag = format!(
        "\"{}\"",
        tessera_core::to_hex(digest.get(..12).unwrap_or_default())
    );
    let cache = [(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=5"),
    )];
    let Ok(etag_value) = HeaderValue::from_str(&etag) else {
        return ApiError::internal().into_response();
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_value)],
            cache,
        )
            .into_response();
    }
    ([(header::ETAG, etag_value)], cache, ApiJson(body)).into_response()
}
