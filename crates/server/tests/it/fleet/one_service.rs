//! Three nodes behind nginx act as one service; keys in the store are created once, refused
//! when altered or sealed under another master key, and imported from a key directory once.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_test_support::postgres::PostgresServer;

use super::scaffold::{
    API_KEY, Client, Fleet, Jar, Node, cli, jwks_kids, listed_keys, master_key_file, node_command,
    put_manifest, stored_manifest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_postgres_behind_nginx_act_as_one_service() {
    let pg = PostgresServer::shared().await;
    three_nodes_behind_nginx(&pg.fresh_schema_url().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_redis_cluster_behind_nginx_act_as_one_service() {
    // A Cluster of its own: the fleet's keys have one fixed name in a store.
    let cluster = tessera_test_support::redis::RedisCluster::start().await;
    three_nodes_behind_nginx(&cluster.url()).await;
}

/// Three nodes on the store at `url` (with no keys yet) behind nginx: see the module docs.
async fn three_nodes_behind_nginx(url: &str) {
    let url = url.to_owned();
    // Started together: one of them creates the keys, the others read them.
    let fleet = Fleet::start(&url, 3, &[]).await;
    let nodes = &fleet.nodes;
    let before = stored_manifest(&url).await;
    assert_eq!(before.version, 1, "exactly one node created the keys");

    // The same JWKS bytes from every node, asked directly.
    let http = reqwest::Client::new();
    let sets: BTreeSet<Vec<u8>> = fleet.jwks(&http).await.into_iter().collect();
    assert_eq!(sets.len(), 1, "the nodes serve different JWKS");
    // They are the keys the CLI lists from the store.
    let listed: Vec<String> = listed_keys(&fleet)
        .into_iter()
        .map(|(kid, _)| kid)
        .collect();
    assert_eq!(
        Some(&listed),
        sets.iter().next().map(|j| jwks_kids(j)).as_ref()
    );

    let nginx = fleet.balancer().await;
    let mut client = Client::of(&nginx);
    let mut jar = Jar::default();

    // An anonymous session in a sealed cookie, written by one node, read by the others.
    let v = client
        .call("/v1/session/resolve", json!({"cookie": ""}))
        .await;
    jar.apply(&v);
    let v = client
        .call(
            "/v1/session/update",
            json!({"cookie": jar.header(), "set": {"cart": ["tea"]}}),
        )
        .await;
    jar.apply(&v);
    assert!(
        jar.get("tessera-anon").is_some(),
        "no anonymous cookie: {jar:?}"
    );
    for _ in 0..3 {
        let v = client
            .call("/v1/session/resolve", json!({"cookie": jar.header()}))
            .await;
        assert_eq!(v["session"]["data"]["cart"], json!(["tea"]), "{v}");
        assert_eq!(v["session"]["user"], Value::Null);
        // A CSRF token issued by one node is accepted by the next.
        let token = v["csrf_token"].as_str().unwrap().to_owned();
        let check = client
            .call(
                "/v1/session/csrf/check",
                json!({"cookie": jar.header(), "token": token}),
            )
            .await;
        assert_eq!(check["valid"], json!(true), "{check}");
        jar.apply(&v);
    }

    // Login on one node; the session, its token and its CSRF tokens work on every node.
    let v = client
        .call(
            "/v1/session/login",
            json!({"cookie": jar.header(), "user": {"id": "alice"}}),
        )
        .await;
    jar.apply(&v);
    assert_eq!(v["session"]["data"]["cart"], json!(["tea"]), "{v}");
    let token_cookie = jar
        .0
        .keys()
        .find(|k| k.ends_with("-token"))
        .cloned()
        .unwrap_or_else(|| panic!("no token cookie: {jar:?}"));
    for i in 0..3 {
        let v = client
            .call(
                "/v1/session/update",
                json!({"cookie": jar.header(), "set": {format!("k{i}"): i}}),
            )
            .await;
        jar.apply(&v);
        let v = client
            .call("/v1/session/resolve", json!({"cookie": jar.header()}))
            .await;
        assert_eq!(v["token_status"], json!("ok"), "{v}");
        assert_eq!(v["session"]["user"]["id"], json!("alice"), "{v}");
        assert_eq!(v["session"]["data"][format!("k{i}")], json!(i), "{v}");
        let check = client
            .call(
                "/v1/session/csrf/check",
                json!({"cookie": jar.header(), "token": v["csrf_token"]}),
            )
            .await;
        assert_eq!(check["valid"], json!(true), "{check}");
        jar.apply(&v);
    }
    // The token verifies at every node's edge check, asked directly.
    let cookie = format!("{token_cookie}={}", jar.get(&token_cookie).unwrap());
    for n in nodes {
        let r = http
            .get(format!("{}/v1/verify", n.base))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("x-tessera-subject").unwrap(),
            "alice",
            "{}",
            n.addr
        );
        assert_eq!(r.headers().get("x-tessera-token-status").unwrap(), "ok");
    }
    // nginx did spread the requests over the three nodes.
    let expected: BTreeSet<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    assert_eq!(client.seen, expected, "{}", nginx.error_log());

    // A node with another master key refuses to start and writes nothing.
    let wrong = master_key_file(fleet.secrets.path(), "wrong.key");
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::from(node_command(&url, &wrong, &dir.path().join("data"), &[]))
            .output(),
    )
    .await
    .expect("a node with the wrong master key must exit")
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sealed under master key") && stderr.contains("left unchanged"),
        "{stderr}"
    );
    let after = stored_manifest(&url).await;
    assert_eq!(after, before, "the stored keys changed");
    // The fleet still serves with its keys.
    let v = client
        .call("/v1/session/resolve", json!({"cookie": jar.header()}))
        .await;
    assert_eq!(v["token_status"], json!("ok"), "{v}");

    // A fourth node started later serves with the fleet's keys at once.
    let d = fleet.start_node().await;
    let jwks = http
        .get(format!("{}/.well-known/jwks.json", d.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(Some(&jwks.to_vec()), sets.iter().next());
    let v: Value = http
        .post(format!("{}/v1/session/resolve", d.base))
        .bearer_auth(API_KEY)
        .json(&json!({"cookie": jar.header()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["token_status"], json!("ok"), "{v}");
    assert_eq!(v["session"]["user"]["id"], json!("alice"), "{v}");
    drop(d);

    // A record altered in the store is refused and reported: a node does not start on it.
    let mut altered = after.value.clone();
    let at = altered.len() / 2;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    put_manifest(&url, after.version, &altered).await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::from(node_command(
            &url,
            &fleet.master,
            &dir.path().join("data2"),
            &[],
        ))
        .output(),
    )
    .await
    .expect("a node on an altered record must exit")
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keys-record-tampered") || stderr.contains("altered or replayed"),
        "{stderr}"
    );
    // The running nodes keep the keys they have.
    let v = client
        .call("/v1/session/resolve", json!({"cookie": jar.header()}))
        .await;
    assert_eq!(v["token_status"], json!("ok"), "{v}");
}

/// A node's key directory as `tessera serve` leaves it: token keys, sealing keys, csrf.key.
fn key_directory(data_dir: &Path) {
    let out = cli(
        "",
        Path::new("/nonexistent"),
        data_dir,
        &["keys", "generate"],
    );
    assert!(out.status.success(), "{out:?}");
    let policy = tessera::keys::files::seal_policy(&tessera::SessionConfig::default());
    tessera::keys::files::load_or_generate_seal_keys(&data_dir.join("keys"), policy, 1_800_000_000)
        .unwrap();
    tessera::keys::files::load_or_create_csrf_key(&data_dir.join("csrf.key")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_directory_is_imported_into_the_store_once() {
    let pg = PostgresServer::shared().await;
    let url = pg.fresh_schema_url().await;
    let secrets = tempfile::tempdir().unwrap();
    let master = master_key_file(secrets.path(), "master.key");
    let data = tempfile::tempdir().unwrap();
    let d = data.path().join("data");
    key_directory(&d);
    let dir_jwks = cli("", &master, &d, &["keys", "jwks"]);
    assert!(dir_jwks.status.success(), "{dir_jwks:?}");

    // Before the import the store has no keys to list.
    let out = cli(&url, &master, &d, &["keys", "list"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no keys yet"),
        "{out:?}"
    );
    let out = cli(&url, &master, &d, &["keys", "import"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 1 token keys"),
        "{out:?}"
    );
    let first = stored_manifest(&url).await;
    assert_eq!(first.version, 1);
    // Again: nothing changes.
    let out = cli(&url, &master, &d, &["keys", "import"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing changed"),
        "{out:?}"
    );
    assert_eq!(stored_manifest(&url).await, first);
    // The store's JWKS is the directory's, from the CLI and from a node serving on it.
    let store_jwks = cli(&url, &master, &d, &["keys", "jwks"]);
    assert!(store_jwks.status.success(), "{store_jwks:?}");
    assert_eq!(store_jwks.stdout, dir_jwks.stdout);
    let node = Node::start(&url, &master).await;
    let served = reqwest::get(format!("{}/.well-known/jwks.json", node.base))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.to_vec(), dir_jwks.stdout);
    let list = cli(&url, &master, &d, &["keys", "list", "--json"]);
    assert!(list.status.success(), "{list:?}");
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["keys"][0]["signing"], json!(true), "{v}");
    // Another directory's keys are refused: the fleet's keys stay.
    let other = tempfile::tempdir().unwrap();
    let o = other.path().join("data");
    key_directory(&o);
    let out = cli(&url, &master, &o, &["keys", "import"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already holds other keys"),
        "{out:?}"
    );
    assert_eq!(stored_manifest(&url).await, first);
    // `keys rotate` works on the store: nothing is due, so nothing is written.
    let out = cli(&url, &master, &d, &["keys", "rotate"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the store is unchanged"),
        "{out:?}"
    );
    assert_eq!(stored_manifest(&url).await, first);
}
