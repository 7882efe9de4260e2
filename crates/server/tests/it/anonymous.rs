//! Client-side anonymous sessions over HTTP (DESIGN §4): no store operation for anonymous
//! traffic, one outcome for every bad sealed cookie (never a 5xx, never a state change),
//! spills on size and secrets, promotion at login, key rotation, CSRF without writes.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::Stores;
use tessera::cookie::CookieConfig;
use tessera::keys::SealKeys;
use tessera_core::{SessionStore, StoreKey};
use tessera_server::Settings;
use tessera_store_memory::MemoryStore;
use tessera_token::seal::{SealKeyring, SealPolicy};

use crate::common::{START, TestServer, TestSettings, cookie_of, server_anonymous};

const ANON: &str = "__Host-tessera-anon";
const ANON_REMOVAL: &str = "__Host-tessera-anon=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax";

fn keys() -> SealKeys {
    SealKeys::new(SealKeyring::generate_at(START.unix_secs(), SealPolicy::default()).unwrap())
}

fn with_keys(keys: &SealKeys) -> Settings {
    let mut s = Settings::default_for_tests();
    s.seal_keys = Some(keys.clone());
    s
}

/// `name=value` of the `Set-Cookie` named `name` in an answer.
fn cookie_named(v: &Value, name: &str) -> Option<String> {
    v["set_cookie"]
        .as_array()?
        .iter()
        .filter_map(|c| c.as_str()?.split(';').next())
        .find(|p| p.split_once('=').is_some_and(|(n, _)| n == name))
        .map(str::to_owned)
}

impl TestServer {
    /// Every store operation so far (`tessera_store_operations_total`), all labels.
    async fn store_ops(&self) -> u64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("tessera_store_operations_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

#[tokio::test]
async fn client_side_anonymous_traffic_does_zero_store_operations() {
    let s = TestServer::memory().await;
    // A first visit, a login form with its CSRF token, form state, reads, a check.
    let v = s.ok("/v1/session/resolve", json!({"cookie": ""})).await;
    assert_eq!(v["status"], "none");
    let v = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": "", "create": true, "csrf_purpose": "login"}),
        )
        .await;
    assert_eq!(v["status"], "created");
    assert_eq!(v["session"]["storage"], "cookie");
    let csrf = v["csrf_token"].as_str().unwrap().to_owned();
    let c = cookie_of(&v);
    assert!(c.starts_with(&format!("{ANON}=1.")), "{c}");
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": c, "set": {"step": 1, "return_to": "/x"}}),
        )
        .await;
    assert_eq!(v["status"], "updated");
    let c = cookie_named(&v, ANON).unwrap();
    for _ in 0..3 {
        let v = s.ok("/v1/session/resolve", json!({"cookie": c})).await;
        assert_eq!(v["status"], "loaded");
        assert_eq!(v["set_cookie"], json!([]));
        assert_eq!(v["session"]["data"]["step"], 1);
    }
    let v = s
        .ok(
            "/v1/session/csrf/check",
            json!({"cookie": c, "token": csrf, "purpose": "login"}),
        )
        .await;
    assert_eq!(v, json!({"valid": true}));
    // A renewal re-seals the cookie.
    s.clock.advance(Duration::from_secs(16 * 60));
    let v = s.ok("/v1/session/resolve", json!({"cookie": c})).await;
    assert_eq!(v["status"], "renewed");
    let c = cookie_named(&v, ANON).unwrap();
    let v = s.ok("/v1/session/logout", json!({"cookie": c})).await;
    assert!(
        v["set_cookie"]
            .as_array()
            .unwrap()
            .contains(&json!(ANON_REMOVAL)),
        "{v}"
    );

    assert_eq!(s.store_ops().await, 0, "{}", s.metrics().await);
    assert_eq!(s.writes().await, 0);
    assert!(
        s.counter("tessera_anonymous_cookies_total{event=\"sealed\"}")
            .await
            >= 3
    );
    assert!(
        s.counter("tessera_anonymous_cookies_total{event=\"opened\"}")
            .await
            >= 5
    );
}

/// Tampered, truncated, spliced, replayed under another cookie name and expired cookies:
/// all 200 with the cookie cleared, a fresh state on create or edit, no store operation,
/// nothing of the original.
#[tokio::test]
async fn every_bad_sealed_cookie_gets_the_same_answer_and_changes_nothing() {
    let keys = keys();
    let s = TestServer::memory_with(with_keys(&keys)).await;
    // Development cookies are named `tessera` and `tessera-anon`: the same keys, another
    // cookie name.
    let mut dev = with_keys(&keys);
    dev.cookie = CookieConfig::development();
    let other = TestServer::memory_with(dev).await;
    let v = other
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"cart": [1]}}),
        )
        .await;
    let dev_value = cookie_named(&v, "tessera-anon")
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();

    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"cart": [1, 2, 3]}}),
        )
        .await;
    let original_ref = v["session"]["ref"].as_str().unwrap().to_owned();
    let csrf = v["csrf_token"].as_str().unwrap().to_owned();
    let good = cookie_of(&v).split_once('=').unwrap().1.to_owned();
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"other": true}}),
        )
        .await;
    let good2 = cookie_of(&v).split_once('=').unwrap().1.to_owned();
    let body = good.rfind('.').unwrap() + 1;
    let mut flipped = good.clone().into_bytes();
    flipped[body + 10] = if flipped[body + 10] == b'x' {
        b'y'
    } else {
        b'x'
    };

    let cases = [
        ("tampered", String::from_utf8(flipped).unwrap()),
        ("truncated", good[..good.len() - 3].to_owned()),
        (
            "spliced",
            format!("{}{}", &good[..body + 30], &good2[body + 30..]),
        ),
        ("replayed under another cookie name", dev_value),
        ("not sealed at all", "hello".to_owned()),
    ];
    let mut answers = vec![];
    let check = |what: &str, st: StatusCode, v: &Value| {
        assert!(!st.is_server_error(), "{what}: {st} {v}");
        assert_eq!(st, StatusCode::OK, "{what}: {v}");
    };
    for (what, bad) in &cases {
        let cookie = format!("{ANON}={bad}");
        let (st, v) = s
            .post("/v1/session/resolve", json!({"cookie": cookie}))
            .await;
        check(what, st, &v);
        assert_eq!(v["status"], "ended", "{what}");
        assert_eq!(v["session"], Value::Null, "{what}");
        assert_eq!(v["set_cookie"], json!([ANON_REMOVAL]), "{what}");
        answers.push(v);
        let (st, v) = s
            .post(
                "/v1/session/resolve",
                json!({"cookie": cookie, "create": true}),
            )
            .await;
        check(what, st, &v);
        assert_eq!(v["status"], "created", "{what}");
        assert_eq!(v["session"]["data"], json!({}), "{what}");
        assert_ne!(v["session"]["ref"], json!(original_ref), "{what}");
        assert_eq!(v["set_cookie"].as_array().unwrap().len(), 1, "{what}");
        let (st, v) = s
            .post(
                "/v1/session/update",
                json!({"cookie": cookie, "set": {"n": 1}}),
            )
            .await;
        check(what, st, &v);
        assert_eq!(v["session"]["data"], json!({"n": 1}), "{what}");
        let (st, v) = s
            .post(
                "/v1/session/csrf/check",
                json!({"cookie": cookie, "token": csrf}),
            )
            .await;
        check(what, st, &v);
        assert_eq!(v, json!({"valid": false}), "{what}");
    }
    // Expired: half an hour without a renewal.
    s.clock.advance(Duration::from_secs(30 * 60));
    let (st, v) = s
        .post(
            "/v1/session/resolve",
            json!({"cookie": format!("{ANON}={good}")}),
        )
        .await;
    check("expired", st, &v);
    answers.push(v);
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(s.store_ops().await, 0, "no state anywhere changed");
}

#[tokio::test]
async fn a_session_over_the_budget_spills_to_the_store() {
    let store = Arc::new(MemoryStore::new());
    let s = TestServer::start(store.clone(), Settings::default_for_tests()).await;
    let v = s
        .ok("/v1/session/update", json!({"cookie": "", "set": {"a": 1}}))
        .await;
    let c = cookie_of(&v);
    let csrf = v["csrf_token"].as_str().unwrap().to_owned();
    let r = v["session"]["ref"].as_str().unwrap().to_owned();
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": c, "set": {"essay": "x".repeat(5000)}}),
        )
        .await;
    assert_eq!(v["status"], "updated");
    assert_eq!(v["session"]["storage"], "store");
    assert_eq!(v["session"]["ref"], json!(r), "the same identity");
    let handle = cookie_named(&v, "__Host-tessera").unwrap();
    assert!(handle.starts_with("__Host-tessera=a"), "{handle}");
    assert!(
        v["set_cookie"]
            .as_array()
            .unwrap()
            .contains(&json!(ANON_REMOVAL))
    );
    assert!(
        v["set_cookie"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.as_str().unwrap().len() < 4096)
    );
    assert_eq!(
        s.counter("tessera_session_writes_total{kind=\"anonymous\",reason=\"spill\"}")
            .await,
        1
    );
    let key = StoreKey::from_ref(&r).unwrap();
    assert!(store.load(&key, START).await.unwrap().is_some());
    // One API: the same data through the handle, the CSRF token still valid.
    let v = s.ok("/v1/session/resolve", json!({"cookie": handle})).await;
    assert_eq!(v["session"]["data"]["a"], 1);
    let v = s
        .ok(
            "/v1/session/csrf/check",
            json!({"cookie": handle, "token": csrf}),
        )
        .await;
    assert_eq!(v, json!({"valid": true}));
}

#[tokio::test]
async fn a_secret_spills_and_never_appears_in_any_set_cookie() {
    let store = Arc::new(MemoryStore::new());
    let s = TestServer::start(store.clone(), Settings::default_for_tests()).await;
    let plain = "0auth-st4te-d00d";
    let mut answers = vec![];
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"step": 1}}),
        )
        .await;
    let c = cookie_of(&v);
    answers.push(v);
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": c, "secrets": {"oauth": plain}}),
        )
        .await;
    assert_eq!(v["session"]["storage"], "store");
    assert!(v["session"].get("secrets").is_none(), "{v}");
    let handle = cookie_named(&v, "__Host-tessera").unwrap();
    let key = StoreKey::from_ref(v["session"]["ref"].as_str().unwrap()).unwrap();
    answers.push(v);
    let v = s.ok("/v1/session/resolve", json!({"cookie": handle})).await;
    assert!(
        v["session"].get("secrets").is_none(),
        "only on request: {v}"
    );
    answers.push(v);
    let v = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": handle, "secrets": true}),
        )
        .await;
    assert_eq!(v["session"]["secrets"], json!({"oauth": plain}));
    assert_eq!(v["session"]["data"], json!({"step": 1}));
    let (_, v) = s.login(&handle, "dora").await;
    answers.push(v.clone());
    let user = cookie_of(&v);
    let v = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": user, "secrets": true}),
        )
        .await;
    assert_eq!(
        v["session"]["secrets"],
        json!({"oauth": plain}),
        "carried at login"
    );
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": user, "remove_secrets": ["oauth"]}),
        )
        .await;
    answers.push(v);
    let v = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": user, "secrets": true}),
        )
        .await;
    assert_eq!(v["session"]["secrets"], json!({}));
    for a in &answers {
        for sc in a["set_cookie"].as_array().unwrap() {
            assert!(!sc.as_str().unwrap().contains(plain), "{sc}");
        }
        assert!(!a.to_string().contains(plain), "{a}");
    }
    // The anonymous record is gone; the store never held the secret in clear.
    assert!(store.load(&key, START).await.unwrap().is_none());
    let (st, p) = s
        .post(
            "/v1/session/update",
            json!({"cookie": user, "secrets": {"k": 1}, "remove_secrets": ["k"]}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
}

#[tokio::test]
async fn login_promotes_the_anonymous_data_and_clears_the_anonymous_cookie() {
    let s = TestServer::memory().await;
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"return_to": "/w/X"}}),
        )
        .await;
    let c = cookie_of(&v);
    let (user, v) = s.login(&c, "erin").await;
    assert!(user.starts_with("__Host-tessera=u"));
    assert_eq!(v["session"]["data"], json!({"return_to": "/w/X"}));
    assert_eq!(v["set_cookie"][1], ANON_REMOVAL);
    assert_eq!(
        s.counter("tessera_anonymous_cookies_total{event=\"promoted\"}")
            .await,
        1
    );
    assert_eq!(
        s.counter("tessera_session_writes_total{kind=\"anonymous\",reason=\"spill\"}")
            .await,
        0
    );
    // Both cookies sent to resolve: the session cookie speaks, the other one is cleared.
    let v = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": format!("{user}; {c}")}),
        )
        .await;
    assert_eq!(v["session"]["user"]["id"], "erin");
    assert_eq!(v["set_cookie"], json!([ANON_REMOVAL]));
}

#[tokio::test]
async fn rotated_keys_open_old_cookies_and_seal_new_ones_with_the_new_kid() {
    let keys = keys();
    let s = TestServer::memory_with(with_keys(&keys)).await;
    let old_kid = keys.read().sealing_kid().unwrap().to_owned();
    let v = s
        .ok("/v1/session/update", json!({"cookie": "", "set": {"a": 1}}))
        .await;
    let old = cookie_of(&v);
    assert!(old.starts_with(&format!("{ANON}=1.{old_kid}.")), "{old}");
    let rot = keys
        .update(|k| k.rotate_at(START.unix_secs() + 30 * 86_400))
        .unwrap();
    let new_kid = rot.generated.unwrap();
    let v = s.ok("/v1/session/resolve", json!({"cookie": old})).await;
    assert_eq!(
        (v["status"].clone(), v["session"]["data"]["a"].clone()),
        (json!("loaded"), json!(1))
    );
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": old, "set": {"b": 2}}),
        )
        .await;
    let new = cookie_of(&v);
    assert!(new.starts_with(&format!("{ANON}=1.{new_kid}.")), "{new}");
    assert_eq!(s.store_ops().await, 0);
}

#[tokio::test]
async fn csrf_tokens_need_no_write_in_both_modes() {
    for (s, creation) in [
        (TestServer::memory().await, 0),
        (TestServer::memory_with(server_anonymous()).await, 1),
    ] {
        let v = s
            .ok("/v1/session/resolve", json!({"cookie": "", "create": true}))
            .await;
        let c = cookie_of(&v);
        assert_eq!(s.writes().await, creation);
        for _ in 0..3 {
            let v = s.ok("/v1/session/resolve", json!({"cookie": c})).await;
            let t = v["csrf_token"].as_str().unwrap().to_owned();
            let ok = s
                .ok("/v1/session/csrf/check", json!({"cookie": c, "token": t}))
                .await;
            assert_eq!(ok, json!({"valid": true}));
        }
        assert_eq!(
            s.writes().await,
            creation,
            "issuing and checking wrote nothing"
        );
    }
}

#[tokio::test]
async fn server_mode_keeps_anonymous_sessions_in_their_own_store() {
    let anon = Arc::new(MemoryStore::new());
    let auth = Arc::new(MemoryStore::new());
    let s = TestServer::start_with(Stores::split(auth, anon.clone()), server_anonymous()).await;
    let v = s
        .ok("/v1/session/update", json!({"cookie": "", "set": {"a": 1}}))
        .await;
    assert_eq!(v["session"]["storage"], "store");
    assert!(cookie_of(&v).starts_with("__Host-tessera=a"));
    let key = StoreKey::from_ref(v["session"]["ref"].as_str().unwrap()).unwrap();
    assert!(anon.load(&key, START).await.unwrap().is_some());
}
