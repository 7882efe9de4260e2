//! The background purge.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::testing::{T0, fresh_key, fresh_user, record};
use tessera_core::{ManualClock, SessionKind, SessionStore};
use tessera_store_redb::{RedbStore, spawn_purge};

const HOUR: Duration = Duration::from_secs(3600);
const EVERY: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn the_background_purge_removes_expired_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("s.redb")).unwrap());
    let clock = ManualClock::new(T0);
    let user = fresh_user();
    let (expiring, tomb, live) = (
        fresh_key(SessionKind::Authenticated),
        fresh_key(SessionKind::Anonymous),
        fresh_key(SessionKind::Authenticated),
    );
    store
        .create(&expiring, &record(Some(&user), T0))
        .await
        .unwrap();
    store.create(&tomb, &record(None, T0)).await.unwrap();
    store.delete(&tomb, T0.saturating_add(HOUR)).await.unwrap();
    let later = T0.saturating_add(2 * HOUR);
    store
        .create(&live, &record(Some(&user), later))
        .await
        .unwrap();

    let purger = spawn_purge(store.clone(), Arc::new(clock.clone()), EVERY);
    // Nothing is due yet: the first ticks must leave everything in place.
    tokio::time::sleep(3 * EVERY).await;
    assert!(matches!(
        store.create(&expiring, &record(Some(&user), T0)).await,
        Err(tessera_core::Error::AlreadyExists)
    ));

    clock.set(later);
    // Paused time advances whenever the runtime idles, also while a purge waits for the
    // writer thread, and one purge round commits more than once (key-value entries, the
    // revocation log, sessions), so wait for the effect itself: the key is free again only
    // once the record and the tombstone are gone from the file. Both go in one purge.
    let mut freed = false;
    for _ in 0..10_000 {
        match store.create(&expiring, &record(Some(&user), later)).await {
            Ok(()) => {
                freed = true;
                break;
            }
            Err(tessera_core::Error::AlreadyExists) => tokio::time::sleep(EVERY).await,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(freed, "no purge removed the expired record");
    store.create(&tomb, &record(None, later)).await.unwrap();
    assert_eq!(
        store.load(&live, later).await.unwrap(),
        Some(record(Some(&user), later))
    );
    assert_eq!(
        store.list_user_sessions(&user, later).await.unwrap().len(),
        2
    );

    purger.abort();
    assert!(purger.await.unwrap_err().is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_zero_interval_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("s.redb")).unwrap());
    let purger = spawn_purge(store, Arc::new(ManualClock::new(T0)), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(!purger.is_finished());
    purger.abort();
}
