//! The HTTP handlers and their request and response shapes (DESIGN §7; the OpenAPI document
//! at `/openapi.json` is generated from these types).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera::csrf::MAX_PURPOSE_LEN;
use tessera::{Edits, IfMissing, Lifetime, LiveSession, Login, Outcome, Renewal};
use tessera_core::{Expiry, Handle, SessionKind, Timestamp, User};
use utoipa::ToSchema;

use crate::AppState;
use crate::problem::{ApiError, Problem};

/// A JSON body whose rejections become problem responses.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::unsupported_media_type());
        }
        // The body limit (DefaultBodyLimit) applies here.
        let body = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::body_too_large()
            } else {
                ApiError::invalid_json("the body could not be read")
            }
        })?;
        parse_json(&body).map(Self)
    }
}

/// Whether the request's `Content-Type` is JSON (`application/json` or `application/*+json`).
pub(crate) fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json")
                || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// A request body as `T`: 400 for a body that is not JSON, 422 for JSON of the wrong shape
/// (an array included, where the API takes objects only).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // serde's derived structs also accept arrays; the API takes objects only. Checked on
    // the bytes, so the body is parsed once.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[') => return Err(ApiError::invalid("the body must be a JSON object")),
        _ => {}
    }
    serde_json::from_slice(body).map_err(|e| {
        let detail = crate::problem::redact(&e.to_string());
        match e.classify() {
            serde_json::error::Category::Data => ApiError::invalid(detail),
            _ => ApiError::invalid_json(detail),
        }
    })
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        // Sized for a typical session answer (about 500 bytes), so it is written once instead
        // of regrown from axum's 128-byte start.
        let mut buf = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                buf,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a response");
                ApiError::internal().into_response()
            }
        }
    }
}

/// Proof that the request carried a valid management API key (`Authorization: Bearer`).
/// An extractor rather than a middleware layer: it costs nothing on public routes and runs
/// before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        if s.bearer_ok(&parts.headers) {
            return Ok(Self);
        }
        tracing::info!(target: "security", path = parts.uri.path(), "management request without a valid API key");
        Err(ApiError::unauthorized())
    }
}

/// The CSRF purpose used when a request names none.
pub const DEFAULT_PURPOSE: &str = "default";

/// `POST /v1/session/resolve`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The browser's raw `Cookie` header (may be empty).
    #[serde(default)]
    #[schema(max_length = 8192)]
    pub cookie: String,
    /// Create an anonymous session when there is no live one: a sealed cookie in client-side
    /// mode (no store write), one store write in server-side mode.
    #[serde(default)]
    pub create: bool,
    /// The purpose the returned CSRF token is for (default `default`; 1 to 128 bytes).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub csrf_purpose: Option<String>,
    /// Return the session's secrets, opened, in `session.secrets` (default false: only on
    /// request, so they are not copied around with the rest of the session).
    #[serde(default)]
    pub secrets: bool,
    /// Where a session `create` makes is kept: `auto` (the default: the anonymous mode
    /// decides) or `store` (a stored anonymous session whatever the mode, for applications
    /// whose session keys must name stored sessions).
    #[serde(default)]
    pub storage: StorageChoice,
    /// Renew the session when due (default true). `false` is a pure read: nothing is
    /// written and the session cookie is not re-sent.
    #[serde(default = "yes")]
    pub renew: bool,
}

fn yes() -> bool {
    true
}

/// Where a session a request creates (or edits) is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum StorageChoice {
    /// The anonymous mode decides (a sealed cookie in client-side mode).
    #[default]
    Auto,
    /// In the store, whatever the anonymous mode.
    Store,
}

impl<'de> Deserialize<'de> for StorageChoice {
    // By hand, for the reason of `ExpirySetting`'s: a wrong type is an invalid field (422).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match Value::deserialize(d)? {
            Value::String(s) if s == "auto" => Ok(Self::Auto),
            Value::String(s) if s == "store" => Ok(Self::Store),
            _ => Err(D::Error::custom("storage must be \"auto\" or \"store\"")),
        }
    }
}

/// The latest `expiry.at` accepted: 9999-12-31T23:59:59Z.
pub const MAX_EXPIRY_AT: i64 = 253_402_300_799;
/// The longest `expiry.idle` accepted, in seconds (about 68 years; the absolute expiry bounds
/// it anyway).
pub const MAX_EXPIRY_IDLE: u64 = 2_147_483_647;

/// A session's own expiry, as `update` sets it and the session view shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpirySetting {
    /// `{"at": <unix s>}`: the session ends then (never after its absolute expiry).
    At(i64),
    /// `{"idle": <s>}`: this session's idle timeout.
    Idle(u64),
    /// `"browser"`: a browser-session cookie, the server's timeouts.
    Browser,
}

impl<'de> Deserialize<'de> for ExpirySetting {
    // By hand: serde's externally tagged enums report a two-key object as a syntax error
    // (a 400 "invalid JSON"), where it is valid JSON with an invalid field (422).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = Value::deserialize(d)?;
        let form = match &v {
            Value::String(s) if s == "browser" => Some(Self::Browser),
            Value::Object(m) if m.len() == 1 => match m.iter().next() {
                Some((k, n)) if k == "at" => integer(n).map(Self::At),
                Some((k, n)) if k == "idle" => integer(n)
                    .and_then(|i| u64::try_from(i).ok())
                    .map(Self::Idle),
                _ => None,
            },
            _ => None,
        };
        form.ok_or_else(|| {
            D::Error::custom(
                "expiry must be {\"at\": <Unix seconds>}, {\"idle\": <seconds>}, \"browser\" or null",
            )
        })
    }
}

/// A JSON integer, also written as a float with no fraction (`60.0`), as JSON Schema's
/// `integer` allows.
fn integer(n: &Value) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // Within ±2^53, where every integer is exact as a float.
    let exact = 9_007_199_254_740_992.0;
    (f.fract() == 0.0 && f.abs() <= exact).then(|| {
        #[allow(clippy::cast_possible_truncation)] // integral and within ±2^53: exact
        let i = f as i64;
        i
    })
}

impl ExpirySetting {
    fn to_engine(this: Option<Self>) -> Result<Expiry, ApiError> {
        Ok(match this {
            None => Expiry::Default,
            Some(Self::At(at)) if (0..=MAX_EXPIRY_AT).contains(&at) => {
                Expiry::At(Timestamp::from_unix_secs(at))
            }
            Some(Self::At(_)) => {
                return Err(ApiError::invalid(format!(
                    "expiry.at must be 0 to {MAX_EXPIRY_AT} (Unix seconds)"
                )));
            }
            Some(Self::Idle(secs)) if (1..=MAX_EXPIRY_IDLE).contains(&secs) => Expiry::Idle(secs),
            Some(Self::Idle(_)) => {
                return Err(ApiError::invalid(format!(
                    "expiry.idle must be 1 to {MAX_EXPIRY_IDLE} seconds"
                )));
            }
            Some(Self::Browser) => Expiry::Browser,
        })
    }

    fn from_engine(e: Expiry) -> Option<Self> {
        match e {
            Expiry::At(t) => Some(Self::At(t.unix_secs())),
            Expiry::Idle(secs) => Some(Self::Idle(secs)),
            Expiry::Browser => Some(Self::Browser),
            _ => None,
        }
    }
}

/// `Some(value)` for a field that is present, `null` included, so that an absent field and
/// `null` differ.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /v1/session/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The browser's raw `Cookie` header (may be empty: a new anonymous session is created).
    #[serde(default)]
    #[schema(max_length = 8192)]
    pub cookie: String,
    /// Keys to set, with their JSON values.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::key_map)]
    pub set: BTreeMap<String, Value>,
    /// Keys to remove.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::key_list)]
    pub remove: Vec<String>,
    /// Secrets to set, with their JSON values: sealed with a server key and kept in the
    /// store only, never in a cookie. Setting one moves a client-side anonymous session to
    /// the store.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::secret_map)]
    pub secrets: BTreeMap<String, Value>,
    /// Secrets to remove.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::secret_list)]
    pub remove_secrets: Vec<String>,
    /// The session's own expiry (absent: unchanged; `null`: the server's defaults).
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::openapi::expiry_input)]
    pub expiry: Option<Option<ExpirySetting>>,
    /// `store`: keep the session in the store (a new one is created there with the edits in
    /// one write, even without data, whatever the anonymous mode; a client-side one moves
    /// there). `auto` (the default): the anonymous mode decides.
    #[serde(default)]
    pub storage: StorageChoice,
}

/// `POST /v1/session/rotate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The browser's raw `Cookie` header, naming a stored session.
    #[serde(default)]
    #[schema(max_length = 8192)]
    pub cookie: String,
}

/// The user `login` binds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// The application's user id (1 to 255 bytes, no control characters).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The identity's provider or scope.
    #[serde(default)]
    pub provider: Option<String>,
}

/// `POST /v1/session/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The browser's raw `Cookie` header (may be empty).
    #[serde(default)]
    #[schema(max_length = 8192)]
    pub cookie: String,
    /// The user to bind.
    pub user: UserInput,
    /// Custom claims for session tokens (e.g. a rate-limit class `rlc`).
    #[serde(default)]
    #[schema(schema_with = crate::openapi::claims_map)]
    pub claims: BTreeMap<String, Value>,
    /// Remember-me: a persistent cookie and the longer lifetimes.
    #[serde(default)]
    pub remember: bool,
}

/// `POST /v1/session/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The browser's raw `Cookie` header (any length: a header over 8 KiB is cleared like a
    /// malformed cookie).
    #[serde(default)]
    pub cookie: String,
}

/// `POST /v1/session/csrf/check`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrfCheckRequest {
    /// The browser's raw `Cookie` header.
    #[serde(default)]
    #[schema(max_length = 8192)]
    pub cookie: String,
    /// The token the browser sent in a header or form field.
    pub token: String,
    /// The purpose the token was issued for (default `default`; 1 to 128 bytes).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub purpose: Option<String>,
}

/// The answer of `csrf/check`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CsrfCheckResponse {
    /// Whether the token is valid for this live session and purpose.
    pub valid: bool,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The user id.
    pub id: String,
    /// The display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// A live session as the API shows it. Times are Unix seconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The session's public reference (for the management API; not a credential).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The session's `sid`: what its tokens and the revocation feed name it by.
    pub sid: String,
    /// `anonymous` or `authenticated`.
    pub kind: &'static str,
    /// Where the session is kept: `cookie` (a client-side anonymous session, in its sealed
    /// cookie) or `store`.
    pub storage: &'static str,
    /// The user, or `null` for an anonymous session.
    pub user: Option<UserView>,
    /// The application's data.
    #[schema(value_type = Object)]
    pub data: BTreeMap<String, Value>,
    /// Custom token claims.
    #[schema(value_type = Object)]
    pub claims: BTreeMap<String, Value>,
    /// When the session was created.
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
    /// The session's secrets, opened; only when the request asked for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<BTreeMap<String, Value>>,
}

impl SessionView {
    fn new(s: LiveSession, sid: String, secrets: Option<BTreeMap<String, Value>>) -> Self {
        let reference = s.reference();
        let storage = s.storage.as_str();
        let r = s.record;
        let expires_at = r.expires_at().unix_secs();
        Self {
            reference,
            sid,
            kind: r.kind.as_str(),
            storage,
            user: r.user.map(|u| UserView {
                id: u.id,
                name: u.name,
                provider: u.provider,
            }),
            data: r.data,
            claims: r.claims,
            created_at: r.created_at.unix_secs(),
            idle_expires_at: r.idle_expires_at.unix_secs(),
            absolute_expires_at: r.absolute_expires_at.unix_secs(),
            expires_at,
            expiry: ExpirySetting::from_engine(r.expiry),
            remember: r.remember,
            secrets,
        }
    }
}

/// The answer of every `/v1/session/*` operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// The live session after the operation, or `null`.
    pub session: Option<SessionView>,
    /// `Set-Cookie` values the application must send to the browser, in order.
    pub set_cookie: Vec<String>,
    /// What happened: `none`, `loaded`, `renewed`, `created`, `ended`, `updated`,
    /// `unchanged`, `logged_in`, `logged_out`.
    pub status: &'static str,
    /// A CSRF token for the live session (purpose `default` unless asked otherwise).
    pub csrf_token: Option<String>,
    /// The session token's outcome code (DESIGN §5: `ok`, `soft_expired`, `issued`,
    /// `user_session_without_token`, ...; `none` when no token applies, `disabled` when
    /// tokens are off).
    pub token_status: &'static str,
}

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
        ApiJson(SessionResponse {
            session: out.session.map(|x| {
                let sid = self.engine().sid(&x);
                let secrets = with_secrets.then(|| self.engine().secrets(&x, now));
                SessionView::new(x, sid, secrets)
            }),
            set_cookie: out.set_cookie,
            status: out.status.as_str(),
            csrf_token,
            token_status: out.token_status.as_str(),
        })
    }

    fn problem(&self, e: tessera::Error) -> ApiError {
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
        (status = 400, description = "invalid JSON, or a malformed session cookie (`set_cookie` clears it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body or the session data is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "valid JSON with an invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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
        (status = 400, description = "invalid JSON, or a malformed session cookie (`set_cookie` clears it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body or the session data is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "valid JSON with an invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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
        (status = 400, description = "invalid JSON, or a malformed session cookie (`set_cookie` clears it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body or the session data is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "valid JSON with an invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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
        (status = 400, description = "invalid JSON, or a malformed session cookie (`set_cookie` clears it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body or the session data is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "valid JSON with an invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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
        (status = 400, description = "invalid JSON, or a malformed session cookie (`set_cookie` clears it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body or the session data is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "valid JSON with an invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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
        (status = 400, description = "invalid JSON, or a malformed session cookie (`set_cookie` clears it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body or the session data is too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "the body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "valid JSON with an invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "an invalid user id or session reference", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "an invalid user id or session reference", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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
        (status = 401, description = "missing or wrong API key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "an invalid user id or session reference", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "the store failed or did not answer; retry", body = Problem, content_type = "application/problem+json")),
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

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "alive", body = String, content_type = "text/plain", example = "ok\n")),
    tag = "operations")]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for each store.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// Readiness: every configured store answers a read within a second.
#[utoipa::path(get, path = "/readyz",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain", example = "ready\n"),
        (status = 503, description = "a store did not answer within a second", body = Problem, content_type = "application/problem+json")),
    tag = "operations")]
pub async fn readyz(State(s): State<AppState>) -> Response {
    let now = s.clock().now();
    for kind in [SessionKind::Anonymous, SessionKind::Authenticated] {
        let store = s.engine().stores().for_kind(kind).clone();
        let Ok(probe) = Handle::generate(kind) else {
            return ApiError::internal().into_response();
        };
        let key = probe.store_key();
        match tokio::time::timeout(READY_TIMEOUT, store.load(&key, now)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(
                    backend = store.backend(),
                    code = e.code(),
                    "store not ready"
                );
                return ApiError::store_unavailable().into_response();
            }
            Err(_) => {
                tracing::warn!(
                    backend = store.backend(),
                    "store did not answer readiness probe"
                );
                return ApiError::store_unavailable().into_response();
            }
        }
    }
    "ready\n".into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus metrics in the OpenMetrics text format", body = String,
        content_type = "application/openmetrics-text")),
    tag = "operations")]
pub async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, s.registry()).is_err() {
        return ApiError::internal().into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
