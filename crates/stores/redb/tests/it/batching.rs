//! Group commit under load: concurrent writes share commits, and the store's commit
//! statistics show it.

use std::sync::Arc;

use tessera_core::testing::{T0, fresh_key, record};
use tessera_core::{SessionKind, SessionStore};
use tessera_store_redb::{BATCH_SIZE_BUCKETS, RedbStore};

const WRITERS: usize = 64;
const WRITES_EACH: u64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("s.redb")).unwrap());
    let mut written = 0;
    // One round is plenty (the writes sent during the first commit form the second), but
    // try a few rather than rely on scheduling.
    for _ in 0..20 {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = fresh_key(SessionKind::Anonymous);
                    let mut r = record(None, T0);
                    store.create(&key, &r).await.unwrap();
                    for version in 2..=WRITES_EACH {
                        r.version = version;
                        store.save(&key, version - 1, &r, T0).await.unwrap();
                    }
                    assert_eq!(store.load(&key, T0).await.unwrap(), Some(r));
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        written += WRITERS as u64 * WRITES_EACH;
        if store.commit_stats().largest_batch > 1 {
            break;
        }
    }

    let s = store.commit_stats();
    assert!(
        s.largest_batch > 1,
        "no batch of more than one write: {s:?}"
    );
    assert!(s.commits < s.writes, "{s:?}");
    // Every write was answered by exactly one commit, and every commit is in one bucket.
    assert_eq!(s.writes, written, "{s:?}");
    assert_eq!(s.commits_by_size.iter().sum::<u64>(), s.commits, "{s:?}");
    assert_eq!(s.commits_by_size.len(), BATCH_SIZE_BUCKETS.len());
    assert!(s.largest_batch <= *BATCH_SIZE_BUCKETS.last().unwrap());
    assert_eq!(s.failed_transactions, 0);
}
