//! The engine's keys: the handle it shares them through, and the files they live in.
//!
//! - The token signing keys and the sealing keys of anonymous cookies and secrets are
//!   shared with whatever rotates them behind one handle type, [`SharedKeys`]. A handle is
//!   cheap to clone; clones see the same keys, so a key schedule (the service's
//!   key-directory sync, a test) swaps keys under a running engine with
//!   [`SharedKeys::replace`] or [`SharedKeys::update`], and the next request uses them.
//! - On disk, keys follow the layout of `tessera serve`'s data directory ([`files`]): the
//!   CSRF key in `csrf.key`, the sealing keys in `keys/`.

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
