//! docs/fleet.md "Rotating the master key", step by step over real processes: two nodes on
//! one Postgres move from one master key to another with two rolling restarts, and no
//! token, session or CSRF token notices.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_test_support::postgres::PostgresServer;

use super::scaffold::{
    Fleet, Jar, Node, cli, master_key_file, node_command, stored_manifest, verify,
};

/// Waits past two refreshes of every node (`[keys] refresh` is 1 s in the fleet tests).
async fn refreshed() {
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

/// Every node resolves the session with its token valid, checks its CSRF token, and accepts
/// the token on `/v1/verify`.
async fn all_nodes_serve(http: &reqwest::Client, nodes: &[Node], jar: &Jar, token: &str) {
    for n in nodes {
        let v: Value = n
            .post(http, "/v1/session/resolve", json!({"cookie": jar.header()}))
            .await;
        assert_eq!(v["session"]["user"]["id"], "alice", "{v}");
        assert_eq!(v["token_status"], "ok", "{v}");
        let csrf = v["csrf_token"].as_str().unwrap();
        let c = n
            .post(
                http,
                "/v1/session/csrf/check",
                json!({"cookie": jar.header(), "token": csrf}),
            )
            .await;
        assert_eq!(c["valid"], true, "{c}");
        assert_eq!(verify(http, &n.base, token).await, (200, "ok".to_owned()));
    }
}

/// A node started with `master` (and no other key) exits with an error naming the master key,
/// and the stored record is unchanged.
async fn refuses_to_start(url: &str, master: &Path) {
    let before = stored_manifest(url).await;
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::from(node_command(url, master, &dir.path().join("data"), &[]))
            .output(),
    )
    .await
    .expect("a node with a master key the record is not sealed under must exit")
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // As docs/fleet.md quotes it.
    assert!(
        stderr.contains("error[startup-stored-keys]")
            && stderr.contains("are sealed under master key")
            && stderr.contains("the stored keys are left unchanged"),
        "{stderr}"
    );
    assert_eq!(
        stored_manifest(url).await,
        before,
        "the stored keys changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_moves_to_a_new_master_key_with_two_rolling_restarts() {
    let pg = PostgresServer::shared().await;
    let url = pg.fresh_schema_url().await;
    let mut fleet = Fleet::start(&url, 2, &[]).await;
    let old = fleet.master.clone();
    let http = reqwest::Client::new();

    // A session, its token and its CSRF token, made before anything moves.
    let mut jar = Jar::default();
    let v = fleet.nodes[0]
        .post(
            &http,
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "alice"}}),
        )
        .await;
    jar.apply(&v);
    let token = jar.token().unwrap().to_owned();
    all_nodes_serve(&http, &fleet.nodes, &jar, &token).await;

    // 1. The new key file (`tessera keys master-key`), given to every node as the other
    // master key, one restart at a time.
    let new = master_key_file(fleet.secrets.path(), "master-2.key");
    let other = [("TESSERA_OTHER_MASTER_KEY_FILE", new.to_str().unwrap())];
    for i in 0..fleet.nodes.len() {
        fleet.nodes[i] = Node::start_with(&url, &old, &other).await;
        all_nodes_serve(&http, &fleet.nodes, &jar, &token).await;
    }

    // 2. The record sealed again under the new key, once, with both files.
    let data = tempfile::tempdir().unwrap();
    let out = cli(
        &url,
        &old,
        &data.path().join("data"),
        &["keys", "reseal", new.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    refreshed().await;
    all_nodes_serve(&http, &fleet.nodes, &jar, &token).await;
    // A node with only the old key now refuses to start, and writes nothing.
    refuses_to_start(&url, &old).await;

    // 3. Every node on the new key alone, one restart at a time.
    for i in 0..fleet.nodes.len() {
        fleet.nodes[i] = Node::start(&url, &new).await;
        all_nodes_serve(&http, &fleet.nodes, &jar, &token).await;
    }
    // The keys did not change: the token of before verifies, and a new login's token
    // verifies on every node.
    let mut fresh = Jar::default();
    let v = fleet.nodes[1]
        .post(
            &http,
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "alice"}}),
        )
        .await;
    fresh.apply(&v);
    let fresh_token = fresh.token().unwrap().to_owned();
    all_nodes_serve(&http, &fleet.nodes, &fresh, &fresh_token).await;
    assert_eq!(
        super::scaffold::jwks_kids(&fleet.nodes[0].jwks(&http).await),
        super::scaffold::jwks_kids(&fleet.nodes[1].jwks(&http).await)
    );
    refuses_to_start(&url, &old).await;
}
