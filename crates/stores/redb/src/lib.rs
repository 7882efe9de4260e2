//! Tessera's embedded session store: one [redb] file, durable across restarts and crashes.
//! It is the default backend: nothing to run beside the server.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use tessera_core::{KvStore, SessionStore, SystemClock};
//! use tessera_store_redb::{RedbStore, spawn_purge};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let data_dir = dir.path();
//! // Creates the file and its parent directories if they are absent.
//! let store = Arc::new(RedbStore::open(data_dir.join("sessions.redb"))?);
//! let purger = spawn_purge(store.clone(), Arc::new(SystemClock), Duration::from_secs(60));
//! assert_eq!(store.backend(), "redb");
//! # purger.abort();
//! # Ok(())
//! # }
//! ```
//!
//! # Durability
//!
//! Every operation that writes is answered only after the redb write transaction that holds
//! it has committed with [`Durability::Immediate`](redb::Durability::Immediate) (redb's
//! default, set explicitly): the data is flushed to stable storage before the call returns. An
//! acknowledged write therefore survives `kill -9`, a crash or a power cut; on the next
//! [`RedbStore::open`] redb repairs whatever a torn commit left behind. A future dropped
//! (cancelled) after its first poll does not cancel its write: it may still commit.
//!
//! # Group commit
//!
//! Writes go through one writer thread per store. Writes that arrive while a commit is in
//! flight are applied together in the next write transaction and made durable by one commit
//! (one fsync); a lone write is committed at once, and after a batch of several writes the
//! writer waits at most 1 ms for the writes still on their way. Each operation keeps its
//! own semantics inside a batch: it sees the writes before it, and a refusal
//! (`AlreadyExists`, `Conflict`, `NotFound`) or a failure of its own fails it alone. A failed
//! commit fails exactly the writes of its batch ([`BatchError`]). [`RedbStore::commit_stats`]
//! counts writes per commit. The rules, and why, are in the `batch` module's source and in
//! `docs/stores.md`.
//!
//! # Atomicity and concurrency
//!
//! Each [`SessionStore`] operation is atomic: all of its writes commit in one transaction, or
//! none do; reads see a consistent snapshot. redb is synchronous: writes run on the writer
//! thread and scans on Tokio's blocking pool (`spawn_blocking`; in place outside a Tokio
//! runtime), while point reads (`load`, `user_revoked_at`) run in place, since an MVCC read
//! never waits for the writer and takes less time than a hand-off to another thread. Writes
//! wait on a channel, so they work on any executor. The file is locked by the process that
//! opened it: a second process (or a second [`RedbStore::open`] of the same file) fails with
//! [`Error::Open`].
//!
//! # Layout (on-disk version 1)
//!
//! | table           | key                          | value |
//! |-----------------|------------------------------|-------|
//! | `sessions`      | store key (32 bytes)         | a format byte, then the record as JSON (`1`) or a tombstone's `until` (`2`: 8 bytes, big-endian ms) |
//! | `user_sessions` | (user id, store key)         | the session's expiry, ms since the epoch |
//! | `expiries`      | (expiry or `until` in ms, store key) | nothing: the purge queue |
//! | `revocations`   | user id                      | the user's revocation time, ms |
//! | `meta`          | `"layout_version"`           | [`LAYOUT_VERSION`] |
//! | `blobs`         | name                         | a versioned blob: its version (8 bytes, big-endian), then its bytes |
//!
//! Every write keeps the three tables about a session (`sessions`, `user_sessions`,
//! `expiries`) consistent in its transaction, so [`SessionStore::purge_expired`] reads only
//! what is due instead of scanning every session. [`RedbStore::open`] refuses a file whose
//! layout version it does not know ([`Error::UnsupportedLayout`]) and a redb file that is not
//! a Tessera store ([`Error::NotAStore`]), rather than guess.
//!
//! # Backups
//!
//! [`RedbStore::backup_to`] writes a consistent copy while the store serves: the snapshot of
//! one read transaction, table by table, into a new file that [`RedbStore::open`] opens.
//! Copying the file itself while it is open is not safe (a commit may be half written).
//!
//! # Security
//!
//! The file holds store keys (SHA-256 digests of the handles), never a handle, so a copy of it
//! hijacks no session. It does hold user ids and session data in clear: on Unix a new file is
//! created with mode `0600`. The file's integrity is checked on every open, so a damaged file
//! is reported as [`Error::Open`] instead of being trusted.
//!
//! [redb]: https://docs.rs/redb
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backup;
mod batch;
mod blobs;
mod codec;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};
use tessera_core::{
    KvEntry, KvKey, KvNamespace, KvStore, Revocation, RevocationLog, SessionRecord, SessionStore,
    StoreKey, Timestamp,
};

pub use crate::backup::BackupStats;
pub use crate::batch::{BATCH_SIZE_BUCKETS, BatchError, COMMIT_MICROS_BUCKETS, CommitStats};
use crate::batch::{CacheUpdate, Fill, Touches, Writer};
use crate::codec::Stored;

/// The background purge of `tessera-core`, the one every store uses: for redb, expired
/// sessions, tombstones and key-value entries.
pub use tessera_core::purge::spawn_purge;

/// The on-disk layout this build reads and writes. [`RedbStore::open`] refuses any other.
pub const LAYOUT_VERSION: u64 = 1;

const SESSIONS: TableDefinition<'static, &[u8; 32], &[u8]> = TableDefinition::new("sessions");
const USER_SESSIONS: TableDefinition<'static, (&str, &[u8; 32]), i64> =
    TableDefinition::new("user_sessions");
const EXPIRIES: TableDefinition<'static, (i64, &[u8; 32]), ()> = TableDefinition::new("expiries");
const REVOCATIONS: TableDefinition<'static, &str, i64> = TableDefinition::new("revocations");
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
/// The opaque key-value namespace (Kask API): key → expiry (8 bytes, big-endian ms) + value.
const KV: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("kv");
/// The revocation log: sequence number → the entry as JSON.
const REVOCATION_LOG: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("revocation_log");
/// Expiry queue of the key-value namespace: (expiry ms, key).
const KV_EXPIRIES: TableDefinition<'static, (i64, &[u8]), ()> = TableDefinition::new("kv_expiries");
/// The keyed store's namespaces (`/v1/kv`): name → (generation, count of the values of that
/// generation).
const KV_NAMESPACES: TableDefinition<'static, &str, (u64, u64)> =
    TableDefinition::new("kv_namespaces");
/// The keyed store's values: (namespace, key digest) → generation (8 bytes, big-endian),
/// expiry (8 bytes, big-endian ms) and value. A value of an older generation than its
/// namespace's was cleared: never read, and gone at its expiry.
const KV_NS_VALUES: TableDefinition<'static, (&str, &[u8; 32]), &[u8]> =
    TableDefinition::new("kv_ns_values");
/// Expiry queue of the keyed store: (expiry ms, namespace, key digest).
const KV_NS_EXPIRIES: TableDefinition<'static, (i64, &str, &[u8; 32]), ()> =
    TableDefinition::new("kv_ns_expiries");
/// Versioned blobs: name → version (8 bytes, big-endian) + value.
const BLOBS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("blobs");
const LAYOUT_KEY: &str = "layout_version";

const KEY_MIN: [u8; 32] = [0; 32];
const KEY_MAX: [u8; 32] = [0xff; 32];

/// Errors opening a store. Errors of the store's operations are [`tessera_core::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file's parent directory could not be created.
    #[error("could not create the directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// redb could not open the file: I/O, a lock held by another process, a damaged file, or
    /// a redb file format this version cannot read.
    #[error("could not open the store file {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: redb::DatabaseError,
    },
    /// Reading or initialising the store's metadata failed.
    #[error("could not read or initialise the store's metadata")]
    Storage(#[source] redb::Error),
    /// The file was written with an on-disk layout this build does not know.
    #[error("the store file has layout version {found}; this build reads version {supported}")]
    UnsupportedLayout {
        /// The version in the file.
        found: u64,
        /// The version this build reads ([`LAYOUT_VERSION`]).
        supported: u64,
    },
    /// The file is a redb database, but not a Tessera session store.
    #[error("the file is a redb database but not a Tessera session store")]
    NotAStore,
    /// The store's writer thread could not be started.
    #[error("could not start the store's writer thread")]
    SpawnWriter(#[source] std::io::Error),
}

impl Error {
    /// Every code [`Error::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "redb-create-dir",
        "redb-open",
        "redb-storage",
        "redb-unsupported-layout",
        "redb-not-a-store",
        "redb-spawn-writer",
    ];

    /// A stable identifier for this error, for logs, metrics and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CreateDir { .. } => "redb-create-dir",
            Self::Open { .. } => "redb-open",
            Self::Storage(_) => "redb-storage",
            Self::UnsupportedLayout { .. } => "redb-unsupported-layout",
            Self::NotAStore => "redb-not-a-store",
            Self::SpawnWriter(_) => "redb-spawn-writer",
        }
    }

    /// Whether the file is open in another store, in this process or another (redb's lock):
    /// a running `tessera serve`, typically.
    pub fn is_in_use(&self) -> bool {
        matches!(
            self,
            Self::Open {
                source: redb::DatabaseError::DatabaseAlreadyOpen,
                ..
            }
        )
    }
}

/// The result of opening a store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

type StoreResult<T> = tessera_core::Result<T>;

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> tessera_core::Error {
    tessera_core::Error::backend(err)
}

fn storage(err: impl Into<redb::Error>) -> Error {
    Error::Storage(err.into())
}

/// A [`SessionStore`] in one redb file. Cheap to share: hold it in an `Arc`.
///
/// See the [crate documentation](crate) for the layout and the durability promise.
///
/// # Errors
///
/// Its [`SessionStore`] operations report redb failures as [`tessera_core::Error::Backend`]
/// with the redb error as the source, a record that cannot be encoded as
/// [`tessera_core::Error::Encode`], and stored bytes that are not a valid entry as
/// [`tessera_core::Error::Decode`], besides the typed outcomes of the trait. A write that
/// failed with the rest of its batch (the commit failed, say) has a [`BatchError`] as the
/// source of its `Backend` error.
///
/// Dropping the store waits for the writes already queued to be answered, then closes the
/// file.
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
    cache: Arc<ReadCache>,
    writer: Writer,
}

/// The most records the read cache holds; when full it starts over empty.
const CACHE_CAPACITY: usize = 100_000;

/// A cache of decoded live records in front of redb's point reads.
///
/// It can be exact because the file has one writer: this process (redb locks the file), and
/// every write goes through this store's writer thread. After each batch it tried to commit,
/// whether the commit succeeded or failed, the writer bumps a generation and drops the keys
/// the batch touched, *before it answers any of its callers*, so even a write whose caller
/// went away invalidates, and a failed commit (which redb may still have applied) does too. A
/// `save` that succeeded in a committed batch leaves its new record (and its user's
/// revocation time, read in that transaction) instead of dropping the key: that is what the
/// file now holds, so the next `load` of an edited session does not read and decode it again.
/// The batch's writes are applied to the cache in their order, so a later write of the same
/// key, or a revocation (which clears everything), wins. A
/// batch that was only aborted changed nothing and invalidates nothing. A read
/// records the generation before it opens its snapshot and fills the cache only if the
/// generation is unchanged, under the same lock: a read that raced a write never caches what
/// it read.
#[derive(Debug, Default)]
struct ReadCache {
    inner: std::sync::Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    generation: u64,
    /// A live record and its user's revocation time when it was read.
    records: std::collections::HashMap<[u8; 32], (SessionRecord, Option<Timestamp>)>,
}

impl ReadCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // Every critical section is map operations that do not panic: a poisoned lock holds
        // no half-made change.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn get(&self, key: &[u8; 32]) -> Option<(SessionRecord, Option<Timestamp>)> {
        self.lock().records.get(key).cloned()
    }

    fn fill(
        &self,
        generation: u64,
        key: [u8; 32],
        record: SessionRecord,
        revoked: Option<Timestamp>,
    ) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if g.records.len() >= CACHE_CAPACITY {
            g.records.clear();
        }
        g.records.insert(key, (record, revoked));
    }

    /// Starts a new generation and applies what a batch of writes did, in its order: a
    /// record a write left is kept, what the others touched is dropped.
    fn update(&self, updates: Vec<CacheUpdate>) {
        let mut g = self.lock();
        g.generation = g.generation.wrapping_add(1);
        for u in updates {
            match u {
                CacheUpdate::Keep => {}
                CacheUpdate::Remove(k) => {
                    g.records.remove(&k);
                }
                CacheUpdate::Clear => g.records.clear(),
                CacheUpdate::Fill(k, record, revoked) => {
                    if g.records.len() >= CACHE_CAPACITY {
                        g.records.clear();
                    }
                    g.records.insert(k, (record, revoked));
                }
            }
        }
    }
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the store in the file at `path`, creating the file and its parent directories if
    /// they are absent. Blocks: call it at startup, or from `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// - [`Error::CreateDir`] if the parent directory cannot be created;
    /// - [`Error::Open`] if redb cannot open the file (I/O, already open by another process or
    ///   store, damaged, or an unreadable redb format);
    /// - [`Error::UnsupportedLayout`] if the file has another layout version than
    ///   [`LAYOUT_VERSION`];
    /// - [`Error::NotAStore`] if it is some other redb database;
    /// - [`Error::Storage`] if reading or writing the metadata fails;
    /// - [`Error::SpawnWriter`] if the writer thread cannot be started.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| Error::Open {
            path: path.clone(),
            source,
        };
        create_private_file(&path).map_err(|e| open_err(e.into()))?;
        let db = redb::Builder::new()
            // A plain open trusts the file and may panic on one damaged outside redb; the check
            // reads the whole file once per start and turns damage into an error.
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(open_err)?;
        init_layout(&db)?;
        let db = Arc::new(db);
        let cache = Arc::default();
        let writer =
            Writer::start(Arc::clone(&db), Arc::clone(&cache)).map_err(Error::SpawnWriter)?;
        Ok(Self {
            db,
            path,
            cache,
            writer,
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many writes each commit made durable so far (group commit): for metrics.
    ///
    /// # Examples
    ///
    /// See [`CommitStats`].
    pub fn commit_stats(&self) -> CommitStats {
        self.writer.stats()
    }

    /// Runs a point read in place. A redb read transaction reads an MVCC snapshot and never
    /// waits for the writer, so it takes microseconds; handing it to the blocking pool cost
    /// more than the read itself (a thread wake-up each way: about a quarter of the CPU of a
    /// `resolve` in the HTTP benchmark).
    fn run_read<T>(&self, op: impl FnOnce(&Database) -> StoreResult<T>) -> StoreResult<T> {
        op(&self.db)
    }

    /// Runs `op` in a write transaction of the writer thread, batched with the writes that
    /// queue beside it, and answers once that transaction committed; the read cache drops
    /// what `touches` names first. `op` may run more than once, and must return a refusal
    /// (`AlreadyExists`, `Conflict`, `NotFound`) before its first write: see the `batch`
    /// module.
    async fn write<T, F>(&self, touches: Touches, op: F) -> StoreResult<T>
    where
        F: Fn(&WriteTransaction) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write(touches, None, op).await
    }

    /// Runs `op` on the blocking pool, or in place outside a Tokio runtime. For scans.
    async fn run<T, F>(&self, op: F) -> StoreResult<T>
    where
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = Arc::clone(&self.db);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt.spawn_blocking(move || op(&db)).await.map_err(backend)?,
            // No blocking pool to move to (another executor): block here rather than fail.
            Err(_) => op(&db),
        }
    }
}

/// Creates `path` with mode 0600 if it does not exist, so session data is not world-readable.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Checks the layout version of an existing store, or writes it into a new one, and makes
/// sure every table exists so that reads never meet a missing one.
fn init_layout(db: &Database) -> Result<()> {
    let txn = db.begin_write().map_err(storage)?;
    let tables: Vec<String> = txn
        .list_tables()
        .map_err(storage)?
        .map(|t| t.name().to_owned())
        .collect();
    {
        let mut meta = txn.open_table(META).map_err(storage)?;
        if tables.iter().any(|t| t == META.name()) {
            let found = meta.get(LAYOUT_KEY).map_err(storage)?.map(|v| v.value());
            match found {
                Some(LAYOUT_VERSION) => {}
                Some(found) => {
                    return Err(Error::UnsupportedLayout {
                        found,
                        supported: LAYOUT_VERSION,
                    });
                }
                None => return Err(Error::NotAStore),
            }
        } else if !tables.is_empty() {
            return Err(Error::NotAStore);
        } else {
            meta.insert(LAYOUT_KEY, LAYOUT_VERSION).map_err(storage)?;
        }
        txn.open_table(SESSIONS).map_err(storage)?;
        txn.open_table(USER_SESSIONS).map_err(storage)?;
        txn.open_table(EXPIRIES).map_err(storage)?;
        txn.open_table(REVOCATIONS).map_err(storage)?;
        // Added after layout 1 first shipped; additive, so older files gain them here.
        txn.open_table(KV).map_err(storage)?;
        txn.open_table(KV_EXPIRIES).map_err(storage)?;
        txn.open_table(REVOCATION_LOG).map_err(storage)?;
        txn.open_table(KV_NAMESPACES).map_err(storage)?;
        txn.open_table(KV_NS_VALUES).map_err(storage)?;
        txn.open_table(KV_NS_EXPIRIES).map_err(storage)?;
        txn.open_table(BLOBS).map_err(storage)?;
    }
    txn.commit().map_err(storage)
}

/// Runs `op` in one read transaction (a consistent snapshot).
fn read<T>(db: &Database, op: impl FnOnce(&ReadTransaction) -> StoreResult<T>) -> StoreResult<T> {
    let txn = db.begin_read().map_err(backend)?;
    op(&txn)
}

fn get_stored(
    sessions: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    key: &[u8; 32],
) -> StoreResult<Option<Stored>> {
    get_decoded(sessions, key, codec::decode)
}

/// The entry under `key`, if any, read by `decode` (the whole record, or only its head).
fn get_decoded(
    sessions: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    key: &[u8; 32],
    decode: fn(&[u8]) -> StoreResult<Stored>,
) -> StoreResult<Option<Stored>> {
    match sessions.get(key).map_err(backend)? {
        Some(v) => decode(v.value()).map(Some),
        None => Ok(None),
    }
}

fn revoked_at(
    revocations: &impl ReadableTable<&'static str, i64>,
    user_id: &str,
) -> StoreResult<Option<Timestamp>> {
    Ok(revocations
        .get(user_id)
        .map_err(backend)?
        .map(|v| Timestamp::from_unix_millis(v.value())))
}

/// The head of the entry under `key` ([`codec::decode_head`]), if any: for the writer, which
/// needs a stored record's liveness and version, not its data.
fn get_head(
    sessions: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    key: &[u8; 32],
) -> StoreResult<Option<Stored>> {
    get_decoded(sessions, key, codec::decode_head)
}

/// The head of the live record under `key` at `now` ([`SessionRecord::is_live`] on it, as
/// [`live`] decides for the whole record), if any, and its user's revocation time.
fn live_head(
    sessions: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    revocations: &impl ReadableTable<&'static str, i64>,
    key: &[u8; 32],
    now: Timestamp,
) -> StoreResult<Option<(SessionRecord, Option<Timestamp>)>> {
    let Some(Stored::Live(r)) = get_head(sessions, key)? else {
        return Ok(None);
    };
    if r.is_expired(now) {
        return Ok(None);
    }
    let revoked = match r.user_id() {
        Some(u) => revoked_at(revocations, u)?,
        None => None,
    };
    Ok(r.is_live(now, revoked).then_some((r, revoked)))
}

/// The live record under `key` at `now` ([`SessionRecord::is_live`]), if any.
fn live(
    sessions: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    revocations: &impl ReadableTable<&'static str, i64>,
    key: &[u8; 32],
    now: Timestamp,
) -> StoreResult<Option<SessionRecord>> {
    let Some(Stored::Live(r)) = get_stored(sessions, key)? else {
        return Ok(None);
    };
    if r.is_expired(now) {
        return Ok(None);
    }
    let revoked = match r.user_id() {
        Some(u) => revoked_at(revocations, u)?,
        None => None,
    };
    Ok(r.is_live(now, revoked).then_some(r))
}

// === impl SessionStore ===

#[async_trait]
impl SessionStore for RedbStore {
    fn directory(&self) -> Option<&Path> {
        // `sessions.redb` alone lives in the current directory.
        Some(
            self.path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    }

    fn backend(&self) -> &'static str {
        "redb"
    }

    fn as_kv(&self) -> Option<&dyn KvStore> {
        Some(self)
    }

    fn as_blobs(&self) -> Option<&dyn tessera_core::BlobStore> {
        Some(self)
    }

    fn as_revocation_log(&self) -> Option<&dyn RevocationLog> {
        Some(self)
    }

    async fn create(&self, key: &StoreKey, record: &SessionRecord) -> StoreResult<()> {
        let key = *key.as_bytes();
        let bytes = codec::encode_record(record)?;
        let user = record.user_id().map(str::to_owned);
        let expires = record.expires_at().unix_millis();
        self.write(Touches::Key(key), move |txn| {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            // Any entry blocks: live, expired but unpurged, or a tombstone.
            if sessions.get(&key).map_err(backend)?.is_some() {
                return Err(tessera_core::Error::AlreadyExists);
            }
            sessions.insert(&key, bytes.as_slice()).map_err(backend)?;
            let mut expiries = txn.open_table(EXPIRIES).map_err(backend)?;
            expiries.insert((expires, &key), ()).map_err(backend)?;
            if let Some(u) = &user {
                let mut users = txn.open_table(USER_SESSIONS).map_err(backend)?;
                users.insert((u.as_str(), &key), expires).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn load(&self, key: &StoreKey, now: Timestamp) -> StoreResult<Option<SessionRecord>> {
        let key = *key.as_bytes();
        if let Some((record, revoked)) = self.cache.get(&key) {
            return Ok(record.is_live(now, revoked).then_some(record));
        }
        let generation = self.cache.generation();
        let found = self.run_read(move |db| {
            read(db, |txn| {
                let sessions = txn.open_table(SESSIONS).map_err(backend)?;
                let revocations = txn.open_table(REVOCATIONS).map_err(backend)?;
                let Some(r) = live(&sessions, &revocations, &key, now)? else {
                    return Ok(None);
                };
                let revoked = match r.user_id() {
                    Some(u) => revoked_at(&revocations, u)?,
                    None => None,
                };
                Ok(Some((r, revoked)))
            })
        })?;
        Ok(found.map(|(record, revoked)| {
            self.cache.fill(generation, key, record.clone(), revoked);
            record
        }))
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> StoreResult<()> {
        let key = *key.as_bytes();
        let bytes = codec::encode_record(record)?;
        let new_user = record.user_id().map(str::to_owned);
        let new_expires = record.expires_at().unix_millis();
        let fill = Fill {
            record: record.clone(),
            revoked: |revoked: &Option<Timestamp>| *revoked,
        };
        let touches = Touches::Key(key);
        self.writer
            .write(touches, Some(fill), move |txn| {
                let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
                let revocations = txn.open_table(REVOCATIONS).map_err(backend)?;
                // Dead or absent means NotFound and no write: a save racing a logout or an
                // expiry must not bring the session back. Only the head is decoded: the
                // check needs the version and the liveness, and the write replaces the data.
                let (current, current_revoked) = live_head(&sessions, &revocations, &key, now)?
                    .ok_or(tessera_core::Error::NotFound)?;
                // What a read of the record just written would pair it with (for the cache):
                // its user's revocation time, read above when the user stays the same.
                let revoked = match new_user.as_deref() {
                    Some(u) if current.user_id() == Some(u) => current_revoked,
                    Some(u) => revoked_at(&revocations, u)?,
                    None => None,
                };
                if current.version != expected {
                    return Err(tessera_core::Error::Conflict);
                }
                sessions.insert(&key, bytes.as_slice()).map_err(backend)?;

                let old_expires = current.expires_at().unix_millis();
                if old_expires != new_expires {
                    let mut expiries = txn.open_table(EXPIRIES).map_err(backend)?;
                    expiries.remove((old_expires, &key)).map_err(backend)?;
                    expiries.insert((new_expires, &key), ()).map_err(backend)?;
                }
                // The user index holds (user, key) → expiry: unchanged when neither changed, the
                // common case of a data edit, which then writes one table instead of two.
                if current.user_id() == new_user.as_deref() && old_expires == new_expires {
                    return Ok(revoked);
                }
                let mut users = txn.open_table(USER_SESSIONS).map_err(backend)?;
                if let Some(u) = current.user_id() {
                    users.remove((u, &key)).map_err(backend)?;
                }
                if let Some(u) = &new_user {
                    users
                        .insert((u.as_str(), &key), new_expires)
                        .map_err(backend)?;
                }
                Ok(revoked)
            })
            .await
            .map(|_revoked| ())
    }

    async fn delete(&self, key: &StoreKey, tombstone_until: Timestamp) -> StoreResult<()> {
        let key = *key.as_bytes();
        self.write(Touches::Key(key), move |txn| {
            let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
            let mut expiries = txn.open_table(EXPIRIES).map_err(backend)?;
            match get_head(&sessions, &key)? {
                Some(Stored::Live(r)) => {
                    expiries
                        .remove((r.expires_at().unix_millis(), &key))
                        .map_err(backend)?;
                    if let Some(u) = r.user_id() {
                        let mut users = txn.open_table(USER_SESSIONS).map_err(backend)?;
                        users.remove((u, &key)).map_err(backend)?;
                    }
                }
                // Deleting again never shortens a tombstone.
                Some(Stored::Tombstone { until }) if until >= tombstone_until => {
                    return Ok(());
                }
                Some(Stored::Tombstone { until }) => {
                    expiries
                        .remove((until.unix_millis(), &key))
                        .map_err(backend)?;
                }
                None => {}
            }
            let tombstone = codec::encode_tombstone(tombstone_until);
            sessions
                .insert(&key, tombstone.as_slice())
                .map_err(backend)?;
            expiries
                .insert((tombstone_until.unix_millis(), &key), ())
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<(StoreKey, SessionRecord)>> {
        let user_id = user_id.to_owned();
        self.run(move |db| {
            read(db, |txn| {
                let users = txn.open_table(USER_SESSIONS).map_err(backend)?;
                let sessions = txn.open_table(SESSIONS).map_err(backend)?;
                let revocations = txn.open_table(REVOCATIONS).map_err(backend)?;
                let revoked = revoked_at(&revocations, &user_id)?;
                let range = users
                    .range::<(&str, &[u8; 32])>(
                        (user_id.as_str(), &KEY_MIN)..=(user_id.as_str(), &KEY_MAX),
                    )
                    .map_err(backend)?;
                let mut out = vec![];
                for entry in range {
                    let (k, expires) = entry.map_err(backend)?;
                    if now.unix_millis() >= expires.value() {
                        continue;
                    }
                    let key = *k.value().1;
                    if let Some(Stored::Live(r)) = get_stored(&sessions, &key)?
                        && r.user_id() == Some(user_id.as_str())
                        && r.is_live(now, revoked)
                    {
                        out.push((StoreKey::from_bytes(key), r));
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    async fn revoke_user(&self, user_id: &str, at: Timestamp) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        // The user's sessions are not indexed in the cache: drop it all (a rare operation).
        self.write(Touches::Everything, move |txn| {
            let mut revocations = txn.open_table(REVOCATIONS).map_err(backend)?;
            // Only forward: an older "log out everywhere" must not revive anything.
            let current = revoked_at(&revocations, &user_id)?;
            if current.is_none_or(|c| at > c) {
                revocations
                    .insert(user_id.as_str(), at.unix_millis())
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn user_revoked_at(&self, user_id: &str) -> StoreResult<Option<Timestamp>> {
        self.run_read(move |db| {
            read(db, |txn| {
                let revocations = txn.open_table(REVOCATIONS).map_err(backend)?;
                revoked_at(&revocations, user_id)
            })
        })
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        self.write(Touches::Everything, move |txn| purge_in(txn, now))
            .await
    }
}

/// Removes everything due at `now` in one transaction. Reads only the due part of the
/// `expiries` queue, never the whole store.
fn purge_in(txn: &WriteTransaction, now: Timestamp) -> StoreResult<u64> {
    let now_ms = now.unix_millis();
    let mut expiries = txn.open_table(EXPIRIES).map_err(backend)?;
    let mut sessions = txn.open_table(SESSIONS).map_err(backend)?;
    let mut users = txn.open_table(USER_SESSIONS).map_err(backend)?;

    let due = expiries
        .range::<(i64, &[u8; 32])>(..=(now_ms, &KEY_MAX))
        .map_err(backend)?
        .map(|entry| entry.map(|(k, _)| (k.value().0, *k.value().1)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;

    let mut purged = 0u64;
    let mut undecodable = 0u64;
    for (at, key) in due {
        let stored = match get_stored(&sessions, &key) {
            Ok(stored) => stored,
            Err(tessera_core::Error::Decode(_)) => {
                // Perhaps written by a newer build: keep it (and its queue entry), say so.
                undecodable += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        expiries.remove((at, &key)).map_err(backend)?;
        let Some(stored) = stored else { continue };
        let deadline = stored.deadline().unix_millis();
        if deadline > now_ms {
            // A stale queue entry (cannot happen while every write keeps the tables in step);
            // make sure the entry's real deadline is queued so it is purged in time.
            expiries.insert((deadline, &key), ()).map_err(backend)?;
            continue;
        }
        if deadline != at {
            expiries.remove((deadline, &key)).map_err(backend)?;
        }
        sessions.remove(&key).map_err(backend)?;
        if let Stored::Live(r) = &stored
            && let Some(u) = r.user_id()
        {
            users.remove((u, &key)).map_err(backend)?;
        }
        purged += 1;
    }
    if undecodable > 0 {
        tracing::warn!(
            undecodable,
            "purge kept expired session entries it could not decode"
        );
    }
    Ok(purged)
}

// === impl KvStore ===

/// Splits a stored key-value entry into its expiry and value.
fn kv_entry(bytes: &[u8]) -> StoreResult<(i64, &[u8])> {
    let (until, value) = bytes.split_first_chunk::<8>().ok_or_else(|| {
        tessera_core::Error::Decode("key-value entry shorter than its expiry".into())
    })?;
    Ok((i64::from_be_bytes(*until), value))
}

/// A stored value of the keyed store: its generation, expiry (ms) and bytes.
struct NsValue {
    generation: u64,
    until: i64,
    value: Vec<u8>,
}

impl NsValue {
    fn decode(bytes: &[u8]) -> StoreResult<Self> {
        let decode =
            || tessera_core::Error::Decode("keyed-store value shorter than its header".into());
        let (generation, rest) = bytes.split_first_chunk::<8>().ok_or_else(decode)?;
        let (until, value) = rest.split_first_chunk::<8>().ok_or_else(decode)?;
        Ok(Self {
            generation: u64::from_be_bytes(*generation),
            until: i64::from_be_bytes(*until),
            value: value.to_vec(),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.value.len());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.until.to_be_bytes());
        out.extend_from_slice(&self.value);
        out
    }
}

/// A namespace's (generation, count); (0, 0) for one never written.
fn ns_state(
    table: &impl ReadableTable<&'static str, (u64, u64)>,
    ns: &str,
) -> StoreResult<(u64, u64)> {
    Ok(table
        .get(ns)
        .map_err(backend)?
        .map_or((0, 0), |v| v.value()))
}

fn ns_value(
    table: &impl ReadableTable<(&'static str, &'static [u8; 32]), &'static [u8]>,
    ns: &str,
    key: &[u8; 32],
) -> StoreResult<Option<NsValue>> {
    match table.get((ns, key)).map_err(backend)? {
        Some(v) => NsValue::decode(v.value()).map(Some),
        None => Ok(None),
    }
}

#[async_trait]
impl KvStore for RedbStore {
    async fn kv_get(&self, key: &[u8], now: Timestamp) -> StoreResult<Option<Vec<u8>>> {
        self.run_read(|db| {
            read(db, |txn| {
                let kv = txn.open_table(KV).map_err(backend)?;
                let Some(entry) = kv.get(key).map_err(backend)? else {
                    return Ok(None);
                };
                let (until, value) = kv_entry(entry.value())?;
                Ok((now.unix_millis() < until).then(|| value.to_vec()))
            })
        })
    }

    async fn kv_put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> StoreResult<()> {
        let key = key.to_vec();
        let until = expires_at.unix_millis();
        let mut entry = Vec::with_capacity(8 + value.len());
        entry.extend_from_slice(&until.to_be_bytes());
        entry.extend_from_slice(value);
        self.write(Touches::Nothing, move |txn| {
            let mut kv = txn.open_table(KV).map_err(backend)?;
            let mut queue = txn.open_table(KV_EXPIRIES).map_err(backend)?;
            let old = kv
                .get(key.as_slice())
                .map_err(backend)?
                .map(|e| kv_entry(e.value()).map(|(u, _)| u))
                .transpose()?;
            if let Some(old) = old {
                queue.remove((old, key.as_slice())).map_err(backend)?;
            }
            kv.insert(key.as_slice(), entry.as_slice())
                .map_err(backend)?;
            queue.insert((until, key.as_slice()), ()).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn kv_delete(&self, key: &[u8]) -> StoreResult<()> {
        let key = key.to_vec();
        self.write(Touches::Nothing, move |txn| {
            let mut kv = txn.open_table(KV).map_err(backend)?;
            let mut queue = txn.open_table(KV_EXPIRIES).map_err(backend)?;
            let old = kv
                .remove(key.as_slice())
                .map_err(backend)?
                .map(|e| kv_entry(e.value()).map(|(u, _)| u))
                .transpose()?;
            if let Some(old) = old {
                queue.remove((old, key.as_slice())).map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn kv_purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        let now_ms = now.unix_millis();
        self.write(Touches::Nothing, move |txn| {
            let mut kv = txn.open_table(KV).map_err(backend)?;
            let mut queue = txn.open_table(KV_EXPIRIES).map_err(backend)?;
            // Everything with expiry <= now: (now + 1, "") is the first key after them.
            let due = queue
                .range::<(i64, &[u8])>(..(now_ms.saturating_add(1), &[][..]))
                .map_err(backend)?
                .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_vec())))
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            for (until, key) in &due {
                queue.remove((*until, key.as_slice())).map_err(backend)?;
                kv.remove(key.as_slice()).map_err(backend)?;
            }
            Ok(due.len() as u64 + purge_ns(txn, now_ms)?)
        })
        .await
    }

    async fn ns_get(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        now: Timestamp,
    ) -> StoreResult<Option<KvEntry>> {
        self.run_read(|db| {
            read(db, |txn| {
                let namespaces = txn.open_table(KV_NAMESPACES).map_err(backend)?;
                let values = txn.open_table(KV_NS_VALUES).map_err(backend)?;
                let (generation, _) = ns_state(&namespaces, ns.as_str())?;
                let found = ns_value(&values, ns.as_str(), key.as_bytes())?;
                Ok(found
                    .filter(|v| v.generation == generation && now.unix_millis() < v.until)
                    .map(|v| KvEntry {
                        value: v.value,
                        expires_at: Timestamp::from_unix_millis(v.until),
                    }))
            })
        })
    }

    async fn ns_put(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        value: &[u8],
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> StoreResult<()> {
        let (ns, key, value) = (ns.clone(), *key, value.to_vec());
        let until = expires_at.unix_millis();
        self.write(Touches::Nothing, move |txn| {
            let mut namespaces = txn.open_table(KV_NAMESPACES).map_err(backend)?;
            let mut values = txn.open_table(KV_NS_VALUES).map_err(backend)?;
            let mut queue = txn.open_table(KV_NS_EXPIRIES).map_err(backend)?;
            let (ns, key) = (ns.as_str(), key.as_bytes());
            let (generation, count) = ns_state(&namespaces, ns)?;
            let old = ns_value(&values, ns, key)?;
            if let Some(old) = &old {
                queue.remove((old.until, ns, key)).map_err(backend)?;
            }
            let stored = NsValue {
                generation,
                until,
                value: value.clone(),
            };
            values
                .insert((ns, key), stored.encode().as_slice())
                .map_err(backend)?;
            queue.insert((until, ns, key), ()).map_err(backend)?;
            if old.is_none_or(|o| o.generation != generation) {
                namespaces
                    .insert(ns, (generation, count.saturating_add(1)))
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn ns_touch(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (ns, key) = (ns.clone(), *key);
        let until = expires_at.unix_millis();
        let now_ms = now.unix_millis();
        self.write(Touches::Nothing, move |txn| {
            let namespaces = txn.open_table(KV_NAMESPACES).map_err(backend)?;
            let mut values = txn.open_table(KV_NS_VALUES).map_err(backend)?;
            let mut queue = txn.open_table(KV_NS_EXPIRIES).map_err(backend)?;
            let (ns, key) = (ns.as_str(), key.as_bytes());
            let (generation, _) = ns_state(&namespaces, ns)?;
            let Some(mut old) = ns_value(&values, ns, key)? else {
                return Ok(false);
            };
            if old.generation != generation || old.until <= now_ms {
                return Ok(false);
            }
            queue.remove((old.until, ns, key)).map_err(backend)?;
            old.until = until;
            values
                .insert((ns, key), old.encode().as_slice())
                .map_err(backend)?;
            queue.insert((until, ns, key), ()).map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn ns_delete(&self, ns: &KvNamespace, key: &KvKey, now: Timestamp) -> StoreResult<bool> {
        let (ns, key) = (ns.clone(), *key);
        let now_ms = now.unix_millis();
        self.write(Touches::Nothing, move |txn| {
            let mut namespaces = txn.open_table(KV_NAMESPACES).map_err(backend)?;
            let mut values = txn.open_table(KV_NS_VALUES).map_err(backend)?;
            let mut queue = txn.open_table(KV_NS_EXPIRIES).map_err(backend)?;
            let (ns, key) = (ns.as_str(), key.as_bytes());
            let (generation, count) = ns_state(&namespaces, ns)?;
            let Some(old) = ns_value(&values, ns, key)? else {
                return Ok(false);
            };
            values.remove((ns, key)).map_err(backend)?;
            queue.remove((old.until, ns, key)).map_err(backend)?;
            if old.generation != generation {
                return Ok(false);
            }
            namespaces
                .insert(ns, (generation, count.saturating_sub(1)))
                .map_err(backend)?;
            Ok(now_ms < old.until)
        })
        .await
    }

    async fn ns_count(&self, ns: &KvNamespace, _now: Timestamp) -> StoreResult<u64> {
        self.run_read(|db| {
            read(db, |txn| {
                let namespaces = txn.open_table(KV_NAMESPACES).map_err(backend)?;
                Ok(ns_state(&namespaces, ns.as_str())?.1)
            })
        })
    }

    async fn ns_clear(&self, ns: &KvNamespace, _now: Timestamp) -> StoreResult<()> {
        let ns = ns.clone();
        self.write(Touches::Nothing, move |txn| {
            let mut namespaces = txn.open_table(KV_NAMESPACES).map_err(backend)?;
            let (generation, _) = ns_state(&namespaces, ns.as_str())?;
            // The values of the old generation stay until their expiry (the purge takes them
            // then): clearing is this one write, however many values the namespace holds.
            namespaces
                .insert(ns.as_str(), (generation.saturating_add(1), 0))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

/// Removes the keyed store's values expired at `now_ms`; a value of the current generation
/// leaves its namespace's count. Returns how many went.
fn purge_ns(txn: &WriteTransaction, now_ms: i64) -> StoreResult<u64> {
    let mut namespaces = txn.open_table(KV_NAMESPACES).map_err(backend)?;
    let mut values = txn.open_table(KV_NS_VALUES).map_err(backend)?;
    let mut queue = txn.open_table(KV_NS_EXPIRIES).map_err(backend)?;
    // Everything with expiry <= now: (now + 1, "", 0…) is the first key after them.
    let due = queue
        .range::<(i64, &str, &[u8; 32])>(..(now_ms.saturating_add(1), "", &KEY_MIN))
        .map_err(backend)?
        .map(|e| {
            e.map(|(k, _)| {
                let (until, ns, key) = k.value();
                (until, ns.to_owned(), *key)
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut purged = 0;
    for (until, ns, key) in &due {
        queue.remove((*until, ns.as_str(), key)).map_err(backend)?;
        // Each value has exactly one queue entry, at its expiry; a value found with another
        // expiry is not the one this entry was for, and stays.
        match ns_value(&values, ns, key)? {
            Some(v) if v.until == *until => {}
            _ => continue,
        }
        let Some(old) = values.remove((ns.as_str(), key)).map_err(backend)? else {
            continue;
        };
        let old = NsValue::decode(old.value())?;
        purged += 1;
        let (generation, count) = ns_state(&namespaces, ns)?;
        if old.generation == generation {
            namespaces
                .insert(ns.as_str(), (generation, count.saturating_sub(1)))
                .map_err(backend)?;
        }
    }
    Ok(purged)
}

// === impl RevocationLog ===

#[async_trait]
impl RevocationLog for RedbStore {
    async fn log_revocation(&self, r: &Revocation) -> StoreResult<u64> {
        let bytes = serde_json::to_vec(r).map_err(|e| tessera_core::Error::Encode(Box::new(e)))?;
        self.write(Touches::Nothing, move |txn| {
            let mut log = txn.open_table(REVOCATION_LOG).map_err(backend)?;
            // redb has one writer: reading the last number and appending is atomic.
            let seq = log
                .last()
                .map_err(backend)?
                .map_or(1, |(k, _)| k.value().saturating_add(1));
            log.insert(seq, bytes.as_slice()).map_err(backend)?;
            Ok(seq)
        })
        .await
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Revocation)>> {
        self.run(move |db| {
            read(db, |txn| {
                let log = txn.open_table(REVOCATION_LOG).map_err(backend)?;
                let mut out = vec![];
                for entry in log
                    .range(after.saturating_add(1)..)
                    .map_err(backend)?
                    .take(limit)
                {
                    let (k, v) = entry.map_err(backend)?;
                    let r: Revocation = serde_json::from_slice(v.value())
                        .map_err(|e| tessera_core::Error::Decode(Box::new(e)))?;
                    out.push((k.value(), r));
                }
                Ok(out)
            })
        })
        .await
    }

    async fn purge_revocations(&self, before: Timestamp) -> StoreResult<u64> {
        self.write(Touches::Nothing, move |txn| {
            let mut log = txn.open_table(REVOCATION_LOG).map_err(backend)?;
            // The log is bounded by the longest token lifetime: a full scan is small.
            let mut old = vec![];
            for entry in log.iter().map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                let r: Revocation = serde_json::from_slice(v.value())
                    .map_err(|e| tessera_core::Error::Decode(Box::new(e)))?;
                if r.at < before {
                    old.push(k.value());
                }
            }
            for k in &old {
                log.remove(*k).map_err(backend)?;
            }
            Ok(old.len() as u64)
        })
        .await
    }
}
