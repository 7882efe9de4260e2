//! The `[tokens]` section: session tokens, their keys and the MediaWiki profile.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tessera::cookie::CookieConfig;
use tessera::token::SubjectFormat;
use tessera_token::{Algorithm, JwsAlgorithm, OsKeySource, RotationPolicy, RsaBits};

use super::error::{ConfigError, invalid};
use super::file::FileTokens;
use super::settings::{
    TOKENS_ALGORITHM, TOKENS_COOKIE_NAME, TOKENS_DEFAULT_CLAIMS, TOKENS_ED25519_ALG,
    TOKENS_ENABLED, TOKENS_EXP, TOKENS_ISSUER, TOKENS_MEDIAWIKI_SCOPE, TOKENS_PROFILE,
    TOKENS_PUBLISH_AHEAD, TOKENS_ROTATE, TOKENS_ROTATE_EVERY, TOKENS_RSA_BITS,
    TOKENS_SUBJECT_PREFIX, TOKENS_SXP, TOKENS_TYP,
};
use super::source::{Env, boolean, duration, pick};

/// The issuer used when none is configured.
pub const DEFAULT_ISSUER: &str = "tessera";
/// The MediaWiki profile's cookie name: the same on every wiki, for the edge (mediawiki.org,
/// `$wgUseSessionCookieJwt`).
pub const MEDIAWIKI_COOKIE: &str = "sessionJwt";
/// The MediaWiki profile's default subject scope: CentralAuth's (`mw:CentralAuth::123`).
pub const MEDIAWIKI_SCOPE: &str = "CentralAuth:";
/// The MediaWiki profile's default rate-limit class, for logins that give none: what
/// Wikimedia's `RateLimitHookHandler` gives a logged-in user with no special group, and
/// what the Wikimedia edge assumes for any verified `sub` without one.
pub const MEDIAWIKI_RLC: &str = "authed-user";

/// A preset of `[tokens]` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenProfile {
    /// `profile = "mediawiki"`: MediaWiki's `sessionJwt` token shape (cookie `sessionJwt`,
    /// header `typ` `JWT`, RS256, `sub` `mw:<scope>:<id>`, `rlc`), see `docs/tokens.md`.
    MediaWiki,
}

impl TokenProfile {
    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::MediaWiki => "mediawiki",
        }
    }
}

/// The `[tokens]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct TokensConfig {
    /// Whether authenticated sessions get a token cookie (default true).
    pub enabled: bool,
    /// The `iss` of every token (default `tessera`).
    pub issuer: String,
    /// The hard lifetime (default 4 h).
    pub exp: Duration,
    /// The soft lifetime (default 1 h).
    pub sxp: Duration,
    /// The token cookie's name (default `__Host-tessera-token`, or the development session
    /// cookie's name plus `-token`; `sessionJwt` with the MediaWiki profile).
    pub cookie_name: Option<String>,
    /// The preset the other values started from, if any.
    pub profile: Option<TokenProfile>,
    /// The algorithm of keys generated from now on (default Ed25519; RS256 with the
    /// MediaWiki profile). Existing keys keep theirs until rotation replaces them.
    pub algorithm: Algorithm,
    /// The modulus of generated RS256 keys (default 3072 bits).
    pub rsa_bits: RsaBits,
    /// The header `alg` written for Ed25519 keys (default `EdDSA`; `Ed25519` per RFC 9864).
    /// Both are accepted.
    pub ed25519_alg: JwsAlgorithm,
    /// The header `typ` written and required (default `session+jwt`; `JWT` with the
    /// MediaWiki profile).
    pub typ: String,
    /// How `sub` is written (default the user id; `mw:<scope>:<id>` with the MediaWiki
    /// profile).
    pub subject: SubjectFormat,
    /// Claims every session token carries unless the login gives the claim itself
    /// (default none; `rlc = "authed-user"` with the MediaWiki profile).
    pub default_claims: BTreeMap<String, Value>,
    /// Whether `serve` runs the key rotation schedule itself (default true). Off, keys
    /// change only by `tessera keys …`, which the running service picks up.
    pub rotate: bool,
    /// How long a key signs before the next one takes over (default 30 days).
    pub rotate_every: Duration,
    /// How long before it signs a new key is published in the JWKS (default 1 day).
    pub publish_ahead: Duration,
}

impl Default for TokensConfig {
    fn default() -> Self {
        let policy = RotationPolicy::default();
        Self {
            enabled: true,
            issuer: DEFAULT_ISSUER.to_owned(),
            exp: tessera::token::DEFAULT_TOKEN_LIFETIME,
            sxp: tessera::token::DEFAULT_TOKEN_SOFT_LIFETIME,
            cookie_name: None,
            profile: None,
            algorithm: Algorithm::Ed25519,
            rsa_bits: RsaBits::default(),
            ed25519_alg: JwsAlgorithm::EdDsa,
            typ: tessera_token::DEFAULT_TYP.to_owned(),
            subject: SubjectFormat::UserId,
            default_claims: BTreeMap::new(),
            rotate: true,
            rotate_every: policy.rotate_every(),
            publish_ahead: policy.publish_ahead(),
        }
    }
}

impl TokensConfig {
    /// The rotation policy of the keyring: algorithm, schedule, and retention of retired
    /// keys (the hard lifetime plus the default skew).
    pub fn rotation_policy(&self) -> RotationPolicy {
        RotationPolicy::default()
            .with_algorithm(self.algorithm)
            .with_rotate_every(self.rotate_every)
            .with_publish_ahead(self.publish_ahead)
            .with_max_token_lifetime(self.exp)
    }

    /// Where new keys come from (RSA with the configured modulus).
    pub fn key_source(&self) -> OsKeySource {
        OsKeySource::default().with_rsa_bits(self.rsa_bits)
    }

    /// The codec configuration: issuer, `typ`, the Ed25519 header name, the longest
    /// lifetime, and the allow-list: the header names of the configured algorithm and of
    /// `key_algorithms` (the keys already in the keyring, which keep verifying after the
    /// algorithm changes). Both Ed25519 names are accepted whenever Ed25519 is.
    pub fn codec(
        &self,
        key_algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> tessera_token::Config {
        let mut algs: Vec<Algorithm> = key_algorithms.into_iter().collect();
        algs.push(self.algorithm);
        let allowed: Vec<JwsAlgorithm> = [
            JwsAlgorithm::EdDsa,
            JwsAlgorithm::Ed25519,
            JwsAlgorithm::Es256,
            JwsAlgorithm::Rs256,
        ]
        .into_iter()
        .filter(|a| algs.contains(&a.key_algorithm()))
        .collect();
        tessera_token::Config::new(self.issuer.clone())
            .with_typ(self.typ.clone())
            .with_algorithms(allowed)
            .with_ed25519_header(self.ed25519_alg)
            .with_max_lifetime(self.exp)
    }
}

fn parse_algorithm(v: &str) -> Result<Algorithm, String> {
    match v {
        "EdDSA" | "Ed25519" => Ok(Algorithm::Ed25519),
        "ES256" => Ok(Algorithm::Es256),
        "RS256" => Ok(Algorithm::Rs256),
        _ => Err(format!(
            "{v:?} is not a signing algorithm Tessera generates keys for; use \"EdDSA\", \
             \"ES256\" or \"RS256\""
        )),
    }
}

/// Checks a MediaWiki central-id scope: `<provider>:<instance>`, exactly one colon
/// (`CentralAuth:`, `local:mywiki`), as MediaWiki's `validateJwtSubject` requires.
fn check_scope(scope: &str) -> Result<(), String> {
    let ok_chars = scope.bytes().all(|b| b.is_ascii_graphic());
    match scope.split_once(':') {
        Some((provider, instance))
            if ok_chars && !provider.is_empty() && !instance.contains(':') && scope.len() <= 64 =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{scope:?} is not <provider>:<instance> with exactly one colon and no spaces, \
             e.g. \"CentralAuth:\" (sub mw:CentralAuth::123) or \"local:mywiki\""
        )),
    }
}

fn check_typ(typ: &str) -> Result<(), String> {
    if typ.is_empty() || typ.len() > 64 || !typ.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be 1 to 64 printable ASCII characters without spaces".to_owned());
    }
    if typ
        .get(..12)
        .is_some_and(|p| p.eq_ignore_ascii_case("application/"))
    {
        return Err(format!(
            "write it without the application/ prefix (RFC 7515 §4.1.9), e.g. {:?}",
            typ.get(12..).unwrap_or("")
        ));
    }
    Ok(())
}

/// A TOML value as a JSON claim value. Dates have no JSON form and are refused.
fn claim_value(v: toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or("must be a finite number")?,
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Array(a) => {
            Value::Array(a.into_iter().map(claim_value).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => Value::Object(
            t.into_iter()
                .map(|(k, v)| Ok((k, claim_value(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        toml::Value::Datetime(_) => {
            return Err("dates have no JSON form; write the Unix time or a string".to_owned());
        }
    })
}

fn default_claims(
    table: BTreeMap<String, toml::Value>,
) -> Result<BTreeMap<String, Value>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, v) in table {
        let field = format!("tokens.default_claims.{name}");
        if tessera::RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(invalid(
                &field,
                "is a claim the token sets itself; pick another name",
            ));
        }
        out.insert(name, claim_value(v).map_err(|m| invalid(&field, m))?);
    }
    let size = serde_json::to_vec(&out).map_or(usize::MAX, |v| v.len());
    if size > tessera::MAX_CLAIMS_BYTES {
        return Err(invalid(
            "tokens.default_claims",
            format!(
                "must take at most {} bytes of JSON (they travel in every token)",
                tessera::MAX_CLAIMS_BYTES
            ),
        ));
    }
    Ok(out)
}

/// `TESSERA_TOKEN_DEFAULT_CLAIMS`: the claims as a JSON object, checked as the file's are.
fn default_claims_json(json: &str) -> Result<BTreeMap<String, Value>, ConfigError> {
    let name = TOKENS_DEFAULT_CLAIMS.env;
    let table: BTreeMap<String, toml::Value> = serde_json::from_str(json)
        .map_err(|e| invalid(name, format!("must be a JSON object of claims: {e}")))?;
    default_claims(table).map_err(|e| match e {
        ConfigError::Invalid { field, message } => {
            invalid(&field.replacen(TOKENS_DEFAULT_CLAIMS.key, name, 1), message)
        }
        other => other,
    })
}

/// Builds `[tokens]`: the profile's values first, then explicit keys (file, environment
/// over file) override them one key at a time.
pub(super) fn build(
    f: FileTokens,
    env: Env<'_>,
    session_cookie: &CookieConfig,
    revocation_keep: Duration,
) -> Result<TokensConfig, ConfigError> {
    let d = TokensConfig::default();
    let profile = match pick(env, &TOKENS_PROFILE, f.profile) {
        None => None,
        Some((_, v)) if v == "mediawiki" => Some(TokenProfile::MediaWiki),
        Some((name, v)) => {
            return Err(invalid(
                &name,
                format!("{v:?} is not a token profile; the one profile is \"mediawiki\""),
            ));
        }
    };
    let mediawiki = profile == Some(TokenProfile::MediaWiki);

    let issuer = pick(env, &TOKENS_ISSUER, f.issuer);
    let issuer = match issuer {
        Some((name, v)) if v.is_empty() => return Err(invalid(&name, "must not be empty")),
        Some((_, v)) if !mediawiki || v != DEFAULT_ISSUER => v,
        _ if mediawiki => {
            return Err(invalid(
                "tokens.issuer",
                "profile \"mediawiki\" needs the issuer the edge and MediaWiki expect, \
                 e.g. issuer = \"https://meta.wikimedia.org\" (not the default \"tessera\")",
            ));
        }
        _ => d.issuer,
    };

    let algorithm = match pick(env, &TOKENS_ALGORITHM, f.algorithm) {
        Some((name, v)) => parse_algorithm(&v).map_err(|m| invalid(&name, m))?,
        None if mediawiki => Algorithm::Rs256,
        None => d.algorithm,
    };
    let rsa_bits = pick(env, &TOKENS_RSA_BITS, f.rsa_bits.map(|b| b.to_string()));
    let rsa_bits = match rsa_bits {
        None => d.rsa_bits,
        Some((name, _)) if algorithm != Algorithm::Rs256 => {
            return Err(invalid(&name, "only applies to algorithm = \"RS256\""));
        }
        Some((_, v)) if v == "2048" => RsaBits::B2048,
        Some((_, v)) if v == "3072" => RsaBits::B3072,
        Some((_, v)) if v == "4096" => RsaBits::B4096,
        Some((name, v)) => {
            return Err(invalid(&name, format!("{v:?} is not 2048, 3072 or 4096")));
        }
    };
    let ed25519_alg = pick(env, &TOKENS_ED25519_ALG, f.ed25519_alg);
    let ed25519_alg = match ed25519_alg {
        None => d.ed25519_alg,
        Some((_, v)) if v == "EdDSA" => JwsAlgorithm::EdDsa,
        Some((_, v)) if v == "Ed25519" => JwsAlgorithm::Ed25519,
        Some((name, v)) => {
            return Err(invalid(
                &name,
                format!("{v:?} is not \"EdDSA\" (RFC 8037) or \"Ed25519\" (RFC 9864)"),
            ));
        }
    };
    let typ = match pick(env, &TOKENS_TYP, f.typ) {
        Some((name, v)) => {
            check_typ(&v).map_err(|m| invalid(&name, m))?;
            v
        }
        None if mediawiki => "JWT".to_owned(),
        None => d.typ,
    };

    let prefix = pick(env, &TOKENS_SUBJECT_PREFIX, f.subject_prefix);
    let scope = pick(env, &TOKENS_MEDIAWIKI_SCOPE, f.mediawiki_scope);
    let subject = match (prefix, scope) {
        (Some(_), Some((name, _))) => {
            return Err(invalid(
                &name,
                "sets the subject prefix, and so does tokens.subject_prefix: keep one",
            ));
        }
        (None, Some((name, _))) if !mediawiki => {
            return Err(invalid(
                &name,
                "only applies with profile = \"mediawiki\"; otherwise use tokens.subject_prefix",
            ));
        }
        (Some((name, p)), None) => {
            if p.len() > 128 || p.chars().any(char::is_control) {
                return Err(invalid(
                    &name,
                    "must be at most 128 bytes without control characters",
                ));
            }
            if p.is_empty() {
                SubjectFormat::UserId
            } else {
                SubjectFormat::Prefixed(p)
            }
        }
        (None, scope) if mediawiki => {
            let (name, scope) = scope.unwrap_or((
                "tokens.mediawiki_scope".to_owned(),
                MEDIAWIKI_SCOPE.to_owned(),
            ));
            check_scope(&scope).map_err(|m| invalid(&name, m))?;
            SubjectFormat::Prefixed(format!("mw:{scope}:"))
        }
        (None, _) => d.subject,
    };

    let claims_env = env.var(&TOKENS_DEFAULT_CLAIMS);
    let claims_file = env.file(&TOKENS_DEFAULT_CLAIMS, f.default_claims);
    let default_claims = match (claims_env, claims_file) {
        (Some(json), _) => default_claims_json(&json)?,
        (None, Some(table)) => default_claims(table)?,
        (None, None) if mediawiki => {
            BTreeMap::from([("rlc".to_owned(), Value::from(MEDIAWIKI_RLC))])
        }
        (None, None) => d.default_claims,
    };

    let cookie_name = match pick(env, &TOKENS_COOKIE_NAME, f.cookie_name) {
        Some((name, v)) => Some((name, v)),
        None if mediawiki => Some(("tokens.profile".to_owned(), MEDIAWIKI_COOKIE.to_owned())),
        None => None,
    };
    if let Some((name, v)) = &cookie_name {
        session_cookie
            .with_name(v.clone())
            .map_err(|e| invalid(name, e.to_string()))?;
        if v == session_cookie.name() {
            return Err(invalid(name, "must differ from the session cookie's name"));
        }
    }
    let cookie_name = cookie_name.map(|(_, v)| v);

    let exp = duration(env, &TOKENS_EXP, f.exp, d.exp)?;
    let sxp = duration(env, &TOKENS_SXP, f.sxp, d.sxp)?;
    if exp < Duration::from_secs(60) || exp > Duration::from_secs(24 * 3600) {
        return Err(invalid("tokens.exp", "must be between 1m and 24h"));
    }
    if sxp.is_zero() || sxp > exp {
        return Err(invalid(
            "tokens.sxp",
            "must be positive and at most tokens.exp",
        ));
    }
    let enabled = boolean(env, &TOKENS_ENABLED, f.enabled, d.enabled)?;
    if enabled && exp > revocation_keep {
        return Err(invalid(
            "revocations.keep",
            "must be at least tokens.exp, or the feed forgets revocations of live tokens",
        ));
    }

    let rotate = boolean(env, &TOKENS_ROTATE, f.rotate, d.rotate)?;
    let rotate_every = duration(env, &TOKENS_ROTATE_EVERY, f.rotate_every, d.rotate_every)?;
    if rotate_every < Duration::from_secs(3600) || rotate_every > Duration::from_secs(365 * 86400) {
        return Err(invalid(
            "tokens.rotate_every",
            "must be between 1h and 365d",
        ));
    }
    let publish_ahead = duration(env, &TOKENS_PUBLISH_AHEAD, f.publish_ahead, d.publish_ahead)?;
    // The JWKS is served with max-age=300: a key published for less than that (plus a
    // margin for verifiers' own refresh intervals) may sign before a verifier knows it.
    if publish_ahead < Duration::from_secs(600) {
        return Err(invalid(
            "tokens.publish_ahead",
            "must be at least 10m (verifiers cache the JWKS for 5m)",
        ));
    }
    if publish_ahead >= rotate_every {
        return Err(invalid(
            "tokens.publish_ahead",
            "must be shorter than tokens.rotate_every",
        ));
    }

    Ok(TokensConfig {
        enabled,
        issuer,
        exp,
        sxp,
        cookie_name,
        profile,
        algorithm,
        rsa_bits,
        ed25519_alg,
        typ,
        subject,
        default_claims,
        rotate,
        rotate_every,
        publish_ahead,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn tokens(toml: &str) -> TokensConfig {
        Config::from_toml(toml, no_env).unwrap().tokens
    }

    fn error(toml: &str) -> String {
        Config::from_toml(toml, no_env).unwrap_err().to_string()
    }

    const MW: &str = "[tokens]\nprofile = \"mediawiki\"\nissuer = \"https://meta.wikimedia.org\"\n";

    #[test]
    fn defaults() {
        let t = tokens("");
        assert_eq!(t, TokensConfig::default());
        assert_eq!(t.algorithm, Algorithm::Ed25519);
        assert_eq!(t.rsa_bits, RsaBits::B3072);
        assert_eq!(t.ed25519_alg, JwsAlgorithm::EdDsa);
        assert_eq!(t.typ, "session+jwt");
        assert_eq!(t.subject, SubjectFormat::UserId);
        assert!(t.default_claims.is_empty() && t.rotate && t.profile.is_none());
        assert_eq!(t.rotate_every, Duration::from_secs(30 * 86400));
        assert_eq!(t.publish_ahead, Duration::from_secs(86400));
        assert_eq!(t.rotation_policy(), RotationPolicy::default());
    }

    #[test]
    fn every_key_parses() {
        for (v, want) in [
            ("EdDSA", Algorithm::Ed25519),
            ("Ed25519", Algorithm::Ed25519),
            ("ES256", Algorithm::Es256),
            ("RS256", Algorithm::Rs256),
        ] {
            assert_eq!(
                tokens(&format!("[tokens]\nalgorithm = \"{v}\"")).algorithm,
                want
            );
        }
        for (bits, want) in [
            (2048, RsaBits::B2048),
            (3072, RsaBits::B3072),
            (4096, RsaBits::B4096),
        ] {
            let t = tokens(&format!(
                "[tokens]\nalgorithm = \"RS256\"\nrsa_bits = {bits}"
            ));
            assert_eq!(t.rsa_bits, want);
        }
        let t = tokens(
            "[tokens]\ned25519_alg = \"Ed25519\"\ntyp = \"JWT\"\nsubject_prefix = \"acme:\"\n\
             rotate = false\nrotate_every = \"7d\"\npublish_ahead = \"2d\"\n\
             cookie_name = \"__Host-jwt\"\n\
             [tokens.default_claims]\nrlc = \"bot\"\nlevel = 3\nbeta = true\ngroups = [\"a\", \"b\"]\n",
        );
        assert_eq!(t.ed25519_alg, JwsAlgorithm::Ed25519);
        assert_eq!(t.typ, "JWT");
        assert_eq!(t.subject, SubjectFormat::Prefixed("acme:".to_owned()));
        assert!(!t.rotate);
        assert_eq!(t.rotate_every, Duration::from_secs(7 * 86400));
        assert_eq!(t.publish_ahead, Duration::from_secs(2 * 86400));
        assert_eq!(t.cookie_name.as_deref(), Some("__Host-jwt"));
        assert_eq!(
            serde_json::to_string(&t.default_claims).unwrap(),
            r#"{"beta":true,"groups":["a","b"],"level":3,"rlc":"bot"}"#
        );
        let p = t.rotation_policy();
        assert_eq!(
            (p.rotate_every(), p.publish_ahead()),
            (t.rotate_every, t.publish_ahead)
        );
        // An empty prefix is the plain user id.
        assert_eq!(
            tokens("[tokens]\nsubject_prefix = \"\"").subject,
            SubjectFormat::UserId
        );
    }

    #[test]
    fn the_environment_overrides_every_key() {
        let env = |k: &str| {
            Some(
                match k {
                    "TESSERA_TOKEN_ALGORITHM" => "RS256",
                    "TESSERA_TOKEN_RSA_BITS" => "2048",
                    "TESSERA_TOKEN_ED25519_ALG" => "Ed25519",
                    "TESSERA_TOKEN_TYP" => "at+jwt",
                    "TESSERA_TOKEN_ISSUER" => "https://env.example",
                    "TESSERA_TOKEN_SUBJECT_PREFIX" => "env:",
                    "TESSERA_TOKEN_COOKIE_NAME" => "__Host-env",
                    "TESSERA_TOKEN_ROTATE" => "false",
                    "TESSERA_TOKEN_ROTATE_EVERY" => "2d",
                    "TESSERA_TOKEN_PUBLISH_AHEAD" => "1h",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let file = "[tokens]\nalgorithm = \"ES256\"\ntyp = \"x\"\nissuer = \"https://file.example\"\n\
                    subject_prefix = \"file:\"\nrotate = true\nrotate_every = \"9d\"\n";
        let t = Config::from_toml(file, env).unwrap().tokens;
        assert_eq!(t.algorithm, Algorithm::Rs256);
        assert_eq!(t.rsa_bits, RsaBits::B2048);
        assert_eq!(t.ed25519_alg, JwsAlgorithm::Ed25519);
        assert_eq!(t.typ, "at+jwt");
        assert_eq!(t.issuer, "https://env.example");
        assert_eq!(t.subject, SubjectFormat::Prefixed("env:".to_owned()));
        assert_eq!(t.cookie_name.as_deref(), Some("__Host-env"));
        assert!(!t.rotate);
        assert_eq!(t.rotate_every, Duration::from_secs(2 * 86400));
        assert_eq!(t.publish_ahead, Duration::from_secs(3600));

        let env = |k: &str| match k {
            "TESSERA_TOKEN_PROFILE" => Some("mediawiki".to_owned()),
            "TESSERA_TOKEN_ISSUER" => Some("https://meta.wikimedia.org".to_owned()),
            "TESSERA_TOKEN_MEDIAWIKI_SCOPE" => Some("local:mywiki".to_owned()),
            _ => None,
        };
        let t = Config::from_toml("", env).unwrap().tokens;
        assert_eq!(t.profile, Some(TokenProfile::MediaWiki));
        assert_eq!(t.subject.subject("7"), "mw:local:mywiki:7");
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                "[tokens]\nalgorithm = \"HS256\"",
                "tokens.algorithm: \"HS256\" is not",
            ),
            ("[tokens]\nalgorithm = \"none\"", "tokens.algorithm"),
            ("[tokens]\nalgorithm = \"rs256\"", "tokens.algorithm"),
            (
                "[tokens]\nalgorithm = \"RS256\"\nrsa_bits = 1024",
                "tokens.rsa_bits: \"1024\" is not 2048, 3072 or 4096",
            ),
            (
                "[tokens]\nrsa_bits = 4096",
                "tokens.rsa_bits: only applies to algorithm = \"RS256\"",
            ),
            ("[tokens]\ned25519_alg = \"ed25519\"", "tokens.ed25519_alg"),
            ("[tokens]\ned25519_alg = \"ES256\"", "tokens.ed25519_alg"),
            ("[tokens]\ntyp = \"\"", "tokens.typ: must be 1 to 64"),
            (
                "[tokens]\ntyp = \"session jwt\"",
                "tokens.typ: must be 1 to 64",
            ),
            (
                "[tokens]\ntyp = \"application/JWT\"",
                "tokens.typ: write it without the application/ prefix",
            ),
            (
                "[tokens]\nissuer = \"\"",
                "tokens.issuer: must not be empty",
            ),
            (
                "[tokens]\nsubject_prefix = \"a\\nb\"",
                "tokens.subject_prefix",
            ),
            (
                "[tokens]\nmediawiki_scope = \"CentralAuth:\"",
                "tokens.mediawiki_scope: only applies with profile",
            ),
            (
                "[tokens.default_claims]\nsub = \"x\"",
                "tokens.default_claims.sub: is a claim the token sets itself",
            ),
            (
                "[tokens.default_claims]\nkid = \"x\"",
                "tokens.default_claims.kid",
            ),
            (
                "[tokens.default_claims]\nat = 1979-05-27T07:32:00Z",
                "tokens.default_claims.at: dates",
            ),
            (
                "[tokens]\nrotate_every = \"30m\"",
                "tokens.rotate_every: must be between 1h and 365d",
            ),
            ("[tokens]\nrotate_every = \"400d\"", "tokens.rotate_every"),
            ("[tokens]\nrotate_every = \"soon\"", "tokens.rotate_every"),
            (
                "[tokens]\npublish_ahead = \"5m\"",
                "tokens.publish_ahead: must be at least 10m",
            ),
            (
                "[tokens]\nrotate_every = \"1d\"\npublish_ahead = \"1d\"",
                "tokens.publish_ahead: must be shorter",
            ),
            ("[tokens]\nrotate = \"yes\"", "invalid type"),
            (
                "[tokens]\ncookie_name = \"__Host-tessera\"",
                "tokens.cookie_name: must differ",
            ),
            (
                "[tokens]\ncookie_name = \"a b\"",
                "tokens.cookie_name: cookie name must be",
            ),
            (
                "[cookie]\ndevelopment = true\n[tokens]\ncookie_name = \"__Host-t\"",
                "tokens.cookie_name: a cookie named __Host-",
            ),
            (
                "[tokens]\nprofile = \"wikipedia\"",
                "tokens.profile: \"wikipedia\" is not a token profile",
            ),
            (
                "[tokens]\nprofile = \"mediawiki\"",
                "tokens.issuer: profile \"mediawiki\" needs the issuer",
            ),
            (
                "[tokens]\nprofile = \"mediawiki\"\nissuer = \"tessera\"",
                "tokens.issuer: profile \"mediawiki\"",
            ),
            ("[tokens]\nbogus = 1", "unknown field `bogus`"),
        ];
        for (toml, want) in cases {
            let err = error(toml);
            assert!(err.contains(want), "{toml:?} gave {err:?}");
        }
        let big = format!("[tokens.default_claims]\nx = \"{}\"", "a".repeat(2000));
        assert!(error(&big).contains("tokens.default_claims: must take at most"));
        for scope in ["CentralAuth", "a:b:c", ":x", "has space:", ""] {
            let err = error(&format!("{MW}mediawiki_scope = \"{scope}\""));
            assert!(err.contains("tokens.mediawiki_scope: "), "{scope}: {err}");
        }
        let err = error(&format!(
            "{MW}mediawiki_scope = \"local:x\"\nsubject_prefix = \"p:\""
        ));
        assert!(
            err.contains("tokens.mediawiki_scope: sets the subject prefix"),
            "{err}"
        );
        let env = |k: &str| match k {
            "TESSERA_TOKEN_ROTATE" => Some("maybe".to_owned()),
            _ => None,
        };
        let err = Config::from_toml("", env).unwrap_err().to_string();
        assert!(err.starts_with("TESSERA_TOKEN_ROTATE: "), "{err}");
        let env = |k: &str| match k {
            "TESSERA_TOKEN_ALGORITHM" => Some("PS256".to_owned()),
            _ => None,
        };
        let err = Config::from_toml("", env).unwrap_err().to_string();
        assert!(err.starts_with("TESSERA_TOKEN_ALGORITHM: "), "{err}");
    }

    #[test]
    fn the_mediawiki_profile_is_mediawikis_token_shape() {
        let t = tokens(MW);
        assert_eq!(t.profile, Some(TokenProfile::MediaWiki));
        assert_eq!(t.issuer, "https://meta.wikimedia.org");
        assert_eq!(t.cookie_name.as_deref(), Some("sessionJwt"));
        assert_eq!(t.typ, "JWT");
        assert_eq!(t.algorithm, Algorithm::Rs256);
        assert_eq!(t.subject.subject("123"), "mw:CentralAuth::123");
        assert_eq!(
            t.default_claims,
            BTreeMap::from([("rlc".to_owned(), Value::from("authed-user"))])
        );
        // Explicit keys override the preset's, one at a time.
        let t = tokens(&format!(
            "{MW}algorithm = \"EdDSA\"\ned25519_alg = \"Ed25519\"\ntyp = \"session+jwt\"\n\
             cookie_name = \"__Host-mw\"\nmediawiki_scope = \"local:mywiki\"\n\
             [tokens.default_claims]\nrlc = \"established-user\"\n"
        ));
        assert_eq!(t.algorithm, Algorithm::Ed25519);
        assert_eq!(t.ed25519_alg, JwsAlgorithm::Ed25519);
        assert_eq!(t.typ, "session+jwt");
        assert_eq!(t.cookie_name.as_deref(), Some("__Host-mw"));
        assert_eq!(t.subject.subject("5"), "mw:local:mywiki:5");
        assert_eq!(t.default_claims["rlc"], "established-user");
        // An empty table drops the default class; a prefix replaces the scope.
        let t = tokens(&format!(
            "{MW}subject_prefix = \"\"\ndefault_claims = {{}}\n"
        ));
        assert!(t.default_claims.is_empty());
        assert_eq!(t.subject, SubjectFormat::UserId);
        // The development cookie keeps the name, without Secure.
        let c = Config::from_toml(&format!("[cookie]\ndevelopment = true\n{MW}"), no_env).unwrap();
        assert_eq!(c.tokens.cookie_name.as_deref(), Some("sessionJwt"));
    }

    #[test]
    fn the_codec_follows_the_configuration() {
        let c = tokens(MW).codec([]);
        assert_eq!((c.issuer(), c.typ()), ("https://meta.wikimedia.org", "JWT"));
        assert!(c.allows(JwsAlgorithm::Rs256));
        assert!(!c.allows(JwsAlgorithm::EdDsa) && !c.allows(JwsAlgorithm::Es256));
        // Keys already in the keyring keep verifying after the algorithm changed.
        let c = tokens(MW).codec([Algorithm::Ed25519]);
        assert!(c.allows(JwsAlgorithm::Rs256) && c.allows(JwsAlgorithm::EdDsa));
        let c = tokens("[tokens]\ned25519_alg = \"Ed25519\"").codec([]);
        assert_eq!(c.ed25519_alg(), JwsAlgorithm::Ed25519);
        assert!(c.allows(JwsAlgorithm::EdDsa) && c.allows(JwsAlgorithm::Ed25519));
        assert!(!c.allows(JwsAlgorithm::Rs256));
        assert_eq!(c.typ(), "session+jwt");
    }
}
