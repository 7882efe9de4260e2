//! Sessions on redb survive a restart of the service, and a `kill -9` during a write load
//! loses no acknowledged write.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tessera_test_support::free_port;

use crate::common::{KEY, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_restart_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let s = TestServer::redb(&path).await;
    let (cookie, _) = s.login("", "alice").await;
    s.ok(
        "/v1/session/update",
        json!({"cookie": cookie, "set": {"cart": [1, 2, 3]}}),
    )
    .await;
    s.stop().await;

    let s = TestServer::redb(&path).await;
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["session"]["user"]["id"], "alice");
    assert_eq!(v["session"]["data"]["cart"], json!([1, 2, 3]));
    let (_, list) = s.get("/v1/users/alice/sessions").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn spawn_binary(data: &std::path::Path, port: u16) -> Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("serve")
        .env("TESSERA_LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA_API_KEY", KEY)
        .env("TESSERA_DATA_DIR", data)
        .env(
            "TESSERA_STORE",
            format!("redb:{}", data.join("s.redb").display()),
        )
        .env_remove("TESSERA_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Child(child);
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tessera did not start on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_write_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_binary(dir.path(), port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };
    let v: serde_json::Value = post(
        "/v1/session/login",
        json!({"cookie": "", "user": {"id": "k9"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let cookie = crate::common::cookie_of(&v);

    // Four writers, each recording what the server acknowledged.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut writers = vec![];
    for w in 0..4 {
        let tx = tx.clone();
        let client = client.clone();
        let base = base.clone();
        let cookie = cookie.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let key = format!("w{w}-{i}");
                let r = client
                    .post(format!("{base}/v1/session/update"))
                    .bearer_auth(KEY)
                    .json(&json!({"cookie": cookie, "set": {key.clone(): i}}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = tx.send(key);
                    }
                    _ => return,
                }
            }
        }));
    }
    drop(tx);
    // Let a few hundred writes land, then kill -9 mid-load.
    let mut acked = vec![];
    while acked.len() < 300 {
        acked.push(rx.recv().await.expect("writers stopped early"));
    }
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }
    while let Ok(k) = rx.try_recv() {
        acked.push(k);
    }

    let _child = spawn_binary(dir.path(), port).await;
    let v: serde_json::Value = post("/v1/session/resolve", json!({"cookie": cookie}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = v["session"]["data"]
        .as_object()
        .expect("the session survived");
    let lost: Vec<_> = acked.iter().filter(|k| !data.contains_key(*k)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

/// The real start-up path (`startup::prepare` and `startup::serve`) purges expired sessions
/// in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_purge_removes_expired_sessions() {
    use std::sync::Arc;
    use tessera_core::ManualClock;
    use tessera_server::config::Config;
    use tessera_server::startup;

    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "data_dir = \"{}\"\napi_keys = [\"{KEY}\"]\n[store]\nurl = \"memory:\"\n[session]\npurge_interval = \"1s\"\n",
        dir.path().display()
    );
    let config = Config::from_toml(&toml, |_| None).unwrap();
    let clock = ManualClock::new(crate::common::START);
    let prepared = startup::prepare(&config, Arc::new(clock.clone()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(startup::serve(
        listener,
        prepared,
        config.purge_interval,
        async {
            let _ = rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/v1/session/login"))
        .bearer_auth(KEY)
        .json(&json!({"cookie": "", "user": {"id": "p"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    clock.advance(Duration::from_secs(13 * 3600));
    let line = "tessera_store_purged_total{backend=\"memory\"} 1";
    let mut seen = false;
    for _ in 0..50 {
        let m = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains(line) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tx.send(());
    let _ = server.await;
    assert!(seen, "the purge did not run within 5s");
}

/// The real start-up path shows the redb stores' group commit in `/metrics`: a histogram of
/// writes per commit (`_count` commits, `_sum` writes) and the failed transactions, by store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_writes_per_commit_of_the_redb_stores() {
    use std::sync::Arc;
    use tessera_core::ManualClock;
    use tessera_server::config::Config;
    use tessera_server::startup;

    let dir = tempfile::tempdir().unwrap();
    // The default store (redb in the data directory), and anonymous sessions in a second
    // redb file.
    let toml = format!(
        "data_dir = \"{}\"\napi_keys = [\"{KEY}\"]\n[store.anonymous]\nurl = \"redb:{}\"\n",
        dir.path().display(),
        dir.path().join("anon.redb").display()
    );
    let config = Config::from_toml(&toml, |_| None).unwrap();
    let prepared = startup::prepare(&config, Arc::new(ManualClock::new(crate::common::START)))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(startup::serve(
        listener,
        prepared,
        Duration::from_secs(3600),
        async {
            let _ = rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let logins = (0..8).map(|i| {
        client
            .post(format!("{base}/v1/session/login"))
            .bearer_auth(KEY)
            .json(&json!({"cookie": "", "user": {"id": format!("u{i}")}}))
            .send()
    });
    for r in futures_util::future::join_all(logins).await {
        assert!(r.unwrap().status().is_success());
    }
    let m = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = tx.send(());
    let _ = server.await;

    let value = |prefix: &str| -> f64 {
        let line = m
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{m}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(
        m.contains("# TYPE tessera_store_writes_per_commit histogram"),
        "{m}"
    );
    let commits = value("tessera_store_writes_per_commit_count{store=\"session\"}");
    let writes = value("tessera_store_writes_per_commit_sum{store=\"session\"}");
    // At least the eight logins (and the purge at start-up), each answered by one commit.
    assert!(commits >= 1.0 && writes >= 8.0 && writes >= commits, "{m}");
    assert_eq!(
        value("tessera_store_writes_per_commit_bucket{le=\"+Inf\",store=\"session\"}"),
        commits,
        "{m}"
    );
    value("tessera_store_writes_per_commit_count{store=\"anonymous\"}");
    // The same commits, by how long each took: every one in a bucket, and time spent.
    assert!(
        m.contains("# TYPE tessera_store_commit_duration_seconds histogram"),
        "{m}"
    );
    assert_eq!(
        value("tessera_store_commit_duration_seconds_count{store=\"session\"}"),
        commits,
        "{m}"
    );
    assert_eq!(
        value("tessera_store_commit_duration_seconds_bucket{le=\"+Inf\",store=\"session\"}"),
        commits,
        "{m}"
    );
    assert!(
        value("tessera_store_commit_duration_seconds_sum{store=\"session\"}") > 0.0,
        "{m}"
    );
    assert_eq!(
        value("tessera_store_failed_transactions_total{store=\"session\"}"),
        0.0
    );
}
