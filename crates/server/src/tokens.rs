//! Session tokens over HTTP (DESIGN §5, §7): the JWKS, minting a token for a session that
//! is not stored, and the edge verifier.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera::metrics::TokenOutcomeLabels;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{ApiJson, ApiKey};
use crate::problem::ApiError;

pub use crate::verifier::{SESSION_HEADER, STATUS_HEADER, SUBJECT_HEADER};

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
    let body = t.keyring.read().jwks(&t.config);
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
/// A valid token answers 200 with `X-Tessera-Subject`, `X-Tessera-Session`,
/// `X-Tessera-Token-Status` and the configured `X-Tessera-Claim-<name>` headers; otherwise
/// 200 with subject `anon` (optional mode) or 401 with `WWW-Authenticate: Bearer` (required
/// mode), and the outcome code.
#[utoipa::path(get, path = "/v1/verify",
    responses((status = 200, description = "valid token, or none in optional mode (X-Tessera-Subject: anon)"),
        (status = 401, description = "no valid token (required mode)")),
    tag = "tokens")]
pub async fn verify(State(s): State<AppState>, headers: HeaderMap) -> Response {
    match s.verifier() {
        Some(v) => v.respond(&headers, s.clock().now().unix_secs()).await,
        None => {
            s.engine()
                .metrics()
                .token_validations
                .get_or_create(&TokenOutcomeLabels {
                    outcome: "disabled",
                })
                .inc();
            crate::verifier::refusal(s.verify_required(), "disabled")
        }
    }
}
