//! Group commit: every write of a [`RedbStore`](crate::RedbStore) goes through one writer
//! thread, which applies the writes that queued up while its previous commit was in flight
//! in one write transaction, and makes them durable with one commit
//! ([`Durability::Immediate`]: one fsync for the whole batch).
//!
//! # How
//!
//! A write is a closure over the write transaction. Its caller puts it on the writer's queue
//! and waits for the answer. The writer blocks on the queue; it takes the first write that
//! arrives, then whatever else is queued by then (at most [`MAX_BATCH`]), and runs them in the
//! order they were sent, in one transaction. A lone write is committed as soon as it arrives:
//! after a batch of one write (low load), nothing waits.
//!
//! After a batch of several writes (concurrent writers), the writer first gathers: it keeps
//! taking writes while they keep arriving, each within [`GATHER_GAP`] of the one before, for
//! at most half the time the previous batch took, and never more than [`GATHER_MAX`]. Without
//! this, concurrent writers split into two alternating groups: the callers answered by one
//! commit come back while the next is in flight, which holds only those that queued during
//! the one before, so each commit (one fsync, about 2 ms on the benchmark machine) carried
//! about half of them (15 to 17.5 writes a commit with 32 writers, BENCHMARKS.md). A commit
//! costs the same for 1 write or 32: waiting a fraction of one for the callers on their way
//! costs less than the extra commit. When they stop coming, the gap ends the wait at once.
//!
//! # What a caller waits for
//!
//! Its answer is sent after the transaction that holds its write has committed (or failed),
//! and after the read cache has dropped what the batch touched. So an `Ok` is durable, and a
//! read that starts after it sees the write. Every answer of a batch, a refusal included,
//! waits for that commit: a caller told `Conflict` reads the version that beat it. A batch in
//! which every write was refused has nothing to make durable: it is aborted rather than
//! committed, and answered at once. This matters when many writers race for one record: after
//! each winning commit, the losers' retries that lost again would otherwise each cost an fsync
//! in which nothing is written.
//!
//! # Failure semantics
//!
//! Each operation keeps its own semantics inside a batch:
//!
//! - Operations run in order, each on what the ones before it left in the transaction: a
//!   compare-and-set sees the writes before it in its batch, a second `create` of a key finds
//!   the first.
//! - A **refusal** (`AlreadyExists`, `Conflict`, `NotFound`) is the outcome of that operation
//!   alone, never of the batch: every operation decides it before its first write (a rule for
//!   the closures in `lib.rs`), so it leaves nothing behind and the batch goes on.
//! - **Any other error inside an operation** (a redb storage error, a stored entry that does
//!   not decode) may come after part of that operation's writes. redb cannot undo part of a
//!   transaction: a savepoint can only be taken before the transaction opens its first table
//!   (`SavepointError::InvalidSavepoint` on a "dirty" transaction), and an operation that
//!   fails part way may poison the transaction (`CommitError::TransactionPoisoned`). So the
//!   writer aborts the transaction, answers that operation with its error, and runs the
//!   others again from the first in a new transaction: each then acts as if the failed
//!   operation had never been sent, and their first outcomes are forgotten. This repeats
//!   until a transaction commits or no operation is left, so each failing operation costs one
//!   aborted transaction and fails alone. (Failing the whole batch instead would make one bad
//!   entry fail the unrelated writes that happened to queue beside it; on a disk that really
//!   is failing, redb latches the error and the re-run fails at once.)
//! - A failure **outside any operation** (beginning the transaction, or the commit) fails
//!   every operation of that batch, and only those, with a [`BatchError`] (the cause shared by
//!   all). After a failed commit redb says the transaction's changes are applied all or not at
//!   all but may already be durable, and it refuses further write transactions until the file
//!   is reopened: an error answer means "not known to be applied", like a timeout from a
//!   network store.
//! - A **panic** while running a batch fails its operations with [`BatchError::Panicked`];
//!   the transaction is dropped (rolled back, unless the panic came from within the commit)
//!   and the writer goes on with the next batch.
//!
//! # Read cache
//!
//! Once the writer has tried to commit a batch, whether the commit succeeded or failed (a
//! failed commit may still have applied it), it drops every cached record the batch's
//! operations may have touched and starts a new cache generation before it answers anyone;
//! a `save` that succeeded in a commit that succeeded leaves its new record in the cache
//! instead (what the file now holds), in the batch's order. A
//! read that raced the batch never fills the cache with what it read, and a read after an
//! answer never meets a stale entry (see `ReadCache` in `lib.rs`). A batch whose
//! transactions were all aborted (refusals only, failed writes, a failed begin) changed
//! nothing, and leaves the cache as it is.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use tessera_core::{SessionRecord, Timestamp};

use crate::{ReadCache, StoreResult};

/// The most writes one transaction takes. What is queued beyond it waits for the next one.
pub(crate) const MAX_BATCH: usize = 512;

/// How long the writer waits for the next write while it gathers a batch after a batch of
/// several writes (see the module docs). Writes of callers on their way arrive tens of
/// microseconds apart on a busy 2-core machine.
pub(crate) const GATHER_GAP: Duration = Duration::from_micros(150);

/// The longest the writer gathers a batch.
pub(crate) const GATHER_MAX: Duration = Duration::from_millis(1);

/// The upper bounds of the batch-size buckets of [`CommitStats::commits_by_size`]:
/// `commits_by_size[i]` counts the commits of more than `BATCH_SIZE_BUCKETS[i - 1]` (none for
/// the first) and at most `BATCH_SIZE_BUCKETS[i]` writes. The last bound is the largest batch
/// there can be.
pub const BATCH_SIZE_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

const _: () = assert!(BATCH_SIZE_BUCKETS[BATCH_SIZE_BUCKETS.len() - 1] == MAX_BATCH as u64);

/// The upper bounds, in microseconds, of the buckets of [`CommitStats::commits_by_duration`]:
/// `commits_by_duration[i]` counts the commits that took more than
/// `COMMIT_MICROS_BUCKETS[i - 1]` and at most `COMMIT_MICROS_BUCKETS[i]` (the last bound,
/// `u64::MAX`, takes every longer one). A commit's time is mostly its fsyncs: this is what a durable
/// write's latency is bounded by, and what its tail comes from.
pub const COMMIT_MICROS_BUCKETS: [u64; 13] = [
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    u64::MAX,
];

/// Counters of the store's group commit, since it was opened: how many writes each commit
/// made durable. From [`RedbStore::commit_stats`](crate::RedbStore::commit_stats).
///
/// # Examples
///
/// ```
/// use tessera_core::SessionStore as _;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let store = tessera_store_redb::RedbStore::open(dir.path().join("s.redb"))?;
/// store.revoke_user("alice", tessera_core::Timestamp::from_unix_millis(1)).await?;
/// let stats = store.commit_stats();
/// // One write on an idle store: committed on its own, at once.
/// assert_eq!((stats.commits, stats.writes, stats.commits_by_size[0]), (1, 1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Write operations answered by those commits: the sum of their batch sizes. Refused
    /// operations (a conflict, say) count too: they were decided in that transaction.
    pub writes: u64,
    /// Commits by batch size, in the buckets of [`BATCH_SIZE_BUCKETS`] (not cumulative).
    pub commits_by_size: [u64; BATCH_SIZE_BUCKETS.len()],
    /// The largest batch committed so far.
    pub largest_batch: u64,
    /// Commits by how long `commit` took (its fsyncs), in the buckets of
    /// [`COMMIT_MICROS_BUCKETS`] (not cumulative).
    pub commits_by_duration: [u64; COMMIT_MICROS_BUCKETS.len()],
    /// The time all commits took together, in microseconds.
    pub commit_micros: u64,
    /// Write transactions that did not commit: aborted because an operation in them failed
    /// (its batch then ran again without it), or failed to begin or to commit.
    pub failed_transactions: u64,
    /// Batches in which every write was refused (`Conflict`, say): nothing to make durable,
    /// so their transaction was aborted, without a commit. Not in `commits` or `writes`.
    pub refused_batches: u64,
}

/// Why a write failed with the other writes of its batch (kept as the source of
/// [`tessera_core::Error::Backend`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The write transaction of the batch could not begin: nothing of it was applied.
    #[error("could not begin the write transaction of this write's batch")]
    Begin(#[source] Arc<redb::Error>),
    /// The commit of the batch failed. redb applies a transaction all or not at all, but
    /// after a failed commit it may already be durable: the write may or may not be there.
    #[error("the commit of this write's batch failed; the write may or may not have been applied")]
    Commit(#[source] Arc<redb::Error>),
    /// The writer panicked while running the batch (in a write, or in redb). Its transaction
    /// was dropped, which rolls it back, unless the panic came from within the commit.
    #[error("the store's writer panicked while running this write's batch")]
    Panicked,
    /// The writer thread is gone: the write was not applied.
    #[error("the store's writer has stopped")]
    WriterStopped,
}

impl BatchError {
    /// Every code [`BatchError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "redb-batch-begin",
        "redb-batch-commit",
        "redb-writer-panicked",
        "redb-writer-stopped",
    ];

    /// A stable identifier for this error, for logs, metrics and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Begin(_) => "redb-batch-begin",
            Self::Commit(_) => "redb-batch-commit",
            Self::Panicked => "redb-writer-panicked",
            Self::WriterStopped => "redb-writer-stopped",
        }
    }
}

/// What a write may change in the read cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Touches {
    /// No session record (the key-value namespace, the revocation log).
    Nothing,
    /// The record under this store key.
    Key([u8; 32]),
    /// Any record (a user's revocation time, a purge).
    Everything,
}

/// What the read cache learns from one write of a batch that was committed (or whose commit
/// was attempted), applied in the order of the batch.
#[derive(Debug)]
// The updates of a batch live until it is answered: boxing the record would cost an
// allocation a write to save a few hundred bytes of a short-lived vector.
#[allow(clippy::large_enum_variant)]
pub(crate) enum CacheUpdate {
    /// Nothing the cache holds.
    Keep,
    /// Drop the record under this key.
    Remove([u8; 32]),
    /// Drop every record.
    Clear,
    /// The record this committed write left under the key, live when it was written, and its
    /// user's revocation time read in the same transaction: what a read would now find.
    Fill([u8; 32], SessionRecord, Option<Timestamp>),
}

/// A write that, when it succeeds, leaves `record` under its key: the cache may keep it
/// (instead of dropping the key, which makes the next read go to the file and decode it).
/// `revoked` gives the user's revocation time from the write's outcome.
pub(crate) struct Fill<T> {
    pub(crate) record: SessionRecord,
    pub(crate) revoked: fn(&T) -> Option<Timestamp>,
}

/// The outcomes an operation decides before its first write, so that they fail it alone and
/// leave its batch's transaction untouched.
fn is_refusal(e: &tessera_core::Error) -> bool {
    matches!(
        e,
        tessera_core::Error::AlreadyExists
            | tessera_core::Error::Conflict
            | tessera_core::Error::NotFound
    )
}

/// A queued write, its type erased: its closure, its latest outcome and its answer channel.
trait Pending: Send {
    /// Runs the write in `txn` and keeps its outcome. `false` when it failed in a way that may
    /// have left part of its writes in `txn`.
    fn apply(&mut self, txn: &WriteTransaction) -> bool;
    /// Whether its latest outcome is a success: it may have written something. A refusal
    /// wrote nothing.
    fn succeeded(&self) -> bool;
    /// Replaces the outcome with `err`.
    fn fail(&mut self, err: tessera_core::Error);
    /// What the cache learns from this write once its batch's commit was attempted: its
    /// record when it succeeded and says what it left (a [`Fill`]), else what it touches is
    /// dropped.
    fn cache_update(&mut self) -> CacheUpdate;
    /// Sends the outcome to the caller, if it is still waiting.
    fn answer(self: Box<Self>);
}

struct Job<T, F> {
    op: F,
    touches: Touches,
    fill: Option<Fill<T>>,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Pending for Job<T, F>
where
    T: Send,
    F: Fn(&WriteTransaction) -> StoreResult<T> + Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> bool {
        let outcome = (self.op)(txn);
        let kept = outcome.as_ref().map_or_else(is_refusal, |_| true);
        self.outcome = Some(outcome);
        kept
    }

    fn succeeded(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }

    fn fail(&mut self, err: tessera_core::Error) {
        self.outcome = Some(Err(err));
    }

    fn cache_update(&mut self) -> CacheUpdate {
        match self.touches {
            Touches::Nothing => CacheUpdate::Keep,
            Touches::Everything => CacheUpdate::Clear,
            Touches::Key(key) => match (&self.outcome, self.fill.take()) {
                (Some(Ok(t)), Some(fill)) => {
                    let revoked = (fill.revoked)(t);
                    CacheUpdate::Fill(key, fill.record, revoked)
                }
                _ => CacheUpdate::Remove(key),
            },
        }
    }

    fn answer(self: Box<Self>) {
        let outcome = self.outcome.unwrap_or(Err(tessera_core::Error::Unreachable(
            "a batched write was answered before it ran",
        )));
        // A caller that went away (a dropped future) has nobody to tell.
        let _ = self.reply.send(outcome);
    }
}

/// The counters behind [`CommitStats`], written by the writer thread only.
#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    writes: AtomicU64,
    by_size: [AtomicU64; BATCH_SIZE_BUCKETS.len()],
    largest: AtomicU64,
    by_duration: [AtomicU64; COMMIT_MICROS_BUCKETS.len()],
    micros: AtomicU64,
    failed: AtomicU64,
    refused_only: AtomicU64,
}

impl Counters {
    fn committed(&self, size: usize, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(micros, Ordering::Relaxed);
        let bucket = COMMIT_MICROS_BUCKETS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(COMMIT_MICROS_BUCKETS.len() - 1);
        if let Some(c) = self.by_duration.get(bucket) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let size = size as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
        let bucket = BATCH_SIZE_BUCKETS
            .iter()
            .position(|&b| size <= b)
            .unwrap_or(BATCH_SIZE_BUCKETS.len() - 1);
        if let Some(c) = self.by_size.get(bucket) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn refused_only(&self) {
        self.refused_only.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CommitStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CommitStats {
            commits: get(&self.commits),
            writes: get(&self.writes),
            commits_by_size: std::array::from_fn(|i| self.by_size.get(i).map_or(0, get)),
            largest_batch: get(&self.largest),
            commits_by_duration: std::array::from_fn(|i| self.by_duration.get(i).map_or(0, get)),
            commit_micros: get(&self.micros),
            failed_transactions: get(&self.failed),
            refused_batches: get(&self.refused_only),
        }
    }
}

/// The store's writer: the queue into its thread. Dropping it lets the thread finish what is
/// queued, then joins it, so the database file is closed once the store is gone.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Pending>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    pub(crate) faults: Arc<Faults>,
}

impl Writer {
    /// Starts the writer thread of `db`, which invalidates `cache` after each batch.
    pub(crate) fn start(db: Arc<Database>, cache: Arc<ReadCache>) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let faults = Arc::<Faults>::default();
        let thread = {
            let (counters, faults) = (Arc::clone(&counters), Arc::clone(&faults));
            std::thread::Builder::new()
                .name("tessera-redb-writer".into())
                .spawn(move || run(&db, &cache, &jobs, &counters, &faults))?
        };
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            counters,
            faults,
        })
    }

    /// Runs `op` in the next write transaction and answers once that transaction committed.
    /// `op` may run more than once (again after another write of its batch failed): it must
    /// be a pure function of the transaction's state, and it must return any refusal
    /// (`AlreadyExists`, `Conflict`, `NotFound`) before its first write.
    ///
    /// Once this future has been polled, dropping it does not cancel the write.
    ///
    /// With a `fill`, a success leaves its record in the read cache (see [`Fill`]); `touches`
    /// must then be the key it writes.
    pub(crate) async fn write<T, F>(
        &self,
        touches: Touches,
        fill: Option<Fill<T>>,
        op: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let stopped = || tessera_core::Error::backend(BatchError::WriterStopped);
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Pending> = Box::new(Job {
            op,
            touches,
            fill,
            outcome: None,
            reply,
        });
        let queued = self.queue.as_ref().is_some_and(|q| q.send(job).is_ok());
        if !queued {
            return Err(stopped());
        }
        self.faults.sent();
        // A dropped reply without an answer means the writer thread died with the batch.
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    pub(crate) fn stats(&self) -> CommitStats {
        self.counters.snapshot()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once everything queued is answered.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: one batch at a time until the queue closes.
fn run(
    db: &Database,
    cache: &ReadCache,
    jobs: &mpsc::Receiver<Box<dyn Pending>>,
    counters: &Counters,
    faults: &Faults,
) {
    // The size of the previous batch, and how long it took (its transaction and commit).
    let (mut last_len, mut last_took) = (0usize, Duration::ZERO);
    while let Ok(first) = jobs.recv() {
        faults.wait_while_paused();
        let mut batch = vec![first];
        batch.extend(jobs.try_iter().take(MAX_BATCH - 1));
        if last_len > 1 {
            gather(
                jobs,
                &mut batch,
                (last_took / 2).min(GATHER_MAX),
                GATHER_GAP,
            );
        }
        let started = Instant::now();
        let applied =
            std::panic::catch_unwind(AssertUnwindSafe(|| apply(db, &mut batch, counters, faults)));
        (last_len, last_took) = (batch.len(), started.elapsed());
        // A panic may have come from within a commit: count it as one.
        let committing = applied.unwrap_or_else(|_| {
            counters.failed();
            for job in &mut batch {
                job.fail(tessera_core::Error::backend(BatchError::Panicked));
            }
            true
        });
        // After the transaction, whatever became of its commit (a failed one may have
        // applied it: its writes then failed, and drop what they touch), and before anyone
        // is answered. Aborted transactions changed nothing.
        if committing {
            let updates: Vec<CacheUpdate> = batch
                .iter_mut()
                .map(|j| j.cache_update())
                .filter(|u| !matches!(u, CacheUpdate::Keep))
                .collect();
            if !updates.is_empty() {
                cache.update(updates);
            }
        }
        for job in batch {
            job.answer();
        }
    }
}

/// Adds to `batch` the writes that keep arriving, each within `gap` ([`GATHER_GAP`]) of the
/// one before, for at most `budget` (and [`MAX_BATCH`] writes).
fn gather(
    jobs: &mpsc::Receiver<Box<dyn Pending>>,
    batch: &mut Vec<Box<dyn Pending>>,
    budget: Duration,
    gap: Duration,
) {
    let deadline = Instant::now() + budget;
    while batch.len() < MAX_BATCH {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // A timeout ends the gathering; so does a closed queue (the store is closing: run
        // what there is).
        let Ok(job) = jobs.recv_timeout(gap.min(left)) else {
            break;
        };
        batch.push(job);
        let room = MAX_BATCH - batch.len();
        batch.extend(jobs.try_iter().take(room));
    }
}

/// Runs `batch` in one transaction and commits it, leaving each write's outcome in it. A
/// write that fails (other than a refusal) aborts the transaction and keeps its error; the
/// others run again without it in a new transaction. Whether a commit was attempted: if not,
/// every transaction was aborted and the file is as it was.
fn apply(
    db: &Database,
    batch: &mut [Box<dyn Pending>],
    counters: &Counters,
    faults: &Faults,
) -> bool {
    // Positions in `batch` of the writes still in the running; a failed one leaves.
    let mut left: Vec<usize> = (0..batch.len()).collect();
    while !left.is_empty() {
        let txn = match begin(db, faults) {
            Ok(txn) => txn,
            Err(e) => {
                counters.failed();
                fail_all(batch, &left, &BatchError::Begin(Arc::new(e)));
                return false;
            }
        };
        let mut failed = None;
        for (pos, &i) in left.iter().enumerate() {
            let Some(job) = batch.get_mut(i) else {
                continue;
            };
            if !job.apply(&txn) || faults.op_fails(pos, job.as_mut()) {
                failed = Some(pos);
                break;
            }
        }
        if let Some(pos) = failed {
            // The failed write's error is what its caller gets; a failed abort is repaired
            // by redb.
            let _ = txn.abort();
            counters.failed();
            left.remove(pos);
            continue;
        }
        if !left
            .iter()
            .any(|&i| batch.get(i).is_some_and(|j| j.succeeded()))
        {
            // Every write was refused: nothing to make durable, so no commit (no fsync), and
            // the callers, refused against what is committed, are answered at once.
            let _ = txn.abort();
            counters.refused_only();
            return false;
        }
        let started = Instant::now();
        match commit(txn, faults) {
            Ok(()) => counters.committed(left.len(), started.elapsed()),
            Err(e) => {
                counters.failed();
                fail_all(batch, &left, &BatchError::Commit(Arc::new(e)));
            }
        }
        return true;
    }
    false
}

fn fail_all(batch: &mut [Box<dyn Pending>], left: &[usize], err: &BatchError) {
    for &i in left {
        if let Some(job) = batch.get_mut(i) {
            job.fail(tessera_core::Error::backend(err.clone()));
        }
    }
}

fn begin(db: &Database, faults: &Faults) -> Result<WriteTransaction, redb::Error> {
    faults.begin_fails()?;
    let mut txn = db.begin_write()?;
    // Immediate is redb's default; set it anyway so the durability promise does not rest on
    // a default.
    txn.set_durability(Durability::Immediate)?;
    Ok(txn)
}

fn commit(txn: WriteTransaction, faults: &Faults) -> Result<(), redb::Error> {
    faults.commit(txn)
}

// === test hooks ===

/// Fault injection and a pause for the unit tests; in other builds a zero-sized no-op.
#[cfg(not(test))]
#[derive(Debug, Default)]
pub(crate) struct Faults;

#[cfg(not(test))]
impl Faults {
    #[inline]
    fn sent(&self) {}

    #[inline]
    fn wait_while_paused(&self) {}

    #[inline]
    fn begin_fails(&self) -> Result<(), redb::Error> {
        Ok(())
    }

    #[inline]
    fn op_fails(&self, _pos: usize, _job: &mut dyn Pending) -> bool {
        false
    }

    #[inline]
    fn commit(&self, txn: WriteTransaction) -> Result<(), redb::Error> {
        Ok(txn.commit()?)
    }
}

#[cfg(test)]
pub(crate) use self::faults::{Faults, TxnFault};

#[cfg(test)]
mod faults {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

    use super::*;

    /// What goes wrong with the next transaction.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum TxnFault {
        /// `begin_write` fails.
        Begin,
        /// The write at this position fails after it ran (its writes are in the transaction).
        Op(usize),
        /// The write at this position panics after it ran.
        Panic(usize),
        /// The commit fails and nothing is applied.
        Commit,
        /// The commit is applied and durable, then reported as failed (as when the last fsync
        /// fails after the data reached the disk).
        AfterCommit,
    }

    /// Test hooks of the writer.
    #[derive(Debug, Default)]
    pub(crate) struct Faults {
        sent: AtomicUsize,
        paused: Mutex<bool>,
        resumed: Condvar,
        next: Mutex<Option<TxnFault>>,
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn injected() -> std::io::Error {
        std::io::Error::other("injected fault")
    }

    impl Faults {
        /// Writes queued so far.
        pub(crate) fn queued(&self) -> usize {
            self.sent.load(Ordering::SeqCst)
        }

        /// Holds the writer after it takes its next write and before it drains the queue:
        /// what is sent until [`Self::resume`] forms one batch.
        pub(crate) fn pause(&self) {
            *lock(&self.paused) = true;
        }

        pub(crate) fn resume(&self) {
            *lock(&self.paused) = false;
            self.resumed.notify_all();
        }

        /// Makes the next transaction go wrong as `fault` says (once).
        pub(crate) fn inject(&self, fault: TxnFault) {
            *lock(&self.next) = Some(fault);
        }

        fn take_if(&self, want: impl Fn(TxnFault) -> bool) -> Option<TxnFault> {
            let mut next = lock(&self.next);
            let f = (*next).filter(|f| want(*f))?;
            *next = None;
            Some(f)
        }

        pub(super) fn sent(&self) {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }

        pub(super) fn wait_while_paused(&self) {
            let mut paused = lock(&self.paused);
            while *paused {
                paused = self
                    .resumed
                    .wait(paused)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }

        pub(super) fn begin_fails(&self) -> Result<(), redb::Error> {
            match self.take_if(|f| f == TxnFault::Begin) {
                Some(_) => Err(redb::Error::Io(injected())),
                None => Ok(()),
            }
        }

        pub(super) fn op_fails(&self, pos: usize, job: &mut dyn Pending) -> bool {
            match self.take_if(|f| f == TxnFault::Op(pos) || f == TxnFault::Panic(pos)) {
                Some(TxnFault::Panic(_)) => panic!("injected panic"),
                Some(_) => {
                    job.fail(tessera_core::Error::backend(injected()));
                    true
                }
                None => false,
            }
        }

        pub(super) fn commit(&self, txn: WriteTransaction) -> Result<(), redb::Error> {
            match self.take_if(|f| matches!(f, TxnFault::Commit | TxnFault::AfterCommit)) {
                Some(TxnFault::Commit) => {
                    txn.abort()?;
                    Err(redb::Error::Io(injected()))
                }
                Some(_) => {
                    txn.commit()?;
                    Err(redb::Error::Io(injected()))
                }
                None => Ok(txn.commit()?),
            }
        }
    }
}

#[cfg(test)]
mod tests;
