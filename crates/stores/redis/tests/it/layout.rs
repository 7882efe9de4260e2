//! What the store writes into Redis: the documented key layout, native TTLs measured from the
//! engine's clock, and hash slots.

use std::time::Duration;

use redis::AsyncCommands as _;
use tessera_core::testing::{T0, fresh_key, fresh_user, record};
use tessera_core::{SessionKind, SessionStore};
use tessera_store_redis::{RedisConfig, RedisStore, hash_slot};

const HOUR: Duration = Duration::from_secs(3600);

/// The TTL of `key` in milliseconds.
async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_indexes_and_revocations_have_the_documented_keys_and_ttls() {
    let s = crate::standalone().await;
    let mut raw = crate::raw().await;
    let user = fresh_user();
    let k = fresh_key(SessionKind::Authenticated);
    let hex = k.to_hex();
    let r = record(Some(&user), T0);
    s.create(&k, &r).await.unwrap();

    let name = format!("tessera:s:{{{hex}}}");
    let fields: std::collections::BTreeMap<String, String> = raw.hgetall(&name).await.unwrap();
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(keys, ["c", "e", "r", "u", "v"]);
    assert_eq!(fields["e"], r.expires_at().unix_millis().to_string());
    assert_eq!(fields["c"], T0.unix_millis().to_string());
    assert_eq!(fields["u"], user);
    assert_eq!(fields["v"], "1");
    // T0 is months before Redis's clock: the TTL is the record's lifetime (one hour from its
    // creation), not "until T0 + 1h", which Redis would consider past.
    let ttl = pttl(&mut raw, &name).await;
    assert!((3_590_000..=3_600_000).contains(&ttl), "{ttl}");

    let index = format!("tessera:u:{{{user}}}:i");
    let score: f64 = raw.zscore(&index, &hex).await.unwrap();
    assert_eq!(score as i64, r.expires_at().unix_millis());
    assert!(pttl(&mut raw, &index).await > 3_590_000);

    // A renewal at T0 + 30 min to T0 + 2 h: an hour and a half left, in Redis too.
    let mut renewed = r.clone();
    renewed.version = 2;
    renewed.idle_expires_at = T0.saturating_add(2 * HOUR);
    let now = T0.saturating_add(HOUR / 2);
    s.save(&k, 1, &renewed, now).await.unwrap();
    let ttl = pttl(&mut raw, &name).await;
    assert!((5_390_000..=5_400_000).contains(&ttl), "{ttl}");
    let score: f64 = raw.zscore(&index, &hex).await.unwrap();
    assert_eq!(score as i64, renewed.expires_at().unix_millis());

    // A data edit at T0 + 45 min (same expiry, same owner) writes the record's fields alone:
    // the TTLs stay as the renewal set them (an hour and a half, not the 75 minutes a TTL
    // set again from this "now" would be), and so does the index entry.
    let mut edited = renewed.clone();
    edited.version = 3;
    edited
        .data
        .insert("edit".into(), serde_json::json!("only the record"));
    s.save(&k, 2, &edited, now.saturating_add(HOUR / 4))
        .await
        .unwrap();
    let fields: std::collections::BTreeMap<String, String> = raw.hgetall(&name).await.unwrap();
    assert_eq!(fields["v"], "3");
    assert_eq!(fields["u"], user);
    assert_eq!(fields["e"], edited.expires_at().unix_millis().to_string());
    assert!(fields["r"].contains("only the record"), "{}", fields["r"]);
    let ttl = pttl(&mut raw, &name).await;
    assert!((5_390_000..=5_400_000).contains(&ttl), "{ttl}");
    // Set in the same step as the record's, read a moment later.
    assert!(pttl(&mut raw, &index).await >= ttl - 1_000);
    let score: f64 = raw.zscore(&index, &hex).await.unwrap();
    assert_eq!(score as i64, edited.expires_at().unix_millis());
    assert_eq!(s.load(&k, now).await.unwrap(), Some(edited.clone()));

    // Another owner: the new owner's index lists it, the old one's no longer does.
    let other = fresh_user();
    let mut moved = edited.clone();
    moved.version = 4;
    if let Some(u) = moved.user.as_mut() {
        u.id.clone_from(&other);
    }
    s.save(&k, 3, &moved, now).await.unwrap();
    let fields: std::collections::BTreeMap<String, String> = raw.hgetall(&name).await.unwrap();
    assert_eq!(fields["u"], other);
    let gone: Option<f64> = raw.zscore(&index, &hex).await.unwrap();
    assert_eq!(gone, None, "the old owner's index no longer lists it");
    let other_index = format!("tessera:u:{{{other}}}:i");
    let score: f64 = raw.zscore(&other_index, &hex).await.unwrap();
    assert_eq!(score as i64, moved.expires_at().unix_millis());
    // And back, for what follows.
    let mut back = moved.clone();
    back.version = 5;
    back.user.clone_from(&edited.user);
    s.save(&k, 4, &back, now).await.unwrap();
    let score: f64 = raw.zscore(&index, &hex).await.unwrap();
    assert_eq!(score as i64, back.expires_at().unix_millis());

    s.revoke_user(&user, T0).await.unwrap();
    let revoked: i64 = raw.get(format!("tessera:u:{{{user}}}:r")).await.unwrap();
    assert_eq!(revoked, T0.unix_millis());

    // A tombstone for ten minutes after "now" (T0 + 30 min): ten minutes in Redis.
    s.delete(&k, now.saturating_add(Duration::from_secs(600)))
        .await
        .unwrap();
    let fields: std::collections::BTreeMap<String, String> = raw.hgetall(&name).await.unwrap();
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(keys, ["t"]);
    let ttl = pttl(&mut raw, &name).await;
    assert!((590_000..=600_000).contains(&ttl), "{ttl}");
    let gone: Option<f64> = raw.zscore(&index, &hex).await.unwrap();
    assert_eq!(gone, None, "delete un-indexes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_records_have_no_user_keys() {
    let s = crate::standalone().await;
    let mut raw = crate::raw().await;
    let k = fresh_key(SessionKind::Anonymous);
    s.create(&k, &record(None, T0)).await.unwrap();
    let fields: Vec<String> = raw
        .hkeys(format!("tessera:s:{{{}}}", k.to_hex()))
        .await
        .unwrap();
    assert!(!fields.contains(&"u".to_owned()), "{fields:?}");
}

/// On a Cluster, the server agrees with `hash_slot`, a user's two keys share a slot, and
/// sessions spread over the masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_keys_share_a_slot_on_the_cluster() {
    let cluster = tessera_test_support::redis::RedisCluster::shared().await;
    let mut node = redis::Client::open(format!("redis://127.0.0.1:{}", cluster.ports()[0]))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let slot = |key: String| {
        let mut node = node.clone();
        async move {
            let server: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query_async(&mut node)
                .await
                .unwrap();
            assert_eq!(server, hash_slot(key.as_bytes()), "{key}");
            server
        }
    };
    for user in [fresh_user(), "a}b".to_owned(), "{weird}".to_owned()] {
        assert_eq!(
            slot(format!("tessera:u:{{{user}}}:i")).await,
            slot(format!("tessera:u:{{{user}}}:r")).await,
            "{user}"
        );
    }
    let mut slots = std::collections::BTreeSet::new();
    for _ in 0..32 {
        let hex = fresh_key(SessionKind::Authenticated).to_hex();
        slots.insert(slot(format!("tessera:s:{{{hex}}}")).await / 5462);
    }
    assert_eq!(slots.len(), 3, "32 sessions all on one third of the slots");
    let _: () = redis::cmd("PING").query_async(&mut node).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_prefixes_keep_deployments_apart() {
    let url = tessera_test_support::redis::RedisServer::shared()
        .await
        .url();
    let open = |prefix: &'static str| {
        let url = url.clone();
        async move {
            let c = RedisConfig::from_url(&url)
                .unwrap()
                .with_key_prefix(prefix)
                .unwrap();
            RedisStore::connect(c).await.unwrap()
        }
    };
    let (a, b) = (open("app-a:").await, open("app-b:").await);
    let k = fresh_key(SessionKind::Authenticated);
    let user = fresh_user();
    a.create(&k, &record(Some(&user), T0)).await.unwrap();
    assert_eq!(b.load(&k, T0).await.unwrap(), None);
    assert!(b.list_user_sessions(&user, T0).await.unwrap().is_empty());
    b.create(&k, &record(Some(&user), T0)).await.unwrap();
    b.revoke_user(&user, T0).await.unwrap();
    assert!(a.load(&k, T0).await.unwrap().is_some());
    let mut raw = crate::raw().await;
    let exists: bool = raw
        .exists(format!("app-a:s:{{{}}}", k.to_hex()))
        .await
        .unwrap();
    assert!(exists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyed_store_has_the_documented_keys_and_ttls_in_one_slot_per_namespace() {
    use tessera_core::KvStore as _;
    use tessera_core::testing::{fresh_namespace, fresh_ns_key};

    let s = crate::standalone().await;
    let mut raw = crate::raw().await;
    let (ns, k) = (fresh_namespace(), fresh_ns_key());
    let until = T0.saturating_add(HOUR);
    s.ns_put(&ns, &k, b"value", until, T0).await.unwrap();

    let base = format!("tessera:n:{{{}}}", ns.as_str());
    let (generation, index) = (format!("{base}:g"), format!("{base}:i"));
    let value = format!("{base}:v:{}", k.to_hex());
    let fields: std::collections::BTreeMap<String, Vec<u8>> = raw.hgetall(&value).await.unwrap();
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(names, ["e", "g", "v"]);
    assert_eq!(fields["e"], until.unix_millis().to_string().into_bytes());
    assert_eq!(fields["g"], b"0");
    assert_eq!(fields["v"], b"value");
    // Measured from the engine's `now`, as for records.
    let ttl = pttl(&mut raw, &value).await;
    assert!((3_590_000..=3_600_000).contains(&ttl), "{ttl}");
    let entries: Vec<(String, i64)> = raw.zrange_withscores(&index, 0, -1).await.unwrap();
    assert_eq!(entries, [(k.to_hex(), until.unix_millis())]);
    let ttl = pttl(&mut raw, &index).await;
    assert!((3_590_000..=3_600_000).contains(&ttl), "{ttl}");
    let registered: bool = raw
        .sismember("tessera:nl:{namespaces}", ns.as_str())
        .await
        .unwrap();
    assert!(registered);
    // One slot for everything of the namespace, whatever the key.
    let slot = hash_slot(generation.as_bytes());
    assert_eq!(slot, hash_slot(index.as_bytes()));
    assert_eq!(slot, hash_slot(value.as_bytes()));
    assert_eq!(slot, hash_slot(ns.as_str().as_bytes()));

    // A clear is the generation and the index: the value key stays, hidden, until its TTL.
    s.ns_clear(&ns, T0).await.unwrap();
    let g: String = raw.get(&generation).await.unwrap();
    assert_eq!(g, "1");
    let index_left: bool = raw.exists(&index).await.unwrap();
    assert!(!index_left);
    let value_left: bool = raw.exists(&value).await.unwrap();
    assert!(value_left);
    assert_eq!(s.ns_get(&ns, &k, T0).await.unwrap(), None);
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 0);
    // The purge drops a namespace with no index from the registry.
    s.kv_purge_expired(T0).await.unwrap();
    let registered: bool = raw
        .sismember("tessera:nl:{namespaces}", ns.as_str())
        .await
        .unwrap();
    assert!(!registered);
}

/// A Kask entry is a hash of its value and expiry with a TTL from the engine's clock, written
/// in one step (`MULTI`/`EXEC`), also on a Cluster; writing it again replaces both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kask_entry_is_its_value_and_expiry_with_a_ttl() {
    use tessera_core::KvStore as _;
    for s in [crate::standalone().await, crate::cluster().await] {
        let key = format!("wiki:MWSession:{}", fresh_user());
        let name = {
            let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
            format!("tessera:k:{{{hex}}}")
        };
        s.kv_put(key.as_bytes(), b"v1", T0.saturating_add(HOUR), T0)
            .await
            .unwrap();
        s.kv_put(key.as_bytes(), b"v2", T0.saturating_add(2 * HOUR), T0)
            .await
            .unwrap();
        assert_eq!(
            s.kv_get(key.as_bytes(), T0).await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        let (fields, ttl) = if s.is_cluster() {
            let c = tessera_test_support::redis::RedisCluster::shared().await;
            let client = redis::cluster::ClusterClient::new(
                c.ports()
                    .iter()
                    .map(|p| format!("redis://127.0.0.1:{p}"))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            let mut conn = client.get_async_connection().await.unwrap();
            let fields: std::collections::BTreeMap<String, Vec<u8>> =
                conn.hgetall(&name).await.unwrap();
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&name)
                .query_async(&mut conn)
                .await
                .unwrap();
            (fields, ttl)
        } else {
            let mut raw = crate::raw().await;
            let fields: std::collections::BTreeMap<String, Vec<u8>> =
                raw.hgetall(&name).await.unwrap();
            (fields, pttl(&mut raw, &name).await)
        };
        assert_eq!(fields.len(), 2, "{fields:?}");
        assert_eq!(fields["v"], b"v2");
        assert_eq!(
            fields["e"],
            T0.saturating_add(2 * HOUR)
                .unix_millis()
                .to_string()
                .into_bytes()
        );
        assert!((7_190_000..=7_200_000).contains(&ttl), "{ttl}");
    }
}
