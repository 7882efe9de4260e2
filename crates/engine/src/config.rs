use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::{DEFAULT_COOKIE_BUDGET, MAX_COOKIE_BUDGET, MIN_COOKIE_BUDGET};
use crate::{Error, Result};

/// Lifetimes and limits of sessions. The defaults and their reasons are in
/// `docs/sessions.md`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tessera::{AnonymousMode, SessionConfig};
///
/// let config = SessionConfig::default()
///     .with_idle_timeout(Duration::from_secs(15 * 60))
///     .with_anonymous(AnonymousMode::Server);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// A session dies after this long without a renewal (default 30 min, OWASP's upper bound
    /// for low-risk applications).
    pub idle_timeout: Duration,
    /// A session dies this long after login whatever its activity (default 12 h, ASVS L2).
    pub absolute_timeout: Duration,
    /// Idle timeout of a remember-me session (default 7 days).
    pub remember_idle_timeout: Duration,
    /// Absolute timeout of a remember-me session (default 30 days, NIST AAL1).
    pub remember_absolute_timeout: Duration,
    /// How long a logged-out session's tombstone stays (default 10 min).
    pub tombstone_ttl: Duration,
    /// The largest `data` of one session, as JSON bytes (default 64 KiB).
    pub max_data_bytes: usize,
    /// How long a CSRF token is accepted (default 12 h).
    pub csrf_max_age: Duration,
    /// How often a service's schedule adds a new CSRF key (default 7 days; at least twice
    /// `csrf_max_age`, so that at most two keys accept a token at once). An old key keeps
    /// verifying for `csrf_max_age` after it stopped issuing.
    pub csrf_rotate_every: Duration,
    /// How many compare-and-set conflicts one edit retries before giving up (default 100).
    pub max_conflict_retries: u32,
    /// Where new anonymous sessions live: in a sealed cookie (default) or in the store.
    pub anonymous: AnonymousMode,
    /// The most bytes the anonymous cookie's `name=value` may take (default 3072, between
    /// 512 and 3800); a session whose cookie would be larger moves to the store.
    pub anonymous_cookie_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            remember_idle_timeout: Duration::from_secs(7 * 86400),
            remember_absolute_timeout: Duration::from_secs(30 * 86400),
            tombstone_ttl: Duration::from_secs(10 * 60),
            max_data_bytes: 64 * 1024,
            csrf_max_age: Duration::from_secs(12 * 3600),
            csrf_rotate_every: Duration::from_secs(7 * 86400),
            max_conflict_retries: 100,
            anonymous: AnonymousMode::Client,
            anonymous_cookie_bytes: DEFAULT_COOKIE_BUDGET,
        }
    }
}

/// Where new anonymous sessions live (`[session] anonymous` in the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AnonymousMode {
    /// In a sealed cookie: no store write until the data outgrows the cookie or the
    /// application keeps a secret (the default).
    #[default]
    Client,
    /// In the (anonymous) store, one write to create, like authenticated sessions. A sealed
    /// cookie issued in client mode is still read, and moves to the store at its first write.
    Server,
}

impl AnonymousMode {
    /// The configuration name: `client` or `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }
}

/// Browsers cap cookie lifetimes at 400 days (RFC 6265bis §5.5).
const MAX_LIFETIME: Duration = Duration::from_secs(400 * 86400);

impl SessionConfig {
    /// With the idle timeout (see [`SessionConfig::idle_timeout`]).
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }

    /// With the absolute timeout (see [`SessionConfig::absolute_timeout`]).
    pub fn with_absolute_timeout(mut self, absolute_timeout: Duration) -> Self {
        self.absolute_timeout = absolute_timeout;
        self
    }

    /// With the idle timeout of remember-me sessions (see [`SessionConfig::remember_idle_timeout`]).
    pub fn with_remember_idle_timeout(mut self, remember_idle_timeout: Duration) -> Self {
        self.remember_idle_timeout = remember_idle_timeout;
        self
    }

    /// With the absolute timeout of remember-me sessions (see [`SessionConfig::remember_absolute_timeout`]).
    pub fn with_remember_absolute_timeout(mut self, remember_absolute_timeout: Duration) -> Self {
        self.remember_absolute_timeout = remember_absolute_timeout;
        self
    }

    /// With how long a logged-out session's tombstone stays (see [`SessionConfig::tombstone_ttl`]).
    pub fn with_tombstone_ttl(mut self, tombstone_ttl: Duration) -> Self {
        self.tombstone_ttl = tombstone_ttl;
        self
    }

    /// With the largest `data` of one session, as JSON bytes (see [`SessionConfig::max_data_bytes`]).
    pub fn with_max_data_bytes(mut self, max_data_bytes: usize) -> Self {
        self.max_data_bytes = max_data_bytes;
        self
    }

    /// With how long a CSRF token is accepted (see [`SessionConfig::csrf_max_age`]).
    pub fn with_csrf_max_age(mut self, csrf_max_age: Duration) -> Self {
        self.csrf_max_age = csrf_max_age;
        self
    }

    /// With how often the CSRF keys rotate (see [`SessionConfig::csrf_rotate_every`]).
    pub fn with_csrf_rotate_every(mut self, csrf_rotate_every: Duration) -> Self {
        self.csrf_rotate_every = csrf_rotate_every;
        self
    }

    /// With how many compare-and-set conflicts one edit retries (see [`SessionConfig::max_conflict_retries`]).
    pub fn with_max_conflict_retries(mut self, max_conflict_retries: u32) -> Self {
        self.max_conflict_retries = max_conflict_retries;
        self
    }

    /// With where new anonymous sessions live (see [`SessionConfig::anonymous`]).
    pub fn with_anonymous(mut self, anonymous: AnonymousMode) -> Self {
        self.anonymous = anonymous;
        self
    }

    /// With the budget of the anonymous cookie's `name=value`, in bytes (see [`SessionConfig::anonymous_cookie_bytes`]).
    pub fn with_anonymous_cookie_bytes(mut self, anonymous_cookie_bytes: usize) -> Self {
        self.anonymous_cookie_bytes = anonymous_cookie_bytes;
        self
    }

    /// Checks that the values make sense together.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first inconsistent field.
    pub fn validate(&self) -> Result<()> {
        let second = Duration::from_secs(1);
        let check = |ok: bool, msg: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::Config(msg.to_owned()))
            }
        };
        check(
            self.idle_timeout >= second,
            "idle_timeout must be at least 1s",
        )?;
        check(
            self.idle_timeout <= self.absolute_timeout,
            "idle_timeout must not exceed absolute_timeout",
        )?;
        check(
            self.remember_idle_timeout >= second,
            "remember_idle_timeout must be at least 1s",
        )?;
        check(
            self.remember_idle_timeout <= self.remember_absolute_timeout,
            "remember_idle_timeout must not exceed remember_absolute_timeout",
        )?;
        check(
            self.absolute_timeout <= MAX_LIFETIME && self.remember_absolute_timeout <= MAX_LIFETIME,
            "absolute timeouts must not exceed 400 days (browsers cap cookie lifetimes there)",
        )?;
        check(
            self.tombstone_ttl >= second,
            "tombstone_ttl must be at least 1s",
        )?;
        check(
            self.max_data_bytes >= 2,
            "max_data_bytes must be at least 2",
        )?;
        check(
            self.csrf_max_age >= second,
            "csrf_max_age must be at least 1s",
        )?;
        check(
            self.csrf_rotate_every >= self.csrf_max_age.saturating_mul(2),
            "csrf_rotate_every must be at least twice csrf_max_age (so that at most two keys accept a token)",
        )?;
        check(
            (MIN_COOKIE_BUDGET..=MAX_COOKIE_BUDGET).contains(&self.anonymous_cookie_bytes),
            "anonymous_cookie_bytes must be between 512 and 3800 (browsers drop cookies over 4096 bytes)",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        SessionConfig::default().validate().unwrap();
        let bad = SessionConfig {
            idle_timeout: Duration::from_secs(13 * 3600),
            ..SessionConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("idle_timeout must not exceed absolute_timeout"),
            "{err}"
        );
        let bad = SessionConfig {
            remember_absolute_timeout: Duration::from_secs(401 * 86400),
            ..SessionConfig::default()
        };
        assert!(bad.validate().is_err());
        for bytes in [511, 3801] {
            let bad = SessionConfig {
                anonymous_cookie_bytes: bytes,
                ..SessionConfig::default()
            };
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains("anonymous_cookie_bytes"), "{err}");
        }
    }
}
