//! The batched saves: batches form under concurrent load, and every save in a batch has its
//! own outcome.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::testing::{T0, fresh_key, fresh_user, record};
use tessera_core::{Error, SessionKind, SessionRecord, SessionStore, StoreKey};
use tessera_store_postgres::{BatchError, PostgresConfig, PostgresStore};
use tessera_test_support::postgres::PostgresServer;

use crate::operations::raw;

/// A store on `url` with one batch in flight at most, so that every save sent while one is
/// in flight waits for the next batch.
async fn one_batch_store(url: &str) -> Arc<PostgresStore> {
    let config = PostgresConfig::from_url(url)
        .unwrap()
        .with_write_batches(1)
        .with_timeout(Duration::from_secs(10));
    Arc::new(PostgresStore::connect(config).await.unwrap())
}

/// `record` at version `v` with `data.n = n`.
fn version(r: &SessionRecord, v: u64, n: i64) -> SessionRecord {
    let mut next = r.clone();
    next.version = v;
    next.data.insert("n".into(), serde_json::json!(n));
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_form_batches_of_several() {
    let s = one_batch_store(PostgresServer::shared_schema_url().await).await;
    let keys: Vec<StoreKey> = (0..64).map(|_| fresh_key(SessionKind::Anonymous)).collect();
    let r = record(None, T0);
    for k in &keys {
        s.create(k, &r).await.unwrap();
    }
    let before = s.write_stats();
    let rounds = 5u64;
    for round in 0..rounds {
        let mut set = tokio::task::JoinSet::new();
        for (i, k) in keys.iter().enumerate() {
            let (s, k, next) = (s.clone(), *k, version(&r, round + 2, i as i64));
            set.spawn(async move { s.save(&k, round + 1, &next, T0).await });
        }
        while let Some(out) = set.join_next().await {
            out.unwrap().unwrap();
        }
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            s.load(k, T0).await.unwrap(),
            Some(version(&r, rounds + 1, i as i64))
        );
    }
    let after = s.write_stats();
    let saves = rounds * keys.len() as u64;
    assert_eq!(after.ops - before.ops, saves, "{after:?}");
    assert!(after.largest_batch > 1, "{after:?}");
    assert!(
        after.batches - before.batches < saves,
        "some statements carried several saves: {after:?}"
    );
    assert_eq!(after.failed_batches, before.failed_batches);
}

/// Holds `LOCK TABLE tessera_sessions IN SHARE MODE` (which every batch's `UPDATE` waits
/// for) on a connection of its own until the returned sender is used or dropped.
async fn hold_table(url: &str) -> tokio::sync::oneshot::Sender<()> {
    let (locked_tx, locked) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let mut db = raw(url).await;
    tokio::spawn(async move {
        let tx = db.transaction().await.unwrap();
        tx.batch_execute("LOCK TABLE tessera_sessions IN SHARE MODE")
            .await
            .unwrap();
        locked_tx.send(()).unwrap();
        let _ = released.await;
        tx.commit().await.unwrap();
    });
    locked.await.unwrap();
    release
}

/// Until a batch statement waits for the table lock: the one save in flight.
async fn wait_for_a_blocked_batch(url: &str) {
    let db = raw(url).await;
    for _ in 0..200 {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event = 'relation' AND query LIKE '%unnest%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no batch waits for the table lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_save_in_a_batch_has_its_own_outcome() {
    let url = PostgresServer::shared().await.fresh_schema_url().await;
    let s = one_batch_store(&url).await;
    let user = fresh_user();
    let r = record(None, T0);
    let create = |k| {
        let s = s.clone();
        let r = r.clone();
        async move {
            s.create(&k, &r).await.unwrap();
            k
        }
    };
    let first = create(fresh_key(SessionKind::Anonymous)).await;
    let ok = create(fresh_key(SessionKind::Anonymous)).await;
    let stale = create(fresh_key(SessionKind::Anonymous)).await;
    let twice = create(fresh_key(SessionKind::Anonymous)).await;
    let deleted = create(fresh_key(SessionKind::Anonymous)).await;
    s.delete(&deleted, T0.saturating_add(Duration::from_secs(60)))
        .await
        .unwrap();
    let never = fresh_key(SessionKind::Anonymous);
    let revoked = fresh_key(SessionKind::Authenticated);
    let revoked_record = record(Some(&user), T0);
    s.create(&revoked, &revoked_record).await.unwrap();
    s.revoke_user(&user, T0).await.unwrap();
    // Held by another transaction: busy in the batch, then sent alone, which waits.
    let busy = create(fresh_key(SessionKind::Anonymous)).await;
    let mut holder = raw(&url).await;
    let held = holder.transaction().await.unwrap();
    held.execute(
        "SELECT 1 FROM tessera_sessions WHERE key = $1 FOR UPDATE",
        &[&busy.as_bytes().as_slice()],
    )
    .await
    .unwrap();

    let release = hold_table(&url).await;
    let before = s.write_stats();
    // One save in flight, blocked by the table lock; the others queue behind it.
    let blocked = {
        let (s, next) = (s.clone(), version(&r, 2, 0));
        tokio::spawn(async move { s.save(&first, 1, &next, T0).await })
    };
    wait_for_a_blocked_batch(&url).await;
    let later = T0.saturating_add(Duration::from_secs(2 * 86_400));
    let sends: Vec<(StoreKey, u64, SessionRecord, tessera_core::Timestamp)> = vec![
        (ok, 1, version(&r, 2, 1), T0),
        (stale, 7, version(&r, 8, 2), T0),
        (twice, 1, version(&r, 2, 3), T0),
        // The same key again, from the same version: after the one before, a conflict.
        (twice, 1, version(&r, 2, 4), T0),
        (deleted, 1, version(&r, 2, 5), T0),
        (never, 1, version(&r, 2, 6), T0),
        (revoked, 1, version(&revoked_record, 2, 7), T0),
        // Live at T0 but not at this save's own `now`, two days on.
        (ok, 2, version(&r, 3, 8), later),
        (busy, 1, version(&r, 2, 9), T0),
    ];
    let mut tasks = vec![];
    for (k, expected, next, now) in sends {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.save(&k, expected, &next, now).await
        }));
        // In order: the queue keeps the order in which they were sent.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(release);
    blocked.await.unwrap().unwrap();
    let busy_task = tasks.pop().unwrap();
    let mut outcomes = vec![];
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    // The busy one, sent again alone, waits for its row: release it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!busy_task.is_finished());
    held.rollback().await.unwrap();
    outcomes.push(busy_task.await.unwrap());
    let code = |o: &Result<(), Error>| match o {
        Ok(()) => "ok",
        Err(e) => e.code(),
    };
    let codes: Vec<&str> = outcomes.iter().map(code).collect();
    assert_eq!(
        codes,
        [
            "ok",
            "store-conflict",
            "ok",
            "store-conflict",
            "store-not-found",
            "store-not-found",
            "store-not-found",
            "store-not-found",
            "ok",
        ]
    );
    assert_eq!(s.load(&ok, T0).await.unwrap(), Some(version(&r, 2, 1)));
    assert_eq!(s.load(&stale, T0).await.unwrap(), Some(r.clone()));
    assert_eq!(s.load(&twice, T0).await.unwrap(), Some(version(&r, 2, 3)));
    assert_eq!(s.load(&busy, T0).await.unwrap(), Some(version(&r, 2, 9)));
    assert_eq!(s.load(&deleted, T0).await.unwrap(), None);
    assert_eq!(s.load(&never, T0).await.unwrap(), None);
    let after = s.write_stats();
    // The blocked one alone, then the three up to the second `twice`, then the six from it.
    assert_eq!(after.batches - before.batches, 3, "{after:?}");
    assert_eq!(after.ops - before.ops, 10, "{after:?}");
    assert_eq!(
        after.largest_batch,
        6.max(before.largest_batch),
        "{after:?}"
    );
    assert_eq!(after.busy - before.busy, 1, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_form_batches_and_each_finds_its_own() {
    let config = PostgresConfig::from_url(PostgresServer::shared_schema_url().await)
        .unwrap()
        .with_read_batches(1);
    let s = Arc::new(PostgresStore::connect(config).await.unwrap());
    let user = fresh_user();
    let mut want = vec![];
    for i in 0..48i64 {
        let k = fresh_key(SessionKind::Authenticated);
        let r = version(&record(Some(&user), T0), 1, i);
        match i % 4 {
            // Live.
            0 | 1 => {
                s.create(&k, &r).await.unwrap();
                want.push((k, T0, Some(r)));
            }
            // Dead at the load's own `now`.
            2 => {
                s.create(&k, &r).await.unwrap();
                want.push((k, T0.saturating_add(Duration::from_secs(2 * 86_400)), None));
            }
            // Never created.
            _ => want.push((k, T0, None)),
        }
    }
    let before = s.read_stats();
    for _ in 0..3 {
        let mut set = tokio::task::JoinSet::new();
        for (k, now, r) in want.clone() {
            let s = s.clone();
            set.spawn(async move { assert_eq!(s.load(&k, now).await.unwrap(), r) });
        }
        while let Some(out) = set.join_next().await {
            out.unwrap();
        }
    }
    let after = s.read_stats();
    assert_eq!(after.ops - before.ops, 3 * want.len() as u64, "{after:?}");
    assert!(after.largest_batch > 1, "{after:?}");
    assert_eq!(after.failed_batches, before.failed_batches);
    // A revocation is seen by the batched read as by the single one.
    s.revoke_user(&user, T0).await.unwrap();
    assert_eq!(s.load(&want[0].0, T0).await.unwrap(), None);
}

/// A batch statement that fails (here a trigger raises on one of its rows) fails the saves of
/// that batch, and only those: nothing of it is applied, and the batches after it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_fails_its_own_saves_only() {
    let url = PostgresServer::shared().await.fresh_schema_url().await;
    let s = one_batch_store(&url).await;
    raw(&url)
        .await
        .batch_execute(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.record::text LIKE '%boom%' THEN RAISE EXCEPTION 'boom'; END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER boom BEFORE UPDATE ON tessera_sessions
                 FOR EACH ROW EXECUTE FUNCTION boom();",
        )
        .await
        .unwrap();
    let r = record(None, T0);
    let keys: Vec<StoreKey> = (0..4).map(|_| fresh_key(SessionKind::Anonymous)).collect();
    for k in &keys {
        s.create(k, &r).await.unwrap();
    }
    let mut boom = version(&r, 2, 0);
    boom.data.insert("boom".into(), serde_json::json!(true));

    let release = hold_table(&url).await;
    let before = s.write_stats();
    let first = {
        let (s, k, next) = (s.clone(), keys[0], version(&r, 2, 0));
        tokio::spawn(async move { s.save(&k, 1, &next, T0).await })
    };
    wait_for_a_blocked_batch(&url).await;
    let mut queued = vec![];
    for (k, next) in [(keys[1], version(&r, 2, 1)), (keys[2], boom)] {
        let s = s.clone();
        queued.push(tokio::spawn(async move { s.save(&k, 1, &next, T0).await }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(release);
    first.await.unwrap().unwrap();
    for t in queued {
        let out = t.await.unwrap();
        let code = match &out {
            Err(Error::Backend(e)) => e.downcast_ref::<BatchError>().map(BatchError::code),
            _ => None,
        };
        assert_eq!(code, Some("postgres-batch-statement"), "{out:?}");
    }
    let after = s.write_stats();
    assert_eq!(after.batches - before.batches, 2, "{after:?}");
    assert_eq!(after.failed_batches - before.failed_batches, 1, "{after:?}");
    // Nothing of the failed batch was applied; the next batch is not affected.
    assert_eq!(s.load(&keys[1], T0).await.unwrap(), Some(r.clone()));
    assert_eq!(s.load(&keys[2], T0).await.unwrap(), Some(r.clone()));
    s.save(&keys[1], 1, &version(&r, 2, 1), T0).await.unwrap();
    s.save(&keys[3], 1, &version(&r, 2, 3), T0).await.unwrap();
    assert_eq!(s.load(&keys[1], T0).await.unwrap(), Some(version(&r, 2, 1)));
}
