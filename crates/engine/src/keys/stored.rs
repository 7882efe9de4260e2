//! Keys in the store, for a fleet of nodes with no shared disk (`[keys] storage = "store"`).
//!
//! The token signing keys, the sealing keys and the CSRF key live in one record, the **key
//! manifest**, a blob ([`BlobStore`]) under [`KEYS_BLOB`], sealed with XChaCha20-Poly1305
//! under a key-encryption key (the [`MasterKey`]) that every node reads from a file:
//!
//! ```text
//! {"format":1,"kind":"tessera-keys","kek":"<master key id>","nonce":"<24 bytes>","ciphertext":"…"}
//!   associated data: "tessera-keys-record-v1" 0 name 0 kind 0 version (8 bytes BE) kek
//!   plaintext: {"format":1,"signing":<manifest.json>,"signing_keys":{"<kid>":"<PKCS#8>"},
//!               "seal":[{"kid","created_at","key"}],"csrf":"<32 bytes>"}
//! ```
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tessera_core::BlobStore;
use tessera_token::seal::{SealKey, SealKeyring, SealPolicy};
use tessera_token::{KeySource, Keyring, RotationPolicy};
use zeroize::Zeroizing;

use super::files::{self, KeyFileError};
use crate::csrf::CsrfKey;

/// The blob that holds the sealed key manifest.
pub const KEYS_BLOB: &str = "tessera/keys";
/// The blob that holds the rotation lease: `{"holder","until"}`, no secret.
pub const LEASE_BLOB: &str = "tessera/keys/lease";
/// The record kind bound into the associated data.
const KIND: &str = "tessera-keys";
const FORMAT: u32 = 1;
const AAD_LABEL: &[u8] = b"tessera-keys-record-v1";
/// Encoded plaintexts stay far below this: the buffer never reallocates (a reallocation
/// would leave a copy of the keys in freed memory).
const PLAINTEXT_CAPACITY: usize = 256 * 1024;

/// Why keys in the store could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoredKeysError {
    /// The store has no versioned blobs to keep keys in.
    #[error(
        "the {backend} store cannot hold keys ([keys] storage = \"store\" needs memory, redb, Redis or Postgres)"
    )]
    Unsupported {
        /// The store's backend name.
        backend: &'static str,
    },
    /// The store failed.
    #[error("the store failed while reading or writing the keys")]
    Store(#[source] tessera_core::Error),
    /// The stored keys are sealed under another master key than this node's.
    #[error(
        "the keys in the store are sealed under master key {stored}, but TESSERA_MASTER_KEY_FILE \
         holds master key {given}: give this node the fleet's master key file (the stored keys \
         are left unchanged)"
    )]
    WrongMasterKey {
        /// The id of the master key the record names.
        stored: String,
        /// The id of this node's master key.
        given: String,
    },
    /// The record does not open: altered, moved, or replayed at another version.
    #[error(
        "the key record {name} (version {version}) in the store was altered or replayed: it does \
         not open under the master key, so it is refused; restore it from a backup"
    )]
    Tampered {
        /// The blob's name.
        name: &'static str,
        /// The blob's version.
        version: u64,
    },
    /// The record opened but does not hold valid keys (a bug or a newer format).
    #[error("the key record {name} holds no valid keys: {reason}")]
    Invalid {
        /// The blob's name.
        name: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The keyring inside the record is not valid.
    #[error("the key record {name} holds an invalid keyring")]
    Keyring {
        /// The blob's name.
        name: &'static str,
        /// The keyring's error.
        #[source]
        source: tessera_token::Error,
    },
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
}

impl StoredKeysError {
    /// Every code [`StoredKeysError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "keys-store-unsupported",
        "keys-store-failed",
        "keys-wrong-master-key",
        "keys-record-tampered",
        "keys-record-invalid",
        "keys-record-keyring",
        "keys-store-random-failed",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsupported { .. } => "keys-store-unsupported",
            Self::Store(_) => "keys-store-failed",
            Self::WrongMasterKey { .. } => "keys-wrong-master-key",
            Self::Tampered { .. } => "keys-record-tampered",
            Self::Invalid { .. } => "keys-record-invalid",
            Self::Keyring { .. } => "keys-record-keyring",
            Self::Random(_) => "keys-store-random-failed",
        }
    }
}

// === impl MasterKey ===

/// The key-encryption key of a fleet: 32 random bytes every node reads from the same file
/// (`TESSERA_MASTER_KEY_FILE`). Its id, a digest, names it in the records it seals.
///
/// # Security
///
/// Zeroized on drop; `Debug` prints the id only. The id is a truncated SHA-256 under a
/// label of its own: it tells keys apart and reveals nothing of them.
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
}

impl MasterKey {
    /// A master key of 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let key = Zeroizing::new(bytes);
        let mut h = Sha256::new();
        h.update(b"tessera-master-key-id-v1");
        h.update(key.as_ref());
        let digest: [u8; 32] = h.finalize().into();
        let id = URL_SAFE_NO_PAD.encode(digest.get(..12).unwrap_or_default());
        Self { key, id }
    }

    /// The master key in `path`: 32 bytes in unpadded base64url, a file that group and others
    /// cannot read (the rule of every key file, [`files::read_secret`]). Never created here:
    /// every node of a fleet must read the same key, so a missing file is an error.
    ///
    /// # Errors
    ///
    /// [`KeyFileError::Invalid`] for a file others can read or that does not hold a key;
    /// [`KeyFileError::Io`] for a missing or unreadable file.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = files::read_secret(path)?;
        let key = files::decode_key32(
            &text,
            path,
            "must hold 32 random bytes in unpadded base64url, the same file on every node \
             (make one with `tessera keys master-key > FILE`)",
        )?;
        Ok(Self::from_bytes(*key))
    }

    /// A fresh random master key, and its file text (unpadded base64url and a newline).
    ///
    /// # Errors
    ///
    /// Fails only if the OS random source fails.
    pub fn generate() -> Result<(Self, Zeroizing<String>), getrandom::Error> {
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(raw.as_mut())?;
        let mut text = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
        text.push('\n');
        Ok((Self::from_bytes(*raw), text))
    }

    /// The key's id: what records name it by, and what errors show.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

// === the record ===

/// The policies the stored keyrings are loaded with.
#[derive(Debug, Clone)]
pub struct StoredPolicies {
    /// The token keyring's rotation policy.
    pub tokens: RotationPolicy,
    /// The sealing keys' policy.
    pub seal: SealPolicy,
}

/// The keys of a fleet, as read from (or written to) the store at one version.
#[derive(Debug)]
#[non_exhaustive]
pub struct StoredKeys {
    /// The token signing keys.
    pub tokens: Keyring,
    /// The sealing keys of anonymous cookies and secrets.
    pub seal: SealKeyring,
    /// The CSRF key (and the key of session `sid`s).
    pub csrf: CsrfKey,
    /// The blob version they were read at or written as.
    pub version: u64,
}

/// A secret string in the plaintext: zeroized on drop, never printed.
struct Secret(Zeroizing<String>);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The string is moved into the zeroizing wrapper, not copied.
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

impl Secret {
    fn of(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes)))
    }

    fn bytes(&self) -> Option<Zeroizing<Vec<u8>>> {
        URL_SAFE_NO_PAD
            .decode(self.0.as_bytes())
            .ok()
            .map(Zeroizing::new)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    format: u32,
    signing: Value,
    signing_keys: BTreeMap<String, Secret>,
    seal: Vec<PlainSeal>,
    csrf: Secret,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainSeal {
    kid: String,
    created_at: i64,
    key: Secret,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: u32,
    kind: String,
    kek: String,
    nonce: String,
    ciphertext: String,
}

fn invalid(reason: impl Into<String>) -> StoredKeysError {
    StoredKeysError::Invalid {
        name: KEYS_BLOB,
        reason: reason.into(),
    }
}

fn keyring_error(source: tessera_token::Error) -> StoredKeysError {
    StoredKeysError::Keyring {
        name: KEYS_BLOB,
        source,
    }
}

fn origin() -> &'static Path {
    Path::new("store:tessera/keys")
}

fn aad(name: &str, version: u64, kek: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + name.len() + KIND.len() + 11 + kek.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(KIND.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(kek.as_bytes());
    aad
}

/// The plaintext of a record holding these keys.
fn encode(
    tokens: &Keyring,
    seal: &SealKeyring,
    csrf: &CsrfKey,
) -> Result<Zeroizing<Vec<u8>>, StoredKeysError> {
    let manifest = tokens.manifest_json(origin()).map_err(keyring_error)?;
    let signing: Value = serde_json::from_slice(&manifest)
        .map_err(|e| invalid(format!("cannot encode the manifest: {e}")))?;
    let mut signing_keys = BTreeMap::new();
    for sk in tokens.secret_keys() {
        let der = sk.to_pkcs8_der().map_err(keyring_error)?;
        signing_keys.insert(sk.kid().to_string(), Secret::of(&der));
    }
    let plain = Plain {
        format: FORMAT,
        signing,
        signing_keys,
        seal: seal
            .secret_keys()
            .map(|(k, created_at)| PlainSeal {
                kid: k.kid().to_owned(),
                created_at,
                key: Secret::of(k.expose_bytes()),
            })
            .collect(),
        csrf: Secret::of(csrf.expose_bytes()),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(PLAINTEXT_CAPACITY));
    serde_json::to_writer(&mut *out, &plain).map_err(|e| invalid(format!("cannot encode: {e}")))?;
    Ok(out)
}

/// The keys in a record's plaintext.
fn decode(
    bytes: &[u8],
    policies: &StoredPolicies,
) -> Result<(Keyring, SealKeyring, CsrfKey), StoredKeysError> {
    let plain: Plain =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("unexpected shape: {e}")))?;
    if plain.format != FORMAT {
        return Err(invalid(format!("unknown format {}", plain.format)));
    }
    let manifest = serde_json::to_vec(&plain.signing)
        .map_err(|e| invalid(format!("cannot read the manifest: {e}")))?;
    let tokens =
        Keyring::from_manifest_json(&manifest, origin(), policies.tokens.clone(), &mut |kid| {
            plain
                .signing_keys
                .get(kid)
                .and_then(Secret::bytes)
                .ok_or_else(|| tessera_token::Error::Manifest {
                    path: origin().to_owned(),
                    reason: format!("no private key for {kid}"),
                    source: None,
                })
        })
        .map_err(keyring_error)?;
    if plain.seal.is_empty() {
        return Err(invalid("no sealing key"));
    }
    let mut seal = SealKeyring::with_policy(policies.seal.clone());
    // In the written order (newest first): `with_key` sorts by time and keeps the order of
    // keys of equal times, as a directory load does.
    for s in &plain.seal {
        let raw = s
            .key
            .bytes()
            .ok_or_else(|| invalid("a sealing key is not base64url"))?;
        let bytes: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| invalid("a sealing key is not 32 bytes"))?;
        let key = SealKey::from_bytes(bytes);
        if key.kid() != s.kid {
            return Err(invalid(format!("sealing key {} is another key", s.kid)));
        }
        seal = seal.with_key(key, s.created_at);
    }
    let raw = plain
        .csrf
        .bytes()
        .ok_or_else(|| invalid("the CSRF key is not base64url"))?;
    let csrf: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| invalid("the CSRF key is not 32 bytes"))?;
    Ok((tokens, seal, CsrfKey::from_bytes(csrf)))
}

/// Seals `plaintext` as the record `name` will hold at `version`.
fn seal_record(
    master: &MasterKey,
    name: &str,
    version: u64,
    plaintext: &[u8],
) -> Result<Vec<u8>, StoredKeysError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(StoredKeysError::Random)?;
    let cipher = XChaCha20Poly1305::new(master.key.as_ref().into());
    let aad = aad(name, version, &master.id);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| invalid("cannot seal"))?;
    let envelope = Envelope {
        format: FORMAT,
        kind: KIND.to_owned(),
        kek: master.id.clone(),
        nonce: URL_SAFE_NO_PAD.encode(nonce),
        ciphertext: URL_SAFE_NO_PAD.encode(ciphertext),
    };
    serde_json::to_vec(&envelope).map_err(|e| invalid(format!("cannot encode: {e}")))
}

/// Opens the record read from `name` at `version`.
fn open_record(
    master: &MasterKey,
    name: &'static str,
    version: u64,
    bytes: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StoredKeysError> {
    let tampered = || StoredKeysError::Tampered { name, version };
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|_| tampered())?;
    if envelope.format != FORMAT || envelope.kind != KIND {
        return Err(tampered());
    }
    if envelope.kek != master.id {
        return Err(StoredKeysError::WrongMasterKey {
            stored: envelope.kek,
            given: master.id.clone(),
        });
    }
    let nonce: [u8; 24] = URL_SAFE_NO_PAD
        .decode(envelope.nonce.as_bytes())
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(tampered)?;
    let ciphertext = URL_SAFE_NO_PAD
        .decode(envelope.ciphertext.as_bytes())
        .map_err(|_| tampered())?;
    let cipher = XChaCha20Poly1305::new(master.key.as_ref().into());
    let aad = aad(name, version, &master.id);
    cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| tampered())
}

// === impl KeyVault ===

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
        Ok(Self { store, master })
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
        let plain = open_record(&self.master, KEYS_BLOB, blob.version, &blob.value)?;
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
        let (tokens, seal, csrf) = decode(plaintext, policies)?;
        Ok(StoredKeys {
            tokens,
            seal,
            csrf,
            version,
        })
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
    /// active key valid from `now`, one sealing key, a CSRF key) written as version 1. Of
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
        let csrf = CsrfKey::generate().map_err(StoredKeysError::Random)?;
        match self.write(0, &tokens, &seal, &csrf).await {
            Ok(version) => Ok((
                StoredKeys {
                    tokens,
                    seal,
                    csrf,
                    version,
                },
                true,
            )),
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

    /// Writes these keys over the manifest at version `expected` (`0`: none yet) and returns
    /// the new version.
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Store`] with [`tessera_core::Error::Conflict`] when the manifest
    /// is no longer at `expected` (another node changed it: read it again); other store
    /// failures.
    pub async fn write(
        &self,
        expected: u64,
        tokens: &Keyring,
        seal: &SealKeyring,
        csrf: &CsrfKey,
    ) -> Result<u64, StoredKeysError> {
        let version = expected
            .checked_add(1)
            .ok_or_else(|| invalid("version overflow"))?;
        let plain = encode(tokens, seal, csrf)?;
        let record = seal_record(&self.master, KEYS_BLOB, version, &plain)?;
        self.blobs()?
            .blob_put(KEYS_BLOB, expected, &record)
            .await
            .map_err(StoredKeysError::Store)
    }
}

// === the rotation ===

/// What one step of the schedule changed in a copy of the stored keys.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct StoredRotation {
    /// The token keys' changes.
    pub tokens: tessera_token::Rotation,
    /// The sealing keys' changes.
    pub seal: tessera_token::seal::SealRotation,
}

impl StoredRotation {
    /// Whether anything changed (and must be written).
    pub fn changed(&self) -> bool {
        self.tokens.changed() || self.seal.changed()
    }
}

#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: i64,
}

impl KeyVault {
    /// The keys of a plaintext from [`KeyVault::read`] with the schedule applied at `now`
    /// (token keys: publish, promote, retire, drop; sealing keys: rotate, drop), and what
    /// changed. Blocking: key generation (RSA takes seconds). Nothing is written: write the
    /// result with [`KeyVault::write`] at `version` when [`StoredRotation::changed`].
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
        Ok((k, StoredRotation { tokens, seal }))
    }

    /// Takes (or renews) the rotation lease for `holder` until `now + ttl`, if it is free,
    /// lapsed, or `holder`'s already; returns whether `holder` holds it. Taken by
    /// compare-and-set, so of nodes racing for it one wins; a node that dies holding it
    /// loses it when `ttl` runs out. The lease only keeps nodes from generating keys in
    /// vain: what guards the keys is the manifest's own compare-and-set.
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Store`] (other than the conflict of a lost race, which is `false`).
    pub async fn take_lease(
        &self,
        holder: &str,
        now: i64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoredKeysError> {
        let blobs = self.blobs()?;
        let current = blobs
            .blob_get(LEASE_BLOB)
            .await
            .map_err(StoredKeysError::Store)?;
        let expected = current.as_ref().map_or(0, |b| b.version);
        if let Some(b) = &current
            // A lease that does not parse is no one's: taken over.
            && let Ok(lease) = serde_json::from_slice::<Lease>(&b.value)
            && lease.holder != holder
            && lease.until > now
        {
            return Ok(false);
        }
        let lease = Lease {
            holder: holder.to_owned(),
            until: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        };
        let bytes =
            serde_json::to_vec(&lease).map_err(|e| invalid(format!("cannot encode: {e}")))?;
        match blobs.blob_put(LEASE_BLOB, expected, &bytes).await {
            Ok(_) => Ok(true),
            Err(tessera_core::Error::Conflict) => Ok(false),
            Err(e) => Err(StoredKeysError::Store(e)),
        }
    }
}

#[cfg(test)]
mod tests;
