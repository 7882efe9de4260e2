//! Store URLs: `[store] url`, `[store.anonymous] url` and their environment variables.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, invalid};
use super::file::FileAnonStore;
use super::settings::{STORE_ANONYMOUS_URL, STORE_TIMEOUT, STORE_URL};
use super::source::{Env, duration, pick};

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

/// `[store] url` (`TESSERA_STORE`; default `redb:DATA_DIR/sessions.redb`) and
/// `[store.anonymous] url` (`TESSERA_ANON_STORE`).
pub(super) fn urls(
    url: Option<String>,
    anonymous: Option<FileAnonStore>,
    data_dir: &Path,
    env: Env<'_>,
) -> Result<(StoreUrl, Option<StoreUrl>), ConfigError> {
    let store = match pick(env, &STORE_URL, url) {
        Some((name, u)) => StoreUrl::parse(&u).map_err(|m| invalid(&name, m))?,
        None => StoreUrl::Redb(data_dir.join("sessions.redb")),
    };
    let anon_store = match pick(env, &STORE_ANONYMOUS_URL, anonymous.map(|a| a.url)) {
        Some((name, u)) => Some(StoreUrl::parse(&u).map_err(|m| invalid(&name, m))?),
        None => None,
    };
    if let (StoreUrl::Redb(a), Some(StoreUrl::Redb(b))) = (&store, &anon_store)
        && a == b
    {
        return Err(invalid(
            "store.anonymous.url",
            "must not be the same redb file as store.url (leave it unset to share one store)",
        ));
    }
    Ok((store, anon_store))
}

/// `[store] timeout` (`TESSERA_STORE_TIMEOUT`, default 1 s).
pub(super) fn timeout(timeout: Option<String>, env: Env<'_>) -> Result<Duration, ConfigError> {
    let store_timeout = duration(env, &STORE_TIMEOUT, timeout, Duration::from_secs(1))?;
    if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&store_timeout) {
        return Err(invalid("store.timeout", "must be between 10ms and 60s"));
    }
    Ok(store_timeout)
}
