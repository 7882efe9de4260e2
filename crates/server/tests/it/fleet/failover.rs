//! `kill -9` of one node under load through nginx (issue 11), with docs/fleet.md's nginx
//! configuration as written (`proxy_next_upstream error timeout http_502 http_503 http_504`,
//! no `non_idempotent`).
//!
//! Eight clients load the fleet through nginx, each in its own session: four send only
//! idempotent requests (`GET /v1/verify`, `GET /v1/users/{id}/sessions`), four only
//! `POST`s (`resolve`, `update`). To have requests in flight on the node when it dies, it is
//! first frozen (`SIGSTOP`) — nginx keeps sending it its share, which wait in its sockets —
//! until every client has one request waiting there, and then killed (`SIGKILL`); a second
//! test kills it outright. What each client saw is counted:
//!
//! - every `GET` succeeds: those in flight on the dead node are sent again to another node by
//!   nginx (`X-Upstream` names both);
//! - a `POST` in flight on the dead node gets `502 Bad Gateway` from nginx, naming only that
//!   node; nginx does not send it again;
//! - every request after the kill succeeds: nginx leaves the failed node out for
//!   `fail_timeout` (10 s); when it tries it again, the connection is refused before anything
//!   is sent, so even a `POST` goes on to the next node.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tessera_test_support::postgres::PostgresServer;
use tessera_test_support::process::poll_until;
use tokio::time::Instant;

use super::scaffold::{API_KEY, Fleet, Jar};

/// What one request through nginx got.
#[derive(Debug, Clone)]
struct Outcome {
    post: bool,
    path: &'static str,
    status: u16,
    /// `$upstream_addr`: the node(s) nginx tried, comma-separated.
    upstream: String,
    /// When it was answered, from the start of the load.
    at: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_costs_only_the_posts_it_had_received() {
    kill_under_load(true).await;
}

/// The same without the freeze: a plain `kill -9` at a random moment of the load. How many
/// `POST`s were in flight is chance (at most one per `POST` client); the rest is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_outright_under_load_costs_at_most_the_posts_in_flight() {
    kill_under_load(false).await;
}

/// Three nodes under the load of the module docs; node 1 is killed after 2 s (frozen first
/// until every client waits on it if `freeze`, and then, after `fail_timeout`, nginx is seen
/// trying it again).
async fn kill_under_load(freeze: bool) {
    let pg = PostgresServer::shared().await;
    let url = pg.fresh_schema_url().await;
    let mut fleet = Fleet::start(&url, 3, &[]).await;
    let nginx = fleet.balancer().await;
    let through = format!("http://127.0.0.1:{}", nginx.port());
    // No idle connection kept: the freeze below counts the connections open to the frozen
    // node, and a pooled connection left from a login made directly on it would count as a
    // request waiting there (under load the wait then ended with only seven).
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    // One session per client, logged in directly on a node.
    let mut sessions = Vec::new();
    for i in 0..8 {
        let mut jar = Jar::default();
        let v = fleet.nodes[i % 3]
            .post(
                &http,
                "/v1/session/login",
                json!({"cookie": "", "user": {"id": format!("load-{i}")}}),
            )
            .await;
        jar.apply(&v);
        sessions.push(jar);
    }

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, mut jar)| {
            let (through, stop) = (through.clone(), stop.clone());
            tokio::spawn(async move {
                // A client of its own: its own connections to nginx.
                let http = reqwest::Client::new();
                let user = format!("load-{i}");
                let token = jar.token().unwrap().to_owned();
                let mut out = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let (post, path, req) = match (i % 2, n % 2) {
                        (0, 0) => (
                            false,
                            "/v1/verify",
                            http.get(format!("{through}/v1/verify")).bearer_auth(&token),
                        ),
                        (0, _) => (
                            false,
                            "/v1/users/{id}/sessions",
                            http.get(format!("{through}/v1/users/{user}/sessions"))
                                .bearer_auth(API_KEY),
                        ),
                        (_, 0) => (
                            true,
                            "/v1/session/resolve",
                            http.post(format!("{through}/v1/session/resolve"))
                                .bearer_auth(API_KEY)
                                .json(&json!({"cookie": jar.header()})),
                        ),
                        (_, _) => (
                            true,
                            "/v1/session/update",
                            http.post(format!("{through}/v1/session/update"))
                                .bearer_auth(API_KEY)
                                .json(&json!({"cookie": jar.header(), "set": {"n": n}})),
                        ),
                    };
                    let r = req.send().await.unwrap();
                    let status = r.status().as_u16();
                    let upstream = r
                        .headers()
                        .get("x-upstream")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let body = r.bytes().await.unwrap();
                    if post && status == 200 {
                        jar.apply(&serde_json::from_slice(&body).unwrap());
                    }
                    out.push(Outcome {
                        post,
                        path,
                        status,
                        upstream,
                        at: start.elapsed(),
                    });
                }
                out
            })
        })
        .collect();

    // Under load for 2 s; the node is frozen, then killed; the load goes on for 3 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut victim = fleet.nodes.remove(1);
    let victim_addr = victim.addr.clone();
    if freeze {
        tessera_test_support::process::signal("-STOP", [victim.pid()]);
        // Until every client has a request waiting on it: eight connections the kernel
        // accepted for the frozen node (nginx opens one per request).
        let port: u16 = victim_addr.rsplit(':').next().unwrap().parse().unwrap();
        let waiting = poll_until(
            Duration::from_secs(20),
            Duration::from_millis(10),
            async || (established_to(port) >= 8).then_some(()),
        )
        .await;
        assert!(
            waiting.is_some(),
            "{} connections to the frozen node",
            established_to(port)
        );
    }
    let killed_at = start.elapsed();
    victim.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }

    let count = |f: &dyn Fn(&Outcome) -> bool| all.iter().filter(|o| f(o)).count();
    let gets = count(&|o| !o.post);
    let posts = count(&|o| o.post);
    let on_victim_before =
        count(&|o| o.at < killed_at && o.status == 200 && o.upstream == victim_addr);
    let failed: Vec<&Outcome> = all.iter().filter(|o| o.status != 200).collect();
    let retried_gets: Vec<&Outcome> = all
        .iter()
        .filter(|o| {
            !o.post && o.status == 200 && o.upstream.starts_with(&format!("{victim_addr}, "))
        })
        .collect();
    let refused_then_sent: Vec<&Outcome> = all
        .iter()
        .filter(|o| {
            o.post && o.status == 200 && o.upstream.starts_with(&format!("{victim_addr}, "))
        })
        .collect();
    let after = count(&|o| o.at > killed_at + Duration::from_millis(500));
    let failed_after = count(&|o| o.at > killed_at + Duration::from_millis(500) && o.status != 200);
    let log = nginx.error_log();
    eprintln!(
        "fleet failover ({}): {gets} GETs and {posts} POSTs through nginx; the victim \
         answered {on_victim_before} before the kill at {killed_at:?}: {} GETs in flight retried on another node and answered 200, {} POSTs \
         in flight answered {:?} (not sent again), {} POSTs refused a connection by the dead \
         node and sent to another (200); {after} requests in the 2.5 s from 0.5 s after the \
         kill, {failed_after} failed",
        if freeze {
            "frozen until every client waited on it, then kill -9"
        } else {
            "kill -9"
        },
        retried_gets.len(),
        failed.len(),
        failed.iter().map(|o| o.status).collect::<Vec<_>>(),
        refused_then_sent.len(),
    );

    // The victim did take its share of the load before it died.
    assert!(on_victim_before > 0, "{log}");
    // No GET failed; the failures are POSTs in flight on the victim, answered 502 by nginx
    // without trying another node, each at the kill.
    assert!(failed.iter().all(|o| o.post), "a GET failed: {failed:?}");
    for o in &failed {
        assert_eq!(o.status, 502, "{o:?}");
        assert_eq!(o.upstream, victim_addr, "{o:?}");
        assert!(
            o.at >= killed_at && o.at < killed_at + Duration::from_secs(1),
            "{o:?} (killed at {killed_at:?})"
        );
    }
    if freeze {
        // Each of the four POST clients had one request waiting on the frozen node, and so
        // had each GET client.
        assert_eq!(failed.len(), 4, "{failed:?}");
        assert_eq!(retried_gets.len(), 4, "{retried_gets:?}\n{log}");
        // As docs/fleet.md quotes it.
        assert!(
            log.lines().any(|l| l.contains(
                "recv() failed (104: Connection reset by peer) while reading response header \
                 from upstream"
            )),
            "{log}"
        );
    } else {
        assert!(failed.len() <= 4, "{failed:?}");
    }
    // And the load went on, all of it answered.
    assert!(after > 0);
    assert_eq!(failed_after, 0);
    let paths: std::collections::BTreeSet<&str> = all.iter().map(|o| o.path).collect();
    assert_eq!(paths.len(), 4);
    if !freeze {
        return;
    }

    // Once `fail_timeout` (10 s) has passed, nginx tries the dead node again: its connection
    // is refused before anything is sent, so even a POST goes on to another node.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let mut jar = Jar::default();
    let mut tried_dead = 0;
    for _ in 0..6 {
        let r = http
            .post(format!("{through}/v1/session/resolve"))
            .bearer_auth(API_KEY)
            .json(&json!({"cookie": jar.header()}))
            .send()
            .await
            .unwrap();
        let upstream = r.headers()["x-upstream"].to_str().unwrap().to_owned();
        assert_eq!(r.status(), 200, "{upstream}");
        jar.apply(&r.json().await.unwrap());
        if upstream.starts_with(&format!("{victim_addr}, ")) {
            tried_dead += 1;
        }
    }
    let log = nginx.error_log();
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    eprintln!(
        "fleet failover, after fail_timeout: {tried_dead} of 6 POSTs tried the dead node first \
         (connection refused) and were answered by another; nginx error log: {} `prematurely \
         closed`, {} `reset by peer`, {} `Connection refused`",
        lines("prematurely closed"),
        lines("reset by peer"),
        lines("Connection refused")
    );
    assert_eq!(tried_dead, 1, "{log}");
}

/// Open TCP connections whose local end is 127.0.0.1:`port` (a server's side), from
/// /proc/net/tcp.
fn established_to(port: u16) -> usize {
    let local = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, rem_address, st (01: ESTABLISHED).
            f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"01")
        })
        .count()
}
