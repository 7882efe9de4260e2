//! Why keys in the store could not be used.

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
