//! The `[verify]` section: the edge verifier.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, invalid};
use super::file::FileVerify;
use super::settings::{
    VERIFY_CACHE, VERIFY_CLAIMS, VERIFY_JWKS, VERIFY_JWKS_REFRESH, VERIFY_MODE, VERIFY_PUBLIC_KEYS,
    VERIFY_REFRESH, VERIFY_REVOCATIONS, VERIFY_UNKNOWN_KID_COOLDOWN,
};
use super::source::{Env, duration, list, number, pick};
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
    /// `public_keys`: PEM files of public keys (SubjectPublicKeyInfo: RSA, EC P-256,
    /// Ed25519) that `GET /v1/verify` accepts, also for tokens without a `kid`, such as
    /// MediaWiki's `$wgJwtPublicKey` (default none). Relative paths are read from the
    /// working directory. `TESSERA_VERIFY_PUBLIC_KEYS`: the paths separated by `:`.
    pub public_keys: Vec<PathBuf>,
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
            public_keys: Vec::new(),
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

/// The most PEM files `[verify] public_keys` names (each holds one key or more; at most
/// [`tessera_token::MAX_KEYS_WITHOUT_KID`] keys are used in all).
const MAX_PUBLIC_KEY_FILES: usize = tessera_token::MAX_KEYS_WITHOUT_KID;

fn public_key_files(field: &str, files: Vec<PathBuf>) -> Result<Vec<PathBuf>, ConfigError> {
    if files.iter().any(|f| f.as_os_str().is_empty()) {
        return Err(invalid(field, "a file name is empty"));
    }
    if files.len() > MAX_PUBLIC_KEY_FILES {
        return Err(invalid(
            field,
            format!(
                "at most {MAX_PUBLIC_KEY_FILES} files (tokens without a kid are checked against each key)"
            ),
        ));
    }
    Ok(files)
}

/// `[verify]`: whether a token is required, how long the revocation copy is reused, and the
/// rest ([`VerifyConfig`]). The defaults follow `tokens` (the MediaWiki profile's claims).
pub(super) fn build(
    f: FileVerify,
    env: Env<'_>,
    tokens: &TokensConfig,
) -> Result<(bool, Duration, VerifyConfig), ConfigError> {
    let verify_required = match pick(env, &VERIFY_MODE, f.mode.clone()) {
        None => false,
        Some((_, m)) if m == "optional" => false,
        Some((_, m)) if m == "required" => true,
        Some((name, m)) => {
            return Err(invalid(
                &name,
                format!("{m:?} is not \"optional\" or \"required\""),
            ));
        }
    };
    let verify_refresh = duration(
        env,
        &VERIFY_REFRESH,
        f.refresh.clone(),
        Duration::from_secs(2),
    )?;
    if verify_refresh > Duration::from_secs(60) {
        return Err(invalid(VERIFY_REFRESH.key, "must be at most 1m"));
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
    let dur = |setting, v, default| duration(env, setting, v, default);
    let d = VerifyConfig::default();
    let claims_field = if env.var(&VERIFY_CLAIMS).is_some() {
        VERIFY_CLAIMS.env
    } else {
        VERIFY_CLAIMS.key
    };
    let claims = list(env, &VERIFY_CLAIMS, f.claims).unwrap_or(default_claims);
    crate::verifier::claim_names(&claims).map_err(|m| invalid(claims_field, m))?;
    let cache = number(env, &VERIFY_CACHE, f.cache, d.cache)?;
    if cache > 10_000_000 {
        return Err(invalid(VERIFY_CACHE.key, "must be at most 10000000 tokens"));
    }
    let jwks = match pick(env, &VERIFY_JWKS, f.jwks) {
        Some((name, v)) => Some(jwks_location(&name, &v)?),
        None => None,
    };
    let public_keys = match (
        env.var(&VERIFY_PUBLIC_KEYS),
        env.file(&VERIFY_PUBLIC_KEYS, f.public_keys),
    ) {
        (Some(v), _) => {
            public_key_files(VERIFY_PUBLIC_KEYS.env, std::env::split_paths(&v).collect())?
        }
        (None, Some(v)) => public_key_files(
            VERIFY_PUBLIC_KEYS.key,
            v.into_iter().map(PathBuf::from).collect(),
        )?,
        (None, None) => Vec::new(),
    };
    let revocations = match pick(env, &VERIFY_REVOCATIONS, f.revocations) {
        None => None,
        Some((_, v)) if v == "none" => Some(None),
        Some((field, v)) => {
            let url = reqwest::Url::parse(&v)
                .map_err(|e| invalid(&field, format!("not a URL (or \"none\"): {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
                return Err(invalid(
                    &field,
                    "must be the http(s) URL of a revocation feed, without a query",
                ));
            }
            Some(Some(v))
        }
    };
    // `revocations` is for `tessera verifier`, whose keys are `jwks` and/or `public_keys`.
    let keys_for_the_edge = jwks.is_some() || !public_keys.is_empty();
    if (jwks.is_some() && revocations.is_none()) || (revocations.is_some() && !keys_for_the_edge) {
        return Err(invalid(
            "verify.revocations",
            "verify.jwks and verify.revocations go together: the feed URL of the service that \
             issues the tokens (…/v1/revocations), or \"none\" to check no revocations",
        ));
    }
    let jwks_refresh = dur(&VERIFY_JWKS_REFRESH, f.jwks_refresh, d.jwks_refresh)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&jwks_refresh) {
        return Err(invalid("verify.jwks_refresh", "must be between 1s and 1d"));
    }
    let unknown_kid_cooldown = dur(
        &VERIFY_UNKNOWN_KID_COOLDOWN,
        f.unknown_kid_cooldown,
        d.unknown_kid_cooldown,
    )?;
    if unknown_kid_cooldown > Duration::from_secs(3600) {
        return Err(invalid("verify.unknown_kid_cooldown", "must be at most 1h"));
    }
    Ok(VerifyConfig {
        claims,
        cache,
        jwks,
        public_keys,
        revocations,
        jwks_refresh,
        unknown_kid_cooldown,
    })
}
