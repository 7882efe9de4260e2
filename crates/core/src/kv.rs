use std::fmt;

use async_trait::async_trait;

use crate::{Result, Timestamp};

/// The longest key of the opaque key-value namespace, in bytes.
pub const MAX_KV_KEY_LEN: usize = 1024;

/// The opaque key-value namespace behind the Kask-compatible API: values are bytes the
/// store never interprets, each with an expiry. Kept apart from [`SessionStore`](crate::SessionStore)
/// (an extension capability) and from its keys: a value here is never a session.
///
/// # Promises (checked by `kv_conformance_tests!`)
///
/// - `kv_get` never returns an expired value;
/// - `kv_put` replaces any value under the key, with the new expiry;
/// - `kv_delete` is idempotent;
/// - `kv_purge_expired` removes expired values and nothing else.
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
}
