//! The engine's keys: the handle it shares them through, and the files they live in.
//!
//! - The token signing keys, the sealing keys of anonymous cookies and secrets, and the
//!   CSRF keys are
//!   shared with whatever rotates them behind one handle type, [`SharedKeys`]. A handle is
//!   cheap to clone; clones see the same keys, so a key schedule (the service's
//!   key-directory sync, a test) swaps keys under a running engine with
//!   [`SharedKeys::replace`] or [`SharedKeys::update`], and the next request uses them.
//! - On disk, keys follow the layout of `tessera serve`'s data directory ([`files`]): the
//!   sid key (and first CSRF key) in `csrf.key`, the sealing keys and the rotated CSRF keys
//!   in `keys/`.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, PoisonError, RwLock};

pub mod files;
pub mod stored;

pub use files::KeyFileError;

/// The token signing keys of an engine (and of the service's verifier and JWKS).
pub type TokenKeys = SharedKeys<tessera_token::Keyring>;
/// The sealing keys of anonymous cookies and secrets.
pub type SealKeys = SharedKeys<tessera_token::seal::SealKeyring>;
/// The CSRF keys (the key of session `sid`s is apart: it never rotates).
pub type CsrfKeys = SharedKeys<crate::csrf::CsrfKeyring>;

/// A keyring shared between readers (every request) and a writer (rotation).
///
/// # Examples
///
/// ```
/// use tessera::keys::SealKeys;
/// use tessera_token::seal::{SealKeyring, SealPolicy};
///
/// let keys = SealKeys::new(SealKeyring::generate_at(0, SealPolicy::default())?);
/// let first = keys.read().sealing_kid().map(str::to_owned);
/// // A rotation swaps the keys for every clone of the handle.
/// let clone = keys.clone();
/// keys.replace(SealKeyring::generate_at(10, SealPolicy::default())?);
/// assert_ne!(clone.read().sealing_kid().map(str::to_owned), first);
/// # Ok::<(), tessera_token::Error>(())
/// ```
pub struct SharedKeys<T>(Arc<RwLock<T>>);

impl<T> SharedKeys<T> {
    /// A handle on `keys`.
    pub fn new(keys: T) -> Self {
        Self(Arc::new(RwLock::new(keys)))
    }

    /// The keys as they are now. Hold the guard briefly (not across an `.await`): a
    /// rotation waits for it.
    pub fn read(&self) -> impl Deref<Target = T> + '_ {
        // A writer that panicked left whole keys behind (writers swap or edit in place
        // with methods that keep the keyring consistent), so a poisoned lock is still read.
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Swaps in `keys` and returns the keys they replace.
    pub fn replace(&self, keys: T) -> T {
        let mut guard = self.0.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *guard, keys)
    }

    /// Changes the keys in place (a revocation, a rotation step) and returns what `f` did.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.write().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<T> Clone for SharedKeys<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: fmt::Debug> fmt::Debug for SharedKeys<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keyrings' own Debug prints key ids only.
        f.debug_tuple("SharedKeys").field(&*self.read()).finish()
    }
}

/// A secret string in a key file or record (unpadded base64url of key bytes): zeroized on
/// drop, never printed.
pub(crate) struct Secret(zeroize::Zeroizing<String>);

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The string is moved into the zeroizing wrapper, not copied.
        String::deserialize(d).map(|s| Self(zeroize::Zeroizing::new(s)))
    }
}

impl Secret {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        use base64::Engine as _;
        Self(zeroize::Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    pub(crate) fn bytes(&self) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(self.0.as_bytes())
            .ok()
            .map(zeroize::Zeroizing::new)
    }

    pub(crate) fn text(&self) -> &str {
        &self.0
    }
}
