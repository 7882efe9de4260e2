//! The service configuration: a TOML file, then `TESSERA_…` environment overrides, validated
//! completely at start-up with errors that name the field.
//!
//! Every field has a default, so no file at all is a valid configuration: the embedded redb
//! store in `./tessera-data`, on `127.0.0.1:7300`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tessera::SessionConfig;
use tessera::cookie::CookieConfig;

mod error;
mod file;
mod service;
mod source;
mod store;
mod tokens;
mod verify;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use service::Limits;
pub(crate) use service::check_api_key;
pub use source::parse_duration;
pub use store::{RemoteUrl, StoreUrl};
pub use tokens::{
    DEFAULT_ISSUER, MEDIAWIKI_COOKIE, MEDIAWIKI_RLC, MEDIAWIKI_SCOPE, TokenProfile, TokensConfig,
};
pub use verify::VerifyConfig;

use error::invalid;
use file::File;
use source::{duration, parse_bool};
use verify::verify_config;

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
        let session = SessionConfig {
            idle_timeout: dur(
                "session.idle_timeout",
                s.idle_timeout,
                "TESSERA_IDLE_TIMEOUT",
                d.idle_timeout,
            )?,
            absolute_timeout: dur(
                "session.absolute_timeout",
                s.absolute_timeout,
                "TESSERA_ABSOLUTE_TIMEOUT",
                d.absolute_timeout,
            )?,
            remember_idle_timeout: dur(
                "session.remember_idle_timeout",
                s.remember_idle_timeout,
                "TESSERA_REMEMBER_IDLE_TIMEOUT",
                d.remember_idle_timeout,
            )?,
            remember_absolute_timeout: dur(
                "session.remember_absolute_timeout",
                s.remember_absolute_timeout,
                "TESSERA_REMEMBER_ABSOLUTE_TIMEOUT",
                d.remember_absolute_timeout,
            )?,
            tombstone_ttl: dur(
                "session.tombstone_ttl",
                s.tombstone_ttl,
                "TESSERA_TOMBSTONE_TTL",
                d.tombstone_ttl,
            )?,
            max_data_bytes: s.max_data_bytes.unwrap_or(d.max_data_bytes),
            csrf_max_age: dur(
                "session.csrf_max_age",
                s.csrf_max_age,
                "TESSERA_CSRF_MAX_AGE",
                d.csrf_max_age,
            )?,
            max_conflict_retries: d.max_conflict_retries,
            anonymous,
            anonymous_cookie_bytes,
        };
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
