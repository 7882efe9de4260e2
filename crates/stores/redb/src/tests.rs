//! The conformance suite on one shared store, with the tables checked for consistency after
//! every step: the promises hold, and the indexes never drift from the sessions.

use std::collections::BTreeMap;
use std::time::Duration;

use tessera_core::testing::{self, T0};

use super::*;

/// Every session has exactly its queue entry and, if it has a user, its index entry; no
/// queue or index entry points anywhere else.
pub(crate) fn assert_consistent(store: &RedbStore) {
    let txn = store.db.begin_read().unwrap();
    let sessions = txn.open_table(SESSIONS).unwrap();
    let expiries = txn.open_table(EXPIRIES).unwrap();
    let users = txn.open_table(USER_SESSIONS).unwrap();

    let mut want_expiries = vec![];
    let mut want_users = BTreeMap::new();
    for entry in sessions.iter().unwrap() {
        let (k, v) = entry.unwrap();
        let key = *k.value();
        let stored = codec::decode(v.value()).unwrap();
        want_expiries.push((stored.deadline().unix_millis(), key));
        if let Stored::Live(r) = &stored
            && let Some(u) = r.user_id()
        {
            want_users.insert((u.to_owned(), key), r.expires_at().unix_millis());
        }
    }
    want_expiries.sort_unstable();
    let got_expiries: Vec<(i64, [u8; 32])> = expiries
        .iter()
        .unwrap()
        .map(|e| {
            let (k, ()) = e.map(|(k, v)| (k, v.value())).unwrap();
            (k.value().0, *k.value().1)
        })
        .collect();
    assert_eq!(got_expiries, want_expiries, "expiry queue out of step");
    let got_users: BTreeMap<(String, [u8; 32]), i64> = users
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            ((k.value().0.to_owned(), *k.value().1), v.value())
        })
        .collect();
    assert_eq!(got_users, want_users, "user index out of step");
}

fn temp_store() -> (tempfile::TempDir, Arc<RedbStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("s.redb")).unwrap());
    (dir, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_stay_in_step_through_the_conformance_suite() {
    let (_dir, store) = temp_store();
    let s = || store.clone() as Arc<dyn SessionStore>;
    testing::create_then_load(s()).await;
    assert_consistent(&store);
    testing::create_is_unique(s()).await;
    assert_consistent(&store);
    testing::concurrent_creates_have_one_winner(s()).await;
    assert_consistent(&store);
    testing::load_never_returns_expired(s()).await;
    assert_consistent(&store);
    testing::save_is_compare_and_set(s()).await;
    assert_consistent(&store);
    testing::concurrent_saves_have_one_winner(s()).await;
    assert_consistent(&store);
    testing::save_never_creates(s()).await;
    assert_consistent(&store);
    testing::tombstone_blocks_resurrection(s()).await;
    assert_consistent(&store);
    testing::user_index(s()).await;
    assert_consistent(&store);
    testing::revocation_time(s()).await;
    assert_consistent(&store);
    testing::purge(s()).await;
    assert_consistent(&store);

    // Far enough ahead, everything is due and purge empties the three session tables.
    let end = T0.saturating_add(Duration::from_secs(365 * 24 * 3600));
    assert!(store.purge_expired(end).await.unwrap() > 0);
    assert_consistent(&store);
    assert_eq!(store.purge_expired(end).await.unwrap(), 0);
    let txn = store.db.begin_read().unwrap();
    use redb::ReadableTableMetadata as _;
    assert!(txn.open_table(SESSIONS).unwrap().is_empty().unwrap());
    assert!(txn.open_table(EXPIRIES).unwrap().is_empty().unwrap());
    assert!(txn.open_table(USER_SESSIONS).unwrap().is_empty().unwrap());
}

#[tokio::test]
async fn a_user_change_on_save_moves_the_index_entry() {
    let (_dir, store) = temp_store();
    let (a, b) = (testing::fresh_user(), testing::fresh_user());
    let key = testing::fresh_key(tessera_core::SessionKind::Authenticated);
    store
        .create(&key, &testing::record(Some(&a), T0))
        .await
        .unwrap();
    let mut moved = testing::record(Some(&b), T0);
    moved.version = 2;
    moved.idle_expires_at = T0.saturating_add(Duration::from_secs(7200));
    store.save(&key, 1, &moved, T0).await.unwrap();
    assert_consistent(&store);
    assert!(store.list_user_sessions(&a, T0).await.unwrap().is_empty());
    assert_eq!(
        store.list_user_sessions(&b, T0).await.unwrap(),
        vec![(key, moved)]
    );
}

#[tokio::test]
async fn a_longer_delete_extends_the_tombstone_and_a_shorter_one_does_not() {
    let (_dir, store) = temp_store();
    let key = testing::fresh_key(tessera_core::SessionKind::Anonymous);
    let t = |s| T0.saturating_add(Duration::from_secs(s));
    store.delete(&key, t(10)).await.unwrap();
    store.delete(&key, t(5)).await.unwrap();
    assert_consistent(&store);
    assert_eq!(store.purge_expired(t(5)).await.unwrap(), 0);
    store.delete(&key, t(20)).await.unwrap();
    assert_consistent(&store);
    assert_eq!(store.purge_expired(t(10)).await.unwrap(), 0);
    assert_eq!(store.purge_expired(t(20)).await.unwrap(), 1);
    store
        .create(&key, &testing::record(None, T0))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_garbage_record_is_a_decode_error_and_purge_keeps_it() {
    let (_dir, store) = temp_store();
    let key = testing::fresh_key(tessera_core::SessionKind::Anonymous);
    let k = *key.as_bytes();
    {
        let txn = store.db.begin_write().unwrap();
        txn.open_table(SESSIONS)
            .unwrap()
            .insert(&k, &[9u8, 9, 9][..])
            .unwrap();
        txn.open_table(EXPIRIES)
            .unwrap()
            .insert((T0.unix_millis(), &k), ())
            .unwrap();
        txn.commit().unwrap();
    }
    let decode = |r: tessera_core::Result<()>| matches!(r, Err(tessera_core::Error::Decode(_)));
    assert!(matches!(
        store.load(&key, T0).await,
        Err(tessera_core::Error::Decode(_))
    ));
    assert!(decode(store.delete(&key, T0).await));
    let later = T0.saturating_add(Duration::from_secs(1));
    assert_eq!(store.purge_expired(later).await.unwrap(), 0);
    assert!(matches!(
        store.load(&key, later).await,
        Err(tessera_core::Error::Decode(_))
    ));
}

/// Reads run in place and writes wait on a channel: no Tokio runtime is needed.
#[test]
fn operations_work_outside_a_runtime() {
    let (_dir, store) = temp_store();
    let key = testing::fresh_key(tessera_core::SessionKind::Anonymous);
    let fut = async {
        store
            .create(&key, &testing::record(None, T0))
            .await
            .unwrap();
        store.load(&key, T0).await.unwrap()
    };
    // A minimal executor: the store never awaits anything but its own work (and the writer
    // thread's answer) here.
    let got = block_on(fut);
    assert!(got.is_some());
}

/// Polls a future to completion on this thread without any runtime.
fn block_on<F: Future>(fut: F) -> F::Output {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[test]
fn error_codes_are_listed_unique_and_kebab_case() {
    let io = || std::io::Error::other("x");
    let all = [
        Error::CreateDir {
            path: PathBuf::new(),
            source: io(),
        },
        Error::Open {
            path: PathBuf::new(),
            source: redb::DatabaseError::from(io()),
        },
        Error::Storage(redb::Error::from(io())),
        Error::UnsupportedLayout {
            found: 2,
            supported: 1,
        },
        Error::NotAStore,
        Error::SpawnWriter(io()),
    ];
    tessera_test_support::assert_error_codes(Error::CODES, all.iter().map(Error::code));
}
