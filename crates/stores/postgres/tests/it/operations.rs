//! Migrations, the table layout, and behaviour beyond the conformance suite.

use std::time::Duration;

use tessera_core::testing::{T0, fresh_key, fresh_user, record};
use tessera_core::{Error, SessionKind, SessionStore};
use tessera_store_postgres::{PostgresConfig, PostgresStore, SCHEMA_VERSION};
use tessera_test_support::postgres::PostgresServer;

/// A plain client on `url`, for looking at what the store wrote.
pub(crate) async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn versions(url: &str) -> Vec<i32> {
    raw(url)
        .await
        .query(
            "SELECT version FROM tessera_schema_version ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_and_again_are_a_no_op() {
    let url = PostgresServer::shared().await.fresh_schema_url().await;
    let store = PostgresStore::open(&url).await.unwrap();
    let want: Vec<i32> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(versions(&url).await, want);
    assert_eq!(store.migrate().await.unwrap(), Vec::<i32>::new());
    drop(PostgresStore::open(&url).await.unwrap());
    assert_eq!(versions(&url).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_migrate_once() {
    let url = PostgresServer::shared().await.fresh_schema_url().await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = url.clone();
        set.spawn(async move {
            let s =
                PostgresStore::connect(PostgresConfig::from_url(&url).unwrap().with_pool_size(1))
                    .await
                    .unwrap();
            // Each one works straight away.
            let k = fresh_key(SessionKind::Anonymous);
            s.create(&k, &record(None, T0)).await.unwrap();
            assert!(s.load(&k, T0).await.unwrap().is_some());
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let want: Vec<i32> = (1..=SCHEMA_VERSION).collect();
    assert_eq!(versions(&url).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_build_is_refused() {
    let url = PostgresServer::shared().await.fresh_schema_url().await;
    drop(PostgresStore::open(&url).await.unwrap());
    raw(&url)
        .await
        .execute(
            "INSERT INTO tessera_schema_version (version) VALUES ($1)",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    let err = PostgresStore::open(&url).await.unwrap_err();
    assert!(
        matches!(
            err,
            tessera_store_postgres::Error::UnsupportedSchema { found, supported }
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_have_the_documented_layout() {
    let url = PostgresServer::shared_schema_url().await;
    let s = crate::store().await;
    let db = raw(url).await;
    let user = fresh_user();
    let k = fresh_key(SessionKind::Authenticated);
    let r = record(Some(&user), T0);
    s.create(&k, &r).await.unwrap();
    let row = db
        .query_one(
            "SELECT version, user_id, created_at, dead_at, record->>'kind' \
             FROM tessera_sessions WHERE key = $1",
            &[&k.as_bytes().as_slice()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(1));
    assert_eq!(row.get::<_, Option<String>>(1), Some(user.clone()));
    assert_eq!(row.get::<_, Option<i64>>(2), Some(T0.unix_millis()));
    assert_eq!(row.get::<_, i64>(3), r.expires_at().unix_millis());
    assert_eq!(
        row.get::<_, Option<String>>(4).as_deref(),
        Some("authenticated")
    );

    let until = T0.saturating_add(Duration::from_secs(600));
    s.delete(&k, until).await.unwrap();
    // Deleting again with an earlier end keeps the later one.
    s.delete(&k, T0).await.unwrap();
    let row = db
        .query_one(
            "SELECT version, user_id, created_at, dead_at, record IS NULL \
             FROM tessera_sessions WHERE key = $1",
            &[&k.as_bytes().as_slice()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), None);
    assert_eq!(
        row.get::<_, Option<String>>(1),
        None,
        "out of the user index"
    );
    assert_eq!(row.get::<_, Option<i64>>(2), None);
    assert_eq!(row.get::<_, i64>(3), until.unix_millis());
    assert!(row.get::<_, bool>(4));

    s.revoke_user(&user, T0).await.unwrap();
    let at: i64 = db
        .query_one(
            "SELECT revoked_at FROM tessera_user_revocations WHERE user_id = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(at, T0.unix_millis());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_cannot_be_saved() {
    let s = crate::store().await;
    let user = fresh_user();
    let k = fresh_key(SessionKind::Authenticated);
    let r = record(Some(&user), T0);
    s.create(&k, &r).await.unwrap();
    s.revoke_user(&user, T0).await.unwrap();
    let mut next = r.clone();
    next.version = 2;
    assert!(matches!(
        s.save(&k, 1, &next, T0).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_changes_the_user_moves_the_index_entry() {
    let s = crate::store().await;
    let (u, v) = (fresh_user(), fresh_user());
    let k = fresh_key(SessionKind::Authenticated);
    s.create(&k, &record(Some(&u), T0)).await.unwrap();
    let mut moved = record(Some(&v), T0);
    moved.version = 2;
    s.save(&k, 1, &moved, T0).await.unwrap();
    assert!(s.list_user_sessions(&u, T0).await.unwrap().is_empty());
    assert_eq!(
        s.list_user_sessions(&v, T0).await.unwrap(),
        vec![(k, moved)]
    );
}

/// A row locked by someone else (a stuck transaction) makes a save time out, not hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_statement_gives_a_timeout() {
    let url = PostgresServer::shared_schema_url().await;
    let s = PostgresStore::connect(
        PostgresConfig::from_url(url)
            .unwrap()
            .with_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let k = fresh_key(SessionKind::Anonymous);
    let r = record(None, T0);
    s.create(&k, &r).await.unwrap();

    let mut db = raw(url).await;
    let tx = db.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM tessera_sessions WHERE key = $1 FOR UPDATE",
        &[&k.as_bytes().as_slice()],
    )
    .await
    .unwrap();
    let mut next = r.clone();
    next.version = 2;
    let started = tokio::time::Instant::now();
    let out = s.save(&k, 1, &next, T0).await;
    assert!(matches!(out, Err(Error::Timeout)), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    tx.rollback().await.unwrap();
    // The lock is gone: the store works again (the timed-out update may have gone through).
    let stored = s.load(&k, T0).await.unwrap().unwrap();
    let expected = stored.version;
    let mut again = stored.clone();
    again.version = expected + 1;
    s.save(&k, expected, &again, T0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_server_fails_at_connect_without_showing_the_password() {
    let port = tessera_test_support::free_port();
    let config = PostgresConfig::from_url(&format!("postgres://u:hunter2@127.0.0.1:{port}/db"))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let err = PostgresStore::connect(config).await.unwrap_err();
    assert!(
        matches!(
            err,
            tessera_store_postgres::Error::Connect { .. }
                | tessera_store_postgres::Error::ConnectTimeout { .. }
        ),
        "{err:?}"
    );
    let shown = tessera_test_support::error_chain(&err);
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// Session data is stored as exact JSON text: a NUL character (which `jsonb` refuses), big
/// numbers and key order survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_round_trips_exactly() {
    let s = crate::store().await;
    let k = fresh_key(SessionKind::Anonymous);
    let mut r = record(None, T0);
    r.data.insert("nul".into(), serde_json::json!("a\u{0}b"));
    r.data.insert("big".into(), serde_json::json!(u64::MAX));
    r.data.insert("float".into(), serde_json::json!(1.5e300));
    s.create(&k, &r).await.unwrap();
    assert_eq!(s.load(&k, T0).await.unwrap(), Some(r));
}
