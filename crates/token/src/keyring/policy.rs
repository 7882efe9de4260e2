//! The rules of a keyring ([`RotationPolicy`]), where a key is in its life ([`KeyState`]),
//! and where new keys come from ([`KeySource`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::secs;
use crate::error::Result;
use crate::key::{Algorithm, RsaBits, SigningKey};

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
    /// Refused: tokens it signed fail with [`Error::KeyRevoked`](crate::Error::KeyRevoked). Kept (public half only)
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
    // Seconds; read by the schedule in `rotate.rs`.
    pub(super) rotate_every: i64,
    pub(super) publish_ahead: i64,
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
    /// The algorithm of the keys [`Keyring::rotate_at`](crate::Keyring::rotate_at) generates.
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
    pub(super) fn retention(&self) -> i64 {
        self.max_token_lifetime.saturating_add(self.skew)
    }
}

/// Makes new keys. [`OsKeySource`] is the real one; tests pass closures that fail.
pub trait KeySource {
    /// A new signing key of `algorithm`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyGeneration`](crate::Error::KeyGeneration) (or any error): the keyring stays as it was.
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
