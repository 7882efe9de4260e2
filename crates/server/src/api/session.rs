//! The `/v1/session/*` handlers: resolve, update, login, logout, rotate and the CSRF check.

use axum::extract::State;
use tessera::csrf::MAX_PURPOSE_LEN;
use tessera::{Edits, IfMissing, Lifetime, Login, Outcome, Renewal};
use tessera_core::User;

use super::shapes::{
    CsrfCheckRequest, CsrfCheckResponse, ExpirySetting, LoginRequest, LogoutRequest,
    ResolveRequest, RotateRequest, SessionResponse, SessionView, StorageChoice, UpdateRequest,
};
use super::{ApiJson, ApiKey, DEFAULT_PURPOSE};
use crate::AppState;
use crate::openapi::problems::SessionProblems;
use crate::problem::{ApiError, Problem};

impl AppState {
    fn respond(&self, out: Outcome, purpose: &str) -> ApiJson<SessionResponse> {
        self.respond_with(out, purpose, false)
    }

    fn respond_with(
        &self,
        out: Outcome,
        purpose: &str,
        with_secrets: bool,
    ) -> ApiJson<SessionResponse> {
        let now = self.clock().now();
        let csrf_token = out
            .session
            .as_ref()
            .map(|s| self.engine().csrf_token(s, purpose, now));
        // The token check of `resolve` computed it already (an HMAC).
        let known_sid = out.known_sid().map(str::to_owned);
        ApiJson(SessionResponse {
            session: out.session.map(|x| {
                let sid = known_sid.unwrap_or_else(|| self.engine().sid(&x));
                let secrets = with_secrets.then(|| self.engine().secrets(&x, now));
                SessionView::new(x, sid, secrets)
            }),
            set_cookie: out.set_cookie,
            status: out.status.as_str(),
            csrf_token,
            token_status: out.token_status.as_str(),
        })
    }

    pub(super) fn problem(&self, e: tessera::Error) -> ApiError {
        ApiError::from_engine(e, &self.engine().cookie().remove())
    }
}

fn purpose(p: Option<&str>) -> Result<&str, ApiError> {
    let p = p.unwrap_or(DEFAULT_PURPOSE);
    if p.is_empty() || p.len() > MAX_PURPOSE_LEN {
        return Err(ApiError::invalid(format!(
            "purpose must be 1 to {MAX_PURPOSE_LEN} bytes"
        )));
    }
    Ok(p)
}

/// Reads the session named by the cookie, renewing it when due.
#[utoipa::path(post, path = "/v1/session/resolve", request_body = ResolveRequest,
    responses(
        (status = 200, description = "the session (or `null`) and the cookies to set", body = SessionResponse,
            links(
                ("update" = (operation_id = "update", request_body = json!({"cookie": "$request.body#/cookie"}),
                    description = "edit the session just resolved")),
                ("csrf_check" = (operation_id = "csrf_check",
                    request_body = json!({"cookie": "$request.body#/cookie", "token": "$response.body#/csrf_token"}),
                    description = "check the CSRF token just issued")),
                ("logout" = (operation_id = "logout", request_body = json!({"cookie": "$request.body#/cookie"}),
                    description = "end the session just resolved")),
            )),
        SessionProblems),
    security(("api_key" = [])), tag = "session")]
pub async fn resolve(
    _key: ApiKey,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<ApiJson<SessionResponse>, ApiError> {
    let p = purpose(req.csrf_purpose.as_deref())?;
    let missing = match (req.create, req.storage) {
        (false, _) => IfMissing::Nothing,
        (true, StorageChoice::Auto) => IfMissing::CreateAnonymous,
        (true, StorageChoice::Store) => IfMissing::CreateStored,
    };
    let renewal = if req.renew {
        Renewal::WhenDue
    } else {
        Renewal::Never
    };
    let out = s
        .engine()
        .resolve_with(&req.cookie, missing, renewal, s.clock().now())
        .await
        .map_err(|e| s.problem(e))?;
    Ok(s.respond_with(out, p, req.secrets))
}

/// Sets and removes keys of the session's data and secrets (creating an anonymous session if
/// the cookie names none: in client-side mode a sealed cookie, which moves to the store when
/// it outgrows its budget or a secret is set).
#[utoipa::path(post, path = "/v1/session/update", request_body = UpdateRequest,
    responses(
        (status = 200, description = "the session after the edits and the cookies to set", body = SessionResponse,
            links(
                ("resolve" = (operation_id = "resolve", request_body = json!({"cookie": "$request.body#/cookie"}),
                    description = "read the session back")),
                ("csrf_check" = (operation_id = "csrf_check",
                    request_body = json!({"cookie": "$request.body#/cookie", "token": "$response.body#/csrf_token"}),
                    description = "check the session's CSRF token")),
                ("logout" = (operation_id = "logout", request_body = json!({"cookie": "$request.body#/cookie"}),
                    description = "end the session")),
            )),
        (status = 404, description = "the cookie names no live session (`set_cookie` clears it)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the edit lost too many compare-and-set races; retry", body = Problem, content_type = "application/problem+json"),
        SessionProblems),
    security(("api_key" = [])), tag = "session")]
pub async fn update(
    _key: ApiKey,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<UpdateRequest>,
) -> Result<ApiJson<SessionResponse>, ApiError> {
    let expiry = req.expiry.map(ExpirySetting::to_engine).transpose()?;
    let edits = Edits {
        set: req.set,
        remove: req.remove,
        secrets: req.secrets,
        remove_secrets: req.remove_secrets,
        expiry,
        in_store: req.storage == StorageChoice::Store,
    };
    let out = s
        .engine()
        .update(&req.cookie, &edits, s.clock().now())
        .await
        .map_err(|e| s.problem(e))?;
    Ok(s.respond(out, DEFAULT_PURPOSE))
}

/// Binds a user to a new session (new handle; anonymous data carried over).
#[utoipa::path(post, path = "/v1/session/login", request_body = LoginRequest,
    responses(
        (status = 200, description = "the new session and the cookies to set (the session cookie first)", body = SessionResponse,
            links(
                ("resolve" = (operation_id = "resolve", request_body = json!({"cookie": "$response.body#/set_cookie/0"}),
                    description = "resolve the new session (a `Set-Cookie` value is a valid `Cookie` header: its attributes are ignored)")),
                ("update" = (operation_id = "update", request_body = json!({"cookie": "$response.body#/set_cookie/0"}),
                    description = "edit the new session")),
                ("csrf_check" = (operation_id = "csrf_check",
                    request_body = json!({"cookie": "$response.body#/set_cookie/0", "token": "$response.body#/csrf_token"}),
                    description = "check the new session's CSRF token")),
                ("logout" = (operation_id = "logout", request_body = json!({"cookie": "$response.body#/set_cookie/0"}),
                    description = "end the new session")),
                ("rotate" = (operation_id = "rotate", request_body = json!({"cookie": "$response.body#/set_cookie/0"}),
                    description = "give the new session another handle")),
                ("list_sessions" = (operation_id = "list_sessions", parameters(("id" = "$request.body#/user/id")),
                    description = "list the user's sessions")),
                ("revoke_one" = (operation_id = "revoke_one",
                    parameters(("id" = "$request.body#/user/id"), ("ref" = "$response.body#/session/ref")),
                    description = "revoke the new session")),
                ("revoke_all" = (operation_id = "revoke_all", parameters(("id" = "$request.body#/user/id")),
                    description = "log the user out everywhere")),
            )),
        (status = 409, description = "the old session kept changing during the login; retry", body = Problem, content_type = "application/problem+json"),
        SessionProblems),
    security(("api_key" = [])), tag = "session")]
pub async fn login(
    _key: ApiKey,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<ApiJson<SessionResponse>, ApiError> {
    let login = Login::new(User {
        id: req.user.id,
        name: req.user.name,
        provider: req.user.provider,
    })
    .with_claims(req.claims)
    .with_lifetime(if req.remember {
        Lifetime::Remembered
    } else {
        Lifetime::Standard
    });
    let out = s
        .engine()
        .login(&req.cookie, login, s.clock().now())
        .await
        .map_err(|e| s.problem(e))?;
    Ok(s.respond(out, DEFAULT_PURPOSE))
}

/// Ends the session and returns the cookie removal.
#[utoipa::path(post, path = "/v1/session/logout", request_body = LogoutRequest,
    responses(
        (status = 200, description = "`session: null` and the cookies to clear", body = SessionResponse,
            links(
                ("resolve" = (operation_id = "resolve", request_body = json!({"cookie": "$request.body#/cookie"}),
                    description = "the ended session no longer resolves")),
            )),
        SessionProblems),
    security(("api_key" = [])), tag = "session")]
pub async fn logout(
    _key: ApiKey,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<LogoutRequest>,
) -> Result<ApiJson<SessionResponse>, ApiError> {
    let out = s
        .engine()
        .logout(&req.cookie, s.clock().now())
        .await
        .map_err(|e| s.problem(e))?;
    Ok(s.respond(out, DEFAULT_PURPOSE))
}

/// Gives the stored session named by the cookie a new handle (Django's `cycle_key`): the
/// same session (user, data, secrets, claims, remember-me, expiry) under a new cookie, the
/// old handle retired in the same compare-and-set a login uses, so it no longer resolves.
#[utoipa::path(post, path = "/v1/session/rotate", request_body = RotateRequest,
    responses(
        (status = 200, description = "the session under its new handle and the cookies to set (the session cookie first)", body = SessionResponse,
            links(
                ("resolve" = (operation_id = "resolve", request_body = json!({"cookie": "$response.body#/set_cookie/0"}),
                    description = "resolve the session by its new handle")),
                ("update" = (operation_id = "update", request_body = json!({"cookie": "$response.body#/set_cookie/0"}),
                    description = "edit the session by its new handle")),
                ("logout" = (operation_id = "logout", request_body = json!({"cookie": "$response.body#/set_cookie/0"}),
                    description = "end the rotated session")),
            )),
        (status = 404, description = "the cookie names no live stored session (`set_cookie` clears it)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the session kept changing during the rotation; retry", body = Problem, content_type = "application/problem+json"),
        SessionProblems),
    security(("api_key" = [])), tag = "session")]
pub async fn rotate(
    _key: ApiKey,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<ApiJson<SessionResponse>, ApiError> {
    let out = s
        .engine()
        .rotate(&req.cookie, s.clock().now())
        .await
        .map_err(|e| s.problem(e))?;
    Ok(s.respond(out, DEFAULT_PURPOSE))
}

/// Checks a CSRF token against the live session named by the cookie.
#[utoipa::path(post, path = "/v1/session/csrf/check", request_body = CsrfCheckRequest,
    responses(
        (status = 200, description = "whether the token is valid", body = CsrfCheckResponse,
            links(
                ("logout" = (operation_id = "logout", request_body = json!({"cookie": "$request.body#/cookie"}),
                    description = "end the session")),
            )),
        SessionProblems),
    security(("api_key" = [])), tag = "session")]
pub async fn csrf_check(
    _key: ApiKey,
    State(s): State<AppState>,
    ApiJson(req): ApiJson<CsrfCheckRequest>,
) -> Result<ApiJson<CsrfCheckResponse>, ApiError> {
    let p = purpose(req.purpose.as_deref())?;
    let valid = s
        .engine()
        .check_csrf(&req.cookie, &req.token, p, s.clock().now())
        .await
        .map_err(|e| s.problem(e))?;
    Ok(ApiJson(CsrfCheckResponse { valid }))
}
