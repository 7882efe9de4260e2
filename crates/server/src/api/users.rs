//! The `/v1/users/{id}/sessions` handlers: a user's sessions, listed and revoked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiKey;
use super::shapes::ExpirySetting;
use crate::AppState;
use crate::openapi::problems::UserProblems;
use crate::problem::{ApiError, Problem};

/// A user's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// The sessions, without their data.
    pub sessions: Vec<SessionSummary>,
}

/// One session in a user's list.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionSummary {
    /// The reference to revoke it with.
    #[serde(rename = "ref")]
    pub reference: String,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When it dies without activity.
    pub idle_expires_at: i64,
    /// When it dies whatever happens.
    pub absolute_expires_at: i64,
    /// When it dies unless renewed first: the earliest of its idle expiry, its absolute
    /// expiry and its own end (the effective expiry).
    pub expires_at: i64,
    /// Its own expiry (`{"at": ..}`, `{"idle": ..}`, `"browser"`), or `null` for the
    /// server's defaults.
    #[schema(schema_with = crate::openapi::expiry_output)]
    pub expiry: Option<ExpirySetting>,
    /// Whether it is a remember-me session.
    pub remember: bool,
}

/// The answer of "log out everywhere".
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeAllResponse {
    /// How many live sessions the user had.
    pub revoked: usize,
    /// The user's revocation time (Unix milliseconds): every session and token issued up to
    /// it is dead.
    pub revoked_at_ms: i64,
}

/// Lists a user's live sessions.
#[utoipa::path(get, path = "/v1/users/{id}/sessions", params(("id" = String, Path, description = "user id (1 to 255 bytes, no control characters)", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")),
    responses(
        (status = 200, description = "the user's live sessions", body = SessionList,
            links(
                ("revoke_one" = (operation_id = "revoke_one",
                    parameters(("id" = "$request.path.id"), ("ref" = "$response.body#/sessions/0/ref")),
                    description = "revoke the first session listed")),
            )),
        UserProblems),
    security(("api_key" = [])), tag = "users")]
pub async fn list_sessions(
    _key: ApiKey,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionList>, ApiError> {
    let list = s
        .engine()
        .list_user_sessions(&id, s.clock().now())
        .await
        .map_err(|e| s.problem(e))?;
    Ok(Json(SessionList {
        sessions: list
            .iter()
            .map(|x| SessionSummary {
                reference: x.reference(),
                created_at: x.record.created_at.unix_secs(),
                idle_expires_at: x.record.idle_expires_at.unix_secs(),
                absolute_expires_at: x.record.absolute_expires_at.unix_secs(),
                expires_at: x.record.expires_at().unix_secs(),
                expiry: ExpirySetting::from_engine(x.record.expiry),
                remember: x.record.remember,
            })
            .collect(),
    }))
}

/// Logs a user out everywhere.
#[utoipa::path(delete, path = "/v1/users/{id}/sessions", params(("id" = String, Path, description = "user id (1 to 255 bytes, no control characters)", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")),
    responses(
        (status = 200, description = "every session and token of the user up to now is revoked", body = RevokeAllResponse),
        UserProblems),
    security(("api_key" = [])), tag = "users")]
pub async fn revoke_all(
    _key: ApiKey,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RevokeAllResponse>, ApiError> {
    let now = s.clock().now();
    let revoked = s
        .engine()
        .revoke_all(&id, now)
        .await
        .map_err(|e| s.problem(e))?;
    Ok(Json(RevokeAllResponse {
        revoked,
        revoked_at_ms: now.unix_millis(),
    }))
}

/// Ends one session of a user.
#[utoipa::path(delete, path = "/v1/users/{id}/sessions/{ref}",
    params(("id" = String, Path, description = "user id (1 to 255 bytes, no control characters)", min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"),
        ("ref" = String, Path, description = "a session reference (`ref`: the unpadded base64url of 32 bytes)",
            pattern = "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$")),
    responses(
        (status = 204, description = "the session is ended"),
        (status = 404, description = "this user has no live session with this reference", body = Problem, content_type = "application/problem+json"),
        UserProblems),
    security(("api_key" = [])), tag = "users")]
pub async fn revoke_one(
    _key: ApiKey,
    State(s): State<AppState>,
    Path((id, reference)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let found = s
        .engine()
        .revoke_session(&id, &reference, s.clock().now())
        .await
        .map_err(|e| s.problem(e))?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::no_such_reference())
    }
}
