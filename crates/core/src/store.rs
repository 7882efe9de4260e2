use std::fmt;
use std::path::Path;

use async_trait::async_trait;

use crate::{BlobStore, KvStore, Result, RevocationLog, SessionRecord, StoreKey, Timestamp};

/// The contract every session backend keeps. The conformance suite in
/// `tessera_core::testing` checks it on each one.
///
/// # Design
///
/// The trait is object-safe (`async_trait`) because the engine holds `Arc<dyn SessionStore>`
/// chosen from configuration at run time, and routes by session kind between two of them.
///
/// # Promises
///
/// - **`create` is unique**: it fails with [`Error::AlreadyExists`](crate::Error) when any
///   record or tombstone is under the key.
/// - **`load` never returns a dead record**: not expired (`now >= expires_at`), not
///   tombstoned, and not an authenticated session created at or before its user's
///   revocation time. The rule is [`SessionRecord::is_live`]; `list_user_sessions` and
///   `save` keep it too.
/// - **`save` is compare-and-set**: it writes only if the stored version equals `expected`,
///   else [`Error::Conflict`](crate::Error); if no live record is there (expired, deleted,
///   never created) it fails with [`Error::NotFound`](crate::Error) and writes nothing, so a
///   request racing a logout cannot resurrect the session.
/// - **`delete` leaves a tombstone** until `tombstone_until` and is idempotent.
/// - **The user index** lists a user's live sessions; entries go with their session.
/// - **The revocation time** of a user only moves forward.
/// - **`purge_expired`** removes expired records, tombstones and index entries; it is safe to
///   run at any time.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// A short name for metrics (`memory`, `redb`, `redis`, `postgres`).
    fn backend(&self) -> &'static str;

    /// The backend's opaque key-value namespace (the Kask-compatible API), if it has one.
    fn as_kv(&self) -> Option<&dyn KvStore> {
        None
    }

    /// The backend's revocation log (the source of the revocation feed), if it has one.
    fn as_revocation_log(&self) -> Option<&dyn RevocationLog> {
        None
    }

    /// The backend's versioned blobs (keys shared by a fleet, the rotation lease), if it has
    /// them.
    fn as_blobs(&self) -> Option<&dyn BlobStore> {
        None
    }

    /// The directory the store keeps its files in, if it has one (an embedded store: the
    /// directory of its file); `None` for a store in memory or on a server. The engine keeps
    /// its keys beside such a store unless told otherwise, as `tessera serve` keeps them in
    /// its data directory.
    fn directory(&self) -> Option<&Path> {
        None
    }

    /// Stores a new record under `key`, and indexes it under its user if it has one.
    async fn create(&self, key: &StoreKey, record: &SessionRecord) -> Result<()>;

    /// The live record under `key`, if any.
    async fn load(&self, key: &StoreKey, now: Timestamp) -> Result<Option<SessionRecord>>;

    /// Replaces the live record under `key` if its version is `expected`.
    async fn save(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<()>;

    /// Removes the record under `key` and leaves a tombstone until `tombstone_until`.
    async fn delete(&self, key: &StoreKey, tombstone_until: Timestamp) -> Result<()>;

    /// The live sessions of `user_id`.
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<(StoreKey, SessionRecord)>>;

    /// Sets the user's revocation time to `at` unless it is already later. Sessions created at
    /// or before it no longer load.
    async fn revoke_user(&self, user_id: &str, at: Timestamp) -> Result<()>;

    /// The user's revocation time, if one was set.
    async fn user_revoked_at(&self, user_id: &str) -> Result<Option<Timestamp>>;

    /// Removes expired records, tombstones and their index entries; returns how many records
    /// and tombstones went.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64>;
}
