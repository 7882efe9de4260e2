//! The keyring: keys with states, rotation, and the JWKS.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, secs};
use crate::error::{Error, Result};
use crate::json;
use crate::key::{Algorithm, Jwk, JwsAlgorithm, KeyId, PublicKey, RsaBits, SigningKey};

/// Where a key is in its life. Keys move down this list and never back up.
///
/// IMPORTANT: the order of the variants is the order of the life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published in the JWKS ahead of use, so verifiers that cache the JWKS know it before
    /// the first token it signs; not signing yet.
    Next,
    /// Signs (the newest active key whose `valid_from` has come) and verifies.
    Active,
    /// Verifies only, for the longest token lifetime plus skew after it stopped signing;
    /// then dropped. Its private half is discarded on retirement.
    Retired,
    /// Refused: tokens it signed fail with [`Error::KeyRevoked`]. Kept (public half only)
    /// as long as a retired key would be, so the refusal names the reason, then dropped.
    Revoked,
}

impl KeyState {
    /// The name used in the manifest and by `tessera keys list`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }
}

/// When keys are made, start signing and are dropped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tessera_token::{Algorithm, RotationPolicy};
///
/// let policy = RotationPolicy::default()
///     .with_algorithm(Algorithm::Ed25519)
///     .with_rotate_every(Duration::from_secs(7 * 86_400));
/// assert_eq!(policy.rotate_every(), Duration::from_secs(7 * 86_400));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    algorithm: Algorithm,
    rotate_every: i64,
    publish_ahead: i64,
    max_token_lifetime: i64,
    skew: i64,
}

impl Default for RotationPolicy {
    /// Ed25519 keys that sign for 30 days each, published 1 day ahead, kept 4 hours (the
    /// default token lifetime) plus 60 seconds after they stop signing.
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Ed25519,
            rotate_every: 30 * 86_400,
            publish_ahead: 86_400,
            max_token_lifetime: 4 * 3600,
            skew: 60,
        }
    }
}

impl RotationPolicy {
    /// The algorithm of the keys [`Keyring::rotate_at`] generates.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// How long a key signs before the next one takes over.
    pub fn with_rotate_every(mut self, d: Duration) -> Self {
        self.rotate_every = secs(d);
        self
    }

    /// How long before it signs a key is published. Make it longer than the time any
    /// verifier caches the JWKS.
    pub fn with_publish_ahead(mut self, d: Duration) -> Self {
        self.publish_ahead = secs(d);
        self
    }

    /// The longest lifetime (`exp - iat`) of any token the keys sign; retired keys are
    /// kept this long (plus [`RotationPolicy::with_skew`]) after they stop signing.
    pub fn with_max_token_lifetime(mut self, d: Duration) -> Self {
        self.max_token_lifetime = secs(d);
        self
    }

    /// The clock skew allowed between instances and verifiers.
    pub fn with_skew(mut self, d: Duration) -> Self {
        self.skew = secs(d);
        self
    }

    /// See [`RotationPolicy::with_algorithm`].
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// See [`RotationPolicy::with_rotate_every`].
    pub fn rotate_every(&self) -> Duration {
        Duration::from_secs(self.rotate_every.unsigned_abs())
    }

    /// See [`RotationPolicy::with_publish_ahead`].
    pub fn publish_ahead(&self) -> Duration {
        Duration::from_secs(self.publish_ahead.unsigned_abs())
    }

    /// How long a key stays after it stopped signing or was revoked, in seconds.
    fn retention(&self) -> i64 {
        self.max_token_lifetime.saturating_add(self.skew)
    }
}

/// Makes new keys. [`OsKeySource`] is the real one; tests pass closures that fail.
pub trait KeySource {
    /// A new signing key of `algorithm`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyGeneration`] (or any error): the keyring stays as it was.
    fn generate(&mut self, algorithm: Algorithm) -> Result<SigningKey>;
}

impl<F: FnMut(Algorithm) -> Result<SigningKey>> KeySource for F {
    fn generate(&mut self, algorithm: Algorithm) -> Result<SigningKey> {
        self(algorithm)
    }
}

/// Generates keys from the OS random source (RSA through AWS-LC).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsKeySource {
    rsa_bits: RsaBits,
}

impl OsKeySource {
    /// RSA keys of `bits` (default 3072).
    pub fn with_rsa_bits(mut self, bits: RsaBits) -> Self {
        self.rsa_bits = bits;
        self
    }
}

impl KeySource for OsKeySource {
    fn generate(&mut self, algorithm: Algorithm) -> Result<SigningKey> {
        match algorithm {
            Algorithm::Rs256 => SigningKey::generate_rsa(self.rsa_bits),
            other => SigningKey::generate(other),
        }
    }
}

pub(crate) struct Entry {
    pub(crate) public: PublicKey,
    pub(crate) secret: Option<SigningKey>,
    pub(crate) state: KeyState,
    pub(crate) valid_from: i64,
    pub(crate) retired_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
}

impl Entry {
    fn info(&self) -> KeyInfo {
        KeyInfo {
            kid: self.public.kid().clone(),
            algorithm: self.public.algorithm(),
            state: self.state,
            valid_from: self.valid_from,
            retired_at: self.retired_at,
            revoked_at: self.revoked_at,
            has_private_key: self.secret.is_some(),
        }
    }

    fn retire(&mut self, now: i64) {
        self.state = KeyState::Retired;
        self.retired_at = Some(now);
        // kanidm: "On rotation the private key is discarded". Dropping zeroizes it.
        self.secret = None;
    }
}

/// What the keyring says about one key: public facts only.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The key id.
    pub kid: KeyId,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The state.
    pub state: KeyState,
    /// When it may start signing (Unix seconds).
    pub valid_from: i64,
    /// When it stopped signing, for a retired key.
    pub retired_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Whether the keyring holds its private half (only `next` and `active` keys may).
    pub has_private_key: bool,
}

/// What a [`Keyring::rotate_at`] or [`Keyring::revoke_at`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// The key that became active.
    pub promoted: Option<KeyId>,
    /// Keys that stopped signing and now only verify.
    pub retired: Vec<KeyId>,
    /// The key that was revoked.
    pub revoked: Option<KeyId>,
    /// The key that was generated (as `next`, or as `active` if nothing could sign).
    pub generated: Option<KeyId>,
    /// Retired or revoked keys whose retention ended, now gone.
    pub dropped: Vec<KeyId>,
}

impl Rotation {
    /// Whether anything changed (and the keyring should be saved).
    pub fn changed(&self) -> bool {
        self.promoted.is_some()
            || self.generated.is_some()
            || self.revoked.is_some()
            || !self.retired.is_empty()
            || !self.dropped.is_empty()
    }
}

/// The signing and verifying keys of one issuer, with their states (DESIGN §5).
///
/// - Signing uses the newest `active` key with `valid_from <= now` that has its private
///   half ([`Keyring::signing_key_at`]).
/// - Verification looks the key up by `kid` only: `next`, `active` and `retired` keys
///   verify once their `valid_from` has come; `revoked` keys fail with
///   [`Error::KeyRevoked`]; unknown ids with [`Error::UnknownKeyId`].
/// - [`Keyring::rotate_at`] pre-publishes, promotes, retires and drops keys;
///   [`Keyring::jwks`] publishes the public halves.
///
/// Its methods are grouped by job: [`Keyring::sign_at`] is in `sign.rs`,
/// [`Keyring::verify_at`] and [`Keyring::verify_cached_at`] in `verify.rs`, [`Keyring::load`]
/// and [`Keyring::save`] in `dir.rs`; the keys, their states and rotation are here.
///
/// # Examples
///
/// ```
/// use tessera_token::{Keyring, OsKeySource, RotationPolicy};
///
/// let now = 1_800_000_000;
/// let ring = Keyring::generate_at(now, RotationPolicy::default(), &mut OsKeySource::default())?;
/// assert!(ring.signing_key_at(now).is_ok());
/// # Ok::<(), tessera_token::Error>(())
/// ```
pub struct Keyring {
    // IMPORTANT: kept sorted newest first (valid_from descending, then kid), which is the
    // JWKS order and the order `signing_key_at` searches.
    entries: Vec<Entry>,
    policy: RotationPolicy,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .finish()
    }
}

/// Builds a [`Keyring`] from keys with known states, e.g. for tests or a custom store.
#[derive(Debug)]
#[must_use = "call build()"]
pub struct KeyringBuilder {
    policy: RotationPolicy,
    entries: Vec<Entry>,
    error: Option<Error>,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.info().fmt(f)
    }
}

impl KeyringBuilder {
    /// Adds a key with its private half, as `next` or `active`.
    pub fn key(mut self, key: SigningKey, state: KeyState, valid_from: i64) -> Self {
        if !matches!(state, KeyState::Next | KeyState::Active) {
            self.error.get_or_insert(Error::InvalidKey {
                reason: "only next and active keys keep a private half",
            });
        }
        self.entries.push(Entry {
            public: key.public_key().clone(),
            secret: Some(key),
            state,
            valid_from,
            retired_at: None,
            revoked_at: None,
        });
        self
    }

    /// Adds a verify-only key. `since` is when it was retired or revoked (ignored for
    /// `next` and `active`).
    pub fn public_key(
        mut self,
        key: PublicKey,
        state: KeyState,
        valid_from: i64,
        since: i64,
    ) -> Self {
        self.entries.push(Entry {
            public: key,
            secret: None,
            state,
            valid_from,
            retired_at: (state == KeyState::Retired).then_some(since),
            revoked_at: (state == KeyState::Revoked).then_some(since),
        });
        self
    }

    /// The keyring.
    ///
    /// A keyring without an active key is allowed (signing then fails with
    /// [`Error::NoSigningKey`] until [`Keyring::rotate_at`] makes one): an emergency
    /// revocation must be able to leave it so.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] for two keys with one id, or a private half on a retired or
    /// revoked key.
    pub fn build(self) -> Result<Keyring> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut ring = Keyring {
            entries: self.entries,
            policy: self.policy,
        };
        ring.sort();
        let duplicate = ring.entries.iter().enumerate().any(|(i, e)| {
            ring.entries
                .iter()
                .skip(i + 1)
                .any(|o| o.public.kid() == e.public.kid())
        });
        if duplicate {
            return Err(Error::InvalidKey {
                reason: "two keys with the same key id",
            });
        }
        Ok(ring)
    }
}

impl Keyring {
    /// A keyring with one fresh `active` key, valid from `now`.
    ///
    /// # Errors
    ///
    /// What `keys` returns when it fails.
    pub fn generate_at(now: i64, policy: RotationPolicy, keys: &mut dyn KeySource) -> Result<Self> {
        let key = keys.generate(policy.algorithm)?;
        Self::builder(policy)
            .key(key, KeyState::Active, now)
            .build()
    }

    /// A builder for a keyring with these keys.
    pub fn builder(policy: RotationPolicy) -> KeyringBuilder {
        KeyringBuilder {
            policy,
            entries: Vec::new(),
            error: None,
        }
    }

    pub(crate) fn from_entries(entries: Vec<Entry>, policy: RotationPolicy) -> Result<Self> {
        let mut b = Self::builder(policy);
        b.entries = entries;
        b.build()
    }

    fn sort(&mut self) {
        self.entries.sort_by(|a, b| {
            b.valid_from
                .cmp(&a.valid_from)
                .then_with(|| a.public.kid().cmp(b.public.kid()))
        });
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The rotation policy.
    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    /// Every key, newest first.
    pub fn keys(&self) -> impl Iterator<Item = KeyInfo> + '_ {
        self.entries.iter().map(Entry::info)
    }

    /// The entry with key id `kid`, compared as text (no allocation on the verify path).
    pub(crate) fn lookup(&self, kid: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.public.kid().as_str() == kid)
    }

    /// The public key with id `kid`, in any state.
    pub fn public_key(&self, kid: &KeyId) -> Option<&PublicKey> {
        self.lookup(kid.as_str()).map(|e| &e.public)
    }

    /// The key that signs at `now`: the newest `active` key with `valid_from <= now` and a
    /// private half.
    ///
    /// # Errors
    ///
    /// [`Error::NoSigningKey`] if there is none.
    pub fn signing_key_at(&self, now: i64) -> Result<&SigningKey> {
        self.entries
            .iter()
            .filter(|e| e.state == KeyState::Active && e.valid_from <= now)
            .find_map(|e| e.secret.as_ref())
            .ok_or(Error::NoSigningKey)
    }

    /// Runs the rotation schedule at `now`:
    ///
    /// 1. drops retired and revoked keys whose retention (longest token lifetime plus skew
    ///    after they stopped signing or were revoked) has ended;
    /// 2. promotes the newest `next` key whose `valid_from` has come to `active`, and
    ///    retires every other active key (discarding its private half);
    /// 3. when the active key is due to be replaced within
    ///    [`RotationPolicy::with_publish_ahead`] and no `next` key exists, generates one,
    ///    valid from `max(now + publish_ahead, active.valid_from + rotate_every)`; if no key
    ///    can sign at all, generates an `active` one valid from `now`.
    ///
    /// Call it on a schedule (more often than `publish_ahead`) and save the keyring when
    /// [`Rotation::changed`].
    ///
    /// # Errors
    ///
    /// If `keys` fails, the error is returned and **the keyring is unchanged**: the current
    /// active key keeps signing, and the next call tries again (rustls: "remains usable
    /// over temporary ticketer creation failure").
    pub fn rotate_at(&mut self, now: i64, keys: &mut dyn KeySource) -> Result<Rotation> {
        let retention = self.policy.retention();
        let expired = |e: &Entry| match e.state {
            KeyState::Retired => e.retired_at.unwrap_or(i64::MIN).saturating_add(retention) <= now,
            KeyState::Revoked => e.revoked_at.unwrap_or(i64::MIN).saturating_add(retention) <= now,
            KeyState::Next | KeyState::Active => false,
        };
        // Entries are newest first, so the first due `next` key is the newest one.
        let promote = self
            .entries
            .iter()
            .position(|e| e.state == KeyState::Next && e.valid_from <= now && e.secret.is_some());
        let signer_after = promote.or_else(|| {
            self.entries.iter().position(|e| {
                e.state == KeyState::Active && e.valid_from <= now && e.secret.is_some()
            })
        });
        let next_remains =
            self.entries.iter().enumerate().any(|(i, e)| {
                e.state == KeyState::Next && e.valid_from > now && Some(i) != promote
            });

        // Decide on and generate any new key before changing anything.
        let new_key = match signer_after.and_then(|i| self.entries.get(i)) {
            None => Some((keys.generate(self.policy.algorithm)?, KeyState::Active, now)),
            Some(signer) if !next_remains => {
                let due = signer.valid_from.saturating_add(self.policy.rotate_every);
                if now >= due.saturating_sub(self.policy.publish_ahead) {
                    let valid_from = due.max(now.saturating_add(self.policy.publish_ahead));
                    Some((
                        keys.generate(self.policy.algorithm)?,
                        KeyState::Next,
                        valid_from,
                    ))
                } else {
                    None
                }
            }
            Some(_) => None,
        };
        if let Some((key, _, _)) = &new_key
            && self.lookup(key.kid().as_str()).is_some()
        {
            return Err(Error::InvalidKey {
                reason: "the generated key is already in the keyring",
            });
        }

        let mut out = Rotation::default();
        let promoted_kid = promote
            .and_then(|i| self.entries.get(i))
            .map(|e| e.public.kid().clone());
        for e in &mut self.entries {
            let is_promoted = promoted_kid.as_ref() == Some(e.public.kid());
            if is_promoted {
                e.state = KeyState::Active;
                out.promoted = Some(e.public.kid().clone());
            } else if promoted_kid.is_some()
                && (e.state == KeyState::Active
                    || (e.state == KeyState::Next && e.valid_from <= now))
            {
                // An older due `next` key never signed here, but another instance may have
                // promoted it: retire it rather than drop it.
                e.retire(now);
                out.retired.push(e.public.kid().clone());
            }
        }
        self.entries.retain(|e| {
            let gone = expired(e);
            if gone {
                out.dropped.push(e.public.kid().clone());
            }
            !gone
        });
        if let Some((key, state, valid_from)) = new_key {
            out.generated = Some(key.kid().clone());
            self.insert(key, state, valid_from)?;
        }
        Ok(out)
    }

    /// Starts a rotation ahead of the schedule: generates a `next` key valid from
    /// `now + publish_ahead` ([`RotationPolicy::with_publish_ahead`]) and publishes it, so
    /// verifiers that cache the JWKS learn it before it signs. [`Keyring::rotate_at`]
    /// promotes it when its `valid_from` comes, and the schedule continues from there.
    ///
    /// Nothing changes if a `next` key (with its private half) is already in the keyring:
    /// that key is the rotation in progress.
    ///
    /// # Errors
    ///
    /// What `keys` returns when it fails; the keyring is then unchanged.
    pub fn publish_next_at(&mut self, now: i64, keys: &mut dyn KeySource) -> Result<Rotation> {
        let mut out = Rotation::default();
        let pending = self
            .entries
            .iter()
            .any(|e| e.state == KeyState::Next && e.secret.is_some());
        if pending {
            return Ok(out);
        }
        let key = keys.generate(self.policy.algorithm)?;
        out.generated = Some(key.kid().clone());
        self.insert(
            key,
            KeyState::Next,
            now.saturating_add(self.policy.publish_ahead),
        )?;
        Ok(out)
    }

    /// Makes the `next` key that is due first sign now: its `valid_from` moves to `now`
    /// (if it was later), it becomes `active`, and every other active key retires (its
    /// private half discarded), as in [`Keyring::rotate_at`]. Later `next` keys stay as
    /// they are. Without a `next` key nothing changes ([`Rotation::promoted`] is `None`).
    ///
    /// # ⚠️ Warning
    ///
    /// A verifier that fetched the JWKS before the key was published does not know it and
    /// refuses the tokens it signs (`unknown_kid`) until it fetches the JWKS again. Let
    /// the schedule promote keys; promote by hand only when the old key must stop signing
    /// now (for a compromised key, [`Keyring::revoke_at`] is the right tool).
    pub fn promote_next_at(&mut self, now: i64) -> Rotation {
        let mut out = Rotation::default();
        // Entries are newest first: the last `next` key is the one due first.
        let Some(kid) = self
            .entries
            .iter()
            .rev()
            .find(|e| e.state == KeyState::Next && e.secret.is_some())
            .map(|e| e.public.kid().clone())
        else {
            return out;
        };
        for e in &mut self.entries {
            if e.public.kid() == &kid {
                e.state = KeyState::Active;
                e.valid_from = e.valid_from.min(now);
            } else if e.state == KeyState::Active
                || (e.state == KeyState::Next && e.valid_from <= now)
            {
                e.retire(now);
                out.retired.push(e.public.kid().clone());
            }
        }
        out.promoted = Some(kid);
        self.sort();
        out
    }

    fn insert(&mut self, key: SigningKey, state: KeyState, valid_from: i64) -> Result<()> {
        if self.lookup(key.kid().as_str()).is_some() {
            return Err(Error::InvalidKey {
                reason: "two keys with the same key id",
            });
        }
        self.entries.push(Entry {
            public: key.public_key().clone(),
            secret: Some(key),
            state,
            valid_from,
            retired_at: None,
            revoked_at: None,
        });
        self.sort();
        Ok(())
    }

    /// Revokes key `kid` at `now`: tokens it signed fail with [`Error::KeyRevoked`] from
    /// now on, and its private half is discarded. If it was the signing key, the newest
    /// `next` key takes over at once (it is already published), or else `keys` makes a new
    /// active key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKeyId`] if there is no such key. If a replacement is needed and
    /// `keys` fails, its error is returned, **and the key is revoked all the same**:
    /// a compromised key must stop verifying even if nothing can sign until the next
    /// successful [`Keyring::rotate_at`].
    pub fn revoke_at(
        &mut self,
        kid: &KeyId,
        now: i64,
        keys: &mut dyn KeySource,
    ) -> Result<Rotation> {
        let mut out = Rotation::default();
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.public.kid() == kid)
            .ok_or(Error::UnknownKeyId)?;
        if entry.state == KeyState::Revoked {
            return Ok(out);
        }
        entry.state = KeyState::Revoked;
        entry.revoked_at = Some(now);
        entry.secret = None;
        out.revoked = Some(kid.clone());
        if self.signing_key_at(now).is_ok() {
            return Ok(out);
        }
        let next = self
            .entries
            .iter_mut()
            .find(|e| e.state == KeyState::Next && e.secret.is_some());
        if let Some(next) = next {
            next.state = KeyState::Active;
            next.valid_from = next.valid_from.min(now);
            out.promoted = Some(next.public.kid().clone());
            self.sort();
            return Ok(out);
        }
        let key = keys.generate(self.policy.algorithm)?;
        out.generated = Some(key.kid().clone());
        self.insert(key, KeyState::Active, now)?;
        Ok(out)
    }

    /// The JSON Web Key Set (RFC 7517 §5) to publish: the `next`, `active` and `retired`
    /// public keys, newest first, each with `kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg`
    /// and `use` `sig`, in a fixed member order. Never a private member, never a revoked
    /// key. Ed25519 keys carry the `alg` that `config` emits in headers.
    pub fn jwks(&self, config: &Config) -> String {
        #[derive(Serialize)]
        struct Jwks<'a> {
            keys: Vec<Jwk<'a>>,
        }
        let alg: JwsAlgorithm = config.ed25519_alg();
        let keys = self
            .entries
            .iter()
            .filter(|e| e.state != KeyState::Revoked)
            .map(|e| e.public.jwk(alg))
            .collect();
        serde_json::to_string(&Jwks { keys }).unwrap_or_else(|_| r#"{"keys":[]}"#.to_owned())
    }

    /// A verify-only keyring from a published JWK Set (RFC 7517 §5), for a verifier that has
    /// no store and no private keys (DESIGN §1): every key in the set verifies.
    ///
    /// A JWKS says nothing of a key's `valid_from`, so a pre-published `next` key verifies at
    /// once here; the signer never signs with it before its time, and a revoked key is
    /// simply absent from the set (its tokens then fail with `unknown_kid`). Keys this crate
    /// cannot use (another `kty` or curve, `use` other than `sig`) are skipped and counted in
    /// the second value; a key whose `kid` is not its RFC 7638 thumbprint id is refused.
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
    /// [`Error::InvalidKey`] if the text is not one JSON object with a `keys` array (duplicate
    /// members refused), a member has the wrong type, a usable key is malformed or weak, or
    /// two keys share an id.
    pub fn from_jwks(json: &[u8]) -> Result<(Self, usize)> {
        let bad = |reason| Error::InvalidKey { reason };
        let mut set = json::parse_object(json).ok_or(bad(
            "a JWK Set is one JSON object without duplicate members",
        ))?;
        let Some(serde_json::Value::Array(keys)) = set.remove("keys") else {
            return Err(bad("a JWK Set has a keys array"));
        };
        let mut builder = Self::builder(RotationPolicy::default());
        let mut skipped = 0;
        for key in keys {
            let serde_json::Value::Object(map) = key else {
                return Err(bad("a JWK is a JSON object"));
            };
            match PublicKey::from_jwk_map(&map) {
                Ok(k) => builder = builder.public_key(k, KeyState::Active, i64::MIN, 0),
                Err(Error::InvalidKey {
                    reason: "unsupported kty or crv" | "JWK is not for signatures",
                }) => skipped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok((builder.build()?, skipped))
    }
}
