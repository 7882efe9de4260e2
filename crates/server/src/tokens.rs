//! Session tokens over HTTP (DESIGN §5, §7): the JWKS, minting a token for a session that
//! is not stored, and the edge verifier.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera::cookie::{self, Lookup};
use tessera::metrics::TokenOutcomeLabels;
use tessera_core::{RevokedSubject, SessionKind};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{ApiJson, ApiKey};
use crate::problem::ApiError;

/// The subject header of `GET /v1/verify`.
pub const SUBJECT_HEADER: &str = "x-tessera-subject";
/// The `sid` header of `GET /v1/verify`.
pub const SESSION_HEADER: &str = "x-tessera-session";
/// The outcome-code header of `GET /v1/verify`.
pub const STATUS_HEADER: &str = "x-tessera-token-status";
/// Revocation log entries read per request, at most.
const FEED_BATCH: usize = 10_000;

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "tokens-disabled",
        "Session tokens are disabled",
        "this service issues no session tokens ([tokens] enabled = false)",
    )
}

/// The public keys that verify session tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json",
    responses((status = 200, description = "JWK set"), (status = 404, body = crate::problem::Problem)),
    tag = "tokens")]
pub async fn jwks(State(s): State<AppState>) -> Response {
    let Some(t) = s.engine().tokens() else {
        return disabled().into_response();
    };
    let body = t
        .keyring
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .jwks(&t.config);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// The token's subject.
    pub sub: String,
    /// Custom claims.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: BTreeMap<String, Value>,
}

/// The minted token.
#[derive(Debug, Serialize, ToSchema)]
pub struct MintResponse {
    /// A compact JWS.
    pub token: String,
}

/// A token for a session that is not stored (an API client): nothing is written.
#[utoipa::path(post, path = "/v1/tokens", request_body = MintRequest,
    responses((status = 200, body = MintResponse), (status = "4XX", body = crate::problem::Problem)),
    security(("api_key" = [])), tag = "tokens")]
pub async fn mint(
    _key: ApiKey,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<MintRequest>,
) -> Result<ApiJson<MintResponse>, ApiError> {
    if s.engine().tokens().is_none() {
        return Err(disabled());
    }
    let token = s
        .engine()
        .mint(&req.sub, &req.claims, s.clock().now())
        .map_err(|e| ApiError::from_engine(e, ""))?;
    Ok(ApiJson(MintResponse { token }))
}

/// The edge check (`auth_request`, ForwardAuth, `ext_authz`): the token from the token
/// cookie or `Authorization: Bearer`, verified with the keyring and the revocation log.
/// A valid token answers 200 with `X-Tessera-Subject`, `X-Tessera-Session` and
/// `X-Tessera-Token-Status`; otherwise 200 with subject `anon` (optional mode) or 401 with
/// `WWW-Authenticate: Bearer` (required mode), and the outcome code.
#[utoipa::path(get, path = "/v1/verify",
    responses((status = 200, description = "valid token, or none in optional mode (X-Tessera-Subject: anon)"),
        (status = 401, description = "no valid token (required mode)")),
    tag = "tokens")]
pub async fn verify(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let code = match check(&s, &headers).await {
        Ok((sub, sid, code)) => {
            count(&s, code);
            // Raw bytes: a UTF-8 subject passes as obs-text, as proxies forward it.
            let (Ok(sub), Ok(sid)) = (
                HeaderValue::from_bytes(sub.as_bytes()),
                HeaderValue::from_bytes(sid.as_bytes()),
            ) else {
                return ApiError::internal().into_response();
            };
            return (
                StatusCode::OK,
                [
                    (HeaderName::from_static(SUBJECT_HEADER), sub),
                    (HeaderName::from_static(SESSION_HEADER), sid),
                    (
                        HeaderName::from_static(STATUS_HEADER),
                        HeaderValue::from_static(code),
                    ),
                ],
            )
                .into_response();
        }
        Err(code) => code,
    };
    count(&s, code);
    let status_header = (
        HeaderName::from_static(STATUS_HEADER),
        HeaderValue::from_static(code),
    );
    if s.verify_required() {
        return (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
                status_header,
            ],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (
                HeaderName::from_static(SUBJECT_HEADER),
                HeaderValue::from_static("anon"),
            ),
            status_header,
        ],
    )
        .into_response()
}

fn count(s: &AppState, code: &'static str) {
    s.engine()
        .metrics()
        .token_validations
        .get_or_create(&TokenOutcomeLabels { outcome: code })
        .inc();
}

/// `(sub, sid, code)` of a valid token, or the outcome code.
async fn check(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<(String, String, &'static str), &'static str> {
    let Some(t) = s.engine().tokens() else {
        return Err("disabled");
    };
    let from_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| match cookie::find(c, t.cookie.name()) {
            Lookup::Found(v) if !v.is_empty() => Some(Ok(v.to_owned())),
            Lookup::Invalid => Some(Err("malformed")),
            _ => None,
        });
    let token = match from_cookie {
        Some(r) => r?,
        None => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().to_owned())
            .ok_or("none")?,
    };
    let now = s.clock().now().unix_secs();
    let mut cache = s.revocation_cache().lock().await;
    if cache
        .fetched
        .is_none_or(|t| t.elapsed() >= s.verify_refresh())
    {
        // With a copy already loaded, a store outage keeps the verifier working on that copy
        // (DESIGN §9); it tries again after the refresh interval, not on every request, so
        // an outage costs one bounded wait per interval. Without any copy yet, it fails
        // closed.
        let had_copy = cache.fetched.is_some();
        match refresh(s, &mut cache).await {
            Ok(()) => {}
            Err(code) if had_copy => {
                tracing::warn!(
                    code,
                    "verifying against the last copy of the revocation log"
                );
            }
            Err(code) => return Err(code),
        }
        cache.fetched = Some(std::time::Instant::now());
    }
    let verified = t
        .keyring
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .verify_at(&t.config, &token, now, &cache.list);
    drop(cache);
    match verified {
        Ok(v) => Ok((v.claims.sub, v.claims.sid, v.status.code())),
        Err(e) => {
            tracing::info!(target: "security", code = e.code(), issuer = t.config.issuer(), "token refused at /v1/verify");
            Err(e.code())
        }
    }
}

/// Brings the revocation list up to date from the store's revocation log (incremental: only
/// entries after the last one seen).
async fn refresh(
    s: &AppState,
    cache: &mut crate::state::RevocationCache,
) -> Result<(), &'static str> {
    let Some(t) = s.engine().tokens() else {
        return Ok(());
    };
    let store = s.engine().stores().for_kind(SessionKind::Authenticated);
    let Some(log) = store.as_revocation_log() else {
        return Ok(());
    };
    loop {
        let entries = match log.revocations_since(cache.next, FEED_BATCH).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(code = e.code(), "cannot read the revocation log");
                return Err("revocations_unavailable");
            }
        };
        let n = entries.len();
        for (seq, r) in entries {
            cache.next = cache.next.max(seq);
            match r.subject {
                RevokedSubject::User(u) => {
                    // `iat` has whole seconds and the list revokes `iat < at`: the next
                    // whole second catches every token issued in the revocation's second
                    // (also one issued just after it, in that second: the safe side).
                    let at = r.at.unix_millis().div_euclid(1000).saturating_add(1);
                    cache.list.revoke_user_before(t.subject.subject(&u), at);
                }
                RevokedSubject::Session(sid) => cache.list.revoke_session(sid),
            }
        }
        if n < FEED_BATCH {
            return Ok(());
        }
    }
}
