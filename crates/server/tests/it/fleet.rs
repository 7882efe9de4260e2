//! A fleet (issue 11): three `tessera serve` processes on loopback, each with a data
//! directory of its own, sharing one Postgres (a throwaway cluster of `tessera-test-support`),
//! and again one Redis Cluster (three masters of its own), with `TESSERA_KEYS=store`, behind Debian's nginx with the three in one round-robin
//! `upstream`. A client going through nginx gets its anonymous cookie, its login, its
//! updates, its CSRF checks and its token checks accepted whichever node answers; every node
//! serves the same JWKS bytes; a node given another master key exits non-zero and leaves
//! the stored keys as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::BlobStore as _;
use tessera_store_postgres::PostgresStore;
use tessera_test_support::postgres::PostgresServer;

use crate::peers::nginx::Nginx;

const API_KEY: &str = "fleet-test-api-key-0123456789abcdef012345";

/// A `tessera serve` node of the fleet. Killed on drop.
struct Node {
    base: String,
    addr: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

/// The environment of a fleet node: the shared store and master key file, keys in the store.
fn node_command(store: &str, master: &Path, data_dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve")
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_DATA_DIR", data_dir)
        .env("TESSERA_STORE", store)
        .env("TESSERA_KEYS", "store")
        .env("TESSERA_MASTER_KEY_FILE", master)
        .env("TESSERA_KEYS_REFRESH", "1s")
        .env("TESSERA_API_KEY", API_KEY)
        // Plain http on loopback: the cookies are development cookies.
        .env("TESSERA_COOKIE_DEVELOPMENT", "1")
        .stdin(Stdio::null());
    cmd
}

impl Node {
    async fn start(store: &str, master: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.txt");
        let mut cmd = node_command(store, master, &dir.path().join("data"));
        let child = cmd
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut node = Self {
            base: String::new(),
            addr: String::new(),
            child,
            _dir: dir,
        };
        for _ in 0..1500 {
            let out = std::fs::read_to_string(&stderr).unwrap_or_default();
            if let Some(addr) = crate::common::listening_addr(&out) {
                node.base = format!("http://{addr}");
                node.addr = addr;
                return node;
            }
            if let Some(status) = node.child.try_wait().unwrap() {
                panic!("tessera exited ({status}):\n{out}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("tessera did not start within 30 s");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser's cookies, as the application keeps them for it from `set_cookie` lists.
#[derive(Default, Debug)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn apply(&mut self, v: &Value) {
        for c in v["set_cookie"].as_array().unwrap() {
            let c = c.as_str().unwrap();
            let pair = c.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let removed = c.contains("Max-Age=0") || value.is_empty();
            if removed {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// nginx in front of `nodes`, round-robin, saying in `X-Upstream` which node answered.
async fn balancer(nodes: &[Node]) -> Nginx {
    let servers: String = nodes
        .iter()
        .map(|n| format!("server {};\n", n.addr))
        .collect();
    Nginx::start_site(move |port, _, _| {
        format!(
            "upstream tessera {{\n{servers}}}\n\
             server {{\n\
             listen 127.0.0.1:{port};\n\
             location / {{\n\
             proxy_pass http://tessera;\n\
             add_header X-Upstream $upstream_addr always;\n\
             }}\n\
             }}\n"
        )
    })
    .await
}

/// A client of the fleet through nginx: every request may reach another node.
struct Client {
    http: reqwest::Client,
    base: String,
    seen: BTreeSet<String>,
}

impl Client {
    async fn call(&mut self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let upstream = r
            .headers()
            .get("x-upstream")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, reqwest::StatusCode::OK, "{path} on {upstream}: {v}");
        self.seen.insert(upstream);
        v
    }
}

async fn stored_manifest(url: &str) -> tessera_core::Blob {
    let blob = if url.starts_with("postgres") {
        PostgresStore::open(url)
            .await
            .unwrap()
            .blob_get("tessera/keys")
            .await
    } else {
        tessera_store_redis::RedisStore::open(url)
            .await
            .unwrap()
            .blob_get("tessera/keys")
            .await
    };
    blob.unwrap().expect("the fleet's keys in the store")
}

/// Writes `value` over the manifest at `expected`, as someone with write access to the store.
async fn put_manifest(url: &str, expected: u64, value: &[u8]) {
    let v = if url.starts_with("postgres") {
        PostgresStore::open(url)
            .await
            .unwrap()
            .blob_put("tessera/keys", expected, value)
            .await
    } else {
        tessera_store_redis::RedisStore::open(url)
            .await
            .unwrap()
            .blob_put("tessera/keys", expected, value)
            .await
    };
    assert_eq!(v.unwrap(), expected + 1);
}

fn master_key_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["keys", "master-key"])
        .arg(&path)
        .env_remove("TESSERA_KEYS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("created master key"), "{text}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    path
}

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
    let secrets = tempfile::tempdir().unwrap();
    let master = master_key_file(secrets.path(), "master.key");

    // Started together: one of them creates the keys, the others read them.
    let (a, b, c) = tokio::join!(
        Node::start(&url, &master),
        Node::start(&url, &master),
        Node::start(&url, &master)
    );
    let nodes = [a, b, c];
    let before = stored_manifest(&url).await;
    assert_eq!(before.version, 1, "exactly one node created the keys");

    // The same JWKS bytes from every node, asked directly.
    let http = reqwest::Client::new();
    let mut sets = BTreeSet::new();
    for n in &nodes {
        let r = http
            .get(format!("{}/.well-known/jwks.json", n.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        sets.insert(r.bytes().await.unwrap().to_vec());
    }
    assert_eq!(sets.len(), 1, "the nodes serve different JWKS");

    let nginx = balancer(&nodes).await;
    let mut client = Client {
        http: http.clone(),
        base: format!("http://127.0.0.1:{}", nginx.port()),
        seen: BTreeSet::new(),
    };
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
    for n in &nodes {
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
    let wrong = master_key_file(secrets.path(), "wrong.key");
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::from(node_command(&url, &wrong, &dir.path().join("data")))
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
    let d = Node::start(&url, &master).await;
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
        tokio::process::Command::from(node_command(&url, &master, &dir.path().join("data2")))
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

/// `tessera` with the environment of a fleet node (or, with `store` empty, of a node with
/// its keys in `data_dir`), run to the end.
fn cli(store: &str, master: &Path, data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = node_command(store, master, data_dir);
    if store.is_empty() {
        cmd.env_remove("TESSERA_KEYS")
            .env_remove("TESSERA_STORE")
            .env("TESSERA_STORE", "memory:");
    }
    // `node_command` starts with `serve`: replace the arguments.
    let mut c = std::process::Command::new(cmd.get_program());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.args(args).output().unwrap()
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
    // What does not work on the store says so.
    let out = cli(&url, &master, &d, &["keys", "rotate"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keys-in-store"),
        "{out:?}"
    );
}
