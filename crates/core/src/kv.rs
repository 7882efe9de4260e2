use std::fmt;

use async_trait::async_trait;

use crate::{Result, Timestamp};

/// The longest key of the opaque key-value namespace, in bytes.
pub const MAX_KV_KEY_LEN: usize = 1024;

/// The key-value stores of a backend, kept apart from [`SessionStore`](crate::SessionStore)
/// (an extension capability) and from its keys: a value here is never a session.
///
/// Two stores in one trait:
///
/// - the **opaque key-value namespace** behind the Kask-compatible API (`kv_*`): raw keys,
///   values the store never interprets, each with an expiry;
/// - the **keyed store** behind `/v1/kv` (`ns_*`): values under SHA-256 digests of the
///   application's keys ([`KvKey`]) in named [`KvNamespace`]s, each namespace with a count
///   of its values and a generation, so that clearing it is one write.
///
/// # Promises (checked by `kv_conformance_tests!`)
///
/// - `kv_get` and `ns_get` never return an expired value;
/// - `kv_put` and `ns_put` replace any value under the key, with the new expiry;
/// - `kv_delete` and `ns_delete` are idempotent;
/// - `ns_touch` moves the expiry of a live value, and of nothing else;
/// - `ns_count` counts the values put in the namespace since its last clear, less those
///   deleted or purged; a value that expired but is not purged yet may still count (a
///   purge interval at most; Redis counts exactly);
/// - `ns_clear` hides every value of the namespace at once, whatever their number, and
///   resets its count; the hidden values are removed at their expiry (a bound:
///   the service's `kv.max_ttl`);
/// - `kv_purge_expired` removes expired values of both stores, and nothing else; a value
///   it removed never reads back, whatever `now` a later read passes.
#[async_trait]
pub trait KvStore: Send + Sync + fmt::Debug + 'static {
    /// The value under `key`, unless it expired at `now`.
    async fn kv_get(&self, key: &[u8], now: Timestamp) -> Result<Option<Vec<u8>>>;

    /// Stores `value` under `key` until `expires_at`. `now` is the caller's time of the write
    /// (the engine's clock): a store with native TTLs measures them from it
    /// (`expires_at - now`), never from its own clock, which may disagree.
    async fn kv_put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;

    /// Removes the value under `key`, if any.
    async fn kv_delete(&self, key: &[u8]) -> Result<()>;

    /// Removes expired values; returns how many went.
    async fn kv_purge_expired(&self, now: Timestamp) -> Result<u64>;

    /// The value under `key` in `ns`, with its expiry, unless it expired at `now`.
    async fn ns_get(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        now: Timestamp,
    ) -> Result<Option<KvEntry>>;

    /// Stores `value` under `key` in `ns` until `expires_at` (after `now`, the caller's
    /// time of the write, as for [`KvStore::kv_put`]), replacing any value there.
    async fn ns_put(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;

    /// Moves the expiry of the live value under `key` to `expires_at` without rewriting
    /// it; `false` (and nothing written) when there is none at `now`.
    async fn ns_touch(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;

    /// Removes the value under `key`, if any; `true` when a live value (at `now`) went.
    async fn ns_delete(&self, ns: &KvNamespace, key: &KvKey, now: Timestamp) -> Result<bool>;

    /// How many values `ns` holds (see the promises above), without a scan.
    async fn ns_count(&self, ns: &KvNamespace, now: Timestamp) -> Result<u64>;

    /// Hides every value of `ns` at once and resets its count (one write: the namespace's
    /// generation moves on; the hidden values go at their expiry).
    async fn ns_clear(&self, ns: &KvNamespace, now: Timestamp) -> Result<()>;
}

/// The longest namespace name of the keyed store, in bytes.
pub const MAX_KV_NAMESPACE_LEN: usize = 64;

/// A namespace of the keyed store (`/v1/kv/{namespace}`): 1 to [`MAX_KV_NAMESPACE_LEN`]
/// characters of `A-Z a-z 0-9 _ - .`, not starting with `.` (so no path segment `.` or `..`).
///
/// Each namespace has its own count of values and its own generation: clearing it is one
/// write (the generation moves on), whatever it holds.
///
/// # Examples
///
/// ```
/// use tessera_core::KvNamespace;
/// assert_eq!(KvNamespace::try_new("express-sessions").unwrap().as_str(), "express-sessions");
/// assert!(KvNamespace::try_new("..").is_err());
/// assert!(KvNamespace::try_new("a/b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KvNamespace(String);

/// A namespace name outside the rule of [`KvNamespace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a namespace is 1 to 64 characters of A-Z a-z 0-9 _ - . and does not start with a dot")]
pub struct InvalidNamespace;

impl InvalidNamespace {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        "kv-invalid-namespace"
    }
}

impl KvNamespace {
    /// Checks the name.
    ///
    /// # Errors
    ///
    /// [`InvalidNamespace`] for an empty name, one over 64 bytes, one starting with `.`, or
    /// one with a character other than `A-Z a-z 0-9 _ - .`.
    pub fn try_new(name: &str) -> Result<Self, InvalidNamespace> {
        let ok = (1..=MAX_KV_NAMESPACE_LEN).contains(&name.len())
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidNamespace)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key of the keyed store as stored: the SHA-256 of the application's key, so a dump of
/// the store names no key an application uses (express-session's keys are its session
/// cookies' ids).
///
/// # Examples
///
/// ```
/// use tessera_core::KvKey;
/// let k = KvKey::digest(b"abc");
/// assert_eq!(&k.to_hex()[..16], "ba7816bf8f01cfea");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KvKey([u8; 32]);

impl KvKey {
    /// The stored form of the application's key `key`.
    pub fn digest(key: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(key).into())
    }

    /// A digest read back from a backend.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex (64 characters), for backends whose keys are text.
    pub fn to_hex(&self) -> String {
        crate::hex::to_hex(&self.0)
    }
}

impl fmt::Debug for KvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest, not a secret; 64 bits are enough to tell keys apart in a log.
        let hex = self.to_hex();
        write!(f, "KvKey({}…)", hex.get(..16).unwrap_or_default())
    }
}

/// A value of the keyed store, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The bytes stored.
    pub value: Vec<u8>,
    /// When it expires.
    pub expires_at: Timestamp,
}
