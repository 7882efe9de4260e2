//! Compact JWS session tokens: signing and the validation pipeline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::cache::VerifiedCache;
use crate::key::{Algorithm, JwsAlgorithm, KeyId};
use crate::keyring::{KeyState, Keyring};
use crate::{Claims, Error, Part, Result, b64, json};

/// The default header `typ`: explicit typing per RFC 8725 §3.11.
pub const DEFAULT_TYP: &str = "session+jwt";
/// The largest leeway [`Config::with_leeway`] accepts (security checklist H8).
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
/// The default size cap of a token, in bytes: a cookie holds at most 4096.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 4096;

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// What a token must be: issuer, audience, type, algorithms, clock leeway, lifetime and
/// size. The same value configures signing and verification, so a service cannot mint
/// tokens its own verifier refuses.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tessera_token::{Config, JwsAlgorithm};
///
/// let config = Config::new("https://wiki.example")
///     .with_audience("wiki")
///     .with_algorithms([JwsAlgorithm::EdDsa, JwsAlgorithm::Ed25519, JwsAlgorithm::Es256])
///     .with_leeway(Duration::from_secs(30));
/// assert_eq!(config.typ(), "session+jwt");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    issuer: String,
    audience: Option<String>,
    typ: String,
    algorithms: u8,
    ed25519_alg: JwsAlgorithm,
    leeway: i64,
    max_lifetime: i64,
    max_token_bytes: usize,
}

impl Config {
    /// Tokens of `issuer`, with the defaults: no audience, `typ` [`DEFAULT_TYP`], algorithms
    /// `EdDSA` and `Ed25519` only, Ed25519 headers say `EdDSA`, leeway 60 s, longest
    /// lifetime 4 h, at most [`DEFAULT_MAX_TOKEN_BYTES`].
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: None,
            typ: DEFAULT_TYP.to_owned(),
            algorithms: JwsAlgorithm::EdDsa.bit() | JwsAlgorithm::Ed25519.bit(),
            ed25519_alg: JwsAlgorithm::EdDsa,
            leeway: 60,
            max_lifetime: 4 * 3600,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    /// Requires `aud` to contain `audience`. Without it, a token that has an `aud` at all is
    /// refused (RFC 7519 §4.1.3).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The header `typ` to emit and require (compared ASCII case-insensitively, with an
    /// optional `application/` prefix, RFC 7515 §4.1.9).
    pub fn with_typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = typ.into();
        self
    }

    /// The allow-list of header `alg` values. `none` and HMAC are not
    /// [`JwsAlgorithm`]s, so they can never be allowed.
    ///
    /// # ⚠️ Warning
    ///
    /// The allow-list is checked before the key; the key's own algorithm is checked after.
    /// Allow only what your keys use.
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = JwsAlgorithm>) -> Self {
        self.algorithms = algorithms.into_iter().fold(0, |acc, a| acc | a.bit());
        self
    }

    /// The header `alg` written for Ed25519 keys: [`JwsAlgorithm::EdDsa`] (default, widest
    /// support) or [`JwsAlgorithm::Ed25519`] (RFC 9864). Both are accepted when allowed.
    /// Any other value is ignored.
    pub fn with_ed25519_header(mut self, alg: JwsAlgorithm) -> Self {
        if alg.key_algorithm() == Algorithm::Ed25519 {
            self.ed25519_alg = alg;
        }
        self
    }

    /// The clock leeway for `exp`, `nbf`, `iat` and key `valid_from`, at most
    /// [`MAX_LEEWAY`]; larger values are clamped to it.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = secs(leeway.min(MAX_LEEWAY));
        self
    }

    /// The longest token lifetime: signing refuses `exp - iat` above it, and verification
    /// refuses tokens whose `iat` is older than it (plus leeway), whatever their `exp`.
    pub fn with_max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = secs(lifetime);
        self
    }

    /// The size cap in bytes, checked before anything is decoded.
    pub fn with_max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The header `typ`.
    pub fn typ(&self) -> &str {
        &self.typ
    }

    /// The header `alg` written for Ed25519 keys.
    pub fn ed25519_alg(&self) -> JwsAlgorithm {
        self.ed25519_alg
    }

    /// Whether header `alg` value `alg` is allowed.
    pub fn allows(&self, alg: JwsAlgorithm) -> bool {
        self.algorithms & alg.bit() != 0
    }

    fn header_alg(&self, key: Algorithm) -> JwsAlgorithm {
        match key {
            Algorithm::Ed25519 => self.ed25519_alg,
            Algorithm::Es256 => JwsAlgorithm::Es256,
            Algorithm::Rs256 => JwsAlgorithm::Rs256,
        }
    }

    fn typ_matches(&self, given: &str) -> bool {
        let bare = match given.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => given.get(12..).unwrap_or(""),
            _ => given,
        };
        bare.eq_ignore_ascii_case(&self.typ)
    }
}

/// How fresh a verified token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Before its soft expiry: use it as it is. Code `ok`.
    Fresh,
    /// At or after its soft expiry (`sxp`) but before `exp`: valid, and the engine should
    /// issue a new one. Code `soft_expired`.
    SoftExpired,
}

impl Status {
    /// The stable outcome code: `ok` or `soft_expired`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Fresh => "ok",
            Self::SoftExpired => "soft_expired",
        }
    }
}

/// A token that passed every check.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Verified {
    /// Its claims (shared with the [`VerifiedCache`], so a cache hit copies nothing).
    pub claims: Arc<Claims>,
    /// The key that signed it.
    pub kid: KeyId,
    /// Its header `alg`.
    pub algorithm: JwsAlgorithm,
    /// Fresh or soft-expired.
    pub status: Status,
}

impl Verified {
    /// The stable outcome code: `ok` or `soft_expired`.
    pub fn code(&self) -> &'static str {
        self.status.code()
    }
}

/// The revocation check that runs after every other check (security checklist H11).
///
/// Both methods default to "not revoked".
pub trait Revocations {
    /// Tokens of user `sub` issued (`iat`) strictly before this time, in Unix seconds, are
    /// revoked ("log out everywhere").
    ///
    /// `iat` has whole seconds: round a millisecond revocation time *up* so tokens issued
    /// earlier in the same second are caught.
    fn revoked_before(&self, sub: &str) -> Option<i64> {
        let _ = sub;
        None
    }

    /// Whether the session named by the token's `sid` was revoked.
    fn is_session_revoked(&self, sid: &str) -> bool {
        let _ = sid;
        false
    }
}

/// No revocation check.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRevocations;

impl Revocations for NoRevocations {}

/// Revocations held in memory: per-user times and revoked session ids (the revocation feed
/// of DESIGN §5, once loaded), each with the time it happened so the list can forget what no
/// live token can match ([`RevocationList::retain_since`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationList {
    users: BTreeMap<String, i64>,
    sessions: BTreeMap<String, i64>,
}

impl RevocationList {
    /// Revokes the tokens of `sub` issued before `at` (Unix seconds). A later time replaces
    /// an earlier one; an earlier one is ignored.
    pub fn revoke_user_before(&mut self, sub: impl Into<String>, at: i64) {
        let t = self.users.entry(sub.into()).or_insert(at);
        *t = (*t).max(at);
    }

    /// Revokes every token bound to session `sid`, for good ([`RevocationList::retain_since`]
    /// never drops it).
    pub fn revoke_session(&mut self, sid: impl Into<String>) {
        self.revoke_session_at(sid, i64::MAX);
    }

    /// Revokes every token bound to session `sid`, which ended at `at` (Unix seconds).
    pub fn revoke_session_at(&mut self, sid: impl Into<String>, at: i64) {
        let t = self.sessions.entry(sid.into()).or_insert(at);
        *t = (*t).max(at);
    }

    /// Forgets revocations from before `cutoff` (Unix seconds): with `cutoff` = now minus
    /// the longest token lifetime (plus skew), every token they refuse has expired anyway.
    pub fn retain_since(&mut self, cutoff: i64) {
        self.users.retain(|_, at| *at >= cutoff);
        self.sessions.retain(|_, at| *at >= cutoff);
    }

    /// How many users and sessions are listed.
    pub fn len(&self) -> usize {
        self.users.len() + self.sessions.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.sessions.is_empty()
    }
}

impl Revocations for RevocationList {
    fn revoked_before(&self, sub: &str) -> Option<i64> {
        self.users.get(sub).copied()
    }

    fn is_session_revoked(&self, sid: &str) -> bool {
        self.sessions.contains_key(sid)
    }
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

struct Header {
    alg: String,
    kid: String,
    typ: Option<String>,
    unsupported: Option<&'static str>,
}

fn bad_header(reason: &'static str) -> Error {
    Error::BadJson {
        part: Part::Header,
        reason,
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header> {
    let mut map: Map<String, Value> =
        json::parse_object(bytes).ok_or(bad_header("not one JSON object without duplicates"))?;
    let mut string = |name: &str| match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_header("alg, kid and typ are strings")),
    };
    let alg = string("alg")?.ok_or(bad_header("alg is missing"))?;
    let kid = string("kid")?.ok_or(bad_header("kid is missing"))?;
    let typ = string("typ")?;
    // Refused whatever their value: `crit` (RFC 7515 §4.1.11, we understand no extension),
    // `b64` (RFC 7797 unencoded payloads), `cty` (RFC 7519 §5.2: only nested JWTs use it).
    // Other members, including `jku`, `x5u`, `jwk` and `x5c`, are ignored: keys come from
    // the keyring only.
    let unsupported = ["crit", "b64", "cty"]
        .into_iter()
        .find(|n| map.contains_key(*n));
    Ok(Header {
        alg,
        kid,
        typ,
        unsupported,
    })
}

impl Keyring {
    /// Signs `claims` into a compact JWS with the key that signs at `now`: header
    /// `{"alg":…,"kid":…,"typ":…}`, then the claims, each base64url without padding.
    ///
    /// # Examples
    ///
    /// ```
    /// use tessera_token::{Claims, Config, Keyring, NoRevocations, OsKeySource, RotationPolicy};
    ///
    /// let now = 1_800_000_000;
    /// let ring = Keyring::generate_at(now, RotationPolicy::default(), &mut OsKeySource::default())?;
    /// let config = Config::new("https://wiki.example");
    /// let claims = Claims::new("https://wiki.example", "mw:CentralAuth::123", "sid", "jti", now, now + 3600, now + 14_400);
    /// let token = ring.sign_at(&config, &claims, now)?;
    /// let verified = ring.verify_at(&config, &token, now + 60, &NoRevocations)?;
    /// assert_eq!(*verified.claims, claims);
    /// assert_eq!(verified.code(), "ok");
    /// # Ok::<(), tessera_token::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::NoSigningKey`] if no key signs at `now`;
    /// - [`Error::InvalidClaims`] unless `iat <= sxp <= exp`, `iat < exp`,
    ///   `exp - iat` is within [`Config::with_max_lifetime`], `iss` is the configured issuer,
    ///   no custom claim shadows a registered one, and the token fits
    ///   [`Config::with_max_token_bytes`];
    /// - [`Error::Signing`] if an RSA signature fails.
    pub fn sign_at(&self, config: &Config, claims: &Claims, now: i64) -> Result<String> {
        if !(claims.iat <= claims.sxp && claims.sxp <= claims.exp && claims.iat < claims.exp) {
            return Err(Error::InvalidClaims(
                "times must satisfy iat <= sxp <= exp, iat < exp",
            ));
        }
        if claims.exp.saturating_sub(claims.iat) > config.max_lifetime {
            return Err(Error::InvalidClaims(
                "exp - iat exceeds the longest token lifetime",
            ));
        }
        if claims.iss != config.issuer {
            return Err(Error::InvalidClaims("iss is not the configured issuer"));
        }
        let key = self.signing_key_at(now)?;
        let header = serde_json::to_vec(&HeaderOut {
            alg: config.header_alg(key.algorithm()).name(),
            kid: key.kid().as_str(),
            typ: &config.typ,
        })
        .map_err(|_| Error::Unreachable("header serialization failed"))?;
        let payload = claims.to_json()?;
        let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 100);
        b64::encode_into(&header, &mut token);
        token.push('.');
        b64::encode_into(&payload, &mut token);
        let signature = key.sign(token.as_bytes())?;
        token.push('.');
        b64::encode_into(&signature, &mut token);
        if token.len() > config.max_token_bytes {
            return Err(Error::InvalidClaims("the token would exceed the size cap"));
        }
        Ok(token)
    }

    /// Verifies `token` at `now`, in this order, stopping at the first failure:
    ///
    /// | step | refusal |
    /// |---|---|
    /// | empty, or longer than the size cap | `malformed` |
    /// | five segments (a compact JWE) | `unsupported` |
    /// | not three segments of strict, canonical base64url without padding | `bad_encoding` |
    /// | header not one JSON object; duplicate members; `alg`/`kid`/`typ` not strings; `alg` or `kid` missing | `bad_json` |
    /// | `alg` not in the allow-list | `alg_not_allowed` |
    /// | `crit`, `b64` or `cty` present (`cty: JWT` = nested token) | `unsupported` |
    /// | `kid` not in the keyring | `unknown_kid` |
    /// | `alg` not the key's algorithm | `alg_not_allowed` |
    /// | key revoked | `key_revoked` |
    /// | key `valid_from` after `now` + leeway | `key_not_yet_valid` |
    /// | signature (Ed25519 `verify_strict`, ES256, RS256) | `bad_signature` |
    /// | claims not one JSON object with exact types (a string `exp` included) | `bad_json` |
    /// | `now >= exp + leeway`, or `now - iat > max lifetime + leeway` | `expired` |
    /// | `nbf` or `iat` after `now + leeway` | `not_yet_valid` |
    /// | `iss` not the issuer | `wrong_issuer` |
    /// | `aud` without our audience, or present when none is configured | `wrong_audience` |
    /// | header `typ` missing or not ours | `wrong_type` |
    /// | `revocations` refuses it | `revoked` |
    ///
    /// A token that passes is [`Status::SoftExpired`] when `now >= sxp`, else
    /// [`Status::Fresh`].
    ///
    /// # Errors
    ///
    /// The [`Error`] of the failed step; its [`Error::code`] is in the table.
    pub fn verify_at(
        &self,
        config: &Config,
        token: &str,
        now: i64,
        revocations: &dyn Revocations,
    ) -> Result<Verified> {
        let (entry, decoded) = self.decode_and_verify(config, token, now)?;
        let status = check_claims(config, &decoded, now, revocations)?;
        Ok(Verified {
            kid: entry.public.kid().clone(),
            algorithm: decoded.alg,
            status,
            claims: decoded.claims,
        })
    }

    /// [`Keyring::verify_at`] with a memo of signatures already checked: a token found in
    /// `cache` skips decoding and the signature check, and nothing else. Every check that
    /// depends on `config`, `now`, the keyring or `revocations` runs again, in the same
    /// order, so the outcome (and its code) is what [`Keyring::verify_at`] would give.
    ///
    /// # Examples
    ///
    /// ```
    /// use tessera_token::{Claims, Config, Keyring, NoRevocations, OsKeySource, RotationPolicy, VerifiedCache};
    ///
    /// let now = 1_800_000_000;
    /// let ring = Keyring::generate_at(now, RotationPolicy::default(), &mut OsKeySource::default())?;
    /// let config = Config::new("https://wiki.example");
    /// let claims = Claims::new("https://wiki.example", "alice", "sid", "jti", now, now + 3600, now + 14_400);
    /// let token = ring.sign_at(&config, &claims, now)?;
    /// let cache = VerifiedCache::new(1024);
    /// let first = ring.verify_cached_at(&config, &token, now, &NoRevocations, &cache)?;
    /// let again = ring.verify_cached_at(&config, &token, now + 1, &NoRevocations, &cache)?;
    /// assert_eq!(first, again);
    /// assert_eq!(cache.stats().hits, 1);
    /// # Ok::<(), tessera_token::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Keyring::verify_at`].
    pub fn verify_cached_at(
        &self,
        config: &Config,
        token: &str,
        now: i64,
        revocations: &dyn Revocations,
        cache: &VerifiedCache,
    ) -> Result<Verified> {
        if token.is_empty() || token.len() > config.max_token_bytes {
            // Not worth a digest; `verify_at` gives the precise refusal.
            return self.verify_at(config, token, now, revocations);
        }
        let digest = VerifiedCache::digest(token);
        if let Some(hit) = cache.get(&digest) {
            // The same bytes decode to the same header and claims and carry the same
            // signature, so only the key must be the one that verified it: the kid must
            // still name a key with the same thumbprint (a refetched JWKS may differ).
            let entry = self.check_key(config, hit.alg, &hit.kid, now)?;
            if entry.public.thumbprint() != hit.thumbprint {
                cache.remove(&digest);
                return self.verify_at(config, token, now, revocations);
            }
            let status = check_claims(config, &hit, now, revocations)?;
            return Ok(Verified {
                claims: hit.claims.clone(),
                kid: entry.public.kid().clone(),
                algorithm: hit.alg,
                status,
            });
        }
        let (entry, decoded) = self.decode_and_verify(config, token, now)?;
        let status = check_claims(config, &decoded, now, revocations)?;
        let verified = Verified {
            claims: decoded.claims.clone(),
            kid: entry.public.kid().clone(),
            algorithm: decoded.alg,
            status,
        };
        cache.insert(
            digest,
            Decoded {
                thumbprint: entry.public.thumbprint(),
                ..decoded
            },
        );
        Ok(verified)
    }

    /// The steps of [`Keyring::verify_at`] up to and including the signature.
    fn decode_and_verify(
        &self,
        config: &Config,
        token: &str,
        now: i64,
    ) -> Result<(&crate::keyring::Entry, Decoded)> {
        if token.is_empty() {
            return Err(Error::Malformed { reason: "empty" });
        }
        if token.len() > config.max_token_bytes {
            return Err(Error::Malformed {
                reason: "larger than the size cap",
            });
        }
        let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(Error::BadEncoding)?;
        let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(Error::BadEncoding)?;
        if payload_b64.contains('.') {
            let dots = token.bytes().filter(|b| *b == b'.').count();
            return Err(if dots == 4 {
                Error::Unsupported { what: "JWE" }
            } else {
                Error::BadEncoding
            });
        }
        let header = b64::decode(header_b64.as_bytes()).ok_or(Error::BadEncoding)?;
        let payload = b64::decode(payload_b64.as_bytes()).ok_or(Error::BadEncoding)?;
        let signature = b64::decode(sig_b64.as_bytes()).ok_or(Error::BadEncoding)?;

        let header = parse_header(&header)?;
        let alg = JwsAlgorithm::from_name(&header.alg)
            .filter(|a| config.allows(*a))
            .ok_or(Error::AlgorithmNotAllowed { mismatch: false })?;
        if let Some(what) = header.unsupported {
            return Err(Error::Unsupported { what });
        }
        let entry = self.check_key(config, alg, &header.kid, now)?;
        entry.public.verify(signing_input.as_bytes(), &signature)?;

        let claims = Claims::from_map(json::parse_object(&payload).ok_or(Error::BadJson {
            part: Part::Claims,
            reason: "not one JSON object without duplicates",
        })?)?;
        Ok((
            entry,
            Decoded {
                alg,
                kid: header.kid,
                typ: header.typ,
                claims: Arc::new(claims),
                thumbprint: [0; 32],
            },
        ))
    }

    /// The key checks of [`Keyring::verify_at`], after the header's `alg` passed the
    /// allow-list.
    fn check_key(
        &self,
        config: &Config,
        alg: JwsAlgorithm,
        kid: &str,
        now: i64,
    ) -> Result<&crate::keyring::Entry> {
        if !config.allows(alg) {
            return Err(Error::AlgorithmNotAllowed { mismatch: false });
        }
        let entry = self.lookup(kid).ok_or(Error::UnknownKeyId)?;
        if entry.public.algorithm() != alg.key_algorithm() {
            return Err(Error::AlgorithmNotAllowed { mismatch: true });
        }
        if entry.state == KeyState::Revoked {
            return Err(Error::KeyRevoked);
        }
        if entry.valid_from > now.saturating_add(config.leeway) {
            return Err(Error::KeyNotYetValid);
        }
        Ok(entry)
    }
}

/// What a token's bytes say once its signature verified: everything the checks after the
/// signature need. Kept by [`VerifiedCache`].
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) alg: JwsAlgorithm,
    pub(crate) kid: String,
    pub(crate) typ: Option<String>,
    pub(crate) claims: Arc<Claims>,
    /// The RFC 7638 thumbprint of the key that verified the signature.
    pub(crate) thumbprint: [u8; 32],
}

/// The checks after the signature: times, issuer, audience, type, revocation.
fn check_claims(
    config: &Config,
    decoded: &Decoded,
    now: i64,
    revocations: &dyn Revocations,
) -> Result<Status> {
    let claims = &decoded.claims;
    let late = now.saturating_sub(config.leeway);
    let early = now.saturating_add(config.leeway);
    if late >= claims.exp || late.saturating_sub(claims.iat) > config.max_lifetime {
        return Err(Error::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > early) || claims.iat > early {
        return Err(Error::NotYetValid);
    }
    if claims.iss != config.issuer {
        return Err(Error::WrongIssuer);
    }
    let audience_ok = match (&claims.aud, &config.audience) {
        (None, None) => true,
        (Some(aud), Some(ours)) => aud.iter().any(|a| a == ours),
        _ => false,
    };
    if !audience_ok {
        return Err(Error::WrongAudience);
    }
    if !decoded
        .typ
        .as_deref()
        .is_some_and(|t| config.typ_matches(t))
    {
        return Err(Error::WrongType);
    }
    if revocations
        .revoked_before(&claims.sub)
        .is_some_and(|t| claims.iat < t)
        || revocations.is_session_revoked(&claims.sid)
    {
        return Err(Error::Revoked);
    }
    Ok(if now >= claims.sxp {
        Status::SoftExpired
    } else {
        Status::Fresh
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison() {
        let c = Config::new("i");
        assert!(c.typ_matches("session+jwt"));
        assert!(c.typ_matches("Session+JWT"));
        assert!(c.typ_matches("application/session+jwt"));
        assert!(!c.typ_matches("application/"));
        assert!(!c.typ_matches("JWT"));
        assert!(!c.typ_matches("session+jwt "));
        assert!(!c.typ_matches("é"));
    }

    #[test]
    fn leeway_is_clamped() {
        let c = Config::new("i").with_leeway(Duration::from_secs(3600));
        assert_eq!(c.leeway, 60);
    }

    #[test]
    fn header_members() {
        assert!(parse_header(br#"{"alg":"EdDSA","kid":"k"}"#).is_ok());
        for bad in [
            r#"{"alg":"EdDSA"}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":1,"kid":"k"}"#,
            r#"{"alg":"EdDSA","kid":["k"]}"#,
            r#"{"alg":"EdDSA","kid":"k","typ":7}"#,
            r#"{"alg":"EdDSA","kid":"k","alg":"EdDSA"}"#,
            r#"["alg"]"#,
        ] {
            assert!(
                matches!(parse_header(bad.as_bytes()), Err(Error::BadJson { .. })),
                "{bad}"
            );
        }
        let h = parse_header(br#"{"alg":"EdDSA","kid":"k","crit":[]}"#).unwrap();
        assert_eq!(h.unsupported, Some("crit"));
        let h = parse_header(br#"{"alg":"EdDSA","kid":"k","jku":"https://x"}"#).unwrap();
        assert_eq!(h.unsupported, None);
    }
}
