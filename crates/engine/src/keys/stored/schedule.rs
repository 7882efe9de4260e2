//! The fleet's rotation, on a copy of the keys read from the store.

use tessera_token::KeySource;

use super::{KeyVault, StoredKeys, StoredKeysError, StoredPolicies, keyring_error};

/// What one step of the schedule changed in a copy of the stored keys.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct StoredRotation {
    /// The token keys' changes.
    pub tokens: tessera_token::Rotation,
    /// The sealing keys' changes.
    pub seal: tessera_token::seal::SealRotation,
    /// The CSRF keys' changes.
    pub csrf: crate::csrf::CsrfRotation,
}

impl StoredRotation {
    /// Whether anything changed (and must be written).
    pub fn changed(&self) -> bool {
        self.tokens.changed() || self.seal.changed() || self.csrf.changed()
    }
}

impl KeyVault {
    /// The keys of a plaintext from [`KeyVault::read`] with the schedule applied at `now`
    /// (token keys: publish, promote, retire, drop; sealing and CSRF keys: rotate, drop),
    /// and what changed. Blocking: key generation (RSA takes seconds). Nothing is written:
    /// write the result with [`KeyVault::write`] at `version` when
    /// [`StoredRotation::changed`].
    ///
    /// # Errors
    ///
    /// As [`KeyVault::decode`], and key generation failures (the stored keys stay as they
    /// are: signing never depends on a new key being made).
    pub fn rotate_plain(
        plaintext: &[u8],
        version: u64,
        policies: &StoredPolicies,
        now: i64,
        keys: &mut dyn KeySource,
    ) -> Result<(StoredKeys, StoredRotation), StoredKeysError> {
        let mut k = Self::decode(plaintext, version, policies)?;
        let tokens = k.tokens.rotate_at(now, keys).map_err(keyring_error)?;
        let seal = k.seal.rotate_at(now).map_err(keyring_error)?;
        let csrf = k.csrf.rotate_at(now).map_err(StoredKeysError::Random)?;
        Ok((k, StoredRotation { tokens, seal, csrf }))
    }
}
