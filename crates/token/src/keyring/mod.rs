//! The keyring: keys with states, the signing key, lookups, and the JWKS.
//!
//! | module | what |
//! |---|---|
//! | `mod.rs` | [`Keyring`], [`KeyringBuilder`], [`KeyInfo`]: the keys, the signing key, lookups, the JWKS |
//! | `policy.rs` | [`KeyState`], [`RotationPolicy`], [`KeySource`], [`OsKeySource`]: the rules and where keys come from |
//! | `rotate.rs` | [`Keyring::rotate_at`], publishing, promoting and revoking keys; [`Rotation`] |

use std::fmt;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::key::{Algorithm, Jwk, JwsAlgorithm, KeyId, PublicKey, SigningKey};

mod policy;
mod rotate;

pub use self::policy::{KeySource, KeyState, OsKeySource, RotationPolicy};
pub use self::rotate::Rotation;

pub(crate) struct Entry {
    pub(crate) public: PublicKey,
    pub(crate) secret: Option<SigningKey>,
    pub(crate) state: KeyState,
    pub(crate) valid_from: i64,
    pub(crate) retired_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
}

impl Entry {
    /// A key with its private half, never retired or revoked.
    fn with_secret(key: SigningKey, state: KeyState, valid_from: i64) -> Self {
        Self {
            public: key.public_key().clone(),
            secret: Some(key),
            state,
            valid_from,
            retired_at: None,
            revoked_at: None,
        }
    }

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
/// and [`Keyring::save`] in `dir/signing.rs`, rotation in `keyring/rotate.rs`; the keys, their
/// states and lookups are here.
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
    /// The keys a token without a `kid` may name (keys given as PEM, which publish no key
    /// id), at most [`MAX_KEYS_WITHOUT_KID`]. Empty for a keyring of Tessera's own.
    without_kid: Vec<KeyId>,
}

/// The most keys a [`Keyring`] holds for tokens without a `kid`
/// ([`KeyringBuilder::public_key_without_kid`]): such a token is checked against each key of
/// its `alg`, so this bounds the signature checks one forged token can cost.
pub const MAX_KEYS_WITHOUT_KID: usize = 8;

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
    without_kid: Vec<KeyId>,
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
        self.entries
            .push(Entry::with_secret(key, state, valid_from));
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

    /// Adds a verify-only key (state `active`, valid since ever) that also verifies tokens
    /// whose header has **no `kid`**: a key given as PEM, such as MediaWiki's
    /// `$wgJwtPublicKey`, whose issuer writes no `kid` (MediaWiki's header is
    /// `{"typ":"JWT","alg":"RS256"}`). A token without a `kid` is checked against each such
    /// key of its `alg`, in the order added; a token with a `kid` finds the key by its
    /// [`KeyId`] as any other.
    ///
    /// # Security
    ///
    /// At most [`MAX_KEYS_WITHOUT_KID`] (more make [`KeyringBuilder::build`] fail), so a
    /// token without a `kid` costs at most that many signature checks. A keyring with no
    /// such key refuses a token without a `kid` (`bad_json`), as before.
    pub fn public_key_without_kid(mut self, key: PublicKey) -> Self {
        self.without_kid.push(key.kid().clone());
        self.public_key(key, KeyState::Active, i64::MIN, 0)
    }

    /// The keyring.
    ///
    /// A keyring without an active key is allowed (signing then fails with
    /// [`Error::NoSigningKey`] until [`Keyring::rotate_at`] makes one): an emergency
    /// revocation must be able to leave it so.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] for two keys with one id, a private half on a retired or
    /// revoked key, or more than [`MAX_KEYS_WITHOUT_KID`] keys for tokens without a `kid`.
    pub fn build(self) -> Result<Keyring> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.without_kid.len() > MAX_KEYS_WITHOUT_KID {
            return Err(Error::InvalidKey {
                reason: "too many keys for tokens without a kid",
            });
        }
        let mut ring = Keyring {
            entries: self.entries,
            policy: self.policy,
            without_kid: self.without_kid,
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
        let key = keys.generate(policy.algorithm())?;
        Self::builder(policy)
            .key(key, KeyState::Active, now)
            .build()
    }

    /// A builder for a keyring with these keys.
    pub fn builder(policy: RotationPolicy) -> KeyringBuilder {
        KeyringBuilder {
            policy,
            entries: Vec::new(),
            without_kid: Vec::new(),
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

    /// The keys that tokens without a `kid` may name, in the order they were added.
    pub fn keys_without_kid(&self) -> &[KeyId] {
        &self.without_kid
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
}
