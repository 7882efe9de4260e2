//! The `[session]` and `[cookie]` sections: lifetimes, anonymous sessions, the purge interval,
//! and the session cookie.

use std::time::Duration;

use tessera::SessionConfig;
use tessera::cookie::CookieConfig;

use super::error::{ConfigError, invalid};
use super::file::{FileCookie, FileSession};
use super::settings::{
    COOKIE_DEVELOPMENT, COOKIE_NAME, COOKIE_SAME_SITE, COOKIE_SECURE, SESSION_ABSOLUTE_TIMEOUT,
    SESSION_ANONYMOUS, SESSION_ANONYMOUS_COOKIE_BYTES, SESSION_CSRF_MAX_AGE,
    SESSION_CSRF_ROTATE_EVERY, SESSION_IDLE_TIMEOUT, SESSION_MAX_DATA_BYTES,
    SESSION_PURGE_INTERVAL, SESSION_REMEMBER_ABSOLUTE_TIMEOUT, SESSION_REMEMBER_IDLE_TIMEOUT,
    SESSION_TOMBSTONE_TTL,
};
use super::source::{Env, boolean, duration, number, pick};

/// `[session]`: the engine's session settings, and how often expired sessions are purged.
pub(super) fn session(
    s: FileSession,
    env: Env<'_>,
) -> Result<(SessionConfig, Duration), ConfigError> {
    let d = SessionConfig::default();
    let dur = |setting, v, default| duration(env, setting, v, default);
    let anonymous = match pick(env, &SESSION_ANONYMOUS, s.anonymous) {
        None => d.anonymous,
        Some((_, m)) if m == "client" => tessera::AnonymousMode::Client,
        Some((_, m)) if m == "server" => tessera::AnonymousMode::Server,
        Some((anon_field, m)) => {
            return Err(invalid(
                &anon_field,
                format!(
                    "{m:?} is not \"client\" (a sealed cookie, no store write) or \"server\" (in the store)"
                ),
            ));
        }
    };
    let anonymous_cookie_bytes = number(
        env,
        &SESSION_ANONYMOUS_COOKIE_BYTES,
        s.anonymous_cookie_bytes,
        d.anonymous_cookie_bytes,
    )?;
    let session = SessionConfig::default()
        .with_idle_timeout(dur(&SESSION_IDLE_TIMEOUT, s.idle_timeout, d.idle_timeout)?)
        .with_absolute_timeout(dur(
            &SESSION_ABSOLUTE_TIMEOUT,
            s.absolute_timeout,
            d.absolute_timeout,
        )?)
        .with_remember_idle_timeout(dur(
            &SESSION_REMEMBER_IDLE_TIMEOUT,
            s.remember_idle_timeout,
            d.remember_idle_timeout,
        )?)
        .with_remember_absolute_timeout(dur(
            &SESSION_REMEMBER_ABSOLUTE_TIMEOUT,
            s.remember_absolute_timeout,
            d.remember_absolute_timeout,
        )?)
        .with_tombstone_ttl(dur(
            &SESSION_TOMBSTONE_TTL,
            s.tombstone_ttl,
            d.tombstone_ttl,
        )?)
        .with_max_data_bytes(number(
            env,
            &SESSION_MAX_DATA_BYTES,
            s.max_data_bytes,
            d.max_data_bytes,
        )?)
        .with_csrf_max_age(dur(&SESSION_CSRF_MAX_AGE, s.csrf_max_age, d.csrf_max_age)?)
        .with_csrf_rotate_every(dur(
            &SESSION_CSRF_ROTATE_EVERY,
            s.csrf_rotate_every,
            d.csrf_rotate_every,
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
        &SESSION_PURGE_INTERVAL,
        s.purge_interval,
        Duration::from_secs(300),
    )?;
    if purge_interval < Duration::from_secs(1) {
        return Err(invalid(SESSION_PURGE_INTERVAL.key, "must be at least 1s"));
    }
    Ok((session, purge_interval))
}

/// `[cookie]`: secure defaults, or the development preset; also whether the preset is on.
pub(super) fn cookie(f: FileCookie, env: Env<'_>) -> Result<(CookieConfig, bool), ConfigError> {
    let development = boolean(env, &COOKIE_DEVELOPMENT, f.development, false)?;
    let name = pick(env, &COOKIE_NAME, f.name);
    let secure = boolean(env, &COOKIE_SECURE, f.secure, true)?;
    let secure_set = env.var(&COOKIE_SECURE).is_some() || f.secure.is_some();
    let same_site = match env.var(&COOKIE_SAME_SITE) {
        Some(v) => {
            use serde::Deserialize;
            use serde::de::IntoDeserializer;
            let d: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                v.as_str().into_deserializer();
            tessera::cookie::SameSite::deserialize(d).map_err(|_| {
                invalid(
                    COOKIE_SAME_SITE.env,
                    format!("{v:?} is not \"strict\", \"lax\" or \"none\""),
                )
            })?
        }
        None => env.file(&COOKIE_SAME_SITE, f.same_site).unwrap_or_default(),
    };
    if development {
        if name.is_some() || secure_set {
            return Err(invalid(
                COOKIE_DEVELOPMENT.key,
                "sets the name and Secure itself; remove cookie.name and cookie.secure",
            ));
        }
        return Ok((CookieConfig::development(), true));
    }
    let base = CookieConfig::default();
    let cookie = CookieConfig::try_new(
        name.map_or_else(|| base.name().to_owned(), |(_, n)| n),
        secure,
        same_site,
    )
    .map_err(|e| invalid("cookie", e.to_string()))?;
    Ok((cookie, false))
}
