//! The request and answer shapes of `/v1/session/*`, with the rules their fields follow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera::LiveSession;
use tessera_core::{Expiry, Timestamp};
use utoipa::ToSchema;

use crate::problem::ApiError;

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
    pub(super) fn to_engine(this: Option<Self>) -> Result<Expiry, ApiError> {
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

    pub(super) fn from_engine(e: Expiry) -> Option<Self> {
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
    pub(super) fn new(
        s: LiveSession,
        sid: String,
        secrets: Option<BTreeMap<String, Value>>,
    ) -> Self {
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
