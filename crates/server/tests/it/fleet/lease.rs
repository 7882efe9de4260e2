//! The rotation lease with real processes (issue 11): the node holding it is killed
//! (`kill -9`) mid-rotation; another node completes a rotation once the lease has lapsed; the
//! keys stay loadable on every node, and no key is lost or duplicated.
//!
//! How a node takes the lease at a known moment, without a test-only code path: the fleet's
//! keys are written into the store beforehand as they would be 31 days after they were made
//! (the token key is then due to be replaced: `rotate_every` 30 d less `publish_ahead` 1 d;
//! the sealing key too), so at its first refresh (`keys.refresh` = 1 s) every node finds a
//! rotation due and exactly one takes the lease. The nodes generate RS256 keys of 4096 bits,
//! which take a debug build a second or more, and a node logs `took the rotation lease`
//! before it generates: the test kills the node that logged it as soon as it appears, before
//! it can write (checked: the manifest is still at version 1 after the kill).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera::keys::stored::{KEYS_BLOB, KeyVault, LEASE_BLOB, MasterKey, StoredPolicies};
use tessera_core::Clock as _;
use tessera_test_support::postgres::PostgresServer;
use tessera_test_support::process::poll_until;
use tokio::time::Instant;

use super::scaffold::{
    Fleet, Jar, jwks_kids, listed_keys, master_key_file, stored_blob, stored_manifest, verify,
};

const DAY: i64 = 86_400;
/// What a node logs when it has taken the lease, before it makes a key.
const TOOK: &str = "took the rotation lease";
/// The lease's lifetime with `keys.refresh` = 1 s: three refreshes, at least 30 s.
const LEASE: i64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_holding_the_lease_mid_rotation_is_taken_over_once_it_lapses() {
    let pg = PostgresServer::shared().await;
    killed_mid_rotation(&pg.fresh_schema_url().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_the_lease_of_a_node_killed_mid_rotation_lapses_too() {
    // A Cluster of its own: the fleet's keys and lease have fixed names in a store.
    let cluster = tessera_test_support::redis::RedisCluster::start().await;
    killed_mid_rotation(&cluster.url()).await;
}

/// The test of the module docs, on the store at `url` (with no keys yet).
async fn killed_mid_rotation(url: &str) {
    let url = url.to_owned();
    let secrets = tempfile::tempdir().unwrap();
    let master = master_key_file(secrets.path(), "master.key");

    // The fleet's keys, as made 31 days ago.
    let now = tessera_core::SystemClock.now().unix_secs();
    let store: Arc<dyn tessera_core::SessionStore> = if url.starts_with("postgres") {
        Arc::new(
            tessera_store_postgres::PostgresStore::open(&url)
                .await
                .unwrap(),
        )
    } else {
        Arc::new(tessera_store_redis::RedisStore::open(&url).await.unwrap())
    };
    let vault = KeyVault::new(store, MasterKey::load(&master).unwrap()).unwrap();
    let policies = StoredPolicies {
        tokens: tessera_token::RotationPolicy::default(),
        seal: tessera::keys::files::seal_policy(&tessera::SessionConfig::default()),
        // As the nodes' (`[keys] refresh` 1 s): published twice that and a minute ahead.
        csrf: tessera::keys::files::csrf_policy(
            &tessera::SessionConfig::default(),
            Duration::from_secs(62),
        ),
    };
    let (old, created) = vault
        .load_or_create(
            &policies,
            now - 31 * DAY,
            &mut tessera_token::OsKeySource::default(),
        )
        .await
        .unwrap();
    assert!(created && old.version == 1);
    let old_kids: Vec<String> = old.tokens.keys().map(|k| k.kid.to_string()).collect();
    assert_eq!(old_kids.len(), 1);

    let env = [
        ("TESSERA_TOKEN_ALGORITHM", "RS256"),
        ("TESSERA_TOKEN_RSA_BITS", "4096"),
    ];
    let mut fleet = Fleet::start_in(&url, master, secrets, 3, &env).await;

    // The first node to take the lease says so; it dies before it has written.
    let holder = poll_until(
        Duration::from_secs(30),
        Duration::from_millis(5),
        async || fleet.nodes.iter().position(|n| n.log().contains(TOOK)),
    )
    .await
    .unwrap_or_else(|| panic!("no node took the lease: {}", fleet.nodes[0].log()));
    let mut dead = fleet.nodes.remove(holder);
    dead.kill();
    let killed = Instant::now();
    let dead_log = dead.log();
    let dead_name = holder_name(&dead_log);
    assert!(
        !dead_log.contains("rotated the keys in the store"),
        "the holder rotated before it died: {dead_log}"
    );
    let at_kill = stored_manifest(&url).await;
    assert_eq!(
        at_kill.version, 1,
        "the holder wrote the keys before it was killed (not mid-rotation): {dead_log}"
    );
    let lease = lease_of(&url).await;
    assert_eq!(lease["holder"], json!(dead_name), "{lease}");
    let lapses = lease["until"].as_i64().unwrap();

    // Another node completes a rotation, once the lease has lapsed.
    let rotated = poll_until(
        Duration::from_secs(90),
        Duration::from_millis(100),
        async || (stored_manifest(&url).await.version > 1).then_some(()),
    )
    .await;
    let took = killed.elapsed();
    assert!(
        rotated.is_some(),
        "no rotation within 90 s of the kill: {} / {}",
        fleet.nodes[0].log(),
        fleet.nodes[1].log()
    );
    let lease = lease_of(&url).await;
    let taker = lease["holder"].as_str().unwrap().to_owned();
    assert_ne!(taker, dead_name, "{lease}");
    let taken_at = lease["until"].as_i64().unwrap() - LEASE;
    assert!(
        taken_at >= lapses,
        "the lease was taken over at {taken_at}, before it lapsed at {lapses}"
    );
    let rotator = fleet
        .nodes
        .iter()
        .position(|n| n.log().contains(&taker))
        .expect("the new holder is a node of the fleet");
    eprintln!(
        "fleet lease ({}): node {} took the lease (holder {dead_name}, until {lapses}) and was \
         killed mid-rotation; node {} (holder {taker}) took it over at {taken_at} and wrote \
         version 2, {took:?} after the kill",
        if url.starts_with("postgres") {
            "Postgres"
        } else {
            "Redis Cluster"
        },
        dead.addr,
        fleet.nodes[rotator].addr
    );

    // Every node serves the new keys within a refresh (1 s) of the write, the same bytes.
    let http = reqwest::Client::new();
    let written = Instant::now();
    let converged = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            let sets = fleet.jwks(&http).await;
            (sets.windows(2).all(|w| w[0] == w[1]) && jwks_kids(&sets[0]).len() == 2).then_some(())
        },
    )
    .await;
    let window = written.elapsed();
    assert!(converged.is_some(), "the nodes' JWKS never converged");
    eprintln!("fleet lease: every node served the new JWKS {window:?} after the write was seen");
    assert!(window <= Duration::from_secs(2), "{window:?}");
    // Exactly one rotation was written: the old key and one new key, each once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stored_manifest(&url).await.version,
        2,
        "rotated more than once"
    );
    let listed = listed_keys(&fleet);
    let kids: Vec<String> = listed.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(kids.len(), 2, "{listed:?}");
    assert_ne!(kids[0], kids[1], "{listed:?}");
    assert!(
        kids.contains(&old_kids[0]),
        "the old key is lost: {listed:?}"
    );
    let states: Vec<&str> = listed.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(states, ["next", "active"], "{listed:?}");

    // Every node serves those keys, the same bytes, and a node started now loads them.
    let sets = fleet.jwks(&http).await;
    assert!(sets.windows(2).all(|w| w[0] == w[1]), "JWKS differ");
    let mut served = jwks_kids(&sets[0]);
    served.sort();
    let mut sorted = kids.clone();
    sorted.sort();
    assert_eq!(served, sorted);
    let late = fleet.start_node().await;
    assert_eq!(late.jwks(&http).await, sets[0]);
    // And they sign and verify across the fleet.
    let mut jar = Jar::default();
    let v = fleet.nodes[0]
        .post(
            &http,
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "alice"}}),
        )
        .await;
    jar.apply(&v);
    let token = jar.token().expect("a token").to_owned();
    for base in [&fleet.nodes[1].base, &late.base] {
        assert_eq!(verify(&http, base, &token).await, (200, "ok".to_owned()));
    }
    assert_eq!(stored_blob(&url, KEYS_BLOB).await.unwrap().version, 2);
}

/// The lease blob's content: `{"holder","until"}`.
async fn lease_of(url: &str) -> Value {
    let blob = stored_blob(url, LEASE_BLOB).await.expect("a lease");
    serde_json::from_slice(&blob.value).unwrap()
}

/// The `holder` a node's `took the rotation lease` line names.
fn holder_name(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains(TOOK))
        .unwrap_or_else(|| panic!("no lease line: {log}"));
    let rest = line
        .split("holder=")
        .nth(1)
        .unwrap_or_else(|| panic!("no holder in {line}"));
    rest.trim_start_matches('"')
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}
