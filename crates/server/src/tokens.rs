//! Session tokens over HTTP (DESIGN §5, §7): the JWKS, minting a token for a session that
//! is not stored, and the edge verifier.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera::metrics::TokenOutcomeLabels;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::{ApiJson, ApiKey};
use crate::openapi::problems::JsonBodyProblems;
use crate::problem::ApiError;

pub use crate::verifier::{SESSION_HEADER, STATUS_HEADER, SUBJECT_HEADER};

/// The public keys that verify session tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json",
    responses(
        (status = 200, description = "the JWK set (RFC 7517): the `next`, `active` and `retired` public keys",
            body = ref("#/components/schemas/JwkSet")),
        (status = 404, description = "session tokens are disabled (`tokens-disabled`)", body = crate::problem::Problem, content_type = "application/problem+json")),
    tag = "tokens")]
pub async fn jwks(State(s): State<AppState>) -> Response {
    let Some(t) = s.engine().tokens() else {
        return ApiError::tokens_disabled().into_response();
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
    /// The token's subject (1 to 256 bytes, no control characters).
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub sub: String,
    /// Custom claims.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::claims_map)]
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
    responses(
        (status = 200, description = "the token", body = MintResponse),
        (status = 401, description = "missing or wrong API key", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "session tokens are disabled (`tokens-disabled`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is too large", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "valid JSON with an invalid field", body = crate::problem::Problem, content_type = "application/problem+json"),
        JsonBodyProblems),
    security(("api_key" = [])), tag = "tokens")]
pub async fn mint(
    _key: ApiKey,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<MintRequest>,
) -> Result<ApiJson<MintResponse>, ApiError> {
    if s.engine().tokens().is_none() {
        return Err(ApiError::tokens_disabled());
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
    responses(
        (status = 200, description = "a valid token, or none in optional mode (`X-Tessera-Subject: anon`); no body",
            headers(
                ("X-Tessera-Subject" = String, description = "the token's `sub`, or `anon`"),
                ("X-Tessera-Token-Status" = String, description = "the token status (`ok`, `none`, `expired`, ...)"))),
        (status = 401, description = "no valid token (required mode); no body",
            headers(
                ("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_token\"` when a token was sent"),
                ("X-Tessera-Token-Status" = String, description = "the token status")))),
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
