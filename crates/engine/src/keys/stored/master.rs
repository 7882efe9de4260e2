//! The key-encryption key of a fleet.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::keys::files::{self, KeyFileError};

/// The key-encryption key of a fleet: 32 random bytes every node reads from the same file
/// (`TESSERA_MASTER_KEY_FILE`). Its id, a digest, names it in the records it seals.
///
/// # Security
///
/// Zeroized on drop; `Debug` prints the id only. The id is a truncated SHA-256 under a
/// label of its own: it tells keys apart and reveals nothing of them.
pub struct MasterKey {
    pub(super) key: Zeroizing<[u8; 32]>,
    pub(super) id: String,
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
