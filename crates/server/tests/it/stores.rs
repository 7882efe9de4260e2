//! The README flow (login, update, resolve, logout, log out everywhere) through the real
//! start-up path (`Config` → `startup::prepare` → `startup::serve`) on the networked stores:
//! Redis, a Redis Cluster (for anonymous sessions) and Postgres, each started by the tests.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::ManualClock;
use tessera_server::config::Config;
use tessera_server::startup;
use tessera_test_support::postgres::PostgresServer;
use tessera_test_support::redis::{RedisCluster, RedisServer};

use crate::common::{KEY, START, cookie_of};

pub(crate) struct Service {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    clock: ManualClock,
    notes: Vec<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Service {
    /// The service configured by `toml` (plus a data directory and the test API key) and
    /// the environment `env`.
    pub(crate) async fn start(toml: &str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "data_dir = \"{}\"\napi_keys = [\"{KEY}\"]\n{toml}",
            dir.path().display()
        );
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let config = Config::from_toml(&toml, |k| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        let clock = ManualClock::new(START);
        let prepared = startup::prepare(&config, Arc::new(clock.clone()))
            .await
            .unwrap();
        let notes = prepared.notes.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(startup::serve(
            listener,
            prepared,
            Duration::from_secs(3600),
            async {
                let _ = rx.await;
            },
        ));
        Self {
            base,
            client: reqwest::Client::new(),
            clock,
            notes,
            shutdown: Some(tx),
            task,
            _dir: dir,
        }
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn ok(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }

    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

/// The README walkthrough, on whatever stores `service` was started with. `anon_backend` and
/// `user_backend` are the metric labels the two kinds of session must show.
async fn readme_flow(service: &Service, anon_backend: &str, user_backend: &str) {
    let s = service;
    let (status, _) = s.call(reqwest::Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "every store answers");
    // A user of its own: the servers are shared by the tests of this process.
    let alice = format!("alice-{}", tessera_core::testing::fresh_user());

    // An anonymous session holding login-form state.
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"return_to": "/wiki/Main"}}),
        )
        .await;
    assert_eq!(v["status"], "created");
    let anon = cookie_of(&v);

    // Login: a new handle, the anonymous data carried over, the old handle dead.
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": anon, "user": {"id": alice, "name": "Alice"}}),
        )
        .await;
    assert_eq!(v["status"], "logged_in");
    assert_eq!(v["session"]["data"]["return_to"], "/wiki/Main");
    let user = cookie_of(&v);
    let v = s.ok("/v1/session/resolve", json!({"cookie": anon})).await;
    assert_eq!(v["session"], Value::Null);

    // Update and resolve.
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": user, "set": {"theme": "dark", "cart": [1, 2]}, "remove": ["return_to"]}),
        )
        .await;
    assert_eq!(v["status"], "updated");
    let v = s.ok("/v1/session/resolve", json!({"cookie": user})).await;
    assert_eq!(v["status"], "loaded");
    assert_eq!(v["session"]["user"]["id"], alice.as_str());
    assert_eq!(
        v["session"]["data"],
        json!({"theme": "dark", "cart": [1, 2]})
    );
    let csrf = v["csrf_token"].as_str().unwrap().to_owned();
    let v = s
        .ok(
            "/v1/session/csrf/check",
            json!({"cookie": user, "token": csrf}),
        )
        .await;
    assert_eq!(v, json!({"valid": true}));

    // 40 minutes later, past the 30-minute idle timeout, it still loads: the resolve at 20
    // minutes renewed it, and the renewal was stored.
    s.clock.advance(Duration::from_secs(20 * 60));
    let v = s.ok("/v1/session/resolve", json!({"cookie": user})).await;
    assert_eq!(v["status"], "renewed", "{v}");
    s.clock.advance(Duration::from_secs(20 * 60));
    let v = s.ok("/v1/session/resolve", json!({"cookie": user})).await;
    assert_eq!(v["session"]["data"]["theme"], "dark", "{v}");

    // Logout ends it; a racing update cannot bring it back.
    let v = s.ok("/v1/session/logout", json!({"cookie": user})).await;
    assert_eq!(v["status"], "logged_out");
    let v = s.ok("/v1/session/resolve", json!({"cookie": user})).await;
    assert_eq!(v["session"], Value::Null);
    let (st, _) = s
        .call(
            reqwest::Method::POST,
            "/v1/session/update",
            Some(json!({"cookie": user, "set": {"x": 1}})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Log out everywhere.
    let mut cookies = vec![];
    for _ in 0..2 {
        let v = s
            .ok(
                "/v1/session/login",
                json!({"cookie": "", "user": {"id": alice}}),
            )
            .await;
        cookies.push(cookie_of(&v));
    }
    let (st, list) = s
        .call(
            reqwest::Method::GET,
            &format!("/v1/users/{alice}/sessions"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2, "{list}");
    let (st, v) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/users/{alice}/sessions"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["revoked"], 2);
    for c in &cookies {
        let v = s.ok("/v1/session/resolve", json!({"cookie": c})).await;
        assert_eq!(v["session"], Value::Null);
    }

    let metrics = s.metrics().await;
    for (kind, backend) in [("anonymous", anon_backend), ("authenticated", user_backend)] {
        let label = format!("backend=\"{backend}\",kind=\"{kind}\"");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("tessera_store_operations_total{") && l.contains(&label)),
            "no store operations with {label}:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_flow_on_redis() {
    let url = RedisServer::shared().await.url();
    // TESSERA_STORE, as an operator would set it; anonymous sessions in it too.
    let s = Service::start(
        "",
        &[
            ("TESSERA_STORE", url.clone()),
            ("TESSERA_ANONYMOUS", "server".to_owned()),
        ],
    )
    .await;
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains(&format!("session store: redis {url}"))),
        "{:?}",
        s.notes
    );
    readme_flow(&s, "redis", "redis").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_flow_on_postgres_with_anonymous_sessions_on_a_redis_cluster() {
    let pg = PostgresServer::shared_schema_url().await;
    let cluster = RedisCluster::shared().await.url();
    let toml = format!(
        "[store]\nurl = \"{pg}\"\n[store.anonymous]\nurl = \"{cluster}\"\n\
         [session]\nanonymous = \"server\"\n"
    );
    let s = Service::start(&toml, &[]).await;
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("session store: postgres postgres://")),
        "{:?}",
        s.notes
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("anonymous session store: redis redis+cluster://")),
        "{:?}",
        s.notes
    );
    readme_flow(&s, "redis", "postgres").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_flow_on_postgres() {
    let pg = PostgresServer::shared_schema_url().await;
    let s = Service::start(
        "",
        &[
            ("TESSERA_STORE", pg.to_owned()),
            ("TESSERA_ANONYMOUS", "server".to_owned()),
        ],
    )
    .await;
    readme_flow(&s, "postgres", "postgres").await;
    s.stop().await;
}

/// Client-side mode (the default) on Redis: anonymous traffic never reaches the store; a
/// secret spills the session there (sealed), and the login takes it out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_anonymous_sessions_spill_to_redis_and_promote_from_it() {
    let url = RedisServer::shared().await.url();
    let s = Service::start("", &[("TESSERA_STORE", url)]).await;
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("anonymous sessions: client-side")),
        "{:?}",
        s.notes
    );
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"form": 1}}),
        )
        .await;
    assert_eq!(v["session"]["storage"], "cookie");
    let anon = cookie_of(&v);
    assert!(anon.starts_with("__Host-tessera-anon="), "{anon}");
    let ops = |m: &str| {
        m.lines()
            .filter(|l| {
                l.starts_with("tessera_store_operations_total{") && l.contains("kind=\"anonymous\"")
            })
            .count()
    };
    assert_eq!(ops(&s.metrics().await), 0);
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": anon, "secrets": {"pkce": "v3rifier"}}),
        )
        .await;
    assert_eq!(v["session"]["storage"], "store");
    assert!(!v.to_string().contains("v3rifier"), "{v}");
    let handle = cookie_of(&v);
    assert!(handle.starts_with("__Host-tessera=a"), "{handle}");
    let user = format!("u-{}", tessera_core::testing::fresh_user());
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": handle, "user": {"id": user}}),
        )
        .await;
    let c = cookie_of(&v);
    let v = s
        .ok("/v1/session/resolve", json!({"cookie": c, "secrets": true}))
        .await;
    assert_eq!(v["session"]["data"], json!({"form": 1}));
    assert_eq!(v["session"]["secrets"], json!({"pkce": "v3rifier"}));
    let v = s.ok("/v1/session/resolve", json!({"cookie": handle})).await;
    assert_eq!(v["status"], "ended", "the spilled record is gone");
    assert!(ops(&s.metrics().await) > 0);
    s.stop().await;
}

/// A store that cannot be reached fails the start-up, naming it without its password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_fails_start_up_without_showing_the_password() {
    let port = tessera_test_support::free_port();
    for url in [
        format!("redis://:hunter2@127.0.0.1:{port}"),
        format!("postgres://u:hunter2@127.0.0.1:{port}/db?connect_timeout=2"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "data_dir = \"{}\"\napi_keys = [\"{KEY}\"]\n[store]\nurl = \"{url}\"\n",
            dir.path().display()
        );
        let config = Config::from_toml(&toml, |_| None).unwrap();
        let err = startup::prepare(&config, Arc::new(ManualClock::new(START)))
            .await
            .unwrap_err();
        let shown = tessera_test_support::error_chain(&err);
        assert!(shown.contains("cannot open the session store"), "{shown}");
        assert!(shown.contains(":***@127.0.0.1"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

/// The keyed store (`/v1/kv`) over HTTP on `service`'s store: values with their TTL, touch,
/// count, delete and clear.
async fn keyed_store_flow(s: &Service) {
    use reqwest::Method;
    // A namespace of its own: the servers are shared by the tests of this process.
    let ns = tessera_core::testing::fresh_namespace();
    let ns = ns.as_str();
    let session = json!({"cookie": {"expires": "2026-06-01T01:00:00.000Z"}, "views": 3});
    for key in ["a", "b%2Fc", "%C3%A9"] {
        let body = json!({"value": session, "ttl": 3600});
        let (st, v) = s
            .call(Method::PUT, &format!("/v1/kv/{ns}/{key}"), Some(body))
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{key}: {v}");
    }
    let (st, v) = s
        .call(Method::GET, &format!("/v1/kv/{ns}/b%2Fc"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"value": session, "expires_at": START.unix_secs() + 3600, "ttl": 3600})
    );
    let count = |v: Value| v["count"].as_u64();
    let (_, v) = s.call(Method::GET, &format!("/v1/kv/{ns}"), None).await;
    assert_eq!(count(v), Some(3));

    s.clock.advance(Duration::from_secs(600));
    let (st, _) = s
        .call(
            Method::PATCH,
            &format!("/v1/kv/{ns}/a"),
            Some(json!({"ttl": 60})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s.call(Method::GET, &format!("/v1/kv/{ns}/a"), None).await;
    assert_eq!(v["ttl"], 60, "{v}");
    assert_eq!(v["value"], session, "touch keeps the value");

    let (st, _) = s
        .call(Method::DELETE, &format!("/v1/kv/{ns}/a"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = s.call(Method::GET, &format!("/v1/kv/{ns}/a"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["type"], "urn:tessera:problem:kv-not-found");
    let (_, v) = s.call(Method::GET, &format!("/v1/kv/{ns}"), None).await;
    assert_eq!(count(v), Some(2));

    let (st, _) = s.call(Method::DELETE, &format!("/v1/kv/{ns}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = s.call(Method::GET, &format!("/v1/kv/{ns}"), None).await;
    assert_eq!(count(v), Some(0));
    let (st, _) = s
        .call(Method::GET, &format!("/v1/kv/{ns}/b%2Fc"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyed_store_on_redis_a_redis_cluster_and_postgres() {
    let redis = RedisServer::shared().await.url();
    let cluster = RedisCluster::shared().await.url();
    let pg = PostgresServer::shared_schema_url().await.to_owned();
    for url in [redis, cluster, pg] {
        let s = Service::start("", &[("TESSERA_STORE", url)]).await;
        keyed_store_flow(&s).await;
        s.stop().await;
    }
}
