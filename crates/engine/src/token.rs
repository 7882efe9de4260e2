//! The session token component (DESIGN §5): a signed JWT cookie beside the session cookie,
//! re-issued from the session record and the signing key alone, so refreshing a token never
//! writes the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_token::{Claims, Config, VerifiedCache};

use crate::cookie::CookieConfig;
use crate::keys::TokenKeys;

/// The default token cookie name.
pub const DEFAULT_TOKEN_COOKIE: &str = "__Host-tessera-token";
/// The default hard lifetime (`exp`) of a token.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(4 * 3600);
/// The default soft lifetime (`sxp`) of a token: after it the engine issues a new one.
pub const DEFAULT_TOKEN_SOFT_LIFETIME: Duration = Duration::from_secs(3600);
/// How many verified tokens the engine remembers by default (about 30 MB at most): a
/// browser sends its token cookie with every request, and a token seen again costs a hash
/// lookup instead of a signature check.
pub const DEFAULT_TOKEN_CACHE: usize = 65_536;

/// The token cookie's name beside `session_cookie`: [`DEFAULT_TOKEN_COOKIE`], or for a
/// development cookie (not `Secure`, so no `__Host-` prefix) its name plus `-token`.
pub fn default_cookie_name(session_cookie: &CookieConfig) -> String {
    if session_cookie.secure() {
        DEFAULT_TOKEN_COOKIE.to_owned()
    } else {
        format!("{}-token", session_cookie.name())
    }
}

/// How a session's user becomes the token's `sub`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectFormat {
    /// The user id as it is (default).
    #[default]
    UserId,
    /// A fixed prefix, then the user id (e.g. `mw:CentralAuth::` for MediaWiki).
    Prefixed(String),
}

impl SubjectFormat {
    /// The `sub` of a user id.
    pub fn subject(&self, user_id: &str) -> String {
        match self {
            Self::UserId => user_id.to_owned(),
            Self::Prefixed(p) => format!("{p}{user_id}"),
        }
    }
}

/// Everything the engine needs to issue and check session tokens: made by
/// [`TokenSettings::new`] with working defaults, changed with the `with_*` methods (the
/// fields are public to read).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenSettings {
    /// Issuer, `typ`, algorithms and limits of the codec.
    pub config: Config,
    /// The keys; shared so rotation can swap them under a running engine.
    pub keyring: TokenKeys,
    /// The token cookie (default name [`DEFAULT_TOKEN_COOKIE`]).
    pub cookie: CookieConfig,
    /// The hard lifetime, `exp - iat` (capped by the session's absolute expiry).
    pub lifetime: Duration,
    /// The soft lifetime, `sxp - iat`.
    pub soft_lifetime: Duration,
    /// How `sub` is written.
    pub subject: SubjectFormat,
    /// Tokens whose signature already verified (shared with the service's `/v1/verify`,
    /// which checks the same tokens with the same keyring).
    pub cache: Arc<VerifiedCache>,
    /// Claims every token carries unless the session (its login claims) or the mint
    /// request gives the same claim itself, e.g. MediaWiki's rate-limit class
    /// `rlc = "authed-user"`. Empty by default.
    pub default_claims: BTreeMap<String, Value>,
}

impl TokenSettings {
    /// Defaults around `config` and `keyring`: the token cookie named
    /// [`DEFAULT_TOKEN_COOKIE`] with the attributes of `session_cookie`, 4 h and 1 h
    /// lifetimes, `sub` = the user id, a cache of [`DEFAULT_TOKEN_CACHE`] verified tokens.
    ///
    /// # Errors
    ///
    /// [`crate::Error::CookieConfig`] if the session cookie's attributes cannot carry the name
    /// (a development cookie is not `Secure`, so the token cookie drops the `__Host-` prefix).
    pub fn new(
        config: Config,
        keyring: TokenKeys,
        session_cookie: &CookieConfig,
    ) -> crate::Result<Self> {
        let cookie = token_cookie(session_cookie, default_cookie_name(session_cookie))?;
        Ok(Self {
            config,
            keyring,
            cookie,
            lifetime: DEFAULT_TOKEN_LIFETIME,
            soft_lifetime: DEFAULT_TOKEN_SOFT_LIFETIME,
            subject: SubjectFormat::UserId,
            cache: Arc::new(VerifiedCache::new(DEFAULT_TOKEN_CACHE)),
            default_claims: BTreeMap::new(),
        })
    }

    /// Names the token cookie `name`, with the session cookie's attributes.
    ///
    /// # Errors
    ///
    /// [`crate::Error::CookieConfig`] if the name is not valid for those attributes.
    pub fn with_cookie_name(
        mut self,
        name: impl Into<String>,
        session_cookie: &CookieConfig,
    ) -> crate::Result<Self> {
        self.cookie = token_cookie(session_cookie, name)?;
        Ok(self)
    }

    /// With this hard lifetime (`exp - iat`, default 4 h).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// With this soft lifetime (`sxp - iat`, default 1 h): after it the engine issues a new
    /// token.
    pub fn with_soft_lifetime(mut self, soft_lifetime: Duration) -> Self {
        self.soft_lifetime = soft_lifetime;
        self
    }

    /// With `sub` written this way (default: the user id).
    pub fn with_subject(mut self, subject: SubjectFormat) -> Self {
        self.subject = subject;
        self
    }

    /// With this cache of verified tokens (share one with a verifier of the same keys).
    pub fn with_cache(mut self, cache: Arc<VerifiedCache>) -> Self {
        self.cache = cache;
        self
    }

    /// With claims every token carries unless the session or the mint request sets them
    /// (checked when the engine is built).
    pub fn with_default_claims(mut self, claims: BTreeMap<String, Value>) -> Self {
        self.default_claims = claims;
        self
    }

    pub(crate) fn validate(&self, session_cookie: &CookieConfig) -> crate::Result<()> {
        if self.soft_lifetime.is_zero() || self.soft_lifetime > self.lifetime {
            return Err(crate::Error::Config(
                "the token soft lifetime must be positive and at most the lifetime".to_owned(),
            ));
        }
        if self.cookie.name() == session_cookie.name() {
            return Err(crate::Error::Config(
                "the token cookie needs its own name".to_owned(),
            ));
        }
        crate::limits::validate_claims(&self.default_claims)
            .map_err(|e| crate::Error::Config(format!("default token claims: {e}")))?;
        Ok(())
    }

    /// Claims for `sub`/`sid` issued at `now`, ending no later than `hard_end` (Unix
    /// seconds), with a random `jti` and the default claims (callers add the session's own
    /// claims on top, so those win).
    pub(crate) fn claims(
        &self,
        sub: String,
        sid: String,
        now: i64,
        hard_end: i64,
    ) -> crate::Result<Claims> {
        let exp = now.saturating_add(secs(self.lifetime)).min(hard_end);
        let sxp = now.saturating_add(secs(self.soft_lifetime)).min(exp);
        let mut claims = Claims::new(self.config.issuer(), sub, sid, random_id()?, now, sxp, exp);
        claims.custom.extend(
            self.default_claims
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(claims)
    }
}

/// The token cookie named `name`, with the attributes of `session_cookie`.
fn token_cookie(
    session_cookie: &CookieConfig,
    name: impl Into<String>,
) -> crate::Result<CookieConfig> {
    session_cookie
        .with_name(name)
        .map_err(|source| crate::Error::CookieConfig {
            cookie: "token cookie",
            source,
        })
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// 128 random bits, base64url: a `jti`, or the `sid` of a session that is not stored.
pub(crate) fn random_id() -> crate::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(crate::Error::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_token::{Keyring, OsKeySource, RotationPolicy};

    fn settings() -> TokenSettings {
        let ring = Keyring::generate_at(0, RotationPolicy::default(), &mut OsKeySource::default())
            .unwrap();
        TokenSettings::new(
            Config::new("i"),
            TokenKeys::new(ring),
            &CookieConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn default_claims_are_in_every_token_and_checked() {
        let mut t = settings();
        t.default_claims
            .insert("rlc".to_owned(), Value::from("authed-user"));
        t.validate(&CookieConfig::default()).unwrap();
        let c = t.claims("u".into(), "s".into(), 10, i64::MAX).unwrap();
        assert_eq!(c.custom["rlc"], "authed-user");

        t.default_claims.insert("exp".to_owned(), Value::from(1));
        let err = t
            .validate(&CookieConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("default token claims") && err.contains("exp"),
            "{err}"
        );
    }

    #[test]
    fn subject_formats() {
        assert_eq!(SubjectFormat::UserId.subject("123"), "123");
        let mw = SubjectFormat::Prefixed("mw:CentralAuth::".to_owned());
        assert_eq!(mw.subject("123"), "mw:CentralAuth::123");
    }
}
