//! The `[session]` and `[cookie]` sections: lifetimes, anonymous sessions, the purge interval,
//! and the session cookie.

use std::time::Duration;

use tessera::SessionConfig;
use tessera::cookie::CookieConfig;

use super::error::{ConfigError, invalid};
use super::file::{FileCookie, FileSession};
use super::source::{Env, duration, parse_bool};

/// `[session]`: the engine's session settings, and how often expired sessions are purged.
pub(super) fn session(
    s: FileSession,
    env: Env<'_>,
) -> Result<(SessionConfig, Duration), ConfigError> {
    let d = SessionConfig::default();
    let dur = |field: &str, v: Option<String>, env_name: &str, default: Duration| {
        duration(env, env_name, field, v, default)
    };
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
    Ok((session, purge_interval))
}

/// `[cookie]`: secure defaults, or the development preset (`TESSERA_COOKIE_DEVELOPMENT`).
pub(super) fn cookie(f: FileCookie, env: Env<'_>) -> Result<CookieConfig, ConfigError> {
    let development = match env("TESSERA_COOKIE_DEVELOPMENT") {
        Some(v) => parse_bool(&v).map_err(|m| invalid("TESSERA_COOKIE_DEVELOPMENT", m))?,
        None => f.development.unwrap_or(false),
    };
    if development {
        if f.name.is_some() || f.secure.is_some() {
            return Err(invalid(
                "cookie.development",
                "sets the name and Secure itself; remove cookie.name and cookie.secure",
            ));
        }
        return Ok(CookieConfig::development());
    }
    let base = CookieConfig::default();
    CookieConfig::try_new(
        f.name.unwrap_or_else(|| base.name().to_owned()),
        f.secure.unwrap_or(true),
        f.same_site.unwrap_or_default(),
    )
    .map_err(|e| invalid("cookie", e.to_string()))
}
