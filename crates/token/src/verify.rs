//! Verification: [`Keyring::verify_at`] and [`Keyring::verify_cached_at`], the validation
//! pipeline in its fixed order, and what a verified token is ([`Verified`], [`Status`]).

use std::sync::Arc;

use crate::cache::VerifiedCache;
use crate::claims::Claims;
use crate::config::Config;
use crate::error::{Error, Part, Result};
use crate::json;
use crate::jws::{self, Decoded};
use crate::key::{JwsAlgorithm, KeyId};
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
        let alg = JwsAlgorithm::from_name(&header.alg)
            .filter(|a| config.allows(*a))
            .ok_or(Error::AlgorithmNotAllowed { mismatch: false })?;
        if let Some(what) = header.unsupported {
            return Err(Error::Unsupported { what });
        }
        let entry = self.check_key(config, alg, &header.kid, now)?;
        entry
            .public
            .verify(segments.signing_input.as_bytes(), &segments.signature)?;

        let claims =
            Claims::from_map(json::parse_object(&segments.payload).ok_or(Error::BadJson {
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
