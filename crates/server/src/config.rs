//! The service configuration: a TOML file, then `TESSERA_…` environment overrides, validated
//! completely at start-up with errors that name the field.
//!
//! Every field has a default, so no file at all is a valid configuration: the embedded redb
//! store in `./tessera-data`, on `127.0.0.1:7300`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tessera::SessionConfig;
use tessera::cookie::{CookieConfig, SameSite};

mod tokens;

pub use tokens::{
    DEFAULT_ISSUER, MEDIAWIKI_COOKIE, MEDIAWIKI_RLC, MEDIAWIKI_SCOPE, TokenProfile, TokensConfig,
};

/// A store named by a URL: `memory:`, `redb:PATH`, `redis://HOST:PORT[/DB]`,
/// `rediss://…`, `redis+cluster://HOST:PORT,HOST:PORT,…` (`rediss+cluster://` for TLS), or
/// `postgres://…` / `postgresql://…`.
///
/// `Debug` and `Display` hide passwords (`postgres://user:***@host/db`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The in-memory store: nothing survives a restart.
    Memory,
    /// The embedded redb store at a path.
    Redb(PathBuf),
    /// Redis, one server or a Cluster.
    Redis(RemoteUrl),
    /// PostgreSQL.
    Postgres(RemoteUrl),
}

/// The URL of a networked store, which may hold a password. `Debug` and `Display` show it
/// with the password replaced by `***`; [`RemoteUrl::expose`] gives it whole, to connect.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    url: String,
    redacted: String,
}

impl RemoteUrl {
    /// The URL as configured, password included. Only for connecting: never log it.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with its password hidden.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted, f)
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Redb(p) => write!(f, "redb:{}", p.display()),
            Self::Redis(u) | Self::Postgres(u) => fmt::Display::fmt(u, f),
        }
    }
}

const STORE_FORMS: &str = "memory:, redb:PATH, redis://HOST:PORT[/DB], rediss://HOST:PORT[/DB], \
                           redis+cluster://HOST:PORT,HOST:PORT,... or postgres://...";

impl StoreUrl {
    /// Parses a store URL, checking Redis and Postgres URLs with their store's own parser
    /// (without connecting).
    ///
    /// # Errors
    ///
    /// A message saying which forms exist, or what is wrong with the URL; it never holds
    /// the URL's password.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "memory:" || s == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(p) = s.strip_prefix("redb:") {
            if p.is_empty() {
                return Err(
                    "redb: needs a file path, e.g. redb:./tessera-data/sessions.redb".into(),
                );
            }
            return Ok(Self::Redb(PathBuf::from(p)));
        }
        if [
            "redis://",
            "rediss://",
            "redis+cluster://",
            "rediss+cluster://",
        ]
        .iter()
        .any(|p| s.starts_with(p))
        {
            let config =
                tessera_store_redis::RedisConfig::from_url(s).map_err(|e| e.to_string())?;
            return Ok(Self::Redis(RemoteUrl {
                url: s.to_owned(),
                redacted: config.redacted().to_owned(),
            }));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let config =
                tessera_store_postgres::PostgresConfig::from_url(s).map_err(|e| e.to_string())?;
            return Ok(Self::Postgres(RemoteUrl {
                url: s.to_owned(),
                redacted: config.redacted().to_owned(),
            }));
        }
        // Whatever it is, it may hold a secret: show only its scheme.
        let scheme = s.split_once(':').map_or("", |(scheme, _)| scheme);
        Err(format!(
            "unknown store URL (scheme {scheme:?}); expected {STORE_FORMS}"
        ))
    }
}

/// The whole configuration, after defaults, file and environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where generated keys and the default redb file live.
    pub data_dir: PathBuf,
    /// The store for authenticated sessions (and anonymous ones unless `anon_store` is set).
    pub store: StoreUrl,
    /// A separate store for anonymous sessions.
    pub anon_store: Option<StoreUrl>,
    /// The deadline of every store operation (default 1 s): past it the request answers 503.
    pub store_timeout: Duration,
    /// Management API keys given in the file or `TESSERA_API_KEY`.
    pub api_keys: Vec<String>,
    /// A file holding one API key per line.
    pub api_key_file: Option<PathBuf>,
    /// Session lifetimes and limits.
    pub session: SessionConfig,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// How often expired sessions are purged.
    pub purge_interval: Duration,
    /// Request limits.
    pub limits: Limits,
    /// The Kask-compatible API on `/sessions/v1/`.
    pub kask: crate::kask::KaskSettings,
    /// How long revocations stay in the feed (default 4 h 5 min).
    pub revocation_keep: Duration,
    /// Session tokens (`[tokens]`).
    pub tokens: TokensConfig,
    /// `[verify] mode = "required"`: `GET /v1/verify` answers 401 without a valid token
    /// (default `optional`: 200 with `X-Tessera-Subject: anon`).
    pub verify_required: bool,
    /// `[verify] refresh`: how long the verifier reuses its copy of the revocation log
    /// (default 2 s, at most 1 min; `0s` reads new entries on every request).
    pub verify_refresh: Duration,
    /// The rest of `[verify]`: claim headers, the verified-token cache, and where a
    /// verifier-only deployment (`tessera verifier`) gets its keys and revocations.
    pub verify: VerifyConfig,
}

/// `[verify]` beyond `mode` and `refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// Custom claims passed upstream as `X-Tessera-Claim-<name>` (default none; `["rlc"]`
    /// with the MediaWiki token profile).
    pub claims: Vec<String>,
    /// How many verified tokens are remembered (default 65536; 0 turns the cache off).
    pub cache: usize,
    /// `jwks`: where `tessera verifier` reads the keys (a URL or a file path).
    pub jwks: Option<crate::verifier::JwksLocation>,
    /// `revocations`: the revocation feed URL `tessera verifier` polls; `None` inside when
    /// set to `"none"` (no revocation check). Required with `jwks`.
    pub revocations: Option<Option<String>>,
    /// How often `tessera verifier` refetches the JWKS (default 5 min).
    pub jwks_refresh: Duration,
    /// The least time between two JWKS fetches caused by an unknown `kid` (default 30 s).
    pub unknown_kid_cooldown: Duration,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            claims: Vec::new(),
            cache: tessera::token::DEFAULT_TOKEN_CACHE,
            jwks: None,
            revocations: None,
            jwks_refresh: Duration::from_secs(300),
            unknown_kid_cooldown: Duration::from_secs(30),
        }
    }
}

/// Bounds on what a request may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes (default 64 KiB).
    pub max_body_bytes: usize,
    /// The largest total of request header names and values, in bytes (default 16 KiB).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// A configuration error, naming where it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown keys are errors too).
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as `section.key` or the environment variable.
        field: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    api_keys: Vec<String>,
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    store: FileStore,
    #[serde(default)]
    session: FileSession,
    #[serde(default)]
    cookie: FileCookie,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    kask: FileKask,
    #[serde(default)]
    revocations: FileRevocations,
    #[serde(default)]
    tokens: tokens::FileTokens,
    #[serde(default)]
    verify: FileVerify,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVerify {
    mode: Option<String>,
    refresh: Option<String>,
    claims: Option<Vec<String>>,
    cache: Option<usize>,
    jwks: Option<String>,
    revocations: Option<String>,
    jwks_refresh: Option<String>,
    unknown_kid_cooldown: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRevocations {
    keep: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKask {
    ttl: Option<String>,
    max_value_bytes: Option<usize>,
    require_api_key: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    url: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    anonymous: Option<FileAnonStore>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAnonStore {
    url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSession {
    idle_timeout: Option<String>,
    absolute_timeout: Option<String>,
    remember_idle_timeout: Option<String>,
    remember_absolute_timeout: Option<String>,
    tombstone_ttl: Option<String>,
    csrf_max_age: Option<String>,
    max_data_bytes: Option<usize>,
    purge_interval: Option<String>,
    anonymous: Option<String>,
    anonymous_cookie_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCookie {
    name: Option<String>,
    secure: Option<bool>,
    same_site: Option<SameSite>,
    development: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_body_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
}

/// Parses a duration like `500ms`, `90s`, `30m`, `12h`, `7d` (one integer and one unit).
///
/// # Errors
///
/// A message with the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; use ms, s, m, h or d, e.g. 30m"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} must start with a whole number, e.g. 30m"))?;
    if unit == "ms" {
        return Ok(Duration::from_millis(n));
    }
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "{s:?} has unknown unit {unit:?}; use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

impl Config {
    /// The configuration from an optional file and the environment (`env` looks a variable
    /// up; pass `|k| std::env::var(k).ok()` in production).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first problem found.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::parse_file(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => File::default(),
        };
        Self::build(parsed, env)
    }

    /// The configuration from TOML text and the environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first problem found.
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let parsed = Self::parse_file(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            source,
        })?;
        Self::build(parsed, env)
    }

    fn parse_file(text: &str) -> Result<File, toml::de::Error> {
        toml::from_str(text)
    }

    fn build(f: File, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let listen_s = env("TESSERA_LISTEN")
            .map(|v| ("TESSERA_LISTEN", v))
            .or(f.listen.map(|v| ("listen", v)))
            .unwrap_or(("listen", "127.0.0.1:7300".to_owned()));
        let listen: SocketAddr = listen_s.1.parse().map_err(|_| {
            invalid(
                listen_s.0,
                format!(
                    "{:?} is not an address:port such as 127.0.0.1:7300",
                    listen_s.1
                ),
            )
        })?;
        let data_dir = env("TESSERA_DATA_DIR")
            .map(PathBuf::from)
            .or(f.data_dir)
            .unwrap_or_else(|| PathBuf::from("./tessera-data"));

        let store = match (env("TESSERA_STORE"), f.store.url) {
            (Some(u), _) => StoreUrl::parse(&u).map_err(|m| invalid("TESSERA_STORE", m))?,
            (None, Some(u)) => StoreUrl::parse(&u).map_err(|m| invalid("store.url", m))?,
            (None, None) => StoreUrl::Redb(data_dir.join("sessions.redb")),
        };
        let anon_store = match (env("TESSERA_ANON_STORE"), f.store.anonymous) {
            (Some(u), _) => {
                Some(StoreUrl::parse(&u).map_err(|m| invalid("TESSERA_ANON_STORE", m))?)
            }
            (None, Some(a)) => {
                Some(StoreUrl::parse(&a.url).map_err(|m| invalid("store.anonymous.url", m))?)
            }
            (None, None) => None,
        };
        if let (StoreUrl::Redb(a), Some(StoreUrl::Redb(b))) = (&store, &anon_store)
            && a == b
        {
            return Err(invalid(
                "store.anonymous.url",
                "must not be the same redb file as store.url (leave it unset to share one store)",
            ));
        }

        let mut api_keys = f.api_keys;
        if let Some(k) = env("TESSERA_API_KEY") {
            api_keys.push(k);
        }
        for (i, k) in api_keys.iter().enumerate() {
            check_api_key(k).map_err(|m| invalid(&format!("api_keys[{i}]"), m))?;
        }
        let api_key_file = env("TESSERA_API_KEY_FILE")
            .map(PathBuf::from)
            .or(f.api_key_file);

        let d = SessionConfig::default();
        let dur = |field: &str, v: Option<String>, env_name: &str, default: Duration| {
            duration(&env, env_name, field, v, default)
        };
        let s = f.session;
        let (anon_field, anon_value) = match env("TESSERA_ANONYMOUS") {
            Some(v) => ("TESSERA_ANONYMOUS", Some(v)),
            None => ("session.anonymous", s.anonymous),
        };
        let anonymous = match anon_value.as_deref() {
            None => d.anonymous,
            Some("client") => tessera::AnonymousMode::Client,
            Some("server") => tessera::AnonymousMode::Server,
            Some(m) => {
                return Err(invalid(
                    anon_field,
                    format!(
                        "{m:?} is not \"client\" (a sealed cookie, no store write) or \"server\" (in the store)"
                    ),
                ));
            }
        };
        let anonymous_cookie_bytes = match env("TESSERA_ANONYMOUS_COOKIE_BYTES") {
            Some(v) => v.trim().parse().map_err(|_| {
                invalid(
                    "TESSERA_ANONYMOUS_COOKIE_BYTES",
                    format!("{v:?} is not a number of bytes"),
                )
            })?,
            None => s.anonymous_cookie_bytes.unwrap_or(d.anonymous_cookie_bytes),
        };
        let session = SessionConfig::default()
            .with_idle_timeout(dur(
                "session.idle_timeout",
                s.idle_timeout,
                "TESSERA_IDLE_TIMEOUT",
                d.idle_timeout,
            )?)
            .with_absolute_timeout(dur(
                "session.absolute_timeout",
                s.absolute_timeout,
                "TESSERA_ABSOLUTE_TIMEOUT",
                d.absolute_timeout,
            )?)
            .with_remember_idle_timeout(dur(
                "session.remember_idle_timeout",
                s.remember_idle_timeout,
                "TESSERA_REMEMBER_IDLE_TIMEOUT",
                d.remember_idle_timeout,
            )?)
            .with_remember_absolute_timeout(dur(
                "session.remember_absolute_timeout",
                s.remember_absolute_timeout,
                "TESSERA_REMEMBER_ABSOLUTE_TIMEOUT",
                d.remember_absolute_timeout,
            )?)
            .with_tombstone_ttl(dur(
                "session.tombstone_ttl",
                s.tombstone_ttl,
                "TESSERA_TOMBSTONE_TTL",
                d.tombstone_ttl,
            )?)
            .with_max_data_bytes(s.max_data_bytes.unwrap_or(d.max_data_bytes))
            .with_csrf_max_age(dur(
                "session.csrf_max_age",
                s.csrf_max_age,
                "TESSERA_CSRF_MAX_AGE",
                d.csrf_max_age,
            )?)
            .with_anonymous(anonymous)
            .with_anonymous_cookie_bytes(anonymous_cookie_bytes);
        session.validate().map_err(|e| {
            invalid(
                "session",
                e.to_string().replace("invalid configuration: ", ""),
            )
        })?;
        let purge_interval = dur(
            "session.purge_interval",
            s.purge_interval,
            "TESSERA_PURGE_INTERVAL",
            Duration::from_secs(300),
        )?;
        if purge_interval < Duration::from_secs(1) {
            return Err(invalid("session.purge_interval", "must be at least 1s"));
        }

        let development = match env("TESSERA_COOKIE_DEVELOPMENT") {
            Some(v) => parse_bool(&v).map_err(|m| invalid("TESSERA_COOKIE_DEVELOPMENT", m))?,
            None => f.cookie.development.unwrap_or(false),
        };
        let cookie = if development {
            if f.cookie.name.is_some() || f.cookie.secure.is_some() {
                return Err(invalid(
                    "cookie.development",
                    "sets the name and Secure itself; remove cookie.name and cookie.secure",
                ));
            }
            CookieConfig::development()
        } else {
            let base = CookieConfig::default();
            CookieConfig::try_new(
                f.cookie.name.unwrap_or_else(|| base.name().to_owned()),
                f.cookie.secure.unwrap_or(true),
                f.cookie.same_site.unwrap_or_default(),
            )
            .map_err(|e| invalid("cookie", e.to_string()))?
        };

        let dl = Limits::default();
        let limits = Limits {
            max_body_bytes: f.limits.max_body_bytes.unwrap_or(dl.max_body_bytes),
            max_header_bytes: f.limits.max_header_bytes.unwrap_or(dl.max_header_bytes),
        };
        if !(1024..=16 * 1024 * 1024).contains(&limits.max_body_bytes) {
            return Err(invalid(
                "limits.max_body_bytes",
                "must be between 1 KiB and 16 MiB",
            ));
        }
        if !(1024..=1024 * 1024).contains(&limits.max_header_bytes) {
            return Err(invalid(
                "limits.max_header_bytes",
                "must be between 1 KiB and 1 MiB",
            ));
        }
        let store_timeout = dur(
            "store.timeout",
            f.store.timeout,
            "TESSERA_STORE_TIMEOUT",
            Duration::from_secs(1),
        )?;
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&store_timeout) {
            return Err(invalid("store.timeout", "must be between 10ms and 60s"));
        }
        let revocation_keep = dur(
            "revocations.keep",
            f.revocations.keep,
            "TESSERA_REVOCATIONS_KEEP",
            crate::revocations::DEFAULT_KEEP,
        )?;
        if revocation_keep < Duration::from_secs(60) {
            return Err(invalid(
                "revocations.keep",
                "must be at least 1m (the longest token lifetime plus skew)",
            ));
        }
        let dk = crate::kask::KaskSettings::default();
        let kask = crate::kask::KaskSettings {
            ttl: dur("kask.ttl", f.kask.ttl, "TESSERA_KASK_TTL", dk.ttl)?,
            max_value_bytes: f.kask.max_value_bytes.unwrap_or(dk.max_value_bytes),
            require_api_key: f.kask.require_api_key.unwrap_or(dk.require_api_key),
        };
        if kask.ttl < Duration::from_secs(1) {
            return Err(invalid("kask.ttl", "must be at least 1s"));
        }
        if !(1..=64 * 1024 * 1024).contains(&kask.max_value_bytes) {
            return Err(invalid(
                "kask.max_value_bytes",
                "must be between 1 byte and 64 MiB",
            ));
        }
        let tokens = tokens::build(f.tokens, &env, &cookie, revocation_keep)?;
        let verify_required = match f.verify.mode.as_deref() {
            None | Some("optional") => false,
            Some("required") => true,
            Some(m) => {
                return Err(invalid(
                    "verify.mode",
                    format!("{m:?} is not \"optional\" or \"required\""),
                ));
            }
        };
        let verify_refresh = dur(
            "verify.refresh",
            f.verify.refresh.clone(),
            "TESSERA_VERIFY_REFRESH",
            Duration::from_secs(2),
        )?;
        if verify_refresh > Duration::from_secs(60) {
            return Err(invalid("verify.refresh", "must be at most 1m"));
        }
        // The MediaWiki profile's edge rate-limits by `rlc` (Wikimedia's Lua reads it): pass
        // it upstream unless `[verify] claims` says otherwise.
        let default_claims = if tokens.profile == Some(TokenProfile::MediaWiki) {
            vec!["rlc".to_owned()]
        } else {
            Vec::new()
        };
        let verify = verify_config(f.verify, &env, default_claims)?;
        Ok(Self {
            listen,
            data_dir,
            store,
            anon_store,
            store_timeout,
            api_keys,
            api_key_file,
            session,
            cookie,
            purge_interval,
            limits,
            kask,
            revocation_keep,
            tokens,
            verify_required,
            verify_refresh,
            verify,
        })
    }
}

/// A JWKS location: `http://` or `https://` URLs, else a file path.
fn jwks_location(field: &str, s: &str) -> Result<crate::verifier::JwksLocation, ConfigError> {
    use crate::verifier::JwksLocation;
    if s.starts_with("https://") || s.starts_with("http://") {
        reqwest::Url::parse(s).map_err(|e| invalid(field, format!("not a URL: {e}")))?;
        return Ok(JwksLocation::Url(s.to_owned()));
    }
    if s.contains("://") {
        return Err(invalid(
            field,
            "use an http:// or https:// URL, or a file path",
        ));
    }
    if s.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(JwksLocation::File(PathBuf::from(s)))
}

/// A value from the environment (which wins) or the file, with the name to blame.
pub(crate) fn pick(
    env: &dyn Fn(&str) -> Option<String>,
    env_name: &str,
    field: &str,
    file: Option<String>,
) -> Option<(String, String)> {
    env(env_name)
        .map(|v| (env_name.to_owned(), v))
        .or_else(|| file.map(|v| (field.to_owned(), v)))
}

pub(crate) fn duration(
    env: &dyn Fn(&str) -> Option<String>,
    env_name: &str,
    field: &str,
    file: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match pick(env, env_name, field, file) {
        Some((name, v)) => parse_duration(&v).map_err(|m| invalid(&name, m)),
        None => Ok(default),
    }
}

fn verify_config(
    f: FileVerify,
    env: &impl Fn(&str) -> Option<String>,
    default_claims: Vec<String>,
) -> Result<VerifyConfig, ConfigError> {
    let dur = |field: &str, v: Option<String>, env_name: &str, default: Duration| {
        duration(env, env_name, field, v, default)
    };
    let d = VerifyConfig::default();
    let claims = f.claims.unwrap_or(default_claims);
    crate::verifier::claim_names(&claims).map_err(|m| invalid("verify.claims", m))?;
    let cache = f.cache.unwrap_or(d.cache);
    if cache > 10_000_000 {
        return Err(invalid("verify.cache", "must be at most 10000000 tokens"));
    }
    let jwks = match (env("TESSERA_VERIFY_JWKS"), f.jwks) {
        (Some(v), _) => Some(jwks_location("TESSERA_VERIFY_JWKS", &v)?),
        (None, Some(v)) => Some(jwks_location("verify.jwks", &v)?),
        (None, None) => None,
    };
    let revocations = match (env("TESSERA_VERIFY_REVOCATIONS"), f.revocations) {
        (Some(v), _) => Some(("TESSERA_VERIFY_REVOCATIONS", v)),
        (None, Some(v)) => Some(("verify.revocations", v)),
        (None, None) => None,
    };
    let revocations = match revocations {
        None => None,
        Some((_, v)) if v == "none" => Some(None),
        Some((field, v)) => {
            let url = reqwest::Url::parse(&v)
                .map_err(|e| invalid(field, format!("not a URL (or \"none\"): {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                return Err(invalid(
                    field,
                    "must be the http(s) URL of a revocation feed, without a query",
                ));
            }
            Some(Some(v))
        }
    };
    if jwks.is_some() != revocations.is_some() {
        return Err(invalid(
            "verify.revocations",
            "verify.jwks and verify.revocations go together: the feed URL of the service that \
             issues the tokens (…/v1/revocations), or \"none\" to check no revocations",
        ));
    }
    let jwks_refresh = dur(
        "verify.jwks_refresh",
        f.jwks_refresh,
        "TESSERA_VERIFY_JWKS_REFRESH",
        d.jwks_refresh,
    )?;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&jwks_refresh) {
        return Err(invalid("verify.jwks_refresh", "must be between 1s and 1d"));
    }
    let unknown_kid_cooldown = dur(
        "verify.unknown_kid_cooldown",
        f.unknown_kid_cooldown,
        "TESSERA_VERIFY_UNKNOWN_KID_COOLDOWN",
        d.unknown_kid_cooldown,
    )?;
    if unknown_kid_cooldown > Duration::from_secs(3600) {
        return Err(invalid("verify.unknown_kid_cooldown", "must be at most 1h"));
    }
    Ok(VerifyConfig {
        claims,
        cache,
        jwks,
        revocations,
        jwks_refresh,
        unknown_kid_cooldown,
    })
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean; use true or false")),
    }
}

/// API keys must be long enough to resist guessing and printable so they survive headers.
pub(crate) fn check_api_key(k: &str) -> Result<(), String> {
    if k.len() < 32 {
        return Err("an API key must be at least 32 characters".into());
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an API key must be printable ASCII without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn empty_config_is_the_documented_default() {
        let c = Config::from_toml("", no_env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7300".parse().unwrap());
        assert_eq!(
            c.store,
            StoreUrl::Redb(PathBuf::from("./tessera-data/sessions.redb"))
        );
        assert_eq!(c.cookie, CookieConfig::default());
        assert_eq!(c.session, SessionConfig::default());
        assert_eq!(c.session.anonymous, tessera::AnonymousMode::Client);
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |k: &str| match k {
            "TESSERA_LISTEN" => Some("127.0.0.1:9999".to_owned()),
            "TESSERA_STORE" => Some("memory:".to_owned()),
            "TESSERA_IDLE_TIMEOUT" => Some("5m".to_owned()),
            _ => None,
        };
        let c = Config::from_toml(
            "listen = \"127.0.0.1:1\"\n[store]\nurl = \"redb:/x\"\n[session]\nidle_timeout = \"1h\"\n",
            env,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.store, StoreUrl::Memory);
        assert_eq!(c.session.idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("listen = \"nope\"", "listen"),
            ("[store]\nurl = \"ftp://x\"", "store.url"),
            ("[session]\nidle_timeout = \"30\"", "session.idle_timeout"),
            (
                "[session]\nidle_timeout = \"13h\"",
                "idle_timeout must not exceed",
            ),
            ("[cookie]\nname = \"__Host-x\"\nsecure = false", "cookie"),
            ("api_keys = [\"short\"]", "api_keys[0]"),
            ("[limits]\nmax_body_bytes = 1", "limits.max_body_bytes"),
            ("[store]\ntimeout = \"5ms\"", "store.timeout"),
            ("[kask]\nttl = \"0s\"", "kask.ttl"),
            (
                "[cookie]\ndevelopment = true\nname = \"x\"",
                "cookie.development",
            ),
            ("[tokens]\nsxp = \"5h\"", "tokens.sxp"),
            ("[tokens]\nexp = \"30s\"", "tokens.exp"),
            ("[tokens]\nissuer = \"\"", "tokens.issuer"),
            ("[tokens]\nexp = \"8h\"", "revocations.keep"),
            ("[verify]\nmode = \"maybe\"", "verify.mode"),
            ("[verify]\nrefresh = \"2m\"", "verify.refresh"),
            ("[session]\nanonymous = \"cookie\"", "session.anonymous"),
            (
                "[session]\nanonymous_cookie_bytes = 4096",
                "anonymous_cookie_bytes must be between 512 and 3800",
            ),
        ];
        for (toml, want) in cases {
            let err = Config::from_toml(toml, no_env).unwrap_err().to_string();
            assert!(err.contains(want), "{toml:?} gave {err:?}");
        }
        let err = Config::from_toml("bogus = 1", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
        let env = |k: &str| (k == "TESSERA_STORE").then(|| "redis+cluster://a:1/3".to_owned());
        let err = Config::from_toml("", env).unwrap_err().to_string();
        assert!(err.starts_with("TESSERA_STORE:"), "{err}");
        let env = |k: &str| {
            (k == "TESSERA_ANON_STORE").then(|| "postgres://h/db?sslmode=require".to_owned())
        };
        let err = Config::from_toml("", env).unwrap_err().to_string();
        assert!(err.starts_with("TESSERA_ANON_STORE:"), "{err}");
    }

    #[test]
    fn every_store_url_form_parses() {
        let redis = |s: &str| match StoreUrl::parse(s) {
            Ok(StoreUrl::Redis(u)) => u,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            redis("redis://127.0.0.1:6379").expose(),
            "redis://127.0.0.1:6379"
        );
        redis("redis://127.0.0.1:6379/2");
        redis("rediss://cache.internal:6380");
        redis("redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000");
        redis("rediss+cluster://10.0.0.1:7000,10.0.0.2:7000");
        for s in [
            "postgres://u:p@db/sessions",
            "postgresql://db:5433/sessions?user=u",
        ] {
            assert!(
                matches!(StoreUrl::parse(s), Ok(StoreUrl::Postgres(_))),
                "{s}"
            );
        }
        for bad in [
            "redis+cluster://a:1,,b:2",
            "redis+cluster://a:1/3",
            "redis://h:notaport",
            "postgres://h/db?sslmode=require",
            "mysql://u:p@h/db",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn store_passwords_never_show() {
        let env = |k: &str| match k {
            "TESSERA_STORE" => Some("postgres://app:hunter2@db:5432/sessions".to_owned()),
            "TESSERA_ANON_STORE" => Some("redis://:hunter2@cache:6379/1".to_owned()),
            _ => None,
        };
        let c = Config::from_toml("", env).unwrap();
        let shown = format!(
            "{:?} {} {:?} {}",
            c.store,
            c.store,
            c.anon_store,
            c.anon_store.as_ref().unwrap()
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://app:***@db:5432/sessions"),
            "{shown}"
        );
        assert!(shown.contains("redis://:***@cache:6379/1"), "{shown}");
        match &c.store {
            StoreUrl::Postgres(u) => assert!(u.expose().contains("hunter2")),
            other => panic!("{other:?}"),
        }
        for bad in [
            "redis+cluster://:hunter2@a:1/3",
            "postgres://u:hunter2@h/db?sslmode=require",
            "ftp://u:hunter2@h",
            "redis://:hunter2@h:port",
        ] {
            let err = StoreUrl::parse(bad).unwrap_err();
            assert!(!err.contains("hunter2"), "{bad}: {err}");
        }
        let file = "[store]\nurl = \"redis+cluster://:hunter2@a:1,b:2\"\n\
                    [store.anonymous]\nurl = \"rediss://:hunter2@c:1\"\n";
        let c = Config::from_toml(file, no_env).unwrap();
        assert!(matches!(c.store, StoreUrl::Redis(_)));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn token_sections_parse() {
        let c = Config::from_toml("", no_env).unwrap();
        assert_eq!(c.tokens, TokensConfig::default());
        assert!(c.tokens.enabled && !c.verify_required);
        let c = Config::from_toml(
            "[tokens]\nenabled = false\nissuer = \"https://wiki.example\"\nexp = \"2h\"\nsxp = \"30m\"\ncookie_name = \"__Host-jwt\"\n[verify]\nmode = \"required\"\n",
            no_env,
        )
        .unwrap();
        assert!(!c.tokens.enabled && c.verify_required);
        assert_eq!(c.tokens.issuer, "https://wiki.example");
        assert_eq!(c.tokens.exp, Duration::from_secs(7200));
        assert_eq!(c.tokens.sxp, Duration::from_secs(1800));
        assert_eq!(c.tokens.cookie_name.as_deref(), Some("__Host-jwt"));
    }

    #[test]
    fn the_anonymous_mode_switch_parses_with_its_environment_override() {
        let c = Config::from_toml(
            "[session]\nanonymous = \"server\"\nanonymous_cookie_bytes = 2048\n",
            no_env,
        )
        .unwrap();
        assert_eq!(c.session.anonymous, tessera::AnonymousMode::Server);
        assert_eq!(c.session.anonymous_cookie_bytes, 2048);
        let env = |k: &str| match k {
            "TESSERA_ANONYMOUS" => Some("client".to_owned()),
            "TESSERA_ANONYMOUS_COOKIE_BYTES" => Some("1024".to_owned()),
            _ => None,
        };
        let c = Config::from_toml("[session]\nanonymous = \"server\"\n", env).unwrap();
        assert_eq!(c.session.anonymous, tessera::AnonymousMode::Client);
        assert_eq!(c.session.anonymous_cookie_bytes, 1024);
        let env = |k: &str| (k == "TESSERA_ANONYMOUS").then(|| "both".to_owned());
        let err = Config::from_toml("", env).unwrap_err().to_string();
        assert!(err.starts_with("TESSERA_ANONYMOUS:"), "{err}");
        let env = |k: &str| (k == "TESSERA_ANONYMOUS_COOKIE_BYTES").then(|| "3k".to_owned());
        let err = Config::from_toml("", env).unwrap_err().to_string();
        assert!(err.starts_with("TESSERA_ANONYMOUS_COOKIE_BYTES:"), "{err}");
    }

    #[test]
    fn durations_parse_strictly() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "m", "5", "5x", "-5m", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
