//! Verification: [`Keyring::verify_at`] and [`Keyring::verify_cached_at`], the validation
//! pipeline in its fixed order, and what a verified token is ([`Verified`], [`Status`]).

use std::sync::Arc;

use crate::cache::VerifiedCache;
use crate::claims::Claims;
use crate::config::Config;
use crate::error::{Error, Part, Result};
use crate::json;
use crate::jws::{self, Decoded};
use crate::key::{Algorithm, JwsAlgorithm, KeyId, PublicKey};
use crate::keyring::{Entry, KeyState, Keyring};
use crate::revocation::Revocations;

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
    /// The token status (DESIGN §5): `ok` or `soft_expired`. The failures' statuses are
    /// [`Error::outcome`].
    pub fn outcome(self) -> &'static str {
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
    /// The token status (DESIGN §5): `ok` or `soft_expired`. The failures' statuses are
    /// [`Error::outcome`].
    pub fn outcome(&self) -> &'static str {
        self.status.outcome()
    }
}

impl Keyring {
    /// Verifies `token` at `now`, in this order, stopping at the first failure:
    ///
    /// | step | refusal |
    /// |---|---|
    /// | empty, or longer than the size cap | `malformed` |
    /// | five segments (a compact JWE) | `unsupported` |
    /// | not three segments of strict, canonical base64url without padding | `bad_encoding` |
    /// | header not one JSON object; duplicate members; `alg`/`kid`/`typ` not strings; `alg` missing; `kid` missing and no key for tokens without one | `bad_json` |
    /// | `alg` not in the allow-list | `alg_not_allowed` |
    /// | `crit`, `b64`, `cty` (`cty: JWT` = nested token) or `zip` present | `unsupported` |
    /// | `kid` not in the keyring | `unknown_kid` |
    /// | `alg` not the key's algorithm (no `kid`: no key for such tokens has it) | `alg_not_allowed` |
    /// | key revoked | `key_revoked` |
    /// | key `valid_from` after `now` + leeway | `key_not_yet_valid` |
    /// | signature (Ed25519 as strict as `verify_strict`, ES256 with a low `s`, RS256; no `kid`: no key for such tokens verifies it) | `bad_signature` |
    /// | claims not one JSON object with exact types (a string `exp` included) or without a claim the [`ClaimSet`](crate::ClaimSet) requires | `bad_json` |
    /// | `now >= exp + leeway`, or `now - iat > max lifetime + leeway` | `expired` |
    /// | `exp - iat > max lifetime + leeway` | `lifetime_too_long` |
    /// | `nbf` or `iat` after `now + leeway` | `not_yet_valid` |
    /// | `iss` not the issuer | `wrong_issuer` |
    /// | `sub` not of the claim set's form | `wrong_subject` |
    /// | `aud` without our audience, or present when none is configured | `wrong_audience` |
    /// | header `typ` missing or not ours | `wrong_type` |
    /// | `revocations` refuses it | `revoked` |
    ///
    /// A token that passes is [`Status::SoftExpired`] when `now >= sxp`, else
    /// [`Status::Fresh`].
    ///
    /// # Errors
    ///
    /// The [`Error`] of the failed step; its [`Error::outcome`] is in the table.
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
    /// order, so the outcome is what [`Keyring::verify_at`] would give.
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
            // still name a key with the same thumbprint (a refetched JWKS may differ). A
            // token without a kid must still match that key as one for such tokens, or it
            // goes the whole way again (which key it meets then is the keyring's answer).
            let entry = if hit.kid_in_header {
                Some(self.check_key(config, hit.alg, &hit.kid, now)?)
            } else if !config.allows(hit.alg) {
                return Err(Error::AlgorithmNotAllowed { mismatch: false });
            } else {
                self.without_kid_entry(&hit.kid)
            };
            let Some(entry) = entry.filter(|e| e.public.thumbprint() == hit.thumbprint) else {
                cache.remove(&digest);
                return self.verify_at(config, token, now, revocations);
            };
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
    ) -> Result<(&Entry, Decoded)> {
        if token.is_empty() {
            return Err(Error::Malformed { reason: "empty" });
        }
        if token.len() > config.max_token_bytes {
            return Err(Error::Malformed {
                reason: "larger than the size cap",
            });
        }
        let segments = jws::split(token)?;
        let header = jws::parse_header(&segments.header)?;
        if header.kid.is_none() && self.keys_without_kid().is_empty() {
            return Err(Error::BadJson {
                part: Part::Header,
                reason: jws::KID_MISSING,
            });
        }
        let alg = JwsAlgorithm::from_name(&header.alg)
            .filter(|a| config.allows(*a))
            .ok_or(Error::AlgorithmNotAllowed { mismatch: false })?;
        if let Some(what) = header.unsupported {
            return Err(Error::Unsupported { what });
        }
        let input = segments.signing_input.as_bytes();
        let (entry, kid_in_header) = match &header.kid {
            Some(kid) => {
                let entry = self.check_key(config, alg, kid, now)?;
                check_signature(&entry.public, input, &segments.signature)?;
                (entry, true)
            }
            None => (
                self.match_without_kid(config, alg, input, &segments.signature, now)?,
                false,
            ),
        };

        let map = json::parse_object(&segments.payload).ok_or(Error::BadJson {
            part: Part::Claims,
            reason: "not one JSON object without duplicates",
        })?;
        let (claims, latest) = Claims::from_map(map, &config.claims, config.max_lifetime)?;
        Ok((
            entry,
            Decoded {
                alg,
                kid: entry.public.kid().as_str().to_owned(),
                kid_in_header,
                typ: header.typ,
                claims: Arc::new(claims),
                latest,
                thumbprint: [0; 32],
            },
        ))
    }

    /// For a token without a `kid`: the first key for such tokens, of `alg`'s algorithm,
    /// whose signature check passes. At most [`crate::MAX_KEYS_WITHOUT_KID`] checks.
    fn match_without_kid(
        &self,
        config: &Config,
        alg: JwsAlgorithm,
        input: &[u8],
        signature: &[u8],
        now: i64,
    ) -> Result<&Entry> {
        let mut candidates = self
            .keys_without_kid()
            .iter()
            .filter_map(|kid| self.without_kid_entry(kid.as_str()))
            .filter(|e| e.public.algorithm() == alg.key_algorithm())
            .peekable();
        if candidates.peek().is_none() {
            return Err(Error::AlgorithmNotAllowed { mismatch: true });
        }
        let mut refusal = Error::BadSignature;
        for entry in candidates {
            // The key checks as for a kid, so a revoked key stays refused by name.
            match self.check_key(config, alg, entry.public.kid().as_str(), now) {
                Ok(e) if check_signature(&e.public, input, signature).is_ok() => return Ok(e),
                Ok(_) => {}
                Err(e) => refusal = e,
            }
        }
        Err(refusal)
    }

    /// The entry `kid` if it is one of the keys for tokens without a `kid`.
    fn without_kid_entry(&self, kid: &str) -> Option<&Entry> {
        self.keys_without_kid()
            .iter()
            .any(|k| k.as_str() == kid)
            .then(|| self.lookup(kid))
            .flatten()
    }

    /// The key checks of [`Keyring::verify_at`], after the header's `alg` passed the
    /// allow-list.
    fn check_key(&self, config: &Config, alg: JwsAlgorithm, kid: &str, now: i64) -> Result<&Entry> {
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

/// The signature step of [`Keyring::verify_at`] for the key a token named: the
/// [`PublicKey::verify`] check, plus, for ES256, a low `s` (at most half the group order).
///
/// ECDSA accepts `(r, s)` and `(r, n - s)` alike, so without this every ES256 token would
/// have a second valid spelling. [`PublicKey::verify`] is the bare primitive (RFC 7515
/// Appendix A.3's example signature has a high `s` and verifies there); a token must have
/// exactly one spelling, as its strict base64url already ensures for every other byte, so
/// token verification refuses the high one. Tessera's signer writes the low one; other
/// ES256 signers (OpenSSL, pyca/cryptography, lcobucci/jwt, Go) write either, so about half
/// of their tokens are refused here until they normalize `s` (as BIP 62 asks of Bitcoin).
///
/// # Examples
///
/// ```
/// use tessera_token::{Algorithm, SigningKey, verify_jws_signature};
///
/// let key = SigningKey::generate(Algorithm::Es256)?;
/// let sig = key.sign(b"header.payload")?;
/// verify_jws_signature(key.public_key(), b"header.payload", &sig)?;
/// # Ok::<(), tessera_token::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::BadSignature`].
pub fn verify_jws_signature(key: &PublicKey, signing_input: &[u8], signature: &[u8]) -> Result<()> {
    check_signature(key, signing_input, signature)
}

fn check_signature(key: &PublicKey, input: &[u8], signature: &[u8]) -> Result<()> {
    if key.algorithm() == Algorithm::Es256 && jws::es256_high_s(signature) {
        return Err(Error::BadSignature);
    }
    key.verify(input, signature)
}

/// The checks after the signature: times, issuer, subject, audience, type, revocation.
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
    // RFC 8725 §3.10: the token's whole lifetime is bounded too, not only its age, so a
    // valid key cannot vouch for a token that lives for years. Leeway as for its age.
    let lifetime = decoded.latest.exp.saturating_sub(claims.iat);
    if lifetime > config.max_lifetime.saturating_add(config.leeway) {
        return Err(Error::LifetimeTooLong);
    }
    if claims.nbf.is_some_and(|nbf| nbf > early) || decoded.latest.iat > early {
        return Err(Error::NotYetValid);
    }
    if claims.iss != config.issuer {
        return Err(Error::WrongIssuer);
    }
    if !config.claims.subject_ok(&claims.sub) {
        return Err(Error::WrongSubject);
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
