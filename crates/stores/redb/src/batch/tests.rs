//! Batches as the writer forms them: writes held back behind a paused writer, in a known
//! order, then released as one transaction; and faults injected into that transaction.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redb::ReadableDatabase as _;
use tessera_core::testing::{self, T0};
use tessera_core::{
    Error as StoreError, KvStore as _, Revocation, RevocationLog as _, RevokedSubject, SessionKind,
    SessionRecord, SessionStore as _, StoreKey,
};

use super::{BATCH_SIZE_BUCKETS, BatchError, CommitStats, TxnFault};
use crate::codec::{self, Stored};
use crate::tests::assert_consistent;
use crate::{RedbStore, SESSIONS};

type Op = Pin<Box<dyn Future<Output = tessera_core::Result<u64>> + Send>>;

fn temp_store() -> (tempfile::TempDir, Arc<RedbStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("s.redb")).unwrap());
    (dir, store)
}

/// Sends `ops` to the paused writer, each queued before the next starts, then lets the
/// writer go: they form one batch, in this order. Their outcomes, in order.
async fn one_batch(store: &RedbStore, ops: Vec<Op>) -> Vec<tessera_core::Result<u64>> {
    let faults = &store.writer.faults;
    faults.pause();
    let mut running = vec![];
    for op in ops {
        let queued = faults.queued();
        running.push(tokio::spawn(op));
        while faults.queued() == queued {
            tokio::task::yield_now().await;
        }
    }
    faults.resume();
    let mut out = vec![];
    for r in running {
        out.push(r.await.unwrap());
    }
    out
}

/// The store's stats without their commit times, checked first for what they must be
/// whatever the times: one duration bucket a commit.
fn observed(store: &RedbStore) -> CommitStats {
    let s = store.commit_stats();
    assert_eq!(s.commits_by_duration.iter().sum::<u64>(), s.commits);
    timeless(s)
}

/// The stats without their commit times, which no test can predict.
fn timeless(mut s: CommitStats) -> CommitStats {
    s.commits_by_duration = Default::default();
    s.commit_micros = 0;
    s
}

/// What a commit of `n` writes adds to the stats that were `before`.
fn after_one_commit(before: &CommitStats, n: u64) -> CommitStats {
    let mut want = before.clone();
    want.commits += 1;
    want.writes += n;
    want.largest_batch = want.largest_batch.max(n);
    let bucket = BATCH_SIZE_BUCKETS.iter().position(|&b| n <= b).unwrap();
    want.commits_by_size[bucket] += 1;
    want
}

fn v(r: &SessionRecord, version: u64, mark: &str) -> SessionRecord {
    let mut r = r.clone();
    r.version = version;
    r.data.insert("mark".into(), serde_json::json!(mark));
    r
}

fn save(s: &Arc<RedbStore>, key: &StoreKey, expected: u64, r: &SessionRecord) -> Op {
    let (s, key, r) = (s.clone(), *key, r.clone());
    Box::pin(async move { s.save(&key, expected, &r, T0).await.map(|()| 0) })
}

fn create(s: &Arc<RedbStore>, key: &StoreKey, r: &SessionRecord) -> Op {
    let (s, key, r) = (s.clone(), *key, r.clone());
    Box::pin(async move { s.create(&key, &r).await.map(|()| 0) })
}

fn delete(s: &Arc<RedbStore>, key: &StoreKey) -> Op {
    let (s, key) = (s.clone(), *key);
    let until = T0.saturating_add(Duration::from_secs(3600));
    Box::pin(async move { s.delete(&key, until).await.map(|()| 0) })
}

/// What the file holds under `key`, read past the cache.
fn stored(store: &RedbStore, key: &StoreKey) -> Option<Stored> {
    let txn = store.db.begin_read().unwrap();
    let sessions = txn.open_table(SESSIONS).unwrap();
    let v = sessions.get(key.as_bytes()).unwrap()?;
    Some(codec::decode(v.value()).unwrap())
}

/// The [`BatchError`] behind a write's error, if that is what it is.
fn batch_error(r: &tessera_core::Result<u64>) -> Option<&BatchError> {
    match r {
        Err(StoreError::Backend(e)) => e.downcast_ref::<BatchError>(),
        _ => None,
    }
}

/// A created record, loaded once so the read cache holds it.
async fn cached(store: &RedbStore) -> (StoreKey, SessionRecord) {
    let key = testing::fresh_key(SessionKind::Authenticated);
    let r = testing::record(Some(&testing::fresh_user()), T0);
    store.create(&key, &r).await.unwrap();
    assert_eq!(store.load(&key, T0).await.unwrap(), Some(r.clone()));
    (key, r)
}

#[tokio::test]
async fn a_lone_write_commits_alone_at_once() {
    let (_dir, store) = temp_store();
    for i in 1..=3u64 {
        let key = testing::fresh_key(SessionKind::Anonymous);
        store
            .create(&key, &testing::record(None, T0))
            .await
            .unwrap();
        let s = store.commit_stats();
        assert_eq!((s.commits, s.writes, s.largest_batch), (i, i, 1));
        assert_eq!(s.commits_by_size[0], i);
    }
}

#[tokio::test]
async fn each_write_sees_the_writes_before_it_and_refusals_fail_alone() {
    let (_dir, store) = temp_store();
    let (k, r1) = cached(&store).await;
    let (gone, gone_r) = cached(&store).await;
    let (fresh, missing) = (
        testing::fresh_key(SessionKind::Anonymous),
        testing::fresh_key(SessionKind::Anonymous),
    );
    let anon = testing::record(None, T0);
    let kv_key = testing::fresh_kv_key();
    let revocation = |i: u64| {
        let s = store.clone();
        let r = Revocation {
            subject: RevokedSubject::Session(format!("sid-{i}")),
            at: T0,
        };
        Box::pin(async move { s.log_revocation(&r).await }) as Op
    };
    let kv = |put: bool| {
        let (s, key) = (store.clone(), kv_key.clone());
        let until = T0.saturating_add(Duration::from_secs(60));
        Box::pin(async move {
            if put {
                s.kv_put(&key, b"value", until, T0).await.map(|()| 0u64)
            } else {
                s.kv_delete(&key).await.map(|()| 0)
            }
        }) as Op
    };
    let before = store.commit_stats();

    let got = one_batch(
        &store,
        vec![
            save(&store, &k, 1, &v(&r1, 2, "two")),
            // Sees the save before it: version 2 is the current one.
            save(&store, &k, 2, &v(&r1, 3, "three")),
            // A stale version: a conflict, for this write alone.
            save(&store, &k, 1, &v(&r1, 2, "stale")),
            save(&store, &missing, 1, &anon),
            create(&store, &fresh, &anon),
            // Sees the create before it.
            create(&store, &fresh, &anon),
            delete(&store, &gone),
            // Sees the tombstone before it: no resurrection.
            save(&store, &gone, 1, &v(&gone_r, 2, "resurrected")),
            revocation(1),
            revocation(2),
            kv(true),
            kv(false),
        ],
    )
    .await;

    let outcome: Vec<String> = got
        .iter()
        .map(|r| match r {
            Ok(n) => format!("ok {n}"),
            Err(e) => e.code().to_owned(),
        })
        .collect();
    let conflict = StoreError::Conflict.code();
    let not_found = StoreError::NotFound.code();
    let exists = StoreError::AlreadyExists.code();
    assert_eq!(
        outcome,
        [
            "ok 0", "ok 0", conflict, not_found, "ok 0", exists, "ok 0", not_found, "ok 1", "ok 2",
            "ok 0", "ok 0"
        ]
    );
    assert_eq!(
        timeless(store.commit_stats()),
        timeless(after_one_commit(&before, 12))
    );

    assert_eq!(store.load(&k, T0).await.unwrap(), Some(v(&r1, 3, "three")));
    assert_eq!(store.load(&fresh, T0).await.unwrap(), Some(anon));
    assert_eq!(store.load(&gone, T0).await.unwrap(), None);
    assert_eq!(store.load(&missing, T0).await.unwrap(), None);
    assert_eq!(store.kv_get(&kv_key, T0).await.unwrap(), None);
    assert_eq!(store.revocations_since(0, 10).await.unwrap().len(), 2);
    assert_consistent(&store);
}

/// Many writers racing for one record mostly lose: a batch of refusals has nothing to make
/// durable, so it costs no commit (no fsync), and it leaves the read cache as it was.
#[tokio::test]
async fn a_batch_of_refusals_only_is_not_committed() {
    let (_dir, store) = temp_store();
    let (k, r1) = cached(&store).await;
    let missing = testing::fresh_key(SessionKind::Anonymous);
    let before = store.commit_stats();

    let got = one_batch(
        &store,
        vec![
            save(&store, &k, 7, &v(&r1, 8, "stale")),
            save(&store, &missing, 1, &testing::record(None, T0)),
            create(&store, &k, &r1),
        ],
    )
    .await;
    let codes: Vec<_> = got
        .iter()
        .map(|r| r.as_ref().map_err(StoreError::code).err())
        .collect();
    assert_eq!(
        codes,
        [
            Some(StoreError::Conflict.code()),
            Some(StoreError::NotFound.code()),
            Some(StoreError::AlreadyExists.code())
        ]
    );
    let mut want = before.clone();
    want.refused_batches += 1;
    assert_eq!(observed(&store), timeless(want));
    assert!(
        store.cache.get(k.as_bytes()).is_some(),
        "the cache was dropped"
    );
    assert_eq!(store.load(&k, T0).await.unwrap(), Some(r1));
}

#[tokio::test]
async fn a_write_that_fails_part_way_fails_alone_and_the_others_commit_without_it() {
    let (_dir, store) = temp_store();
    let (a, a1) = cached(&store).await;
    let (b, b1) = cached(&store).await;
    let c = testing::fresh_key(SessionKind::Anonymous);
    let before = store.commit_stats();

    // The save of `b` runs (its writes are in the transaction), then fails.
    store.writer.faults.inject(TxnFault::Op(1));
    let got = one_batch(
        &store,
        vec![
            save(&store, &a, 1, &v(&a1, 2, "a2")),
            save(&store, &b, 1, &v(&b1, 2, "b2")),
            create(&store, &c, &testing::record(None, T0)),
            // Run again without the failed write, it still sees the first one.
            save(&store, &a, 2, &v(&a1, 3, "a3")),
        ],
    )
    .await;

    assert!(
        got[0].is_ok() && got[2].is_ok() && got[3].is_ok(),
        "{got:?}"
    );
    let Err(StoreError::Backend(e)) = &got[1] else {
        panic!("{got:?}")
    };
    assert_eq!(e.to_string(), "injected fault");
    let mut want = after_one_commit(&before, 3);
    want.failed_transactions += 1;
    assert_eq!(observed(&store), timeless(want));

    // Nothing of the failed write is anywhere: not in the file, not in the cache.
    assert_eq!(stored(&store, &b), Some(Stored::Live(b1.clone())));
    assert_eq!(store.load(&b, T0).await.unwrap(), Some(b1));
    assert_eq!(store.load(&a, T0).await.unwrap(), Some(v(&a1, 3, "a3")));
    assert!(store.load(&c, T0).await.unwrap().is_some());
    assert_consistent(&store);
}

#[tokio::test]
async fn a_failed_commit_fails_exactly_the_writes_of_its_batch() {
    let (_dir, store) = temp_store();
    let (a, a1) = cached(&store).await;
    let c = testing::fresh_key(SessionKind::Anonymous);
    let before = store.commit_stats();

    store.writer.faults.inject(TxnFault::Commit);
    let got = one_batch(
        &store,
        vec![
            save(&store, &a, 1, &v(&a1, 2, "a2")),
            create(&store, &c, &testing::record(None, T0)),
            // A refusal in a failed batch fails with the batch: its answer is not known.
            save(&store, &c, 7, &testing::record(None, T0)),
        ],
    )
    .await;
    for r in &got {
        let e = batch_error(r).unwrap_or_else(|| panic!("{got:?}"));
        assert!(matches!(e, BatchError::Commit(_)), "{e:?}");
        assert_eq!(e.code(), "redb-batch-commit");
    }
    let mut want = before.clone();
    want.failed_transactions += 1;
    assert_eq!(observed(&store), timeless(want));
    assert_eq!(store.load(&a, T0).await.unwrap(), Some(a1.clone()));
    assert_eq!(store.load(&c, T0).await.unwrap(), None);

    // The next batch is not touched by it.
    let got = one_batch(
        &store,
        vec![
            save(&store, &a, 1, &v(&a1, 2, "a2")),
            create(&store, &c, &testing::record(None, T0)),
        ],
    )
    .await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(store.load(&a, T0).await.unwrap(), Some(v(&a1, 2, "a2")));
    assert_consistent(&store);
}

/// A committed `save` leaves its record in the read cache, and what comes after it in its
/// batch (another save, a delete, a revocation of the user) wins there as it does in the file.
#[tokio::test]
async fn a_committed_save_leaves_its_record_in_the_cache_and_later_writes_win() {
    let (_dir, store) = temp_store();
    let (a, a1) = cached(&store).await;
    let (b, b1) = cached(&store).await;
    let (c, c1) = cached(&store).await;
    let got = one_batch(
        &store,
        vec![
            save(&store, &a, 1, &v(&a1, 2, "a2")),
            save(&store, &b, 1, &v(&b1, 2, "b2")),
            save(&store, &b, 2, &v(&b1, 3, "b3")),
            save(&store, &c, 1, &v(&c1, 2, "c2")),
            delete(&store, &c),
        ],
    )
    .await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    // In the cache without a read, and equal to what the file holds.
    let (cached_a, revoked) = store.cache.get(a.as_bytes()).expect("a's save is cached");
    assert_eq!((cached_a, revoked), (v(&a1, 2, "a2"), None));
    assert_eq!(stored(&store, &a), Some(Stored::Live(v(&a1, 2, "a2"))));
    assert_eq!(
        store.cache.get(b.as_bytes()).map(|(r, _)| r),
        Some(v(&b1, 3, "b3"))
    );
    assert!(
        store.cache.get(c.as_bytes()).is_none(),
        "a deleted key stays cached"
    );
    assert_eq!(store.load(&c, T0).await.unwrap(), None);

    // A revocation after the save in the same batch: the cached save must not outlive it.
    let user = a1.user_id().unwrap().to_owned();
    let revoke: Op = {
        let (s, user) = (store.clone(), user.clone());
        Box::pin(async move {
            s.revoke_user(&user, T0.saturating_add(Duration::from_secs(1)))
                .await
                .map(|()| 0)
        })
    };
    let got = one_batch(&store, vec![save(&store, &a, 2, &v(&a1, 3, "a3")), revoke]).await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    let later = T0.saturating_add(Duration::from_secs(2));
    assert_eq!(store.load(&a, later).await.unwrap(), None);
    assert_consistent(&store);
}

/// A save after a revocation of its user in the same batch caches the record with that
/// revocation time, as a read would pair them.
#[tokio::test]
async fn a_save_cached_after_a_revocation_keeps_the_revocation_time() {
    let (_dir, store) = temp_store();
    let (a, a1) = cached(&store).await;
    let user = a1.user_id().unwrap().to_owned();
    // Before the session was created: it stays live, and the time is what it is paired with.
    let at = tessera_core::Timestamp::from_unix_millis(T0.unix_millis() - 1000);
    let revoke: Op = {
        let (s, user) = (store.clone(), user.clone());
        Box::pin(async move { s.revoke_user(&user, at).await.map(|()| 0) })
    };
    let got = one_batch(&store, vec![revoke, save(&store, &a, 1, &v(&a1, 2, "a2"))]).await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert_eq!(
        store.cache.get(a.as_bytes()),
        Some((v(&a1, 2, "a2"), Some(at)))
    );
    assert_eq!(store.load(&a, T0).await.unwrap(), Some(v(&a1, 2, "a2")));
}

/// redb says a failed commit may still have been applied: the cache must then not keep
/// serving what was there before.
#[tokio::test]
async fn a_commit_that_fails_after_applying_leaves_the_cache_exact() {
    let (_dir, store) = temp_store();
    let (a, a1) = cached(&store).await;
    store.writer.faults.inject(TxnFault::AfterCommit);
    let got = one_batch(&store, vec![save(&store, &a, 1, &v(&a1, 2, "a2"))]).await;
    assert!(matches!(batch_error(&got[0]), Some(BatchError::Commit(_))));
    assert_eq!(stored(&store, &a), Some(Stored::Live(v(&a1, 2, "a2"))));
    assert_eq!(store.load(&a, T0).await.unwrap(), Some(v(&a1, 2, "a2")));
}

#[tokio::test]
async fn a_transaction_that_cannot_begin_fails_its_batch() {
    let (_dir, store) = temp_store();
    let (a, a1) = cached(&store).await;
    store.writer.faults.inject(TxnFault::Begin);
    let got = one_batch(
        &store,
        vec![save(&store, &a, 1, &v(&a1, 2, "a2")), delete(&store, &a)],
    )
    .await;
    for r in &got {
        assert!(
            matches!(batch_error(r), Some(BatchError::Begin(_))),
            "{r:?}"
        );
    }
    assert_eq!(store.load(&a, T0).await.unwrap(), Some(a1.clone()));
    store.save(&a, 1, &v(&a1, 2, "a2"), T0).await.unwrap();
}

#[tokio::test]
async fn a_panic_fails_its_batch_and_the_writer_goes_on() {
    let (_dir, store) = temp_store();
    let (a, a1) = cached(&store).await;
    let c = testing::fresh_key(SessionKind::Anonymous);
    store.writer.faults.inject(TxnFault::Panic(1));
    let got = one_batch(
        &store,
        vec![
            save(&store, &a, 1, &v(&a1, 2, "a2")),
            create(&store, &c, &testing::record(None, T0)),
        ],
    )
    .await;
    for r in &got {
        assert!(
            matches!(batch_error(r), Some(BatchError::Panicked)),
            "{r:?}"
        );
    }
    assert_eq!(stored(&store, &a), Some(Stored::Live(a1.clone())));
    assert_eq!(store.load(&a, T0).await.unwrap(), Some(a1.clone()));
    assert_eq!(stored(&store, &c), None);
    store.save(&a, 1, &v(&a1, 2, "a2"), T0).await.unwrap();
    store.create(&c, &testing::record(None, T0)).await.unwrap();
    assert_consistent(&store);
}

#[test]
fn batch_error_codes_are_listed_unique_and_kebab_case() {
    let io = || Arc::new(redb::Error::Io(std::io::Error::other("x")));
    let all = [
        BatchError::Begin(io()),
        BatchError::Commit(io()),
        BatchError::Panicked,
        BatchError::WriterStopped,
    ];
    tessera_test_support::assert_error_codes(BatchError::CODES, all.iter().map(BatchError::code));
}

/// A write that does nothing, and the receiver of its answer.
fn noop_job() -> (
    Box<dyn super::Pending>,
    tokio::sync::oneshot::Receiver<tessera_core::Result<()>>,
) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = super::Job {
        op: |_: &redb::WriteTransaction| Ok(()),
        touches: super::Touches::Nothing,
        fill: None,
        outcome: None,
        reply,
    };
    (Box::new(job), answer)
}

#[test]
// The writes come from a plain thread, as the writer thread takes them: no runtime to block.
#[allow(clippy::disallowed_methods)]
fn the_gather_takes_the_writes_that_arrive_within_the_gap_and_stops_after_one_gap_without() {
    // Generous times, so that a loaded machine does not make the writes miss the gap.
    let gap = Duration::from_millis(400);
    let (queue, jobs) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        let mut answers = vec![];
        for pause in [10, 10, 0] {
            std::thread::sleep(Duration::from_millis(pause));
            let (job, answer) = noop_job();
            queue.send(job).unwrap();
            answers.push(answer);
        }
        // Well after the gap: the gathering has ended without it.
        std::thread::sleep(Duration::from_secs(2));
        let (job, answer) = noop_job();
        queue.send(job).unwrap();
        answers.push(answer);
        (queue, answers)
    });
    let (first, _answer) = noop_job();
    let mut batch = vec![first];
    let started = std::time::Instant::now();
    super::gather(&jobs, &mut batch, Duration::from_secs(30), gap);
    let took = started.elapsed();
    assert_eq!(
        batch.len(),
        4,
        "the first write and the three within the gap"
    );
    // It ended one gap after the last of them, not at the budget nor at the late write.
    assert!(took >= gap, "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (_queue, _answers) = sender.join().unwrap();
    assert_eq!(
        jobs.try_iter().count(),
        1,
        "the late write is left for the next batch"
    );
}

#[test]
// The writes come from a plain thread, as the writer thread takes them: no runtime to block.
#[allow(clippy::disallowed_methods)]
fn the_gather_ends_at_its_budget_while_writes_keep_coming() {
    let (queue, jobs) = std::sync::mpsc::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut answers = vec![];
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (job, answer) = noop_job();
                if queue.send(job).is_err() {
                    break;
                }
                answers.push(answer);
                std::thread::sleep(Duration::from_millis(5));
            }
            answers.len()
        })
    };
    let (first, _answer) = noop_job();
    let mut batch = vec![first];
    let budget = Duration::from_millis(200);
    let started = std::time::Instant::now();
    super::gather(&jobs, &mut batch, budget, Duration::from_secs(1));
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = sender.join().unwrap();
    assert!(took >= budget, "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        batch.len() > 1 && batch.len() <= sent + 1,
        "{} of {sent}",
        batch.len()
    );
}
