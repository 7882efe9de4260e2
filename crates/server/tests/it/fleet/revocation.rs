//! Revocation across the fleet (issue 11): a logout on one node is refused by `/v1/verify`
//! on every other node and by a `tessera verifier` at the edge (JWKS and feed from the fleet
//! through nginx) within `verify.refresh` + 1 s; every node serves the same revocation feed,
//! byte for byte, and the same JWKS bytes.
//!
//! The feed is read from the store's revocation log on every request (no copy in the node),
//! and its body is a deterministic serialisation of the log's entries (`seq`, `kind`, `id`,
//! `at`; entries older than `revocations.keep` left out), so every node answers the same
//! bytes (and the same `ETag`) as soon as the store has the entry: there is no refresh
//! window for the feed. The JWKS is each node's copy of the stored keys, the same outside a
//! `keys.refresh` window after a rotation (none happens here; `lease.rs` rotates).
//!
//! Delays are measured from the moment the logout request is sent, with each checker
//! polling every 10 ms, and printed (run with `--no-capture` to see them).

use std::time::Duration;

use serde_json::{Value, json};
use tessera_test_support::postgres::PostgresServer;
use tokio::time::Instant;

use super::scaffold::{Edge, Fleet, Jar, verify};

/// `[verify] refresh` of the nodes and of the edge verifier (the default, said explicitly).
const REFRESH: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_reaches_every_node_and_the_edge_in_time_and_all_serve_one_feed_on_postgres() {
    let pg = PostgresServer::shared().await;
    logout_and_feed(&pg.fresh_schema_url().await, "Postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_reaches_every_node_and_the_edge_in_time_and_all_serve_one_feed_on_a_redis_cluster()
 {
    // A Cluster of its own: the fleet's keys have one fixed name in a store.
    let cluster = tessera_test_support::redis::RedisCluster::start().await;
    logout_and_feed(&cluster.url(), "Redis Cluster").await;
}

async fn logout_and_feed(url: &str, store: &str) {
    let refresh = format!("{}s", REFRESH.as_secs());
    let env = [
        ("TESSERA_VERIFY_REFRESH", refresh.as_str()),
        // 401 for a refused token (optional mode answers 200 `anon`).
        ("TESSERA_VERIFY_MODE", "required"),
    ];
    let fleet = Fleet::start(url, 3, &env).await;
    let nginx = fleet.balancer().await;
    let through = format!("http://127.0.0.1:{}", nginx.port());
    let edge = Edge::start(&through, &[("TESSERA_VERIFY_REFRESH", refresh.as_str())]).await;
    let http = reqwest::Client::new();
    let bound = REFRESH + Duration::from_secs(1);

    // A logout on each node in turn, twice, at moments spread over the refresh period (the
    // nodes started together, so their refreshes are roughly in phase); every node and the
    // edge poll until they refuse.
    let mut figures = Vec::new();
    let mut worst = Duration::ZERO;
    for round in 0..6 {
        let on = &fleet.nodes[round % 3];
        tokio::time::sleep(REFRESH * u32::try_from(round).unwrap() / 6).await;
        let mut jar = Jar::default();
        let v = on
            .post(
                &http,
                "/v1/session/login",
                json!({"cookie": "", "user": {"id": format!("user-{round}")}}),
            )
            .await;
        jar.apply(&v);
        let token = jar
            .token()
            .unwrap_or_else(|| panic!("no token: {jar:?}"))
            .to_owned();
        let mut checkers: Vec<(String, String)> = fleet
            .nodes
            .iter()
            .map(|n| (format!("node {}", n.addr), n.base.clone()))
            .collect();
        checkers.push(("edge verifier".to_owned(), edge.base.clone()));
        for (name, base) in &checkers {
            let (status, code) = verify(&http, base, &token).await;
            assert_eq!(
                (status, code.as_str()),
                (200, "ok"),
                "{name} before the logout"
            );
        }
        let sent = Instant::now();
        on.post(&http, "/v1/session/logout", json!({"cookie": jar.header()}))
            .await;
        let answered = sent.elapsed();
        let polls: Vec<_> = checkers
            .iter()
            .map(|(name, base)| {
                let (name, base, token, http) =
                    (name.clone(), base.clone(), token.clone(), http.clone());
                tokio::spawn(async move {
                    loop {
                        let (status, code) = verify(&http, &base, &token).await;
                        let at = sent.elapsed();
                        if status == 401 {
                            return (name, at, code);
                        }
                        assert_eq!(status, 200, "{name}");
                        // Past the bound: keep measuring a while, then give up.
                        assert!(
                            at < bound + Duration::from_secs(5),
                            "{name} still accepts the token {at:?} after the logout"
                        );
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        let mut row = vec![format!(
            "logout on node {} answered in {answered:?}",
            on.addr
        )];
        for p in polls {
            let (name, at, code) = p.await.unwrap();
            assert_eq!(code, "revoked", "{name}");
            assert!(
                at <= bound,
                "{name} refused the token only {at:?} after the logout (bound {bound:?})"
            );
            worst = worst.max(at);
            row.push(format!("{name} refused after {at:?}"));
        }
        // And it stays refused everywhere.
        for (name, base) in &checkers {
            assert_eq!(verify(&http, base, &token).await.0, 401, "{name}");
        }
        figures.push(row.join("; "));
    }
    eprintln!(
        "fleet revocation delays ({store}, verify.refresh = {REFRESH:?}, bound {bound:?}, \
         worst {worst:?}):\n  {}",
        figures.join("\n  ")
    );

    // Every user's sessions revoked at once: a `user` entry in the feed.
    let (status, _) = delete(&http, &fleet.nodes[1].base, "/v1/users/user-0/sessions").await;
    assert_eq!(status, 200);

    // The same feed from every node: the same bytes and the same ETag, whole and in pages,
    // read right after each change (the feed has no copy to refresh).
    let first = feed_of_all(&fleet, &http, "/v1/revocations").await;
    let v: Value = serde_json::from_slice(&first).unwrap();
    let entries = v["revocations"].as_array().unwrap();
    assert_eq!(entries.len(), 7, "six logouts and one user: {v}");
    assert_eq!(entries[6]["kind"], json!("user"), "{v}");
    let second = entries[1]["seq"].as_u64().unwrap();
    for query in [
        "/v1/revocations?after=0".to_owned(),
        format!("/v1/revocations?after={second}"),
        "/v1/revocations?limit=1".to_owned(),
        format!("/v1/revocations?after={second}&limit=1"),
    ] {
        feed_of_all(&fleet, &http, &query).await;
    }
    // A change made through one node is in every node's feed at once.
    for (i, n) in fleet.nodes.iter().enumerate() {
        let user = format!("late-{i}");
        let (status, _) = delete(&http, &n.base, &format!("/v1/users/{user}/sessions")).await;
        assert_eq!(status, 200);
        let body = feed_of_all(&fleet, &http, "/v1/revocations").await;
        assert!(
            String::from_utf8_lossy(&body).contains(&format!("\"{user}\"")),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    // The same JWKS bytes from every node, asked again and again over two refreshes.
    let deadline = Instant::now() + 2 * REFRESH;
    let mut samples = 0;
    while Instant::now() < deadline {
        let sets = fleet.jwks(&http).await;
        assert!(
            sets.windows(2).all(|w| w[0] == w[1]),
            "JWKS differ: {sets:?}"
        );
        samples += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("fleet JWKS ({store}): byte-identical on 3 nodes in {samples} samples");
    assert!(edge.log().contains("keys from"), "{}", edge.log());
}

/// `GET query` on every node: the same status 200, the same `ETag` and the same bytes; the
/// body.
async fn feed_of_all(fleet: &Fleet, http: &reqwest::Client, query: &str) -> Vec<u8> {
    let mut answers = Vec::new();
    for n in &fleet.nodes {
        let r = http.get(format!("{}{query}", n.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{query} on {}", n.addr);
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        answers.push((etag, r.bytes().await.unwrap().to_vec()));
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "{query}: the nodes answer differently: {:?}",
        answers
            .iter()
            .map(|(e, b)| format!("{e} {}", String::from_utf8_lossy(b)))
            .collect::<Vec<_>>()
    );
    answers.swap_remove(0).1
}

/// `DELETE path` with the API key: status and body.
async fn delete(http: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let r = http
        .delete(format!("{base}{path}"))
        .bearer_auth(super::scaffold::API_KEY)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}
