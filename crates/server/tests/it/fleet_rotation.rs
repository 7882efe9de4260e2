//! Rotations from the command line on a fleet's store (issue 11, items 3 and 4), over real
//! processes on the fleet scaffolding ([`crate::fleet::scaffold`]):
//!
//! - a CSRF rotation (`tessera keys rotate --kind csrf --force --promote`) on the store reaches
//!   every node within `[keys] refresh` and breaks no CSRF token, no session token and no
//!   token/session binding; revoking the old CSRF key then refuses its tokens on every node;
//! - `tessera keys rotate --force --promote` during load on three nodes behind nginx: no
//!   request is refused, tokens of the old key verify on every node until they expire (a
//!   short `tokens.exp` here, so that the test sees them expire), new tokens verify on every
//!   node and on a `tessera verifier` at the edge that gets the keys through nginx.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_test_support::postgres::PostgresServer;
use tessera_test_support::process::poll_until;
use tokio::time::Instant;

use crate::fleet::scaffold::{API_KEY, Client, Edge, Fleet, Jar, cli, jwks_kids, verify};

/// `tessera keys …` on the fleet's store, from a machine of its own (an empty data directory).
fn keys(fleet: &Fleet, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    cli(&fleet.url, &fleet.master, &dir.path().join("data"), args)
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The CSRF keys of the store: (kid, state), newest first.
fn csrf_keys(fleet: &Fleet) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&stdout(&keys(
        fleet,
        &["keys", "list", "--kind", "csrf", "--json"],
    )))
    .unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn header_kid(token: &str) -> String {
    let h = token.split('.').next().unwrap();
    let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

/// Waits past two refreshes of every node (`[keys] refresh` is 1 s in the fleet tests).
async fn refreshed() {
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

/// `POST base/path` with the API key: the status and the body (nothing asserted).
async fn try_post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    match http.post(url).bearer_auth(API_KEY).json(body).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csrf_rotation_on_the_store_breaks_no_token_on_any_node() {
    let pg = PostgresServer::shared().await;
    let fleet = Fleet::start(&pg.fresh_schema_url().await, 2, &[]).await;
    let http = reqwest::Client::new();
    let [a, b] = [&fleet.nodes[0], &fleet.nodes[1]];

    // Alice logs in on a; her CSRF token and session token work on both nodes.
    let mut jar = Jar::default();
    let v = a
        .post(&http, "/v1/session/resolve", json!({"cookie": ""}))
        .await;
    jar.apply(&v);
    let v = a
        .post(
            &http,
            "/v1/session/login",
            json!({"cookie": jar.header(), "user": {"id": "alice"}}),
        )
        .await;
    jar.apply(&v);
    let token = jar.token().unwrap().to_owned();
    let v = a
        .post(
            &http,
            "/v1/session/resolve",
            json!({"cookie": jar.header()}),
        )
        .await;
    let sid = v["session"]["sid"].as_str().unwrap().to_owned();
    let before = v["csrf_token"].as_str().unwrap().to_owned();
    let check = |t: &str| json!({"cookie": jar.header(), "token": t});
    for n in [a, b] {
        let c = n
            .post(&http, "/v1/session/csrf/check", check(&before))
            .await;
        assert_eq!(c["valid"], true, "{c}");
    }
    let first = csrf_keys(&fleet);
    assert_eq!(first.len(), 1, "{first:?}");

    // The rotation, on the store: a new CSRF key issues at once.
    let out = stdout(&keys(
        &fleet,
        &["keys", "rotate", "--kind", "csrf", "--force", "--promote"],
    ));
    assert!(out.contains("written to the store as version"), "{out}");
    let now = csrf_keys(&fleet);
    assert_eq!(now.len(), 2, "{now:?}");
    assert_eq!(
        now[0].1,
        "issuing",
        "{out} {now:?} {}",
        stdout(&keys(&fleet, &["keys", "list", "--kind", "csrf"]))
    );
    assert_eq!(now[1], (first[0].0.clone(), "verifying".to_owned()));
    refreshed().await;

    // Nothing of before breaks on either node: the CSRF token, the session token, the sid.
    let mut after = String::new();
    for n in [a, b] {
        let c = n
            .post(&http, "/v1/session/csrf/check", check(&before))
            .await;
        assert_eq!(c["valid"], true, "{c}");
        assert_eq!(verify(&http, &n.base, &token).await, (200, "ok".to_owned()));
        let v = n
            .post(
                &http,
                "/v1/session/resolve",
                json!({"cookie": jar.header()}),
            )
            .await;
        assert_eq!(v["session"]["user"]["id"], "alice", "{v}");
        assert_eq!(v["session"]["sid"], json!(sid));
        assert_eq!(v["token_status"], "ok", "{v}");
        after = v["csrf_token"].as_str().unwrap().to_owned();
    }

    // The old CSRF key revoked: its tokens fail on every node; the new key's verify, so the
    // nodes issue with the new key.
    let out = stdout(&keys(
        &fleet,
        &["keys", "revoke", "--kind", "csrf", &first[0].0],
    ));
    assert!(out.contains("removed"), "{out}");
    refreshed().await;
    for n in [a, b] {
        let c = n
            .post(&http, "/v1/session/csrf/check", check(&before))
            .await;
        assert_eq!(c["valid"], false, "{c}");
        let c = n.post(&http, "/v1/session/csrf/check", check(&after)).await;
        assert_eq!(c["valid"], true, "{c}");
        assert_eq!(verify(&http, &n.base, &token).await, (200, "ok".to_owned()));
    }
}

/// One user of the load: a session behind nginx, checked again and again.
struct User {
    jar: Jar,
    token: String,
}

async fn login(client: &mut Client, id: &str) -> User {
    let mut jar = Jar::default();
    let v = client
        .call("/v1/session/resolve", json!({"cookie": ""}))
        .await;
    jar.apply(&v);
    let v = client
        .call(
            "/v1/session/login",
            json!({"cookie": jar.header(), "user": {"id": id}}),
        )
        .await;
    jar.apply(&v);
    let token = jar.token().unwrap().to_owned();
    User { jar, token }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_force_promote_on_the_store_during_load_refuses_nothing() {
    let pg = PostgresServer::shared().await;
    // Tokens live a minute here (the shortest `tokens.exp`), so that the test sees the old
    // key's tokens expire.
    let fleet = Fleet::start(
        &pg.fresh_schema_url().await,
        3,
        &[("TESSERA_TOKEN_EXP", "1m"), ("TESSERA_TOKEN_SXP", "30s")],
    )
    .await;
    let nginx = fleet.balancer().await;
    let http = reqwest::Client::new();
    let mut client = Client::of(&nginx);
    let base = client.base.clone();
    // A verifier at the edge, with the JWKS and the revocation feed from the fleet through
    // nginx, and its JWKS refresh at the default (5 min): it follows the rotation by
    // fetching the keys again when a token names a key it does not hold, at most once per
    // `verify.unknown_kid_cooldown` (2 s here, 30 s by default).
    let cooldown = Duration::from_secs(2);
    let edge = Edge::start(&base, &[("TESSERA_VERIFY_UNKNOWN_KID_COOLDOWN", "2s")]).await;

    // Users logged in before the rotation: their tokens are signed by the old key.
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(login(&mut client, &format!("user-{i}")).await);
    }
    let old_kid = header_kid(&users[0].token);
    let old_tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();

    // The load: each user resolves, checks a CSRF token and verifies its token through
    // nginx and at the edge, without pause, until told to stop. Every answer but a 200 (and
    // a valid CSRF token, an `ok` token status) is counted as refused.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for user in users {
        let (stop, done, refused) = (stop.clone(), done.clone(), refused.clone());
        let (http, base, edge) = (http.clone(), base.clone(), edge.base.clone());
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let cookie = user.jar.header();
                let (s, v) = try_post(
                    &http,
                    &format!("{base}/v1/session/resolve"),
                    &json!({"cookie": cookie}),
                )
                .await;
                let csrf = v["csrf_token"].as_str().unwrap_or_default().to_owned();
                let (c, check) = try_post(
                    &http,
                    &format!("{base}/v1/session/csrf/check"),
                    &json!({"cookie": cookie, "token": csrf}),
                )
                .await;
                let (vs, code) = verify(&http, &base, &user.token).await;
                let (es, edge_code) = verify(&http, &edge, &user.token).await;
                let valid = |code: &str| code == "ok" || code == "soft_expired";
                let ok = s == 200
                    && v["session"]["user"].is_object()
                    && c == 200
                    && check["valid"] == true
                    && vs == 200
                    && valid(&code)
                    && es == 200
                    && valid(&edge_code);
                done.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    refused.fetch_add(1, Ordering::Relaxed);
                    failures.push(format!(
                        "resolve {s}, csrf {c} {check}, verify {vs} {code}, edge {es} {edge_code}"
                    ));
                }
            }
            failures
        }));
    }
    // And new users log in through nginx all along: a token each, signed by whichever key
    // the answering node signs with, checked on every node directly and at the edge. Before
    // the promotion they are of the old key; after it, of the new one, which every node must
    // hold by then.
    let node_bases: Vec<String> = fleet.nodes.iter().map(|n| n.base.clone()).collect();
    let logins = {
        let (stop, refused) = (stop.clone(), refused.clone());
        let (http, edge) = (http.clone(), edge.base.clone());
        let mut client = Client {
            http: http.clone(),
            base: base.clone(),
            seen: std::collections::BTreeSet::new(),
        };
        tokio::spawn(async move {
            let (mut kids, mut failures) = (Vec::new(), Vec::new());
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let token = login(&mut client, &format!("new-{n}")).await.token;
                kids.push(header_kid(&token));
                for checker in node_bases.iter().chain([&edge]) {
                    let (s, code) = verify(&http, checker, &token).await;
                    if s != 200 || code != "ok" {
                        refused.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("new login's token on {checker}: {s} {code}"));
                    }
                }
            }
            (kids, failures)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The rotation, from the command line, on the store, during the load: the new key is
    // published, and promoted once every node has read it.
    let (url, master) = (fleet.url.clone(), fleet.master.clone());
    let out = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        cli(
            &url,
            &master,
            &dir.path().join("data"),
            &["keys", "rotate", "--force", "--promote"],
        )
    })
    .await
    .unwrap();
    let text = stdout(&out);
    assert!(text.contains("promoted"), "{text}");
    assert!(text.contains("written to the store as version"), "{text}");
    refreshed().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for l in load {
        failures.extend(l.await.unwrap());
    }
    let (login_kids, login_failures) = logins.await.unwrap();
    failures.extend(login_failures);
    let (done, refused) = (
        done.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    eprintln!(
        "load during the rotation: {done} rounds (resolve, CSRF check, verify), {} logins \
         whose tokens were checked on every node and at the edge, {refused} refused",
        login_kids.len()
    );
    assert!(done > 20, "only {done} rounds of load");
    assert_eq!(
        refused, 0,
        "{refused} of {done} rounds refused: {failures:?}"
    );

    // Every node serves the same JWKS, with the new key and the old one.
    let sets = fleet.jwks(&http).await;
    assert!(
        sets.windows(2).all(|w| w[0] == w[1]),
        "the nodes' JWKS differ"
    );
    let kids = jwks_kids(&sets[0]);
    assert!(kids.contains(&old_kid), "{kids:?}");
    // A new login gets a token of the new key; it verifies on every node.
    let fresh = login(&mut client, "after").await.token;
    let new_kid = header_kid(&fresh);
    assert_ne!(new_kid, old_kid);
    // The logins of the load saw both keys: tokens of the new key were checked on every node
    // while the nodes took the promotion up.
    assert!(login_kids.contains(&old_kid), "{login_kids:?}");
    assert!(login_kids.contains(&new_kid), "{login_kids:?}");
    assert_eq!(kids.first(), Some(&new_kid), "newest first: {kids:?}");
    for n in &fleet.nodes {
        assert_eq!(verify(&http, &n.base, &fresh).await, (200, "ok".to_owned()));
        for t in &old_tokens {
            assert_eq!(verify(&http, &n.base, t).await, (200, "ok".to_owned()));
        }
    }
    // The edge follows: a promoted key skipped the publication ahead, so the edge first
    // refuses the new key's token as `unknown_kid`, until its cooldown since its last fetch
    // has passed and the token makes it fetch the keys again.
    let since = Instant::now();
    let followed = poll_until(
        cooldown + Duration::from_secs(1),
        Duration::from_millis(50),
        async || (verify(&http, &edge.base, &fresh).await == (200, "ok".to_owned())).then_some(()),
    )
    .await;
    eprintln!(
        "the edge verifier accepted the new key's token {:?} after the first check",
        since.elapsed()
    );
    assert!(followed.is_some(), "{}", edge.log());
    for t in &old_tokens {
        assert_eq!(verify(&http, &edge.base, t).await, (200, "ok".to_owned()));
    }
    // The old key's tokens verify until they expire (`soft_expired` past `sxp`: still
    // valid), then fail as expired (not as an unknown or revoked key) once past `exp` and the
    // 60 s leeway: the test takes two minutes and a half for that.
    let exp_of = |t: &str| {
        let c: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        c["exp"].as_i64().unwrap()
    };
    let exp = old_tokens.iter().map(|t| exp_of(t)).max().unwrap();
    let checkers: Vec<&str> = fleet
        .nodes
        .iter()
        .map(|n| n.base.as_str())
        .chain([edge.base.as_str()])
        .collect();
    let first_exp = exp_of(&old_tokens[0]);
    loop {
        let now = tessera_core::Clock::now(&tessera_core::SystemClock).unix_secs();
        // Refused past `exp` plus the verifiers' clock leeway (60 s).
        if now > exp + 61 {
            break;
        }
        for &checker in &checkers {
            let (s, code) = verify(&http, checker, &old_tokens[0]).await;
            let now = tessera_core::Clock::now(&tessera_core::SystemClock).unix_secs();
            if now < first_exp - 1 {
                // Past `sxp` the token is `soft_expired`: valid still, re-issued on resolve.
                assert!(
                    s == 200 && (code == "ok" || code == "soft_expired"),
                    "before exp on {checker}: {s} {code}"
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Refused now: `expired`, or `unknown_kid` once the retired key's retention (the longest
    // token lifetime plus skew) has ended and the schedule dropped it; never `revoked`.
    let latest = login(&mut client, "latest").await.token;
    assert_eq!(header_kid(&latest), new_kid);
    for &checker in &checkers {
        for t in &old_tokens {
            let (_, code) = verify(&http, checker, t).await;
            assert!(
                code == "expired" || code == "unknown_kid",
                "on {checker}: {code}"
            );
        }
        assert_eq!(
            verify(&http, checker, &latest).await,
            (200, "ok".to_owned())
        );
    }
}
