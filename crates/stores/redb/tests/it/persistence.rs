//! What survives closing and reopening the file, and which files `open` refuses.

use std::time::Duration;

use redb::{Database, TableDefinition};
use tessera_core::testing::{T0, fresh_key, fresh_user, record};
use tessera_core::{SessionKind, SessionStore};
use tessera_store_redb::{Error, LAYOUT_VERSION, RedbStore};

use crate::common::fresh_path;

const HOUR: Duration = Duration::from_secs(3600);
const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");

#[tokio::test]
async fn records_survive_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = fresh_path(&dir);
    let user = fresh_user();
    let (saved, deleted, anon) = (
        fresh_key(SessionKind::Authenticated),
        fresh_key(SessionKind::Authenticated),
        fresh_key(SessionKind::Anonymous),
    );
    let mut v2 = record(Some(&user), T0);
    let revoked_at = T0.saturating_sub(HOUR);
    {
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.path(), path);
        store
            .create(&saved, &record(Some(&user), T0))
            .await
            .unwrap();
        v2.version = 2;
        v2.data.insert("cart".into(), serde_json::json!(["book"]));
        store.save(&saved, 1, &v2, T0).await.unwrap();
        store
            .create(&deleted, &record(Some(&user), T0))
            .await
            .unwrap();
        store
            .delete(&deleted, T0.saturating_add(HOUR))
            .await
            .unwrap();
        store.create(&anon, &record(None, T0)).await.unwrap();
        store.revoke_user(&user, revoked_at).await.unwrap();
    }

    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.load(&saved, T0).await.unwrap(), Some(v2.clone()));
    assert_eq!(store.load(&anon, T0).await.unwrap(), Some(record(None, T0)));
    assert_eq!(
        store.user_revoked_at(&user).await.unwrap(),
        Some(revoked_at)
    );
    assert_eq!(
        store.list_user_sessions(&user, T0).await.unwrap(),
        vec![(saved, v2.clone())]
    );
    // The tombstone survived too: the key stays dead and cannot be re-created.
    assert_eq!(store.load(&deleted, T0).await.unwrap(), None);
    assert!(matches!(
        store.create(&deleted, &record(Some(&user), T0)).await,
        Err(tessera_core::Error::AlreadyExists)
    ));
    // And the version: a stale save still conflicts.
    assert!(matches!(
        store.save(&saved, 1, &v2, T0).await,
        Err(tessera_core::Error::Conflict)
    ));
}

#[tokio::test]
async fn expired_records_never_load_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = fresh_path(&dir);
    let key = fresh_key(SessionKind::Anonymous);
    let r = record(None, T0);
    {
        let store = RedbStore::open(&path).unwrap();
        store.create(&key, &r).await.unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    let just_before = r.expires_at().saturating_sub(Duration::from_millis(1));
    assert_eq!(
        store.load(&key, just_before).await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(store.load(&key, r.expires_at()).await.unwrap(), None);
    drop(store);

    // Still dead after another reopen, and purged for good once due.
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.load(&key, r.expires_at()).await.unwrap(), None);
    assert_eq!(store.purge_expired(r.expires_at()).await.unwrap(), 1);
    drop(store);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.load(&key, T0).await.unwrap(), None);
}

#[test]
fn open_creates_the_file_and_its_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = fresh_path(&dir);
    assert!(!path.exists());
    RedbStore::open(&path).unwrap();
    assert!(path.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
}

#[test]
fn an_unknown_layout_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = fresh_path(&dir);
    drop(RedbStore::open(&path).unwrap());
    for found in [LAYOUT_VERSION + 1, 0] {
        {
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("layout_version", found)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = RedbStore::open(&path).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedLayout { found: f, supported } if f == found && supported == LAYOUT_VERSION),
            "{err:?}"
        );
        assert_eq!(err.code(), "redb-unsupported-layout");
    }
}

#[test]
fn a_redb_file_of_something_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<'static, u64, u64> = TableDefinition::new("other");
        txn.open_table(other).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(RedbStore::open(&path), Err(Error::NotAStore)));
}

#[test]
fn a_file_that_is_not_redb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    // Nothing was written over it.
    assert_eq!(std::fs::read(&path).unwrap(), vec![0x5a; 64 * 1024]);
}

#[test]
fn a_second_open_of_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = fresh_path(&dir);
    let _first = RedbStore::open(&path).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
}

/// A backup taken while writes go on holds every write acknowledged before it began, opens as
/// a store, and is not overwritten by a second backup to the same path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_writes_holds_every_write_acknowledged_before_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tessera_core::KvStore as _;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(fresh_path(&dir)).unwrap());
    let user = fresh_user();
    let mut before = vec![];
    for _ in 0..50 {
        let key = fresh_key(SessionKind::Authenticated);
        store.create(&key, &record(Some(&user), T0)).await.unwrap();
        before.push(key);
    }
    store
        .kv_put(b"kask-key", b"kask-value", T0.saturating_add(HOUR), T0)
        .await
        .unwrap();
    // Writers keep committing while the copy is made.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (store, stop, user) = (store.clone(), stop.clone(), user.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let key = fresh_key(SessionKind::Authenticated);
                    store.create(&key, &record(Some(&user), T0)).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let copy = dir.path().join("copy.redb");
    let (s, c) = (store.clone(), copy.clone());
    let stats = tokio::task::spawn_blocking(move || s.backup_to(&c))
        .await
        .unwrap()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut during = 0;
    for w in writers {
        during += w.await.unwrap();
    }
    assert!(during > 0, "no write ran beside the backup");
    assert!(stats.sessions >= 50, "{stats:?}");
    assert_eq!(stats.kv_entries, 1);
    assert_eq!(stats.bytes, std::fs::metadata(&copy).unwrap().len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second backup never replaces the first.
    let again = store.backup_to(&copy).unwrap_err();
    assert!(format!("{again:?}").contains("AlreadyExists"), "{again:?}");
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), stats.bytes);

    let restored = RedbStore::open(&copy).unwrap();
    for key in &before {
        assert!(restored.load(key, T0).await.unwrap().is_some());
    }
    assert_eq!(
        restored.list_user_sessions(&user, T0).await.unwrap().len() as u64,
        stats.sessions
    );
    assert_eq!(
        restored.kv_get(b"kask-key", T0).await.unwrap().as_deref(),
        Some(&b"kask-value"[..])
    );
}

#[test]
fn a_file_held_by_another_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = fresh_path(&dir);
    let first = RedbStore::open(&path).unwrap();
    assert!(RedbStore::open(&path).unwrap_err().is_in_use());
    drop(first);
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    assert!(!RedbStore::open(&garbage).unwrap_err().is_in_use());
}
