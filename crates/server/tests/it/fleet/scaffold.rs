//! The fleet's processes: `tessera serve` nodes with `TESSERA_KEYS=store` on one store, nginx
//! in front of them with docs/fleet.md's configuration, a `tessera verifier` at the edge, and
//! the helpers the fleet tests share (a client through nginx, a browser's cookie jar, the
//! stored manifest, the CLI on the store).
//!
//! Every process is killed on drop. Other fleet tests build on these; keep them stable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tessera_core::BlobStore as _;
use tessera_store_postgres::PostgresStore;

use crate::peers::nginx::Nginx;

/// The fleet's management API key (every node has it).
pub(crate) const API_KEY: &str = "fleet-test-api-key-0123456789abcdef012345";

/// The environment of a fleet node: the shared store and master key file, keys in the store
/// (refreshed every second), `extra` on top. No `TESSERA_*` variable of the test's own
/// environment leaks in.
pub(crate) fn node_command(
    store: &str,
    master: &Path,
    data_dir: &Path,
    extra: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd = crate::common::tessera_command();
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
        .envs(extra.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` (a `tessera` process on port 0) in `dir`, its log in `dir/stderr.txt`, until it
/// says where it listens: the child, the log's path and the address.
async fn spawn_logged(
    mut cmd: std::process::Command,
    dir: &Path,
) -> (std::process::Child, PathBuf, String) {
    let stderr = dir.join("stderr.txt");
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let addr = crate::common::wait_listening(&mut child, &[&stderr], Duration::from_secs(30)).await;
    (child, stderr, addr)
}

/// `POST url` with the API key; asserts a 200: the body and the node(s) nginx names in
/// `X-Upstream` (empty when asked directly).
async fn post_ok(http: &reqwest::Client, url: &str, body: Value) -> (Value, String) {
    let r = http
        .post(url)
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
    assert_eq!(status, reqwest::StatusCode::OK, "{url} ({upstream}): {v}");
    (v, upstream)
}

/// A `tessera serve` node of the fleet. Killed on drop.
pub(crate) struct Node {
    /// `http://ADDR`.
    pub(crate) base: String,
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    child: std::process::Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    /// A node on `store` with the master key file `master`.
    pub(crate) async fn start(store: &str, master: &Path) -> Self {
        Self::start_with(store, master, &[]).await
    }

    /// A node on `store` with the master key file `master` and `extra` in its environment.
    pub(crate) async fn start_with(store: &str, master: &Path, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cmd = node_command(store, master, &dir.path().join("data"), extra);
        let (child, stderr, addr) = spawn_logged(cmd, dir.path()).await;
        Self {
            base: format!("http://{addr}"),
            addr,
            child,
            stderr,
            _dir: dir,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`, and the process reaped.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the node logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `GET path` on this node: status and body.
    pub(crate) async fn get(&self, http: &reqwest::Client, path: &str) -> (u16, Vec<u8>) {
        let r = http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// The JWKS bytes this node serves.
    pub(crate) async fn jwks(&self, http: &reqwest::Client) -> Vec<u8> {
        let (status, body) = self.get(http, "/.well-known/jwks.json").await;
        assert_eq!(status, 200, "{}", self.addr);
        body
    }

    /// `POST path` with the API key on this node; asserts a 200.
    pub(crate) async fn post(&self, http: &reqwest::Client, path: &str, body: Value) -> Value {
        post_ok(http, &format!("{}{path}", self.base), body).await.0
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fleet: nodes on one store, with the master key file they share.
pub(crate) struct Fleet {
    /// The store's URL.
    pub(crate) url: String,
    /// The master key file.
    pub(crate) master: PathBuf,
    /// The nodes, in the order they were started.
    pub(crate) nodes: Vec<Node>,
    env: Vec<(String, String)>,
    /// Where the master key file lives (other key files may go there too).
    pub(crate) secrets: tempfile::TempDir,
}

impl Fleet {
    /// `n` nodes on the store at `url`, started together, `env` in each node's environment,
    /// with a fresh master key file. If the store has no keys yet, one of them creates them.
    pub(crate) async fn start(url: &str, n: usize, env: &[(&str, &str)]) -> Self {
        let secrets = tempfile::tempdir().unwrap();
        let master = master_key_file(secrets.path(), "master.key");
        Self::start_in(url, master, secrets, n, env).await
    }

    /// [`Fleet::start`] with the master key file `master` (in `secrets`) made beforehand,
    /// e.g. to write keys into the store before any node starts.
    pub(crate) async fn start_in(
        url: &str,
        master: PathBuf,
        secrets: tempfile::TempDir,
        n: usize,
        env: &[(&str, &str)],
    ) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let starting: Vec<_> = (0..n)
            .map(|_| {
                let (url, master, env) = (url.to_owned(), master.clone(), env.clone());
                tokio::spawn(async move {
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    Node::start_with(&url, &master, &env).await
                })
            })
            .collect();
        let mut nodes = Vec::with_capacity(n);
        for s in starting {
            nodes.push(s.await.unwrap());
        }
        Self {
            url: url.to_owned(),
            master,
            nodes,
            env,
            secrets,
        }
    }

    /// Another node of the fleet (same store, master key and environment); not behind a
    /// balancer started before.
    pub(crate) async fn start_node(&self) -> Node {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Node::start_with(&self.url, &self.master, &env).await
    }

    /// nginx in front of the nodes: [`balancer`].
    pub(crate) async fn balancer(&self) -> Nginx {
        balancer(&self.nodes).await
    }

    /// The JWKS of every node, asked directly, in node order.
    pub(crate) async fn jwks(&self, http: &reqwest::Client) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for n in &self.nodes {
            out.push(n.jwks(http).await);
        }
        out
    }
}

/// docs/fleet.md's nginx configuration ("The load balancer"), run as written except for the
/// nodes' addresses and the listening address, with one addition for the tests: an
/// `X-Upstream` header naming the node(s) nginx tried (`$upstream_addr`).
pub(crate) fn balancer_config(nodes: &[&str], port: u16) -> String {
    let doc = crate::peers::doc_block("docs/fleet.md", "The load balancer", "nginx");
    let documented = [
        "server 10.0.0.11:7300 ",
        "server 10.0.0.12:7300 ",
        "server 10.0.0.13:7300 ",
    ];
    assert!(
        nodes.len() <= documented.len(),
        "the documented upstream has {} nodes",
        documented.len()
    );
    let mut site = doc;
    for (i, from) in documented.iter().enumerate() {
        let to = match nodes.get(i) {
            Some(addr) => format!("server {addr} "),
            // Fewer nodes than the documentation shows: the line goes.
            None => "# ".to_owned(),
        };
        site = crate::peers::replace_exactly(&site, from, &to, 1, "docs/fleet.md nginx");
    }
    site = crate::peers::replace_exactly(
        &site,
        "listen 80;",
        &format!("listen 127.0.0.1:{port};"),
        1,
        "docs/fleet.md nginx",
    );
    crate::peers::replace_exactly(
        &site,
        "proxy_pass http://tessera;",
        "proxy_pass http://tessera;\nadd_header X-Upstream $upstream_addr always;",
        1,
        "docs/fleet.md nginx",
    )
}

/// nginx in front of `nodes` with docs/fleet.md's configuration ([`balancer_config`]).
pub(crate) async fn balancer(nodes: &[Node]) -> Nginx {
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    Nginx::start_site(move |port, _, _| {
        let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        balancer_config(&addrs, port)
    })
    .await
}

/// `tessera verifier` at the edge: the JWKS and the revocation feed from `base` (the fleet
/// through nginx), `[verify] mode = "required"`, `extra` in its environment. Killed on drop.
pub(crate) struct Edge {
    /// `http://ADDR`.
    pub(crate) base: String,
    child: std::process::Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Edge {
    pub(crate) async fn start(base: &str, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = crate::common::tessera_command();
        cmd.arg("verifier")
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .env("TESSERA_VERIFY_MODE", "required")
            .env(
                "TESSERA_VERIFY_JWKS",
                format!("{base}/.well-known/jwks.json"),
            )
            .env(
                "TESSERA_VERIFY_REVOCATIONS",
                format!("{base}/v1/revocations"),
            )
            .envs(extra.iter().copied());
        let (child, stderr, addr) = spawn_logged(cmd, dir.path()).await;
        Self {
            base: format!("http://{addr}"),
            child,
            stderr,
            _dir: dir,
        }
    }

    /// What the verifier logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET base/v1/verify` with `token` as a bearer token: the status and the token status
/// (`X-Tessera-Token-Status`).
pub(crate) async fn verify(http: &reqwest::Client, base: &str, token: &str) -> (u16, String) {
    let r = http
        .get(format!("{base}/v1/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let code = r
        .headers()
        .get("x-tessera-token-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (r.status().as_u16(), code)
}

/// A browser's cookies, as the application keeps them for it from `set_cookie` lists.
#[derive(Default, Debug)]
pub(crate) struct Jar(pub(crate) BTreeMap<String, String>);

impl Jar {
    pub(crate) fn apply(&mut self, v: &Value) {
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

    pub(crate) fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The session token (the value of the `…-token` cookie), if there is one.
    pub(crate) fn token(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.ends_with("-token"))
            .map(|(_, v)| v.as_str())
    }
}

/// A client of the fleet through nginx: every request may reach another node.
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    /// The nodes that answered (`X-Upstream`).
    pub(crate) seen: BTreeSet<String>,
}

impl Client {
    /// A client of `nginx`.
    pub(crate) fn of(nginx: &Nginx) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://127.0.0.1:{}", nginx.port()),
            seen: BTreeSet::new(),
        }
    }

    /// `POST path` with the API key through nginx; asserts a 200.
    pub(crate) async fn call(&mut self, path: &str, body: Value) -> Value {
        let (v, upstream) = post_ok(&self.http, &format!("{}{path}", self.base), body).await;
        self.seen.insert(upstream);
        v
    }
}

/// The manifest blob in the store at `url` (Postgres or Redis).
pub(crate) async fn stored_manifest(url: &str) -> tessera_core::Blob {
    stored_blob(url, tessera::keys::stored::KEYS_BLOB)
        .await
        .expect("the fleet's keys in the store")
}

/// The blob `name` in the store at `url` (Postgres or Redis), if there is one.
pub(crate) async fn stored_blob(url: &str, name: &str) -> Option<tessera_core::Blob> {
    let blob = if url.starts_with("postgres") {
        PostgresStore::open(url).await.unwrap().blob_get(name).await
    } else {
        tessera_store_redis::RedisStore::open(url)
            .await
            .unwrap()
            .blob_get(name)
            .await
    };
    blob.unwrap()
}

/// Writes `value` over the manifest at `expected`, as someone with write access to the store.
pub(crate) async fn put_manifest(url: &str, expected: u64, value: &[u8]) {
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

/// A fresh master key file `dir/name`, made by `tessera keys master-key` (mode 0600 checked).
pub(crate) fn master_key_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = crate::common::tessera_command()
        .args(["keys", "master-key"])
        .arg(&path)
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

/// `tessera` with the environment of a fleet node (or, with `store` empty, of a node with
/// its keys in `data_dir`), run to the end.
pub(crate) fn cli(
    store: &str,
    master: &Path,
    data_dir: &Path,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = node_command(store, master, data_dir, &[]);
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

/// The key ids `tessera keys list --json` shows for the fleet's store, with their states.
pub(crate) fn listed_keys(fleet: &Fleet) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(
        &fleet.url,
        &fleet.master,
        &dir.path().join("data"),
        &["keys", "list", "--json"],
    );
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The key ids of a JWK set.
pub(crate) fn jwks_kids(jwks: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(jwks).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}
