//! Issue 11's failover proof: a Redis Cluster with one replica per master, a write load
//! (logins, updates, logouts) through `tessera serve` on it, one master killed with `SIGKILL`
//! mid-load. The replica is promoted by the Cluster itself; the same `tessera serve` process
//! (never restarted) answers again. What the test asserts is what is guaranteed:
//!
//! - the failover happens and the service recovers by itself, within bounds;
//! - after recovery, writes are acknowledged and read back exactly;
//! - sessions whose records live on the masters that were not killed lose nothing.
//!
//! What it does not assert is zero loss on the killed master's slots: replication is
//! asynchronous, so a write the master acknowledged in its last moments may never have
//! reached the replica. The test counts and prints those losses (logins gone, updates gone
//! back to an older value, logouts undone: a logged-out session live again); docs/stores.md
//! states the figures of runs and the reason. A failed answer does not mean a write was not
//! applied: a logout that answered 503 may have written its tombstone before the step that
//! failed (the revocation log, the user index, on the killed master's slots), so a session
//! ended by a logout that was not acknowledged is counted apart, never as a loss.

use std::ops::RangeInclusive;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_core::Handle;
use tessera_test_support::redis::RedisCluster;

const API_KEY: &str = "failover-test-api-key-0123456789abcdef0123";
/// Concurrent clients in the load.
const WORKERS: usize = 8;
/// Updates each client sends to a session between its login and its logout.
const UPDATES: u64 = 3;

/// `tessera serve` on `store`, killed on drop.
struct Node {
    base: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(store: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.txt");
        let mut child = crate::common::tessera_command()
            .arg("serve")
            .env("TESSERA_LISTEN", "127.0.0.1:0")
            .env("TESSERA_DATA_DIR", dir.path().join("data"))
            .env("TESSERA_STORE", store)
            .env("TESSERA_API_KEY", API_KEY)
            .env("TESSERA_ACCESS_LOG", "false")
            .env("TESSERA_COOKIE_DEVELOPMENT", "1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let addr =
            crate::common::wait_listening(&mut child, &[&stderr], Duration::from_secs(30)).await;
        Self {
            base: format!("http://{addr}"),
            child,
            _dir: dir,
        }
    }

    /// Still the process the test started: not exited.
    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One POST; `None` for anything but a 2xx answer (an error, a 503, a timeout): not
/// acknowledged.
async fn post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Option<Value> {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// The session cookie (`name=handle`) among a response's `Set-Cookie` values.
fn session_cookie(v: &Value) -> Option<(String, Handle)> {
    v["set_cookie"].as_array()?.iter().find_map(|c| {
        let pair = c.as_str()?.split(';').next()?;
        let (_, value) = pair.split_once('=')?;
        let handle: Handle = value.parse().ok()?;
        Some((pair.to_owned(), handle))
    })
}

/// What the service acknowledged for one session.
#[derive(Debug)]
struct Acked {
    cookie: String,
    /// The session record's hash slot.
    slot: u16,
    /// The last update acknowledged: `n` as set.
    updated: Option<u64>,
    /// A logout was sent: acknowledged (`logged_out`) or not (then it may or may not have
    /// ended the session: a failed answer does not say the write was not applied).
    logout_sent: bool,
    logged_out: bool,
    /// When (since the load began) the last acknowledged write of this session was answered.
    last_ack: Duration,
}

fn record_slot(handle: &Handle) -> u16 {
    // The store's session key: `tessera:s:{<store key, hex>}` (tessera-store-redis).
    let name = format!("tessera:s:{{{}}}", handle.store_key().to_hex());
    tessera_store_redis::hash_slot(name.as_bytes())
}

/// One client's loop until `stop`: log in a new user, update the session [`UPDATES`] times,
/// log every other session out; failures (the store out) move on to the next session.
async fn client(
    base: String,
    id: usize,
    start: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    failures: Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let fail = || failures.fetch_add(1, Ordering::Relaxed);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let user = format!("failover-{id}-{i}");
        let login = json!({"cookie": "", "user": {"id": user}});
        let Some(v) = post(&http, &base, "/v1/session/login", login).await else {
            fail();
            continue;
        };
        let Some((cookie, handle)) = session_cookie(&v) else {
            panic!("a login answered without a session cookie: {v}");
        };
        let mut a = Acked {
            cookie: cookie.clone(),
            slot: record_slot(&handle),
            updated: None,
            logout_sent: false,
            logged_out: false,
            last_ack: start.elapsed(),
        };
        for n in 1..=UPDATES {
            let body = json!({"cookie": cookie, "set": {"n": n}});
            if post(&http, &base, "/v1/session/update", body)
                .await
                .is_some()
            {
                a.updated = Some(n);
                a.last_ack = start.elapsed();
            } else {
                fail();
            }
        }
        if i.is_multiple_of(2) {
            a.logout_sent = true;
            if post(
                &http,
                &base,
                "/v1/session/logout",
                json!({"cookie": cookie}),
            )
            .await
            .is_some()
            {
                a.logged_out = true;
                a.last_ack = start.elapsed();
            } else {
                fail();
            }
        }
        acked.lock().unwrap().push(a);
    }
}

/// What reading an acknowledged session back says about it.
#[derive(Debug, PartialEq, Eq)]
enum Readback {
    /// As acknowledged.
    Kept,
    /// A login acknowledged, the session not found.
    LoginLost,
    /// An update acknowledged, the session found with an older value.
    UpdateLost,
    /// A logout acknowledged, the session live again.
    LogoutLost,
    /// A logout sent and not acknowledged, the session ended: it may have been applied.
    Unknown,
}

async fn read_back(http: &reqwest::Client, base: &str, a: &Acked) -> Readback {
    let v = post(
        http,
        base,
        "/v1/session/resolve",
        json!({"cookie": a.cookie}),
    )
    .await
    .expect("resolve answers after recovery");
    let session = &v["session"];
    let live = session.is_object();
    match (a.logged_out, live) {
        (true, true) => Readback::LogoutLost,
        (true, false) => Readback::Kept,
        (false, false) if a.logout_sent => Readback::Unknown,
        (false, false) => Readback::LoginLost,
        (false, true) => {
            let n = session["data"]["n"].as_u64();
            if n < a.updated {
                Readback::UpdateLost
            } else {
                Readback::Kept
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_and_the_service_recovers_without_a_restart() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let cluster = RedisCluster::start_with_replicas().await;
    let mut node = Node::start(&cluster.url()).await;
    let [victim, ..] = cluster.ports();
    let replica = cluster
        .replica_of(victim)
        .await
        .expect("the first master has a replica");
    let lost_slots: Vec<RangeInclusive<u16>> = cluster.slots_of(victim).await;
    assert!(!lost_slots.is_empty(), "the master serves slots");
    let on_victim = |slot: u16| lost_slots.iter().any(|r| r.contains(&slot));

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            tokio::spawn(client(
                node.base.clone(),
                id,
                start,
                stop.clone(),
                acked.clone(),
                failures.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_kill = acked.lock().unwrap().len();
    assert!(before_kill > 0, "the load wrote sessions before the kill");
    let killed_at = start.elapsed();
    cluster.kill_node(victim);
    assert!(
        cluster
            .wait_for_failover(victim, replica, Duration::from_secs(30))
            .await,
        "the replica {replica} was not promoted within 30 s of killing {victim}"
    );
    let failed_over_at = start.elapsed();

    // Recovery: the same process answers a full login/update/resolve/logout again.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut recovered_at = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let v = post(
            &http,
            &node.base,
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "probe"}}),
        )
        .await;
        let ok = match v.as_ref().and_then(session_cookie) {
            Some((cookie, _)) => {
                let updated = post(
                    &http,
                    &node.base,
                    "/v1/session/update",
                    json!({"cookie": cookie, "set": {"probe": true}}),
                )
                .await;
                let logged_out = post(
                    &http,
                    &node.base,
                    "/v1/session/logout",
                    json!({"cookie": cookie}),
                )
                .await;
                updated.is_some() && logged_out.is_some()
            }
            None => false,
        };
        if ok {
            recovered_at = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_at = recovered_at.expect("the service did not recover within 30 s of failover");
    assert!(node.running(), "tessera serve exited");

    // A second of load after recovery, then stop the clients.
    let failures_at_recovery = failures.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());

    // After recovery, with no fault left, every write is kept: a fresh batch, read back.
    for i in 0..20 {
        let v = post(
            &http,
            &node.base,
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": format!("after-{i}")}}),
        )
        .await
        .expect("login after recovery");
        let (cookie, _) = session_cookie(&v).unwrap();
        post(
            &http,
            &node.base,
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"n": i}}),
        )
        .await
        .expect("update after recovery");
        let v = post(
            &http,
            &node.base,
            "/v1/session/resolve",
            json!({"cookie": cookie}),
        )
        .await
        .expect("resolve after recovery");
        assert_eq!(v["session"]["data"]["n"], i, "{v}");
        post(
            &http,
            &node.base,
            "/v1/session/logout",
            json!({"cookie": cookie}),
        )
        .await
        .expect("logout after recovery");
        let v = post(
            &http,
            &node.base,
            "/v1/session/resolve",
            json!({"cookie": cookie}),
        )
        .await
        .expect("resolve after recovery");
        assert!(v["session"].is_null(), "a logout after recovery: {v}");
    }

    // Read every acknowledged session back.
    let mut counts = std::collections::BTreeMap::<(bool, &'static str), u64>::new();
    let mut window = std::collections::BTreeMap::<&'static str, u64>::new();
    for a in &acked {
        let r = read_back(&http, &node.base, a).await;
        let what = match r {
            Readback::Kept => "kept",
            Readback::LoginLost => "login lost",
            Readback::UpdateLost => "update lost (stale)",
            Readback::LogoutLost => "logout lost (live again)",
            Readback::Unknown => "ended by a logout not acknowledged",
        };
        let victim_slot = on_victim(a.slot);
        *counts.entry((victim_slot, what)).or_default() += 1;
        if !matches!(r, Readback::Kept | Readback::Unknown) {
            // Losses only come from the killed master, and only from its last moments.
            assert!(
                victim_slot,
                "a session on a master that was not killed lost a write: {a:?} ({what})"
            );
            *window.entry(what).or_default() += 1;
            assert!(
                a.last_ack <= failed_over_at,
                "a write acknowledged after the failover was lost: {a:?} ({what})"
            );
        }
    }
    let on_victim_total: u64 = counts.iter().filter(|((v, _), _)| *v).map(|(_, n)| n).sum();
    let logouts_on_victim = acked
        .iter()
        .filter(|a| a.logged_out && on_victim(a.slot))
        .count();
    eprintln!(
        "failover: killed master {victim} at {killed_at:?} (replica {replica} promoted by \
         {failed_over_at:?}, service answering again at {recovered_at:?}); {} sessions \
         acknowledged ({before_kill} before the kill), {on_victim_total} of them on the killed \
         master's slots ({logouts_on_victim} logged out); requests not acknowledged: {} (by \
         recovery: {failures_at_recovery}); read back: {counts:?}; lost: {window:?}",
        acked.len(),
        failures.load(Ordering::Relaxed),
    );
    assert!(
        on_victim_total > 0,
        "some sessions lived on the killed master"
    );
}
