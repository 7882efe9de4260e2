use std::fmt;

use async_trait::async_trait;

use crate::Result;

/// The longest blob name, in bytes.
pub const MAX_BLOB_NAME_LEN: usize = 256;

/// One stored blob: its bytes and its version.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blob {
    /// The bytes, as written. The store never interprets them.
    pub value: Vec<u8>,
    /// The version: 1 after the first write, one more after each write since.
    pub version: u64,
}

impl Blob {
    /// A blob of `value` at `version` (what a backend read).
    pub fn new(value: Vec<u8>, version: u64) -> Self {
        Self { value, version }
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bytes may be ciphertext of keys: their length says enough.
        f.debug_struct("Blob")
            .field("len", &self.value.len())
            .field("version", &self.version)
            .finish()
    }
}

/// Versioned blobs under names, changed only by compare-and-set: what a fleet of nodes
/// shares through its store besides sessions (the sealed key manifest, the rotation lease).
/// An extension capability of a [`SessionStore`](crate::SessionStore), reached with
/// [`SessionStore::as_blobs`](crate::SessionStore::as_blobs).
///
/// Names are short ASCII strings chosen by Tessera (`tessera/keys`, …), at most
/// [`MAX_BLOB_NAME_LEN`] bytes; values are bytes the store never interprets. A blob never
/// expires and is never purged.
///
/// # Promises (checked by `blob_conformance_tests!`)
///
/// - `blob_get` of a name never written is `None`;
/// - `blob_put(name, expected, value)` writes only if the stored version is `expected` (`0`
///   for "no blob yet"), and the new version is then `expected + 1`; otherwise it fails with
///   [`Error::Conflict`](crate::Error::Conflict) and writes nothing;
/// - of concurrent puts with the same `expected`, exactly one succeeds;
/// - a successful put is read back, bytes and version, by every later `blob_get`.
///
/// Versions are counted, not drawn, so a caller knows the version its write will get
/// before it writes: a sealed blob binds it as associated data, and a replay of older bytes
/// at a newer version is refused.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// The blob under `name`, if any.
    async fn blob_get(&self, name: &str) -> Result<Option<Blob>>;

    /// Writes `value` under `name` if the stored version is `expected` (`0`: none yet), and
    /// returns the new version, `expected + 1`.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`](crate::Error::Conflict) when the stored version is another.
    async fn blob_put(&self, name: &str, expected: u64, value: &[u8]) -> Result<u64>;
}
