//! `tessera verifier`'s pieces with no store: keys from the service's JWKS (URL or file),
//! revocations from its feed, refetch on an unknown `kid` bounded by a cooldown, last good
//! copies kept, fail closed without any copy of the revocations.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tessera_core::{Clock as _, ManualClock};
use tessera_server::config::Config;
use tessera_server::edge::{EdgeState, prepare_edge, serve_edge};
use tessera_store_memory::MemoryStore;
use tessera_token::{Claims, Keyring, OsKeySource, RotationPolicy};

use crate::common::{START, TestServer, token_settings};

const TOKEN: &str = "__Host-tessera-token";

struct Edge {
    base: String,
    client: reqwest::Client,
    state: EdgeState,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn edge(toml: &str, clock: &ManualClock) -> (Edge, Vec<String>) {
    let config = Config::from_toml(toml, |_| None).unwrap();
    let (state, notes) = prepare_edge(&config, Arc::new(clock.clone()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = state.clone();
    tokio::spawn(async move {
        serve_edge(listener, served, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let e = Edge {
        base,
        client: reqwest::Client::new(),
        state,
        _stop: tx,
    };
    (e, notes)
}

impl Edge {
    /// `(subject, status)` of `GET /v1/verify` with the token cookie.
    async fn check(&self, token: &str) -> (String, String) {
        let r = self
            .client
            .get(format!("{}/v1/verify", self.base))
            .header("cookie", format!("{TOKEN}={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let h = |n: &str| {
            r.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        (h("x-tessera-subject"), h("x-tessera-token-status"))
    }

    async fn ready(&self) -> StatusCode {
        self.client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn token_of(v: &serde_json::Value) -> String {
    v["set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str()?.strip_prefix(&format!("{TOKEN}=")))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .next()
        .expect("a token cookie")
}

#[tokio::test]
async fn an_edge_with_no_store_follows_the_services_keys_and_revocations() {
    let settings = token_settings(false);
    let ring = settings.tokens.as_ref().unwrap().keyring.clone();
    let s = TestServer::start(Arc::new(MemoryStore::new()), settings).await;
    let toml = format!(
        "[tokens]\nissuer = \"tessera-test\"\n[verify]\nrefresh = \"0s\"\nunknown_kid_cooldown = \"0s\"\n\
         jwks = \"{b}/.well-known/jwks.json\"\nrevocations = \"{b}/v1/revocations\"\n",
        b = s.base
    );
    let (e, notes) = edge(&toml, &s.clock).await;
    assert!(
        notes.iter().any(|n| n.starts_with("keys from http")),
        "{notes:?}"
    );
    assert_eq!(e.ready().await, StatusCode::OK);

    let (alice_session, v) = s.login("", "alice").await;
    let alice = token_of(&v);
    assert_eq!(e.check(&alice).await, ("alice".into(), "ok".into()));
    assert_eq!(e.check(&alice).await, ("alice".into(), "ok".into()));
    assert!(e.state.verifier().cache().stats().hits >= 1);

    // Logout and "log out everywhere" reach the edge through the feed.
    s.ok("/v1/session/logout", json!({"cookie": alice_session}))
        .await;
    assert_eq!(e.check(&alice).await, ("anon".into(), "revoked".into()));
    let (_, v) = s.login("", "bob").await;
    let bob = token_of(&v);
    assert_eq!(e.check(&bob).await.0, "bob");
    let (st, _) = s.delete("/v1/users/bob/sessions").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(e.check(&bob).await, ("anon".into(), "revoked".into()));

    let (_, v) = s.login("", "erin").await;
    let erin = token_of(&v);
    assert_eq!(e.check(&erin).await.0, "erin");

    // A new key on the service: the edge has never seen its kid, refetches, accepts.
    let kid = ring
        .read()
        .signing_key_at(START.unix_secs())
        .unwrap()
        .kid()
        .clone();
    ring.update(|r| r.revoke_at(&kid, START.unix_secs(), &mut OsKeySource::default()))
        .unwrap();
    s.clock.advance(Duration::from_secs(2));
    let (_, v) = s.login("", "carol").await;
    let carol = token_of(&v);
    assert_eq!(e.check(&carol).await, ("carol".into(), "ok".into()));
    // The revoked key left the JWKS, so its tokens (even one the cache has seen) fail now.
    assert_eq!(e.check(&erin).await, ("anon".into(), "unknown_kid".into()));
    let (_, v) = s.login("", "dave").await;
    let dave = token_of(&v);
    assert_eq!(e.check(&dave).await.0, "dave");

    // The service goes away: the edge keeps its last copies and goes on verifying.
    s.stop().await;
    assert_eq!(e.check(&carol).await, ("carol".into(), "ok".into()));
    assert_eq!(e.check(&dave).await, ("dave".into(), "ok".into()));
    let forged = format!("{}x", &carol[..carol.len() - 1]);
    assert_eq!(e.check(&forged).await.0, "anon");
}

fn signer(now: i64) -> Keyring {
    Keyring::generate_at(now, RotationPolicy::default(), &mut OsKeySource::default()).unwrap()
}

fn sign(ring: &Keyring, sub: &str, now: i64) -> String {
    let config = tessera_token::Config::new("edge-test");
    let c = Claims::new("edge-test", sub, "sid", "jti", now, now + 600, now + 3600);
    ring.sign_at(&config, &c, now).unwrap()
}

fn jwks_of(rings: &[&Keyring]) -> String {
    let config = tessera_token::Config::new("edge-test");
    let keys: Vec<serde_json::Value> = rings
        .iter()
        .flat_map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.jwks(&config)).unwrap();
            v["keys"].as_array().unwrap().clone()
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_at_most_once_per_cooldown() {
    let clock = ManualClock::new(START);
    let now = START.unix_secs();
    let (a, b, c) = (signer(now), signer(now), signer(now));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks_of(&[&a])).unwrap();
    let toml = |cooldown: &str| {
        format!(
            "[tokens]\nissuer = \"edge-test\"\n[verify]\njwks = \"{}\"\nrevocations = \"none\"\nunknown_kid_cooldown = \"{cooldown}\"\n",
            file.display()
        )
    };
    let (slow, notes) = edge(&toml("1h"), &clock).await;
    assert!(
        notes.iter().any(|n| n.contains("no revocation feed")),
        "{notes:?}"
    );
    let (quick, _) = edge(&toml("0s"), &clock).await;
    assert_eq!(
        slow.check(&sign(&a, "a", now)).await,
        ("a".into(), "ok".into())
    );
    assert_eq!(slow.check(&sign(&b, "b", now)).await.1, "unknown_kid");

    // B is published now; the cooldown keeps the first verifier on its copy.
    std::fs::write(&file, jwks_of(&[&a, &b])).unwrap();
    assert_eq!(slow.check(&sign(&b, "b", now)).await.1, "unknown_kid");
    assert_eq!(
        quick.check(&sign(&b, "b", now)).await,
        ("b".into(), "ok".into())
    );

    // The set becomes unreadable: the last good copy stays in use.
    std::fs::write(&file, "{ not json").unwrap();
    assert_eq!(quick.check(&sign(&c, "c", now)).await.1, "unknown_kid");
    assert_eq!(
        quick.check(&sign(&b, "b2", now)).await,
        ("b2".into(), "ok".into())
    );
    assert_eq!(
        quick.check(&sign(&a, "a2", now)).await,
        ("a2".into(), "ok".into())
    );
}

#[tokio::test]
async fn an_edge_starts_without_keys_and_becomes_ready_when_they_appear() {
    let clock = ManualClock::new(START);
    let now = START.unix_secs();
    let a = signer(now);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    let toml = format!(
        "[tokens]\nissuer = \"edge-test\"\n[verify]\njwks = \"{}\"\nrevocations = \"none\"\nunknown_kid_cooldown = \"0s\"\n",
        file.display()
    );
    let (e, notes) = edge(&toml, &clock).await;
    assert!(
        notes.iter().any(|n| n.contains("cannot load the keys")),
        "{notes:?}"
    );
    assert_eq!(e.ready().await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.check(&sign(&a, "a", now)).await.1, "unknown_kid");
    std::fs::write(&file, jwks_of(&[&a])).unwrap();
    assert_eq!(
        e.check(&sign(&a, "a", now)).await,
        ("a".into(), "ok".into())
    );
    assert_eq!(e.ready().await, StatusCode::OK);
}

#[tokio::test]
async fn without_any_copy_of_the_revocations_an_edge_fails_closed() {
    let clock = ManualClock::new(START);
    let now = START.unix_secs();
    let a = signer(now);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks_of(&[&a])).unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let toml = format!(
        "[tokens]\nissuer = \"edge-test\"\n[verify]\njwks = \"{}\"\nrevocations = \"http://127.0.0.1:{port}/v1/revocations\"\n",
        file.display()
    );
    let (e, notes) = edge(&toml, &clock).await;
    assert!(
        notes.iter().any(|n| n.contains("revocation feed yet")),
        "{notes:?}"
    );
    assert_eq!(e.ready().await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        e.check(&sign(&a, "a", now)).await,
        ("anon".into(), "revocations_unavailable".into())
    );
}

#[test]
fn an_edge_needs_both_a_jwks_and_a_revocation_choice() {
    for (toml, field) in [
        (
            "[verify]\njwks = \"https://x.example/jwks.json\"\n",
            "verify.revocations",
        ),
        ("[verify]\nrevocations = \"none\"\n", "verify.revocations"),
        (
            "[verify]\njwks = \"ftp://x\"\nrevocations = \"none\"\n",
            "verify.jwks",
        ),
        (
            "[verify]\njwks = \"/k.json\"\nrevocations = \"file:/x\"\n",
            "verify.revocations",
        ),
        (
            "[verify]\njwks = \"/k.json\"\nrevocations = \"http://x/v1/revocations?after=3\"\n",
            "verify.revocations",
        ),
        ("[verify]\nclaims = [\"a b\"]\n", "verify.claims"),
        ("[verify]\ncache = 99999999999\n", "verify.cache"),
        ("[verify]\njwks_refresh = \"0s\"\n", "verify.jwks_refresh"),
    ] {
        let err = Config::from_toml(toml, |_| None).unwrap_err().to_string();
        assert!(err.contains(field), "{toml}: {err}");
    }
    let c = Config::from_toml(
        "[verify]\njwks = \"/etc/tessera/jwks.json\"\nrevocations = \"https://auth.example/v1/revocations\"\nclaims = [\"rlc\"]\ncache = 0\n",
        |_| None,
    )
    .unwrap();
    assert_eq!(c.verify.claims, vec!["rlc".to_owned()]);
    assert_eq!(c.verify.cache, 0);
    assert_eq!(
        c.verify.revocations,
        Some(Some("https://auth.example/v1/revocations".to_owned()))
    );
    let c = Config::from_toml("", |k| {
        (k == "TESSERA_VERIFY_JWKS").then(|| "https://auth.example/jwks".to_owned())
    });
    assert!(c.unwrap_err().to_string().contains("verify.revocations"));
}

#[tokio::test]
async fn prepare_edge_refuses_a_config_without_jwks() {
    let config = Config::from_toml("", |_| None).unwrap();
    let err = prepare_edge(&config, Arc::new(ManualClock::new(START)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("[verify] jwks"), "{err}");
}

#[tokio::test]
async fn the_tessera_verifier_command_serves_the_edge_check() {
    use std::io::BufRead as _;
    let s = TestServer::start(Arc::new(MemoryStore::new()), token_settings(false)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("verifier.toml");
    std::fs::write(
        &config,
        "[tokens]\nissuer = \"tessera-test\"\n[verify]\nmode = \"required\"\n",
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg("verifier")
        .arg("--config")
        .arg(&config)
        .env("TESSERA_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "TESSERA_VERIFY_JWKS",
            format!("{}/.well-known/jwks.json", s.base),
        )
        .env(
            "TESSERA_VERIFY_REVOCATIONS",
            format!("{}/v1/revocations", s.base),
        )
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stderr.take().unwrap();
    let _child = Kill(child);
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.contains("verifier listening on");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        lines.iter().any(|l| l.contains("keys from http")),
        "{lines:?}"
    );
    assert!(
        !std::fs::exists(dir.path().join("tessera-data")).unwrap(),
        "no data dir, no store"
    );

    // The binary runs on the system clock: the service's tokens must be issued now.
    s.clock.set(tessera_core::SystemClock.now());
    let (_, v) = s.login("", "alice").await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/v1/verify"))
        .bearer_auth(token_of(&v))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-tessera-subject"], "alice");
    let r = client
        .get(format!("{base}/v1/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("tessera_token_validations_total{outcome=\"ok\"} 1"),
        "{m}"
    );
    // No session API here.
    let r = client
        .post(format!("{base}/v1/session/resolve"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn the_readme_verifier_config_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("# verifier.toml\n")
        .expect("the README's verifier.toml");
    let block = &readme[start..];
    let block = &block[..block.find("```").unwrap()];
    let c = Config::from_toml(block, |_| None).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:7400");
    assert_eq!(c.tokens.issuer, "https://auth.example.org");
    assert_eq!(c.verify.claims, vec!["rlc".to_owned()]);
    assert!(matches!(
        c.verify.jwks,
        Some(tessera_server::verifier::JwksLocation::Url(ref u)) if u.ends_with("/.well-known/jwks.json")
    ));
    assert_eq!(
        c.verify.revocations,
        Some(Some("https://auth.example.org/v1/revocations".to_owned()))
    );
}
