//! Behaviour beyond the conformance suite, on both topologies where it matters: revocation
//! during saves, owners changing, the index tidying itself, timeouts, script reloading, TLS.

use std::time::Duration;

use redis::AsyncCommands as _;
use tessera_core::testing::{T0, fresh_key, fresh_user, record};
use tessera_core::{Error, SessionKind, SessionStore};
use tessera_store_redis::{RedisConfig, RedisStore};
use tessera_test_support::redis::RedisServer;

async fn both() -> [RedisStore; 2] {
    [crate::standalone().await, crate::cluster().await]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_cannot_be_saved() {
    for s in both().await {
        let user = fresh_user();
        let k = fresh_key(SessionKind::Authenticated);
        let r = record(Some(&user), T0);
        s.create(&k, &r).await.unwrap();
        s.revoke_user(&user, T0).await.unwrap();
        let mut next = r.clone();
        next.version = 2;
        assert!(
            matches!(s.save(&k, 1, &next, T0).await, Err(Error::NotFound)),
            "{s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_that_changes_the_user_moves_the_index_entry() {
    for s in both().await {
        let (u, v) = (fresh_user(), fresh_user());
        let k = fresh_key(SessionKind::Authenticated);
        s.create(&k, &record(Some(&u), T0)).await.unwrap();
        let mut moved = record(Some(&v), T0);
        moved.version = 2;
        s.save(&k, 1, &moved, T0).await.unwrap();
        assert!(s.list_user_sessions(&u, T0).await.unwrap().is_empty());
        let listed = s.list_user_sessions(&v, T0).await.unwrap();
        assert_eq!(listed, vec![(k, moved.clone())]);
        // The old owner's revocation no longer matters; the new owner's does.
        s.revoke_user(&u, T0).await.unwrap();
        assert!(s.load(&k, T0).await.unwrap().is_some());
        s.revoke_user(&v, T0).await.unwrap();
        assert_eq!(s.load(&k, T0).await.unwrap(), None);
    }
}

/// Entries that point at nothing live (a crash between two steps, a failed create) are not
/// listed, and listing drops the dead ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_ignores_and_drops_dead_index_entries() {
    let s = crate::standalone().await;
    let mut raw = crate::raw().await;
    let user = fresh_user();
    let index = format!("tessera:u:{{{user}}}:i");
    let live = fresh_key(SessionKind::Authenticated);
    s.create(&live, &record(Some(&user), T0)).await.unwrap();

    let far = T0.saturating_add(Duration::from_secs(86_400)).unix_millis();
    let tomb = fresh_key(SessionKind::Authenticated);
    s.create(&tomb, &record(Some(&user), T0)).await.unwrap();
    s.delete(&tomb, T0.saturating_add(Duration::from_secs(60)))
        .await
        .unwrap();
    let other = fresh_key(SessionKind::Authenticated);
    s.create(&other, &record(Some(&fresh_user()), T0))
        .await
        .unwrap();
    let in_flight = fresh_key(SessionKind::Authenticated);
    let _: () = raw.zadd(&index, tomb.to_hex(), far).await.unwrap();
    let _: () = raw.zadd(&index, other.to_hex(), far).await.unwrap();
    let _: () = raw.zadd(&index, in_flight.to_hex(), far).await.unwrap();
    let _: () = raw.zadd(&index, "not-a-key", far).await.unwrap();
    let _: () = raw
        .zadd(&index, fresh_key(SessionKind::Authenticated).to_hex(), 1)
        .await
        .unwrap();

    let listed = s.list_user_sessions(&user, T0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, live);
    let mut left: Vec<String> = raw.zrange(&index, 0, -1).await.unwrap();
    left.sort();
    let mut want = vec![live.to_hex(), in_flight.to_hex()];
    want.sort();
    assert_eq!(left, want, "a create still in flight keeps its entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_gives_a_timeout() {
    let server = RedisServer::start().await;
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let s = RedisStore::connect(config).await.unwrap();
    let k = fresh_key(SessionKind::Anonymous);
    s.create(&k, &record(None, T0)).await.unwrap();

    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1000)
        .arg("ALL")
        .query_async(&mut raw)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let r = s.load(&k, T0).await;
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(started.elapsed() < Duration::from_millis(900));
    // Once the pause is over, the same store works again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(s.load(&k, T0).await.unwrap().is_some(), "works again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_server_fails_at_connect_without_showing_the_password() {
    let port = tessera_test_support::free_port();
    let config = RedisConfig::from_url(&format!("redis://:hunter2@127.0.0.1:{port}"))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let err = RedisStore::connect(config).await.unwrap_err();
    assert!(
        matches!(
            err,
            tessera_store_redis::Error::Connect { .. }
                | tessera_store_redis::Error::ConnectTimeout { .. }
        ),
        "{err:?}"
    );
    let shown = tessera_test_support::error_chain(&err);
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains(":***@"), "{shown}");
}

/// A Redis that lost its script cache (restart, `SCRIPT FLUSH`, failover) is reloaded on the
/// fly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_loaded_again_after_a_flush() {
    let server = RedisServer::start().await;
    let s = RedisStore::open(&server.url()).await.unwrap();
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let user = fresh_user();
    let k = fresh_key(SessionKind::Authenticated);
    s.create(&k, &record(Some(&user), T0)).await.unwrap();
    assert!(s.load(&k, T0).await.unwrap().is_some());
    s.revoke_user(&user, T0).await.unwrap();
    assert_eq!(s.load(&k, T0).await.unwrap(), None);
    assert_eq!(s.purge_expired(T0).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let (server, ca) = RedisServer::start_tls().await;
    let config = RedisConfig::from_url(&server.tls_url())
        .unwrap()
        .with_root_certificate_pem(ca);
    let s = RedisStore::connect(config).await.unwrap();
    let user = fresh_user();
    let k = fresh_key(SessionKind::Authenticated);
    let r = record(Some(&user), T0);
    s.create(&k, &r).await.unwrap();
    assert_eq!(s.load(&k, T0).await.unwrap(), Some(r));
    assert_eq!(s.list_user_sessions(&user, T0).await.unwrap().len(), 1);

    // Without the CA, the server's certificate is not trusted.
    let untrusted = RedisConfig::from_url(&server.tls_url())
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    assert!(RedisStore::connect(untrusted).await.is_err());
    // And plain text is refused.
    let plain = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_timeout(Duration::from_secs(1));
    assert!(RedisStore::connect(plain).await.is_err());
}

/// The commands clients sent since the last call, by name, from the slow log (which logs
/// every command once `slowlog-log-slower-than` is 0); the calls scripts make and the
/// `SLOWLOG` commands themselves left out. Empties the log.
async fn commands_sent(raw: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(raw)
        .await
        .unwrap();
    let mut names = vec![];
    for e in entries {
        let redis::Value::Array(fields) = e else {
            panic!("{e:?}")
        };
        let Some(redis::Value::Array(args)) = fields.get(3) else {
            panic!("{fields:?}")
        };
        let name: String = redis::from_redis_value(args[0].clone()).unwrap();
        // The calls a script makes are logged too, from the client `?:0`.
        let client: String = fields
            .get(4)
            .map(|c| redis::from_redis_value(c.clone()).unwrap())
            .unwrap_or_default();
        if !name.eq_ignore_ascii_case("slowlog") && client != "?:0" {
            names.push(name.to_ascii_uppercase());
        }
    }
    names
}

/// On a standalone server every `create`, `load`, `save` and `delete` of an authenticated
/// session is one command (one `EVALSHA`), so one round trip: the user's revocation time and
/// index travel with the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_operations_take_one_round_trip() {
    let server = RedisServer::start().await;
    let s = RedisStore::open(&server.url()).await.unwrap();
    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (user, other) = (fresh_user(), fresh_user());
    let k = fresh_key(SessionKind::Authenticated);
    let r = record(Some(&user), T0);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query_async(&mut raw)
        .await
        .unwrap();
    commands_sent(&mut raw).await;
    let mut counted = vec![];
    s.create(&k, &r).await.unwrap();
    counted.push(("create", commands_sent(&mut raw).await));
    assert!(s.load(&k, T0).await.unwrap().is_some());
    counted.push(("load", commands_sent(&mut raw).await));
    let mut next = r.clone();
    next.version = 2;
    s.save(&k, 1, &next, T0).await.unwrap();
    counted.push(("save", commands_sent(&mut raw).await));
    let mut moved = record(Some(&other), T0);
    moved.version = 3;
    s.save(&k, 2, &moved, T0).await.unwrap();
    counted.push(("save to another user", commands_sent(&mut raw).await));
    assert!(matches!(
        s.save(&k, 2, &moved, T0).await,
        Err(Error::Conflict)
    ));
    counted.push(("conflicting save", commands_sent(&mut raw).await));
    s.delete(&k, T0).await.unwrap();
    counted.push(("delete", commands_sent(&mut raw).await));
    assert!(
        counted.iter().all(|(_, sent)| sent == &["EVALSHA"]),
        "commands per operation: {counted:?}"
    );
    // The indexes followed: the session moved to `other`, then went.
    assert!(s.list_user_sessions(&user, T0).await.unwrap().is_empty());
    assert!(s.list_user_sessions(&other, T0).await.unwrap().is_empty());
    let left: Vec<String> = raw
        .zrange(format!("tessera:u:{{{other}}}:i"), 0, -1)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}
