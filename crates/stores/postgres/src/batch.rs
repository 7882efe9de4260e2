//! Batched compare-and-set saves: the `save`s that arrive while the store's write statements
//! are in flight are sent together, as one statement (so one transaction and one round trip),
//! each with its own outcome.
//!
//! # How
//!
//! A `save` puts its write on the queue and waits for its answer. At most
//! [`PostgresConfig::with_write_batches`](crate::PostgresConfig::with_write_batches) batches
//! are in flight at once, each on a pooled connection of its own; when fewer are, the `save`
//! starts one (a task, so that a caller that gives up never strands the others). A batch takes
//! everything queued by the time it runs (at most [`MAX_BATCH`]), sends it, answers, and takes
//! what queued meanwhile, until the queue is empty. No timer: a lone write is sent at once,
//! and writes only gather while every batch slot is busy.
//!
//! # Semantics
//!
//! `SAVE_BATCH` is the single `save`'s compare-and-set, on many rows: each row is written only
//! if its stored version is the one expected and it is live at the op's own `now`. What it
//! returns per op decides that op alone:
//!
//! - **written**: `Ok`.
//! - **locked by the batch, not written**: live as locked (the row's latest version, which
//!   the batch holds) → `Conflict` (another version won), else `NotFound`.
//! - **not locked** (another transaction holds the row: `FOR NO KEY UPDATE SKIP LOCKED`): not
//!   live in the snapshot → `NotFound` (no write makes a dead record live again); live →
//!   [`Saved::Busy`], and the caller sends its save again alone, as the single statement that
//!   waits for the lock. So a batch never waits for a row lock: a row held by a slow
//!   transaction elsewhere cannot hold up the unrelated writes batched beside it, and batches
//!   (of this node or of others on the same database) cannot deadlock each other.
//! - **Two writes to one key** are never in one batch: the batch ends before the second, which
//!   goes in a later one, so it sees the first as if applied in order (its compare-and-set from
//!   the same version then fails as `Conflict`). In one `UPDATE … FROM` a row can take only one
//!   of several matching inputs, so this is needed for correctness, not only order.
//! - **A failed statement** (a lost connection, a timeout, an error from Postgres) fails every
//!   op of its batch, and only those, with [`BatchError`] as the source of
//!   [`tessera_core::Error::Backend`] (or [`tessera_core::Error::Timeout`]): the transaction
//!   may or may not have committed, as for any timed-out statement.
//!
//! A caller that stopped waiting (its timeout) before its write was sent is dropped from the
//! queue: its answer was already "not known to be applied".

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::oneshot;

use crate::StoreResult;

/// The most writes one batch statement carries; what is queued beyond waits for the next one.
pub(crate) const MAX_BATCH: usize = 128;

/// The live-record condition of `live_condition!` on `s` at `i.now`, the op's own time.
macro_rules! batch_live_condition {
    () => {
        concat!(
            "s.record IS NOT NULL AND s.dead_at > i.now",
            " AND NOT EXISTS (SELECT 1 FROM tessera_user_revocations r",
            " WHERE r.user_id = s.user_id AND r.revoked_at >= s.created_at)"
        )
    };
}

/// The batched compare-and-set: `$1`… `$8` are the ops' keys, expected versions, new versions,
/// user ids, creation times, ends, records (JSON text) and `now`s, one array element an op
/// (no key twice). Returns one row per op, in order: `(n, written, locked, live)`; see the
/// module docs. The rows the batch writes are locked first (`SKIP LOCKED`: a row another
/// transaction holds is left out, not waited for), and only locked rows are written. A
/// locked row's liveness is read from the version locked (the latest: a row changed since
/// the statement's snapshot is locked as it is now), an unlocked one's from the snapshot,
/// and only for those.
pub(crate) const SAVE_BATCH: &str = concat!(
    "WITH i AS MATERIALIZED (
    SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[],
                         $6::bigint[], $7::text[], $8::bigint[])
        WITH ORDINALITY AS i(key, expected, version, user_id, created_at, dead_at, record, now, n)),
locked AS MATERIALIZED (
    SELECT s.key, (",
    batch_live_condition!(),
    ") AS live
    FROM i JOIN tessera_sessions s ON s.key = i.key
    FOR NO KEY UPDATE OF s SKIP LOCKED),
written AS (
    UPDATE tessera_sessions s
    SET version = i.version, user_id = i.user_id, created_at = i.created_at,
        dead_at = i.dead_at, record = i.record::json
    FROM i, locked l
    WHERE s.key = i.key AND l.key = i.key AND l.live AND s.version = i.expected AND ",
    batch_live_condition!(),
    "
    RETURNING s.key)
SELECT i.n, w.key IS NOT NULL, l.key IS NOT NULL,
       CASE WHEN l.key IS NOT NULL THEN l.live
            ELSE EXISTS (SELECT 1 FROM tessera_sessions s WHERE s.key = i.key AND ",
    batch_live_condition!(),
    ") END
FROM i LEFT JOIN locked l ON l.key = i.key LEFT JOIN written w ON w.key = i.key
ORDER BY i.n"
);

/// Counters of one kind of batched operation since the store was opened, from
/// [`PostgresStore::write_stats`](crate::PostgresStore::write_stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Batch statements sent.
    pub batches: u64,
    /// Operations those statements carried: the sum of their sizes.
    pub ops: u64,
    /// The largest batch sent so far.
    pub largest_batch: u64,
    /// Saves that found their row held by another transaction and were sent again alone.
    pub busy: u64,
    /// Batch statements that failed (every save in them failed with them).
    pub failed_batches: u64,
}

/// Why a save failed with the others of its batch (the source of
/// [`tessera_core::Error::Backend`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// No connection for the batch.
    #[error("no connection for this save's batch")]
    Pool(#[source] Arc<deadpool_postgres::PoolError>),
    /// The batch statement failed: it may or may not have committed.
    #[error("the statement of this save's batch failed; it may or may not have been applied")]
    Statement(#[source] Arc<tokio_postgres::Error>),
    /// Postgres answered the batch with rows that do not match its ops.
    #[error("the answer to this save's batch does not match its writes")]
    Answer,
    /// The task running the batch stopped before answering (it panicked).
    #[error("the task running this save's batch stopped before answering")]
    Stopped,
}

impl BatchError {
    /// Every code [`BatchError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "postgres-batch-pool",
        "postgres-batch-statement",
        "postgres-batch-answer",
        "postgres-batch-stopped",
    ];

    /// A stable identifier for this error, for logs, metrics and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Pool(_) => "postgres-batch-pool",
            Self::Statement(_) => "postgres-batch-statement",
            Self::Answer => "postgres-batch-answer",
            Self::Stopped => "postgres-batch-stopped",
        }
    }
}

/// What a batched save decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Saved {
    /// Written.
    Ok,
    /// A live record of another version.
    Conflict,
    /// No live record.
    NotFound,
    /// Another transaction holds the row: send the save again alone.
    Busy,
}

/// One queued save, its values owned (the batch runs in a task of its own).
pub(crate) struct SaveOp {
    pub(crate) key: [u8; 32],
    pub(crate) expected: i64,
    pub(crate) version: i64,
    pub(crate) user_id: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) dead_at: i64,
    pub(crate) record: String,
    pub(crate) now: i64,
}

/// A kind of batched operation: how a batch of its ops is sent, and which ops may share one.
pub(crate) trait Kind: Send + Sync + 'static {
    /// One queued operation.
    type Op: Send + Sync + 'static;
    /// Its outcome.
    type Out: Send + 'static;
    /// Whether `op` may join `batch` (else the batch ends before it, and it heads the next).
    fn fits(batch: &[Job<Self>], op: &Self::Op) -> bool;
    /// Sends `ops` as one statement on `client`: each op's outcome, in order.
    fn send(
        client: &deadpool_postgres::Client,
        ops: &[&Self::Op],
    ) -> impl Future<Output = Result<Vec<Self::Out>, Failure>> + Send;
}

/// The batched compare-and-set of `save`.
pub(crate) struct Saves;

impl Kind for Saves {
    type Op = SaveOp;
    type Out = Saved;

    fn fits(batch: &[Job<Self>], op: &SaveOp) -> bool {
        // Two saves of one key in one `UPDATE … FROM`: the row would take one of them.
        !batch.iter().any(|b| b.op.key == op.key)
    }

    async fn send(
        client: &deadpool_postgres::Client,
        ops: &[&SaveOp],
    ) -> Result<Vec<Saved>, Failure> {
        let st = client
            .prepare_cached(SAVE_BATCH)
            .await
            .map_err(Failure::statement)?;
        let keys: Vec<&[u8]> = ops.iter().map(|o| o.key.as_slice()).collect();
        let expected: Vec<i64> = ops.iter().map(|o| o.expected).collect();
        let versions: Vec<i64> = ops.iter().map(|o| o.version).collect();
        let users: Vec<Option<&str>> = ops.iter().map(|o| o.user_id.as_deref()).collect();
        let created: Vec<i64> = ops.iter().map(|o| o.created_at).collect();
        let dead: Vec<i64> = ops.iter().map(|o| o.dead_at).collect();
        let records: Vec<&str> = ops.iter().map(|o| o.record.as_str()).collect();
        let nows: Vec<i64> = ops.iter().map(|o| o.now).collect();
        let rows = client
            .query(
                &st,
                &[
                    &keys, &expected, &versions, &users, &created, &dead, &records, &nows,
                ],
            )
            .await
            .map_err(Failure::statement)?;
        if rows.len() != ops.len() {
            return Err(Failure::Batch(BatchError::Answer));
        }
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let n: i64 = row.try_get(0).map_err(Failure::statement)?;
            if usize::try_from(n).ok() != Some(i + 1) {
                return Err(Failure::Batch(BatchError::Answer));
            }
            let written: bool = row.try_get(1).map_err(Failure::statement)?;
            let locked: bool = row.try_get(2).map_err(Failure::statement)?;
            let live: bool = row.try_get(3).map_err(Failure::statement)?;
            out.push(decide(written, locked, live));
        }
        Ok(out)
    }
}

/// One queued `load`.
pub(crate) struct LoadOp {
    pub(crate) key: [u8; 32],
    pub(crate) now: i64,
}

/// What a batched `load` found: the record's JSON and its user's revocation time.
pub(crate) type Loaded = Option<(String, Option<i64>)>;

/// The point reads of `load`, many in one statement: `$1` the keys, `$2` the ops' `now`s.
/// One row per op that found a record that may be live (as the single `load`, the record's
/// own rules decide), `n` its place in the batch.
pub(crate) const LOAD_BATCH: &str = "
SELECT i.n, s.record::text, r.revoked_at
FROM unnest($1::bytea[], $2::bigint[]) WITH ORDINALITY AS i(key, now, n)
JOIN tessera_sessions s ON s.key = i.key
LEFT JOIN tessera_user_revocations r ON r.user_id = s.user_id
WHERE s.record IS NOT NULL AND s.dead_at > i.now";

/// The batched point reads of `load`.
pub(crate) struct Loads;

impl Kind for Loads {
    type Op = LoadOp;
    type Out = Loaded;

    fn fits(_: &[Job<Self>], _: &LoadOp) -> bool {
        true
    }

    async fn send(
        client: &deadpool_postgres::Client,
        ops: &[&LoadOp],
    ) -> Result<Vec<Loaded>, Failure> {
        let st = client
            .prepare_cached(LOAD_BATCH)
            .await
            .map_err(Failure::statement)?;
        let keys: Vec<&[u8]> = ops.iter().map(|o| o.key.as_slice()).collect();
        let nows: Vec<i64> = ops.iter().map(|o| o.now).collect();
        let rows = client
            .query(&st, &[&keys, &nows])
            .await
            .map_err(Failure::statement)?;
        let mut out: Vec<Loaded> = vec![None; ops.len()];
        for row in rows {
            let n: i64 = row.try_get(0).map_err(Failure::statement)?;
            let slot = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| out.get_mut(i))
                .ok_or(Failure::Batch(BatchError::Answer))?;
            if slot.is_some() {
                return Err(Failure::Batch(BatchError::Answer));
            }
            *slot = Some((
                row.try_get(1).map_err(Failure::statement)?,
                row.try_get(2).map_err(Failure::statement)?,
            ));
        }
        Ok(out)
    }
}

/// A queued op and where its answer goes.
pub(crate) struct Job<K: Kind + ?Sized> {
    op: K::Op,
    reply: oneshot::Sender<StoreResult<K::Out>>,
}

struct Queue<K: Kind> {
    jobs: VecDeque<Job<K>>,
    /// Batch tasks running.
    running: usize,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    ops: AtomicU64,
    largest: AtomicU64,
    busy: AtomicU64,
    failed: AtomicU64,
}

/// The queue of one kind of op and its batches in flight.
pub(crate) struct Batcher<K: Kind> {
    pool: Pool,
    timeout: Duration,
    max_running: usize,
    queue: Mutex<Queue<K>>,
    counters: Counters,
}

impl<K: Kind> Batcher<K> {
    pub(crate) fn new(pool: Pool, timeout: Duration, max_running: usize) -> Self {
        Self {
            pool,
            timeout,
            max_running: max_running.max(1),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                running: 0,
            }),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<K>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `op` and waits for its batch's answer (no timeout here: the caller's).
    pub(crate) async fn submit(self: &Arc<Self>, op: K::Op) -> StoreResult<K::Out> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = self.lock();
            q.jobs.push_back(Job { op, reply });
            let start = q.running < self.max_running;
            if start {
                q.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(Arc::clone(self).run());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(tessera_core::Error::backend(BatchError::Stopped)))
    }

    /// Counts an op sent again alone after a busy answer.
    pub(crate) fn count_busy(&self) {
        self.counters.busy.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> BatchStats {
        let c = &self.counters;
        BatchStats {
            batches: c.batches.load(Ordering::Relaxed),
            ops: c.ops.load(Ordering::Relaxed),
            largest_batch: c.largest.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
            failed_batches: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Takes the next batch off the queue: ops whose callers still wait, in order, up to the
    /// first that does not fit. Empty when nothing is queued, and then this runner has
    /// stopped.
    fn next_batch(&self) -> Vec<Job<K>> {
        let mut q = self.lock();
        let mut batch: Vec<Job<K>> = Vec::new();
        while batch.len() < MAX_BATCH {
            let Some(job) = q.jobs.front() else { break };
            if job.reply.is_closed() {
                // Its caller gave up (timed out): nobody waits for this op.
                q.jobs.pop_front();
                continue;
            }
            if !K::fits(&batch, &job.op) {
                break;
            }
            if let Some(job) = q.jobs.pop_front() {
                batch.push(job);
            }
        }
        if batch.is_empty() {
            q.running -= 1;
        }
        batch
    }

    /// A batch runner: sends batches until the queue is empty.
    async fn run(self: Arc<Self>) {
        // If this task panics, the slot is given back (the panicking batch's callers get
        // `Stopped`: their reply senders are dropped).
        struct Slot<'a, K: Kind>(&'a Batcher<K>, bool);
        impl<K: Kind> Drop for Slot<'_, K> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.lock().running -= 1;
                }
            }
        }
        let mut slot = Slot(&self, true);
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                slot.1 = false;
                return;
            }
            let ops: Vec<&K::Op> = batch.iter().map(|j| &j.op).collect();
            let outcome = match tokio::time::timeout(self.timeout, self.send(&ops)).await {
                Ok(r) => r,
                Err(_) => Err(Failure::Timeout),
            };
            drop(ops);
            let c = &self.counters;
            c.batches.fetch_add(1, Ordering::Relaxed);
            let n = batch.len() as u64;
            c.ops.fetch_add(n, Ordering::Relaxed);
            c.largest.fetch_max(n, Ordering::Relaxed);
            match outcome {
                Ok(outs) => {
                    for (job, out) in batch.into_iter().zip(outs) {
                        let _ = job.reply.send(Ok(out));
                    }
                }
                Err(f) => {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    for job in batch {
                        let _ = job.reply.send(Err(f.to_store_error()));
                    }
                }
            }
        }
    }

    /// One batch statement on a pooled connection.
    async fn send(&self, ops: &[&K::Op]) -> Result<Vec<K::Out>, Failure> {
        let client = self.pool.get().await.map_err(Failure::pool)?;
        K::send(&client, ops).await
    }
}

/// One op's outcome from what the batch statement says of it (see the module docs).
fn decide(written: bool, locked: bool, live: bool) -> Saved {
    match (written, locked, live) {
        (true, _, _) => Saved::Ok,
        (false, true, true) => Saved::Conflict,
        (false, false, true) => Saved::Busy,
        (false, _, false) => Saved::NotFound,
    }
}

/// Why a batch failed, shared by its ops.
pub(crate) enum Failure {
    Timeout,
    Batch(BatchError),
}

impl Failure {
    fn pool(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Timeout(_) => Self::Timeout,
            e => Self::Batch(BatchError::Pool(Arc::new(e))),
        }
    }

    fn statement(e: tokio_postgres::Error) -> Self {
        Self::Batch(BatchError::Statement(Arc::new(e)))
    }

    fn to_store_error(&self) -> tessera_core::Error {
        match self {
            Self::Timeout => tessera_core::Error::Timeout,
            Self::Batch(e) => tessera_core::Error::backend(e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_listed_unique_and_kebab_case() {
        let pg = "postgres://h:notaport/db"
            .parse::<tokio_postgres::Config>()
            .unwrap_err();
        let all = [
            BatchError::Pool(Arc::new(deadpool_postgres::PoolError::Closed)),
            BatchError::Statement(Arc::new(pg)),
            BatchError::Answer,
            BatchError::Stopped,
        ];
        tessera_test_support::assert_error_codes(
            BatchError::CODES,
            all.iter().map(BatchError::code),
        );
    }

    #[test]
    fn each_save_is_decided_by_its_own_row() {
        assert_eq!(decide(true, true, true), Saved::Ok);
        assert_eq!(decide(true, true, false), Saved::Ok);
        assert_eq!(decide(false, true, true), Saved::Conflict);
        assert_eq!(decide(false, true, false), Saved::NotFound);
        assert_eq!(decide(false, false, true), Saved::Busy);
        assert_eq!(decide(false, false, false), Saved::NotFound);
    }
}
