//! Tessera's core: the domain types of a session system, the injected [`Clock`], and the
//! [`SessionStore`] contract that every backend implements.
//!
//! This crate does no I/O. Store crates depend on it alone; the engine (`tessera`) builds the
//! session lifecycle on top of it.
//!
//! | feature   | what it adds |
//! |-----------|--------------|
//! | `testing` | [`testing`]: the store conformance suite every backend runs |
//! | `purge`   | [`purge`]: the background purge loop, for every store |
//!
//! # Security
//!
//! A [`Handle`] is the bearer secret a browser holds. It is never stored: the store is keyed
//! by its SHA-256 digest ([`StoreKey`]), so a dump of the store hijacks nobody. Its `Debug`
//! is redacted and it has no `Display`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod blob;
mod error;
mod handle;
mod hex;
mod kv;
mod record;
mod revocation;
mod store;
mod time;
mod url;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "purge")]
pub mod purge;

#[doc(hidden)]
pub mod fuzzing;

pub use blob::{Blob, BlobStore, MAX_BLOB_NAME_LEN};
pub use error::{BoxError, Error, Result};
pub use handle::{HANDLE_LEN, Handle, SessionKind, StoreKey};
pub use hex::{push_hex, to_hex};
pub use kv::{
    InvalidNamespace, KvEntry, KvKey, KvNamespace, KvStore, MAX_KV_KEY_LEN, MAX_KV_NAMESPACE_LEN,
};
pub use record::{Expiry, MAX_USER_ID_LEN, RecordError, SessionRecord, User};
pub use revocation::{Revocation, RevocationLog, RevokedSubject};
pub use store::SessionStore;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use url::redact_url;
