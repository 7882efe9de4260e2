//! The `[verify]` section: the edge verifier.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, invalid};
use super::file::FileVerify;
use super::source::{Env, duration};
use super::tokens::{TokenProfile, TokensConfig};

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

/// `[verify]`: whether a token is required, how long the revocation copy is reused, and the
/// rest ([`VerifyConfig`]). The defaults follow `tokens` (the MediaWiki profile's claims).
pub(super) fn build(
    f: FileVerify,
    env: Env<'_>,
    tokens: &TokensConfig,
) -> Result<(bool, Duration, VerifyConfig), ConfigError> {
    let verify_required = match f.mode.as_deref() {
        None | Some("optional") => false,
        Some("required") => true,
        Some(m) => {
            return Err(invalid(
                "verify.mode",
                format!("{m:?} is not \"optional\" or \"required\""),
            ));
        }
    };
    let verify_refresh = duration(
        env,
        "TESSERA_VERIFY_REFRESH",
        "verify.refresh",
        f.refresh.clone(),
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
    let verify = verify_config(f, env, default_claims)?;
    Ok((verify_required, verify_refresh, verify))
}

/// `[verify]` beyond `mode` and `refresh`.
fn verify_config(
    f: FileVerify,
    env: Env<'_>,
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
