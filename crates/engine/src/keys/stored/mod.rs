//! Keys in the store, for a fleet of nodes with no shared disk (`[keys] storage = "store"`).
//!
//! The token signing keys, the sealing keys, the CSRF keys and the sid key live in one
//! record, the **key
//! manifest**, a blob ([`BlobStore`]) under [`KEYS_BLOB`], sealed with XChaCha20-Poly1305
//! under a key-encryption key (the [`MasterKey`]) that every node reads from a file:
//!
//! ```text
//! {"format":1,"kind":"tessera-keys","kek":"<master key id>","nonce":"<24 bytes>","ciphertext":"…"}
//!   associated data: "tessera-keys-record-v1" 0 name 0 kind 0 version (8 bytes BE) kek
//!   plaintext: {"format":1,"signing":<manifest.json>,"signing_keys":{"<kid>":"<PKCS#8>"},
//!               "seal":[{"kid","created_at","key"}],"sid":"<32 bytes>",
//!               "csrf_keys":[{"kid","created_at","key"}]}
//! ```
//!
//! A record written before the CSRF keys rotated names the sid key `csrf` and has no
//! `csrf_keys`: that key is then the one CSRF key too, so its tokens and sids stay valid
//! (the schedule's first run adds a new CSRF key and writes the record in today's shape).
//!
//! - The store never holds a private key or secret in clear: only ciphertext, the master
//!   key's id (a digest, not the key) and the blob's version.
//! - The associated data binds the record to its name, its kind and its version: a record
//!   altered in the store, moved under another name, or an older record written back at a
//!   newer version (a rollback to keys since rotated away) fails to open and is refused
//!   ([`StoredKeysError::Tampered`]), never used.
//! - The manifest changes only by compare-and-set on the blob's version
//!   ([`BlobStore::blob_put`]): a node that lost a race reads the winner's keys and never
//!   overwrites them. Versions are counted, so a writer knows the version it seals for.
//! - A node with another master key sees the id mismatch before decrypting and refuses with
//!   [`StoredKeysError::WrongMasterKey`]: it never writes, so it cannot overwrite the fleet's
//!   keys.

//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | [`KeyVault`]: read, create once, write by compare-and-set |
//! | `error.rs` | [`StoredKeysError`] |
//! | `master.rs` | [`MasterKey`], the key-encryption key |
//! | `record.rs` | the envelope: sealing and opening a record under the master key |
//! | `codec.rs` | the plaintext: the keys in and out of JSON |
//! | `schedule.rs` | the fleet's rotation on a copy of the keys ([`StoredRotation`]) |
//! | `lease.rs` | the rotation lease ([`KeyVault::take_lease`]) |

use tessera_core::BlobStore;
use tessera_token::seal::{SealKeyring, SealPolicy};
use tessera_token::{KeySource, Keyring, RotationPolicy};
use zeroize::Zeroizing;

use crate::csrf::{CsrfKeyring, CsrfPolicy, SidKey};

mod codec;
mod error;
mod lease;
mod master;
mod record;
mod schedule;

pub use error::StoredKeysError;
pub use master::MasterKey;
use record::{open_record, seal_record};
pub use schedule::StoredRotation;

/// The blob that holds the sealed key manifest.
pub const KEYS_BLOB: &str = "tessera/keys";
/// The blob that holds the rotation lease: `{"holder","until"}`, no secret.
pub const LEASE_BLOB: &str = "tessera/keys/lease";
/// The record kind bound into the associated data.
pub(super) const KIND: &str = "tessera-keys";
pub(super) const FORMAT: u32 = 1;
pub(super) const AAD_LABEL: &[u8] = b"tessera-keys-record-v1";
/// Encoded plaintexts stay far below this: the buffer never reallocates (a reallocation
/// would leave a copy of the keys in freed memory).
pub(super) const PLAINTEXT_CAPACITY: usize = 256 * 1024;

/// The policies the stored keyrings are loaded with.
#[derive(Debug, Clone)]
pub struct StoredPolicies {
    /// The token keyring's rotation policy.
    pub tokens: RotationPolicy,
    /// The sealing keys' policy.
    pub seal: SealPolicy,
    /// The CSRF keys' policy.
    pub csrf: CsrfPolicy,
}

/// The keys of a fleet, as read from (or written to) the store at one version.
#[derive(Debug)]
#[non_exhaustive]
pub struct StoredKeys {
    /// The token signing keys.
    pub tokens: Keyring,
    /// The sealing keys of anonymous cookies and secrets.
    pub seal: SealKeyring,
    /// The key of session `sid`s (never rotated).
    pub sid: SidKey,
    /// The CSRF keys.
    pub csrf: CsrfKeyring,
    /// The blob version they were read at or written as (`0`: not in the store yet).
    pub version: u64,
}

impl StoredKeys {
    /// These keys, not in the store yet (version 0): for [`KeyVault::write`].
    pub fn new(tokens: Keyring, seal: SealKeyring, sid: SidKey, csrf: CsrfKeyring) -> Self {
        Self {
            tokens,
            seal,
            sid,
            csrf,
            version: 0,
        }
    }
}

pub(super) fn invalid(reason: impl Into<String>) -> StoredKeysError {
    StoredKeysError::Invalid {
        name: KEYS_BLOB,
        reason: reason.into(),
    }
}

pub(super) fn keyring_error(source: tessera_token::Error) -> StoredKeysError {
    StoredKeysError::Keyring {
        name: KEYS_BLOB,
        source,
    }
}

/// The fleet's keys in a store: read, created once, changed by compare-and-set.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use tessera::keys::stored::{KeyVault, MasterKey, StoredPolicies};
/// use tessera_core::SessionStore;
/// use tessera_store_memory::MemoryStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::new());
/// let policies = StoredPolicies {
///     tokens: Default::default(),
///     seal: Default::default(),
///     csrf: Default::default(),
/// };
/// let vault = KeyVault::new(store.clone(), MasterKey::from_bytes([7; 32]))?;
/// let mut source = tessera_token::OsKeySource::default();
/// let (first, created) = vault.load_or_create(&policies, 1_800_000_000, &mut source).await?;
/// assert!(created);
/// // Another node with the same master key reads the same keys.
/// let other = KeyVault::new(store, MasterKey::from_bytes([7; 32]))?;
/// let again = other.load(&policies).await?.unwrap();
/// assert_eq!(again.version, first.version);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct KeyVault {
    store: std::sync::Arc<dyn tessera_core::SessionStore>,
    master: MasterKey,
    /// A master key records are opened with but never sealed with (a fleet moving to a new
    /// master key).
    other: Option<MasterKey>,
}

impl KeyVault {
    /// The keys in `store`, sealed under `master`.
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Unsupported`] if the store has no blobs.
    pub fn new(
        store: std::sync::Arc<dyn tessera_core::SessionStore>,
        master: MasterKey,
    ) -> Result<Self, StoredKeysError> {
        if store.as_blobs().is_none() {
            return Err(StoredKeysError::Unsupported {
                backend: store.backend(),
            });
        }
        Ok(Self {
            store,
            master,
            other: None,
        })
    }

    /// Also opens records sealed under `other` (never seals with it): for a fleet moving to
    /// a new master key (docs/fleet.md, "rotating the master key").
    pub fn with_other_master(mut self, other: MasterKey) -> Self {
        self.other = Some(other);
        self
    }

    /// The master key's id.
    pub fn master_id(&self) -> &str {
        self.master.id()
    }

    fn blobs(&self) -> Result<&dyn BlobStore, StoredKeysError> {
        self.store.as_blobs().ok_or(StoredKeysError::Unsupported {
            backend: self.store.backend(),
        })
    }

    /// The version of the stored manifest, `0` if there is none: one small read.
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Store`].
    pub async fn version(&self) -> Result<u64, StoredKeysError> {
        Ok(self
            .blobs()?
            .blob_get(KEYS_BLOB)
            .await
            .map_err(StoredKeysError::Store)?
            .map_or(0, |b| b.version))
    }

    /// The plaintext of the stored manifest and its version, if there is one. Decoding it
    /// ([`KeyVault::decode`]) is CPU work (key parsing) a caller may move off the runtime.
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Store`], [`StoredKeysError::WrongMasterKey`],
    /// [`StoredKeysError::Tampered`].
    pub async fn read(&self) -> Result<Option<(Zeroizing<Vec<u8>>, u64)>, StoredKeysError> {
        let Some(blob) = self
            .blobs()?
            .blob_get(KEYS_BLOB)
            .await
            .map_err(StoredKeysError::Store)?
        else {
            return Ok(None);
        };
        let plain = match open_record(&self.master, KEYS_BLOB, blob.version, &blob.value) {
            Err(StoredKeysError::WrongMasterKey { stored, given }) => match &self.other {
                Some(other) if other.id() == stored => {
                    open_record(other, KEYS_BLOB, blob.version, &blob.value)?
                }
                _ => return Err(StoredKeysError::WrongMasterKey { stored, given }),
            },
            other => other?,
        };
        Ok(Some((plain, blob.version)))
    }

    /// The keys in a plaintext from [`KeyVault::read`].
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Invalid`], [`StoredKeysError::Keyring`].
    pub fn decode(
        plaintext: &[u8],
        version: u64,
        policies: &StoredPolicies,
    ) -> Result<StoredKeys, StoredKeysError> {
        codec::decode(plaintext, version, policies)
    }

    /// The stored keys, if there are any.
    ///
    /// # Errors
    ///
    /// As [`KeyVault::read`] and [`KeyVault::decode`].
    pub async fn load(
        &self,
        policies: &StoredPolicies,
    ) -> Result<Option<StoredKeys>, StoredKeysError> {
        match self.read().await? {
            Some((plain, version)) => Self::decode(&plain, version, policies).map(Some),
            None => Ok(None),
        }
    }

    /// The stored keys, or, if the store has none yet, fresh ones (a token keyring with one
    /// active key valid from `now`, one sealing key, a sid key, a CSRF key) written as
    /// version 1. Of
    /// nodes starting together exactly one writes; the others read its keys. The flag says
    /// whether this call wrote them.
    ///
    /// # Errors
    ///
    /// As [`KeyVault::load`] and [`KeyVault::write`], and key generation failures.
    pub async fn load_or_create(
        &self,
        policies: &StoredPolicies,
        now: i64,
        keys: &mut (dyn KeySource + Send),
    ) -> Result<(StoredKeys, bool), StoredKeysError> {
        if let Some(k) = self.load(policies).await? {
            return Ok((k, false));
        }
        let tokens =
            Keyring::generate_at(now, policies.tokens.clone(), keys).map_err(keyring_error)?;
        let seal = SealKeyring::generate_at(now, policies.seal.clone()).map_err(keyring_error)?;
        // The sid key and the first CSRF key are two keys: only the CSRF key rotates.
        let sid = SidKey::generate().map_err(StoredKeysError::Random)?;
        let csrf = CsrfKeyring::generate_at(now, policies.csrf.clone())
            .map_err(StoredKeysError::Random)?;
        let mut keys = StoredKeys::new(tokens, seal, sid, csrf);
        match self.write(0, &keys).await {
            Ok(version) => {
                keys.version = version;
                Ok((keys, true))
            }
            // Another node created them first: theirs are the fleet's.
            Err(StoredKeysError::Store(tessera_core::Error::Conflict)) => {
                let k = self
                    .load(policies)
                    .await?
                    .ok_or(StoredKeysError::Store(tessera_core::Error::Conflict))?;
                Ok((k, false))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes `keys` over the manifest at version `expected` (`0`: none yet), sealed under
    /// this vault's master key (or its other master key, if the record is sealed under that
    /// one), and returns the new version (`keys.version` is not read).
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Store`] with [`tessera_core::Error::Conflict`] when the manifest
    /// is no longer at `expected` (another node changed it: read it again); other store
    /// failures.
    pub async fn write(&self, expected: u64, keys: &StoredKeys) -> Result<u64, StoredKeysError> {
        let version = expected
            .checked_add(1)
            .ok_or_else(|| invalid("version overflow"))?;
        let plain = codec::encode(keys)?;
        let record = seal_record(
            self.sealing_key(expected).await?,
            KEYS_BLOB,
            version,
            &plain,
        )?;
        self.blobs()?
            .blob_put(KEYS_BLOB, expected, &record)
            .await
            .map_err(StoredKeysError::Store)
    }

    /// The key a write over the record at `expected` seals under: the other master key if
    /// the record is sealed under it (a fleet moving to it: once `reseal` moved the record,
    /// a node that still has the old key as its master key must not move it back), else the
    /// master key.
    async fn sealing_key(&self, expected: u64) -> Result<&MasterKey, StoredKeysError> {
        let Some(other) = &self.other else {
            return Ok(&self.master);
        };
        let current = self
            .blobs()?
            .blob_get(KEYS_BLOB)
            .await
            .map_err(StoredKeysError::Store)?;
        Ok(match current {
            Some(b)
                if b.version == expected
                    && record::kek(&b.value).as_deref() == Some(other.id()) =>
            {
                other
            }
            _ => &self.master,
        })
    }

    /// Seals the stored record again under `to` (the same keys, at the next version, by
    /// compare-and-set): the step of a master key rotation that moves the record. Nodes
    /// that do not hold `to` as their master key or other master key refuse it from then on
    /// (and keep the keys in use).
    ///
    /// # Errors
    ///
    /// As [`KeyVault::read`]; [`StoredKeysError::Store`] with a conflict if the record
    /// changed meanwhile (nothing written: run it again).
    pub async fn reseal(&self, to: &MasterKey) -> Result<u64, StoredKeysError> {
        let (plain, version) = self
            .read()
            .await?
            .ok_or_else(|| invalid("no keys to re-seal"))?;
        let next = version
            .checked_add(1)
            .ok_or_else(|| invalid("version overflow"))?;
        let record = seal_record(to, KEYS_BLOB, next, &plain)?;
        self.blobs()?
            .blob_put(KEYS_BLOB, version, &record)
            .await
            .map_err(StoredKeysError::Store)
    }
}

#[cfg(test)]
mod tests;
