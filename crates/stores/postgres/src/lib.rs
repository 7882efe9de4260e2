//! Tessera's session store on PostgreSQL.
//!
//! ```no_run
//! use tessera_core::SessionStore;
//! use tessera_store_postgres::PostgresStore;
//!
//! # async fn run() -> Result<(), tessera_store_postgres::Error> {
//! // Connects a pool and brings the schema up to date (idempotent, safe to race).
//! let store = PostgresStore::open("postgres://tessera:secret@db.internal/sessions").await?;
//! assert_eq!(store.backend(), "postgres");
//! # Ok(())
//! # }
//! ```
//!
//! # Tables (schema version 5)
//!
//! | table | key | holds |
//! |-------|-----|-------|
//! | `tessera_sessions` | `key` (32-byte store key) | `record` (JSON; `NULL` for a tombstone), `version`, `user_id` (the user index; `NULL` for anonymous sessions and tombstones), `created_at`, `dead_at` (a record's expiry or a tombstone's end, ms since the epoch) |
//! | `tessera_user_revocations` | `user_id` | `revoked_at` (ms) |
//! | `tessera_kv` (migration 2) | `key` (bytes, at most 1024) | `value`, `expires_at` (ms; indexed, for purge) — the Kask-compatible namespace |
//! | `tessera_kv_namespaces` (migration 4) | `ns` | `generation`, `count` — the keyed store's namespaces (`/v1/kv`): counting and clearing one read or write this row only |
//! | `tessera_kv_values` (migration 4) | `(ns, key)` (key: the SHA-256 of the application's) | `generation`, `replaced`, `value`, `expires_at` (ms; indexed, for purge) — the keyed store's values; rows of an older generation than their namespace's were cleared |
//! | `tessera_revocations` (migration 3) | `seq` (`bigserial`) | `subject_kind` (`user`/`session`), `subject_id`, `at` (ms; indexed, for purge) — the revocation log |
//! | `tessera_blobs` (migration 5) | `name` (`text`) | `version` (counted from 1; compare-and-set), `value` (`bytea`) — versioned blobs: a fleet's sealed keys and rotation lease |
//! | `tessera_schema_version` | `version` | one row per migration applied, with `applied_at` |
//!
//! Indexes: `tessera_sessions (user_id) WHERE user_id IS NOT NULL` (the user index, always
//! consistent with the records since it is a column of them) and `tessera_sessions (dead_at)`
//! (the expiry index that purge reads). Tables are created in the connection's `search_path`;
//! to keep them in a schema of their own, add `?options=-c%20search_path%3Dtessera` to the
//! URL.
//!
//! # Migrations
//!
//! [`PostgresStore::connect`] applies the migrations this build knows, in one transaction
//! under a transaction-scoped advisory lock, recording each in `tessera_schema_version`:
//! running it again is a no-op, several servers starting at once apply each migration once,
//! and a database with a later schema than this build knows is refused
//! ([`Error::UnsupportedSchema`]) rather than misread.
//!
//! # Atomicity
//!
//! Every operation is one SQL statement (at `READ COMMITTED`), so each is atomic:
//!
//! - `create` is `INSERT … ON CONFLICT DO NOTHING`: any row, live, expired or tombstone,
//!   keeps the key taken.
//! - `save` is an `UPDATE … WHERE version = $expected` that also requires a live record (not
//!   a tombstone, not expired, not revoked). A concurrent writer holds the row lock; Postgres
//!   re-checks the `WHERE` clause on the row it committed, so of many saves from one version
//!   exactly one wins. The same statement (a data-modifying `WITH`) also says whether the
//!   record was live in the statement's snapshot, which tells
//!   [`Conflict`](tessera_core::Error::Conflict) (it was: another write won, or one landed
//!   since the snapshot) from [`NotFound`](tessera_core::Error::NotFound) when nothing was
//!   written. Batched with other saves (see *Round trips*), the statement first locks the
//!   batch's rows (`FOR NO KEY UPDATE SKIP LOCKED`) and writes only those it locked, with
//!   the same conditions per row; a save whose row it could not lock is sent again alone, as
//!   the statement above. The batch is one transaction: its saves commit together.
//!
//! # Round trips
//!
//! Every operation but a purge is one statement, so one round trip (a batch of saves: one for
//! all of them): a record and its user's
//! revocation time are read together (`LEFT JOIN`, or the `NOT EXISTS` of `save`), never by a
//! second query. Statements are prepared once per pooled connection and cached
//! (`prepare_cached`), so a call sends only `Bind`/`Execute`/`Sync`, in one write.
//! tokio-postgres pipelines the statements of concurrent callers that share a connection:
//! point reads (`user_revoked_at`, the key-value and blob reads; `load` when not batched)
//! share a few *read lanes*, pooled connections held by the store
//! ([`PostgresConfig::with_read_lanes`],
//! default [`DEFAULT_READ_LANES`]; scans, a user's sessions, a page of the revocation feed
//! and a namespace count, take a connection of their own, so that a long read never holds up
//! the point reads behind it), round-robin, each
//! carrying the statements of many concurrent requests without waiting for the answers in
//! between. That spares a connection checkout per read and, above all, a Postgres backend
//! woken for every single statement: on a 2-core machine under 32 concurrent `resolve`s it
//! about doubled the requests per second and halved Postgres's CPU per read (figures in
//! docs/stores.md).
//!
//! `save`s are **batched**: at most [`PostgresConfig::with_write_batches`] batches (default
//! [`DEFAULT_WRITE_BATCHES`]) are in flight, each one statement on a connection of its own;
//! the saves that arrive while they are all in flight are sent together in the next, one
//! `UPDATE … FROM unnest(…)` (one transaction, one commit, one round trip) that returns each
//! save's own outcome, so a conflict fails that save only. No timer: a save that finds a
//! slot free is sent at once. A batch never waits for a row lock (it locks its rows with
//! `SKIP LOCKED` and sends a save whose row another transaction holds again alone), never
//! holds two saves of one key (the second waits for the next batch, so it sees the first),
//! and a failed statement fails the saves of that batch only. [`PostgresStore::write_stats`]
//! counts the batches and their sizes. The other writes each take a connection of their own
//! and are their own transaction.
//!
//! `load`s are batched the same way ([`PostgresConfig::with_read_batches`], default
//! [`DEFAULT_READ_BATCHES`]; 0 puts them back on the read lanes): the loads that arrive while
//! the batches in flight are out go together as one `SELECT … FROM unnest(…) JOIN …`, each
//! with its own `now`; [`PostgresStore::read_stats`] counts them. Under 32 concurrent
//! `resolve`s that was about one statement (and one implicit transaction) per 10 requests
//! instead of one per request, and a fraction of Postgres's CPU (docs/stores.md).
//! - `delete` is an upsert to a tombstone that keeps an existing later end.
//! - `load` and `list_user_sessions` join the revocation table, so they see a record and its
//!   user's revocation time in one snapshot.
//! - `purge_expired` deletes due rows in batches (`FOR UPDATE SKIP LOCKED`), so it never
//!   waits for, nor blocks, a session being written.
//!
//! # Durability
//!
//! An acknowledged write is committed by Postgres, with whatever durability the server is
//! configured for (`synchronous_commit`, replication). Times are the engine's clock, passed in
//! by the caller; Postgres's clock is never used.
//!
//! # Security
//!
//! The database holds store keys (SHA-256 digests of handles), never a handle; it does hold
//! user ids and session data in clear. Passwords in URLs are never printed: `Debug` and
//! [`PostgresConfig::redacted`] replace them with `***`. This build connects without TLS
//! (`sslmode=disable` or `prefer`); a URL asking for `sslmode=require` is refused rather than
//! silently sent in clear, so reach a remote database over a private network or a TLS tunnel.
//!
//! This crate has no features. Its tests run on a throwaway cluster from
//! `tessera-test-support` (`crates/test-support`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batch;
mod blobs;
mod kv;
mod revocations;
mod schema;
mod session;

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tessera_core::{SessionRecord, Timestamp};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

pub use batch::{BatchError, BatchStats};
pub use schema::SCHEMA_VERSION;

/// How long one store operation may take, unless [`PostgresConfig::with_timeout`] says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The most connections in the pool, unless [`PostgresConfig::with_pool_size`] says
/// otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// Connections of the pool that reads share, pipelined, unless
/// [`PostgresConfig::with_read_lanes`] says otherwise.
pub const DEFAULT_READ_LANES: usize = 2;

/// Batches of `save`s in flight at once, unless [`PostgresConfig::with_write_batches`] says
/// otherwise. One, as redb's single writer: Postgres's CPU goes mostly to each statement and
/// transaction, not to its rows, so fewer and larger batches cost it less (with 1 instead of
/// 2, about half the Postgres CPU per `update` in a run on 2 cores; docs/stores.md).
pub const DEFAULT_WRITE_BATCHES: usize = 1;

/// Batches of `load`s in flight at once, unless [`PostgresConfig::with_read_batches`] says
/// otherwise.
pub const DEFAULT_READ_BATCHES: usize = 1;

/// Rows deleted per statement by `purge_expired`.
const PURGE_BATCH: i64 = 5_000;

/// Errors connecting to Postgres or preparing its schema. Errors of the store's operations
/// are [`tessera_core::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a `postgres://` or `postgresql://` URL that tokio-postgres accepts.
    #[error("invalid Postgres URL {url}")]
    InvalidUrl {
        /// The URL, password hidden.
        url: String,
        /// tokio-postgres' error, if it refused the URL.
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    /// The URL asks for TLS (`sslmode=require`), which this build does not do.
    #[error("{url} asks for TLS (sslmode=require), which this build does not support")]
    TlsUnsupported {
        /// The URL, password hidden.
        url: String,
    },
    /// The connection pool could not be built.
    #[error("cannot build the connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    /// The first connection failed.
    #[error("cannot connect to Postgres at {url}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// Why.
        #[source]
        source: PoolError,
    },
    /// A migration, or reading the schema version, failed.
    #[error("cannot migrate the schema")]
    Migrate(#[source] tokio_postgres::Error),
    /// The database's schema is newer than this build.
    #[error("the database has schema version {found}; this build knows up to {supported}")]
    UnsupportedSchema {
        /// The version found.
        found: i32,
        /// [`SCHEMA_VERSION`].
        supported: i32,
    },
    /// Connecting and migrating took longer than three times the configured timeout.
    #[error("Postgres at {url} did not answer in time")]
    ConnectTimeout {
        /// The URL, password hidden.
        url: String,
    },
}

impl Error {
    /// Every code [`Error::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "postgres-invalid-url",
        "postgres-tls-unsupported",
        "postgres-pool",
        "postgres-connect",
        "postgres-migrate",
        "postgres-unsupported-schema",
        "postgres-connect-timeout",
    ];

    /// A stable identifier for this error, for logs, metrics and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => "postgres-invalid-url",
            Self::TlsUnsupported { .. } => "postgres-tls-unsupported",
            Self::Pool(_) => "postgres-pool",
            Self::Connect { .. } => "postgres-connect",
            Self::Migrate(_) => "postgres-migrate",
            Self::UnsupportedSchema { .. } => "postgres-unsupported-schema",
            Self::ConnectTimeout { .. } => "postgres-connect-timeout",
        }
    }
}

type StoreResult<T> = tessera_core::Result<T>;

/// How to reach Postgres: a `postgres://` or `postgresql://` URL (any parameter
/// tokio-postgres knows, e.g. `?connect_timeout=5&options=-c%20search_path%3Dtessera`) plus
/// pool settings. `Debug` never shows the password.
///
/// # Examples
///
/// ```
/// use tessera_store_postgres::PostgresConfig;
///
/// let c = PostgresConfig::from_url("postgres://app:hunter2@db:5432/sessions")?;
/// assert_eq!(c.redacted(), "postgres://app:***@db:5432/sessions");
/// # Ok::<(), tessera_store_postgres::Error>(())
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    pg: tokio_postgres::Config,
    pool_size: usize,
    read_lanes: usize,
    write_batches: usize,
    read_batches: usize,
    timeout: Duration,
    redacted: String,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted)
            .field("pool_size", &self.pool_size)
            .field("read_lanes", &self.read_lanes)
            .field("write_batches", &self.write_batches)
            .field("read_batches", &self.read_batches)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PostgresConfig {
    /// Parses a `postgres://` or `postgresql://` URL.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] if it is not one; [`Error::TlsUnsupported`] if it requires TLS.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let redacted = redact_url(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::InvalidUrl {
                url: redacted,
                source: None,
            });
        }
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e| Error::InvalidUrl {
            url: redacted.clone(),
            source: Some(e),
        })?;
        if !matches!(pg.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
            return Err(Error::TlsUnsupported { url: redacted });
        }
        if pg.get_application_name().is_none() {
            pg.application_name("tessera");
        }
        Ok(Self {
            pg,
            pool_size: DEFAULT_POOL_SIZE,
            read_lanes: DEFAULT_READ_LANES,
            write_batches: DEFAULT_WRITE_BATCHES,
            read_batches: DEFAULT_READ_BATCHES,
            timeout: DEFAULT_TIMEOUT,
            redacted,
        })
    }

    /// The most connections the pool opens (default [`DEFAULT_POOL_SIZE`], at least 1).
    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How many of the pool's connections point reads share (default [`DEFAULT_READ_LANES`];
    /// 0: every such read takes a connection of its own). Reads of concurrent requests
    /// are spread over these connections and pipelined on each (tokio-postgres sends a
    /// statement without waiting for the answers before it), so a read costs Postgres no
    /// connection hand-off and fewer wake-ups. `load` uses them only when its batching is off
    /// ([`PostgresConfig::with_read_batches`] 0); batches of loads and of saves take a pooled
    /// connection each. At most the pool size less one: one connection is always left for
    /// writes.
    pub fn with_read_lanes(mut self, lanes: usize) -> Self {
        self.read_lanes = lanes;
        self
    }

    /// How many batches of `save`s may be in flight at once, each a statement on a pooled
    /// connection of its own (default [`DEFAULT_WRITE_BATCHES`], at least 1). A `save` that
    /// arrives while that many are in flight waits for the first to finish, then goes with
    /// every other save queued by then, in one statement: one transaction and one round trip
    /// for all of them, each with its own outcome (see the crate documentation). A `save`
    /// that finds a slot free is sent at once.
    pub fn with_write_batches(mut self, batches: usize) -> Self {
        self.write_batches = batches.max(1);
        self
    }

    /// How many batches of `load`s may be in flight at once (default
    /// [`DEFAULT_READ_BATCHES`]; 0: no batching, each `load` is a statement of its own on a
    /// read lane). As for saves, the `load`s that arrive while that many are in flight go
    /// together in the next, one statement (`unnest` joined to the table) for all of them.
    pub fn with_read_batches(mut self, batches: usize) -> Self {
        self.read_batches = batches;
        self
    }

    /// Bounds every store operation, including the wait for a pooled connection (default
    /// [`DEFAULT_TIMEOUT`]); past it the operation fails with
    /// [`tessera_core::Error::Timeout`]. Also the connection timeout, unless the URL sets
    /// `connect_timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL with its password replaced by `***`, for logs.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

/// Store URLs are shown through the one redaction of `tessera-core`.
pub use tessera_core::redact_url;

/// A [`SessionStore`](tessera_core::SessionStore) on PostgreSQL, over a connection pool. Cheap to share: hold it in an
/// `Arc`.
///
/// See the [crate documentation](crate) for the tables, migrations and atomicity.
///
/// # Errors
///
/// Its [`SessionStore`](tessera_core::SessionStore) operations report Postgres failures as
/// [`tessera_core::Error::Backend`] with the tokio-postgres or pool error as the source, an
/// operation (or a wait for a connection) slower than the configured timeout as
/// [`tessera_core::Error::Timeout`], and stored JSON that is not a record as
/// [`tessera_core::Error::Decode`], besides the typed outcomes of the trait.
pub struct PostgresStore {
    pool: Pool,
    /// The connections reads share (see [`PostgresConfig::with_read_lanes`]): each slot holds
    /// one, taken from the pool on first use and replaced when it closes.
    lanes: Box<[Mutex<Option<Arc<Object>>>]>,
    next_lane: AtomicUsize,
    /// The queue of `save`s and their batches in flight.
    batcher: Arc<batch::Batcher<batch::Saves>>,
    /// The queue of `load`s and their batches in flight, unless loads are not batched.
    loads: Option<Arc<batch::Batcher<batch::Loads>>>,
    timeout: Duration,
    redacted: String,
}

/// The connection an operation runs on: its own, or a read lane shared with other reads.
enum Lease {
    Own(Box<Object>),
    Shared(Arc<Object>),
}

impl Deref for Lease {
    type Target = ClientWrapper;

    fn deref(&self) -> &ClientWrapper {
        match self {
            Self::Own(o) => o,
            Self::Shared(o) => o,
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.redacted)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Runs a purge statement (`$1` = now in ms, `$2` = batch size) until a batch comes back
    /// short, so no single statement holds many row locks.
    async fn purge_in_batches(&self, sql: &'static str, now: Timestamp) -> StoreResult<u64> {
        let mut purged = 0;
        loop {
            let n = self
                .with_client(|c| async move {
                    let st = c.prepare_cached(sql).await.map_err(pg_error)?;
                    c.execute(&st, &[&now.unix_millis(), &PURGE_BATCH])
                        .await
                        .map_err(pg_error)
                })
                .await?;
            purged += n;
            if n < PURGE_BATCH.unsigned_abs() {
                return Ok(purged);
            }
        }
    }

    /// Connects with the defaults and brings the schema up to date.
    ///
    /// # Errors
    ///
    /// As [`PostgresConfig::from_url`] and [`PostgresStore::connect`].
    pub async fn open(url: &str) -> Result<Self, Error> {
        Self::connect(PostgresConfig::from_url(url)?).await
    }

    /// Builds the pool, opens a first connection and applies the migrations (see the crate
    /// documentation).
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] if the database cannot be reached or refuses the credentials,
    /// [`Error::Migrate`] or [`Error::UnsupportedSchema`] from the migrations, and
    /// [`Error::ConnectTimeout`] if all that takes more than three times the timeout.
    pub async fn connect(config: PostgresConfig) -> Result<Self, Error> {
        let PostgresConfig {
            mut pg,
            pool_size,
            read_lanes,
            write_batches,
            read_batches,
            timeout,
            redacted,
        } = config;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(timeout);
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(Error::Pool)?;
        let lanes = (0..read_lanes.min(pool_size.saturating_sub(1)))
            .map(|_| Mutex::new(None))
            .collect();
        let store = Self {
            batcher: Arc::new(batch::Batcher::new(pool.clone(), timeout, write_batches)),
            loads: (read_batches > 0)
                .then(|| Arc::new(batch::Batcher::new(pool.clone(), timeout, read_batches))),
            pool,
            lanes,
            next_lane: AtomicUsize::new(0),
            timeout,
            redacted,
        };
        tokio::time::timeout(timeout.saturating_mul(3), store.migrate())
            .await
            .map_err(|_| Error::ConnectTimeout {
                url: store.redacted.clone(),
            })??;
        Ok(store)
    }

    /// Applies the migrations this database lacks; returns the versions applied (none when it
    /// is up to date). [`PostgresStore::connect`] calls it; calling it again is harmless.
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::connect`].
    pub async fn migrate(&self) -> Result<Vec<i32>, Error> {
        let mut client = self.pool.get().await.map_err(|source| Error::Connect {
            url: self.redacted.clone(),
            source,
        })?;
        schema::migrate(&mut client).await
    }

    /// Counters of the batched `save`s since the store was opened: how many statements
    /// carried how many saves.
    pub fn write_stats(&self) -> BatchStats {
        self.batcher.stats()
    }

    /// Counters of the batched `load`s since the store was opened (all zero when loads are
    /// not batched).
    pub fn read_stats(&self) -> BatchStats {
        self.loads.as_ref().map(|b| b.stats()).unwrap_or_default()
    }

    /// Runs `op` on a pooled connection of its own within the timeout: for writes (and
    /// anything that must not share a connection).
    async fn with_client<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let work = async {
            let client = self.pool.get().await.map_err(pool_error)?;
            op(Lease::Own(Box::new(client))).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(tessera_core::Error::Timeout),
        }
    }

    /// Runs the read `op` (one statement that writes nothing) on a read lane within the
    /// timeout, or on a connection of its own when there are no lanes.
    async fn with_reader<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnOnce(Lease) -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let work = async {
            let client = self.read_lane().await?;
            op(client).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(tessera_core::Error::Timeout),
        }
    }

    /// The next read lane, round-robin, connected on first use and replaced once closed (a
    /// restarted server, a broken socket).
    async fn read_lane(&self) -> StoreResult<Lease> {
        let n = self.lanes.len();
        let Some(slot) = self
            .lanes
            .get(self.next_lane.fetch_add(1, Ordering::Relaxed) % n.max(1))
        else {
            let client = self.pool.get().await.map_err(pool_error)?;
            return Ok(Lease::Own(Box::new(client)));
        };
        let lock = || slot.lock().unwrap_or_else(PoisonError::into_inner);
        let current = lock().as_ref().filter(|c| !c.is_closed()).cloned();
        if let Some(c) = current {
            return Ok(Lease::Shared(c));
        }
        // Two reads may both connect here; the later one's connection stays in the slot,
        // the other goes back to the pool when its read is done.
        let fresh = Arc::new(self.pool.get().await.map_err(pool_error)?);
        *lock() = Some(Arc::clone(&fresh));
        Ok(Lease::Shared(fresh))
    }
}

fn pool_error(e: PoolError) -> tessera_core::Error {
    match e {
        PoolError::Timeout(_) => tessera_core::Error::Timeout,
        e => tessera_core::Error::backend(e),
    }
}

fn pg_error(e: tokio_postgres::Error) -> tessera_core::Error {
    tessera_core::Error::backend(e)
}

fn encode(record: &SessionRecord) -> StoreResult<(String, i64)> {
    let json =
        serde_json::to_string(record).map_err(|e| tessera_core::Error::Encode(Box::new(e)))?;
    let version =
        i64::try_from(record.version).map_err(|e| tessera_core::Error::Encode(Box::new(e)))?;
    Ok((json, version))
}

fn decode(json: &str) -> StoreResult<SessionRecord> {
    serde_json::from_str(json).map_err(|e| tessera_core::Error::Decode(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_listed_unique_and_kebab_case() {
        let pg = || {
            "postgres://h:notaport/db"
                .parse::<tokio_postgres::Config>()
                .unwrap_err()
        };
        let all = [
            Error::InvalidUrl {
                url: String::new(),
                source: None,
            },
            Error::TlsUnsupported { url: String::new() },
            Error::Pool(deadpool_postgres::BuildError::NoRuntimeSpecified),
            Error::Connect {
                url: String::new(),
                source: PoolError::Closed,
            },
            Error::Migrate(pg()),
            Error::UnsupportedSchema {
                found: 9,
                supported: SCHEMA_VERSION,
            },
            Error::ConnectTimeout { url: String::new() },
        ];
        tessera_test_support::assert_error_codes(Error::CODES, all.iter().map(Error::code));
    }

    #[test]
    fn urls_parse_and_passwords_never_show() {
        for (url, want) in [
            ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
            (
                "postgres://h/db?user=u&password=pw&sslmode=disable",
                "postgres://h/db?user=u&password=***&sslmode=disable",
            ),
            ("postgres://:pw@h", "postgres://:***@h"),
            ("nonsense", "***"),
        ] {
            assert_eq!(redact_url(url), want);
        }
        let c = PostgresConfig::from_url("postgres://u:pw@h:5432/db").unwrap();
        assert!(!format!("{c:?}").contains("pw@"));
        for bad in [
            "mysql://u:pw@h/db",
            "postgres://u:pw@h:notaport/db",
            "postgres://u:pw@h/db?sslmode=nonsense",
        ] {
            let e = PostgresConfig::from_url(bad).unwrap_err();
            let mut shown = format!("{e} {e:?}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                shown.push_str(&format!(" {s} {s:?}"));
                source = s.source();
            }
            assert!(!shown.contains(":pw@"), "{shown}");
            assert_eq!(e.code(), "postgres-invalid-url");
        }
        let e = PostgresConfig::from_url("postgres://u:pw@h/db?sslmode=require").unwrap_err();
        assert_eq!(e.code(), "postgres-tls-unsupported");
        assert!(!e.to_string().contains("pw@"), "{e}");
    }
}
