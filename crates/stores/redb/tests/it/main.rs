//! Integration tests of the redb store: the conformance suite, persistence across reopening,
//! layout checks, the background purge, group commit and crash durability.

mod batching;
mod blobs;
mod common;
mod crash;
mod persistence;
mod purge;

use common::TempStore;

tessera_core::conformance_tests!(async { std::sync::Arc::new(TempStore::new()) });
tessera_core::kv_conformance_tests!(async { std::sync::Arc::new(TempStore::new()) });
tessera_core::revocation_conformance_tests!(async { std::sync::Arc::new(TempStore::new()) });

/// The read cache never serves what a later write changed: each write below follows a load
/// that filled the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_cache_follows_every_write() {
    use std::time::Duration;
    use tessera_core::testing::{T0, fresh_key, fresh_user, record};
    use tessera_core::{SessionKind, SessionStore};

    let dir = tempfile::tempdir().unwrap();
    let s = tessera_store_redb::RedbStore::open(dir.path().join("c.redb")).unwrap();
    let user = fresh_user();
    let k = fresh_key(SessionKind::Authenticated);
    let r = record(Some(&user), T0);
    s.create(&k, &r).await.unwrap();
    assert_eq!(s.load(&k, T0).await.unwrap(), Some(r.clone()));

    let mut r2 = r.clone();
    r2.version = 2;
    r2.data.insert("new".into(), serde_json::json!(true));
    s.save(&k, 1, &r2, T0).await.unwrap();
    assert_eq!(s.load(&k, T0).await.unwrap(), Some(r2.clone()), "save");

    // Expiry is checked on a cache hit too.
    assert_eq!(s.load(&k, r2.expires_at()).await.unwrap(), None, "expiry");

    s.revoke_user(&user, T0.saturating_add(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(s.load(&k, T0).await.unwrap(), None, "revocation");

    let k2 = fresh_key(SessionKind::Anonymous);
    s.create(&k2, &record(None, T0)).await.unwrap();
    assert!(s.load(&k2, T0).await.unwrap().is_some());
    s.delete(&k2, T0.saturating_add(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(s.load(&k2, T0).await.unwrap(), None, "delete");

    let k3 = fresh_key(SessionKind::Anonymous);
    let old = record(None, T0.saturating_sub(Duration::from_secs(48 * 3600)));
    s.create(&k3, &old).await.unwrap();
    s.purge_expired(T0).await.unwrap();
    let fresh = record(None, T0);
    s.create(&k3, &fresh).await.unwrap();
    assert_eq!(
        s.load(&k3, T0).await.unwrap(),
        Some(fresh),
        "purge then create"
    );
}
