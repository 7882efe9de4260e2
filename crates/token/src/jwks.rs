//! Verify-only key sets from what an issuer publishes: JWK Sets (RFC 7517 §5) and PEM
//! public keys ([`TrustedKeys`]), where **one unusable key does not spoil the set**: it is
//! skipped, with its reason ([`SkippedKey`]), and the others verify.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::json;
use crate::key::{JwsAlgorithm, KeyId, PublicKey};
use crate::keyring::{KeyState, Keyring, MAX_KEYS_WITHOUT_KID, RotationPolicy};
use crate::pem;

/// Why a key of a trusted set was skipped. Its [`SkipReason::as_str`] is stable (a metric
/// label: `tessera_verifier_keys_skipped{reason=…}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SkipReason {
    /// A key type, curve, algorithm or use Tessera does not verify with: `kty` `oct`,
    /// `crv` `P-384`, `alg` `PS256`, `use` `enc`, an RSA-PSS or X25519 SPKI, a certificate
    /// or an `RSA PUBLIC KEY` block. `unsupported`.
    Unsupported,
    /// Private key material where a public key belongs (a JWK with `d`, a `PRIVATE KEY`
    /// block). Never used; tell whoever published it. `private`.
    Private,
    /// An Ed25519 public key of small order (RFC 8032 §5.1.7). `weak`.
    Weak,
    /// Malformed or outside the import rules: wrong length, not on the curve, not strict
    /// base64url or DER, an RSA modulus outside 2048–8192 bits or an exponent other than
    /// 65537, an `alg` that is not the key's. `invalid`.
    Invalid,
    /// A JWK whose `kid` is not its RFC 7638 thumbprint id (Tessera finds keys by that id).
    /// `kid_mismatch`.
    KidMismatch,
    /// The same key again (the first one is used). `duplicate`.
    Duplicate,
    /// More PEM keys than [`MAX_KEYS_WITHOUT_KID`]. `too_many`.
    TooMany,
}

impl SkipReason {
    /// Every reason, in order.
    pub const ALL: [Self; 7] = [
        Self::Unsupported,
        Self::Private,
        Self::Weak,
        Self::Invalid,
        Self::KidMismatch,
        Self::Duplicate,
        Self::TooMany,
    ];

    /// The reason's name: stable, snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsupported => "unsupported",
            Self::Private => "private",
            Self::Weak => "weak",
            Self::Invalid => "invalid",
            Self::KidMismatch => "kid_mismatch",
            Self::Duplicate => "duplicate",
            Self::TooMany => "too_many",
        }
    }

    fn of(e: &Error) -> Self {
        match e {
            Error::WeakKey => Self::Weak,
            Error::InvalidKey {
                reason: pem::PRIVATE_BLOCK,
            } => Self::Private,
            Error::InvalidKey {
                reason: pem::OTHER_BLOCK | pem::OTHER_ALGORITHM,
            } => Self::Unsupported,
            _ => Self::Invalid,
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key of a trusted set that was not used.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedKey {
    /// Where it was: `keys[3]` (the fourth entry of a JWK Set) or `mw.pem#2` (the second
    /// block of the PEM text named `mw.pem`).
    pub location: String,
    /// The JWK's `kid`, if it had a string one (public; at most 64 characters kept).
    pub kid: Option<String>,
    /// Why, in one stable word.
    pub reason: SkipReason,
    /// The refusal in full (it carries no key material).
    pub error: Error,
    /// SHA-256 of the entry's text (its JSON, or its PEM block): the same bad entry gives
    /// the same digest on every load, wherever it sits, so a refreshing verifier can log it
    /// once, not on every fetch.
    pub digest: [u8; 32],
}

/// A verify-only key set built from JWK Sets ([`TrustedKeys::add_jwks`]) and PEM public
/// keys ([`TrustedKeys::add_pem`]), for a verifier with no private key (DESIGN §1).
///
/// Every usable key verifies (state `active`, since ever: a JWKS carries no `valid_from`,
/// and a revoked key is simply absent from it). A key that cannot be used is skipped and
/// reported ([`SkippedKey`]), and the others keep verifying: one bad entry does not take
/// an edge down. PEM keys also verify tokens without a `kid`
/// ([`KeyringBuilder::public_key_without_kid`](crate::KeyringBuilder::public_key_without_kid)), as MediaWiki writes them.
///
/// # Examples
///
/// ```
/// use tessera_token::{Claims, Config, Keyring, NoRevocations, OsKeySource, RotationPolicy, SkipReason, TrustedKeys};
///
/// let now = 1_800_000_000;
/// let signer = Keyring::generate_at(now, RotationPolicy::default(), &mut OsKeySource::default())?;
/// let config = Config::new("https://wiki.example");
/// // The signer's JWKS with a small-order Ed25519 key added.
/// let jwks = signer.jwks(&config).replacen(
///     "[",
///     r#"[{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"#,
///     1,
/// );
/// let mut keys = TrustedKeys::new();
/// keys.add_jwks(jwks.as_bytes())?;
/// let (edge, skipped) = keys.build()?;
/// assert_eq!(skipped[0].reason, SkipReason::Weak);
///
/// let claims = Claims::new("https://wiki.example", "alice", "sid", "jti", now, now + 60, now + 120);
/// let token = signer.sign_at(&config, &claims, now)?;
/// assert_eq!(edge.verify_at(&config, &token, now, &NoRevocations)?.claims.sub, "alice");
/// # Ok::<(), tessera_token::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct TrustedKeys {
    /// Keys found by `kid` only (from JWK Sets).
    by_kid: Vec<PublicKey>,
    /// Keys for tokens without a `kid` too (from PEM).
    without_kid: Vec<PublicKey>,
    seen: BTreeSet<KeyId>,
    skipped: Vec<SkippedKey>,
}

fn digest(text: &[u8]) -> [u8; 32] {
    Sha256::digest(text).into()
}

fn unsupported(reason: &'static str) -> (SkipReason, Error) {
    (SkipReason::Unsupported, Error::InvalidKey { reason })
}

/// Reads one JWK of a set, saying why it cannot be used.
fn jwk(map: &Map<String, Value>) -> std::result::Result<PublicKey, (SkipReason, Error)> {
    let text = |name: &str| map.get(name).and_then(Value::as_str);
    if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .any(|m| map.contains_key(*m))
    {
        return Err((
            SkipReason::Private,
            Error::InvalidKey {
                reason: "private member in a public JWK",
            },
        ));
    }
    match (text("kty"), text("crv")) {
        (Some("OKP"), Some("Ed25519")) | (Some("EC"), Some("P-256")) | (Some("RSA"), None) => {}
        _ => return Err(unsupported("unsupported kty or crv")),
    }
    if text("use").is_some_and(|u| u != "sig") {
        return Err(unsupported("JWK is not for signatures"));
    }
    if text("alg").is_some_and(|a| JwsAlgorithm::from_name(a).is_none()) {
        return Err(unsupported("JWK alg is not one Tessera verifies"));
    }
    // The key first, without its kid, so a kid that is not the thumbprint id gets its own
    // reason.
    let mut bare = map.clone();
    let kid = bare.remove("kid");
    let key = PublicKey::from_jwk_map(&bare).map_err(|e| (SkipReason::of(&e), e))?;
    match kid {
        None => Ok(key),
        Some(Value::String(k)) if k == key.kid().as_str() => Ok(key),
        Some(Value::String(_)) => Err((
            SkipReason::KidMismatch,
            Error::InvalidKey {
                reason: "JWK kid is not the key's thumbprint id",
            },
        )),
        Some(_) => Err((
            SkipReason::Invalid,
            Error::InvalidKey {
                reason: "a JWK member has the wrong type",
            },
        )),
    }
}

impl TrustedKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn skip(
        &mut self,
        location: String,
        kid: Option<String>,
        text: &[u8],
        why: (SkipReason, Error),
    ) {
        let digest = digest(text);
        self.skipped.push(SkippedKey {
            location,
            kid: kid.map(|k| k.chars().take(64).collect()),
            reason: why.0,
            error: why.1,
            digest,
        });
    }

    /// Whether `key` is new here; a repeat is skipped as [`SkipReason::Duplicate`].
    fn fresh(&mut self, key: &PublicKey, location: &str, text: &[u8]) -> bool {
        if self.seen.insert(key.kid().clone()) {
            return true;
        }
        self.skip(
            location.to_owned(),
            Some(key.kid().to_string()),
            text,
            (
                SkipReason::Duplicate,
                Error::InvalidKey {
                    reason: "two keys with the same key id",
                },
            ),
        );
        false
    }

    /// Adds the keys of a JWK Set (RFC 7517 §5), strictly: a key whose `kid` is present must
    /// have its RFC 7638 thumbprint id, which is how Tessera finds keys. Each key that cannot
    /// be used is skipped ([`TrustedKeys::skipped`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if the text is not one JSON object without duplicate members
    /// holding a `keys` array: the whole set is unusable then, and nothing is added.
    pub fn add_jwks(&mut self, json: &[u8]) -> Result<()> {
        let bad = |reason| Error::InvalidKey { reason };
        let mut set = json::parse_object(json).ok_or(bad(
            "a JWK Set is one JSON object without duplicate members",
        ))?;
        let Some(Value::Array(keys)) = set.remove("keys") else {
            return Err(bad("a JWK Set has a keys array"));
        };
        for (i, entry) in keys.into_iter().enumerate() {
            let location = format!("keys[{i}]");
            // What identifies the entry across fetches: its own JSON text.
            let text = serde_json::to_vec(&entry).unwrap_or_default();
            let Value::Object(map) = entry else {
                self.skip(
                    location,
                    None,
                    &text,
                    (SkipReason::Invalid, bad("a JWK is a JSON object")),
                );
                continue;
            };
            let kid = map.get("kid").and_then(Value::as_str).map(str::to_owned);
            match jwk(&map) {
                Ok(key) => {
                    if self.fresh(&key, &location, &text) {
                        self.by_kid.push(key);
                    }
                }
                Err(why) => self.skip(location, kid, &text, why),
            }
        }
        Ok(())
    }

    /// Adds the public keys of a PEM text (`name` says where it came from, e.g. its file
    /// name): every `PUBLIC KEY` block (RSA, EC P-256, Ed25519 SubjectPublicKeyInfo) is a
    /// key that also verifies tokens **without a `kid`**
    /// ([`KeyringBuilder::public_key_without_kid`](crate::KeyringBuilder::public_key_without_kid)), and by its thumbprint id otherwise.
    /// Each block that cannot be used (a private key, a certificate, another algorithm, a
    /// malformed block, more than [`MAX_KEYS_WITHOUT_KID`] keys in all) is skipped; so is a
    /// text with no PEM block at all. Text around the blocks is ignored (RFC 7468 §2).
    pub fn add_pem(&mut self, name: &str, text: &[u8]) {
        let blocks = pem::blocks(text);
        if blocks.is_empty() {
            self.skip(
                name.to_owned(),
                None,
                text,
                (
                    SkipReason::Invalid,
                    Error::InvalidKey {
                        reason: "no PEM block",
                    },
                ),
            );
        }
        for (i, block) in blocks.iter().enumerate() {
            let location = format!("{name}#{}", i + 1);
            match PublicKey::from_pem_block(block) {
                Ok(_) if self.without_kid.len() >= MAX_KEYS_WITHOUT_KID => self.skip(
                    location,
                    None,
                    block.text,
                    (
                        SkipReason::TooMany,
                        Error::InvalidKey {
                            reason: "too many keys for tokens without a kid",
                        },
                    ),
                ),
                Ok(key) => {
                    if self.fresh(&key, &location, block.text) {
                        self.without_kid.push(key);
                    }
                }
                Err(e) => {
                    let reason = SkipReason::of(&e);
                    self.skip(location, None, block.text, (reason, e));
                }
            }
        }
    }

    /// How many keys will verify.
    pub fn usable(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    /// The keys skipped so far.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// The verify-only keyring, and the keys that were skipped. A set may have no usable
    /// key at all: the keyring then refuses every token (`unknown_kid`); a verifier should
    /// rather keep what it had ([`TrustedKeys::usable`] says).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] only if the keyring's own rules fail, which the checks above
    /// rule out.
    pub fn build(self) -> Result<(Keyring, Vec<SkippedKey>)> {
        let mut b = Keyring::builder(RotationPolicy::default());
        for key in self.by_kid {
            b = b.public_key(key, KeyState::Active, i64::MIN, 0);
        }
        for key in self.without_kid {
            b = b.public_key_without_kid(key);
        }
        Ok((b.build()?, self.skipped))
    }
}

impl Keyring {
    /// A verify-only keyring from a published JWK Set (RFC 7517 §5), for a verifier that has
    /// no store and no private keys (DESIGN §1): every usable key in the set verifies, and
    /// the number of keys skipped comes second. [`TrustedKeys`] does the work and says why
    /// each key was skipped.
    ///
    /// A JWKS says nothing of a key's `valid_from`, so a pre-published `next` key verifies at
    /// once here; the signer never signs with it before its time, and a revoked key is
    /// simply absent from the set (its tokens then fail with `unknown_kid`). A key that
    /// cannot be used (another `kty`, curve, `alg` or `use`; a private member; a weak,
    /// malformed or duplicate key; a `kid` that is not its RFC 7638 thumbprint id) is
    /// skipped, and the others verify.
    ///
    /// # Examples
    ///
    /// ```
    /// use tessera_token::{Claims, Config, Keyring, NoRevocations, OsKeySource, RotationPolicy};
    ///
    /// let now = 1_800_000_000;
    /// let signer = Keyring::generate_at(now, RotationPolicy::default(), &mut OsKeySource::default())?;
    /// let config = Config::new("https://wiki.example");
    /// let (edge, skipped) = Keyring::from_jwks(signer.jwks(&config).as_bytes())?;
    /// assert_eq!(skipped, 0);
    /// let claims = Claims::new("https://wiki.example", "alice", "sid", "jti", now, now + 60, now + 120);
    /// let token = signer.sign_at(&config, &claims, now)?;
    /// assert_eq!(edge.verify_at(&config, &token, now, &NoRevocations)?.claims.sub, "alice");
    /// assert!(edge.signing_key_at(now).is_err());
    /// # Ok::<(), tessera_token::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if the text is not one JSON object (duplicate members refused)
    /// with a `keys` array.
    pub fn from_jwks(json: &[u8]) -> Result<(Self, usize)> {
        let mut keys = TrustedKeys::new();
        keys.add_jwks(json)?;
        let (ring, skipped) = keys.build()?;
        Ok((ring, skipped.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SigningKey;

    fn reasons(keys: &TrustedKeys) -> Vec<SkipReason> {
        keys.skipped().iter().map(|s| s.reason).collect()
    }

    #[test]
    fn reasons_have_stable_unique_names() {
        let mut names: Vec<_> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SkipReason::ALL.len());
    }

    #[test]
    fn each_bad_jwk_is_skipped_with_its_reason_and_the_good_ones_stay() {
        let good = SigningKey::ed25519_from_seed(&[1; 32]);
        let good_json = good.public_key().to_jwk_json();
        let es = SigningKey::generate(crate::key::Algorithm::Es256).unwrap();
        let es_json = es.public_key().to_jwk_json();
        let set = format!(
            r#"{{"keys":[
            {good_json},
            {{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
            {{"kty":"OKP","crv":"Ed25519","x":"AAAA"}},
            {},
            {{"kty":"oct","k":"c2VjcmV0"}},
            {{"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA"}},
            {},
            {},
            {},
            7,
            {good_json},
            {es_json}
            ]}}"#,
            good_json.replace("\"kty\"", "\"d\":\"AAAA\",\"kty\""),
            good_json.replace("\"EdDSA\"", "\"PS256\""),
            good_json.replace("\"sig\"", "\"enc\""),
            good_json.replace(good.kid().as_str(), "AAAAAAAAAAAAAAAA"),
        );
        let mut keys = TrustedKeys::new();
        keys.add_jwks(set.as_bytes()).unwrap();
        assert_eq!(keys.usable(), 2);
        assert_eq!(
            reasons(&keys),
            [
                SkipReason::Weak,
                SkipReason::Invalid,
                SkipReason::Private,
                // `oct`: its `k` is the secret itself.
                SkipReason::Private,
                SkipReason::Unsupported,
                SkipReason::Unsupported,
                SkipReason::Unsupported,
                SkipReason::KidMismatch,
                SkipReason::Invalid,
                SkipReason::Duplicate,
            ]
        );
        assert_eq!(keys.skipped()[0].location, "keys[1]");
        let digests: BTreeSet<_> = keys.skipped().iter().map(|s| s.digest).collect();
        assert_eq!(digests.len(), keys.skipped().len());
        let (ring, skipped) = keys.build().unwrap();
        assert_eq!(skipped.len(), 10);
        assert!(ring.public_key(good.kid()).is_some());
        assert!(ring.public_key(es.kid()).is_some());
        assert!(ring.keys_without_kid().is_empty());

        // The same set again: the same digests, so a verifier can tell it logged them.
        let mut again = TrustedKeys::new();
        again.add_jwks(set.as_bytes()).unwrap();
        let again: BTreeSet<_> = again.skipped().iter().map(|s| s.digest).collect();
        assert_eq!(again, digests);
    }

    #[test]
    fn a_set_that_is_not_a_set_is_an_error() {
        for bad in [
            &b"[]"[..],
            b"{}",
            br#"{"keys":{}}"#,
            br#"{"keys":[],"keys":[]}"#,
            b"\xff",
        ] {
            assert!(TrustedKeys::new().add_jwks(bad).is_err());
        }
        let mut empty = TrustedKeys::new();
        empty.add_jwks(br#"{"keys":[]}"#).unwrap();
        assert_eq!(empty.usable(), 0);
    }

    #[test]
    fn too_many_pem_keys_are_skipped() {
        let mut keys = TrustedKeys::new();
        let pem = |seed: u8| {
            use base64::Engine as _;
            use ed25519_dalek::pkcs8::EncodePublicKey as _;
            let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
            let der = sk.verifying_key().to_public_key_der().unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
            format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
        };
        for seed in 0..=u8::try_from(MAX_KEYS_WITHOUT_KID).unwrap() {
            keys.add_pem(&format!("k{seed}.pem"), pem(seed + 1).as_bytes());
        }
        keys.add_pem("again.pem", pem(1).as_bytes());
        keys.add_pem("empty.pem", b"");
        assert_eq!(keys.usable(), MAX_KEYS_WITHOUT_KID);
        assert_eq!(
            reasons(&keys),
            [
                SkipReason::TooMany,
                SkipReason::TooMany,
                SkipReason::Invalid
            ]
        );
        let (ring, _) = keys.build().unwrap();
        assert_eq!(ring.keys_without_kid().len(), MAX_KEYS_WITHOUT_KID);
    }
}
