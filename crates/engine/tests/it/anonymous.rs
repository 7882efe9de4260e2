//! Client-side anonymous sessions (DESIGN §4): sealed cookies that cost no store operation,
//! one outcome for every bad cookie, spills on size and secrets, promotion at login, key
//! rotation, and CSRF tokens without writes in both modes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tessera::cookie::CookieConfig;
use tessera::csrf::CsrfKey;
use tessera::keys::SealKeys;
use tessera::metrics::Metrics;
use tessera::{
    AnonymousMode, Edits, Engine, IfMissing, Login, Outcome, SessionConfig, Status, Storage, Stores,
};
use tessera_core::{SessionKind, SessionStore, Timestamp};
use tessera_store_memory::MemoryStore;
use tessera_token::seal::{SealKey, SealKeyring, SealPolicy};

const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);
const ANON: &str = "__Host-tessera-anon";
const ANON_REMOVAL: &str = "__Host-tessera-anon=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax";

struct Fixture {
    engine: Engine,
    registry: Registry,
    store: Arc<MemoryStore>,
    keys: SealKeys,
}

fn fixture(mode: AnonymousMode) -> Fixture {
    let keys =
        SealKeys::new(SealKeyring::generate_at(NOW.unix_secs(), SealPolicy::default()).unwrap());
    fixture_with(mode, keys, CsrfKey::from_bytes([4; 32]))
}

fn fixture_with(mode: AnonymousMode, keys: SealKeys, csrf: CsrfKey) -> Fixture {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let store = Arc::new(MemoryStore::new());
    let engine = Engine::builder(Stores::single(store.clone()))
        .with_config(SessionConfig::default().with_anonymous(mode))
        .with_cookie(CookieConfig::default())
        .with_csrf_key(csrf)
        .with_metrics(metrics)
        .with_seal_keys(keys.clone())
        .build()
        .unwrap();
    Fixture {
        engine,
        registry,
        store,
        keys,
    }
}

impl Fixture {
    /// The sum of `tessera_store_operations_total` lines whose labels contain `filter`.
    fn store_ops(&self, filter: &str) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .filter(|l| l.starts_with("tessera_store_operations_total{") && l.contains(filter))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    fn writes(&self) -> u64 {
        self.store_ops("op=\"write\"") + self.store_ops("op=\"delete\"")
    }

    fn counter(&self, line: &str) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn set(k: &str, v: Value) -> Edits {
    let mut e = Edits::default();
    e.set.insert(k.to_owned(), v);
    e
}

fn secret(k: &str, v: Value) -> Edits {
    let mut e = Edits::default();
    e.secrets.insert(k.to_owned(), v);
    e
}

/// `name=value` of the `Set-Cookie` for `name` in an outcome.
fn cookie_named(o: &Outcome, name: &str) -> Option<String> {
    o.set_cookie
        .iter()
        .map(|c| c.split(';').next().unwrap())
        .find(|p| p.split_once('=').unwrap().0 == name)
        .map(str::to_owned)
}

fn anon_cookie(o: &Outcome) -> String {
    let c = cookie_named(o, ANON).expect("an anonymous cookie");
    assert!(c.len() > ANON.len() + 1, "not a removal: {c}");
    c
}

fn login(user: &str) -> Login {
    Login::for_user(user)
}

fn after(secs: u64) -> Timestamp {
    NOW.saturating_add(Duration::from_secs(secs))
}

#[tokio::test]
async fn client_side_anonymous_traffic_does_no_store_operation_at_all() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    // A first visit: nothing.
    let o = e.resolve("", IfMissing::Nothing, NOW).await.unwrap();
    assert_eq!((o.status, o.set_cookie.len()), (Status::None, 0));
    // A login form: a session for its CSRF token.
    let o = e
        .resolve("", IfMissing::CreateAnonymous, NOW)
        .await
        .unwrap();
    assert_eq!(o.status, Status::Created);
    let s = o.session.clone().unwrap();
    assert_eq!(s.storage, Storage::Cookie);
    assert_eq!(s.record.kind, SessionKind::Anonymous);
    let c = anon_cookie(&o);
    let sc = &o.set_cookie[0];
    for attr in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(sc.contains(attr), "{sc} lacks {attr}");
    }
    assert!(!sc.contains("Max-Age") && !sc.contains("Domain"), "{sc}");
    assert!(c.starts_with(&format!("{ANON}=1.")), "version first: {c}");
    let csrf = e.csrf_token(&s, "login", NOW);
    // Form state, read back, checked.
    let o = e
        .update(&c, &set("return_to", json!("/wiki/Main")), NOW)
        .await
        .unwrap();
    assert_eq!(o.status, Status::Updated);
    let c = anon_cookie(&o);
    let o = e.resolve(&c, IfMissing::Nothing, after(60)).await.unwrap();
    assert_eq!(o.status, Status::Loaded);
    assert!(
        o.set_cookie.is_empty(),
        "a read sets nothing: {:?}",
        o.set_cookie
    );
    assert_eq!(
        o.session.as_ref().unwrap().record.data["return_to"],
        "/wiki/Main"
    );
    assert_eq!(o.session.as_ref().unwrap().key, s.key, "one identity");
    assert!(e.check_csrf(&c, &csrf, "login", after(60)).await.unwrap());
    assert!(!e.check_csrf(&c, &csrf, "other", after(60)).await.unwrap());
    // An edit that changes nothing sets nothing.
    let o = e
        .update(&c, &set("return_to", json!("/wiki/Main")), after(60))
        .await
        .unwrap();
    assert_eq!((o.status, o.set_cookie.len()), (Status::Unchanged, 0));
    // Renewal at half the idle lifetime re-seals the cookie: still no write.
    let o = e
        .resolve(&c, IfMissing::Nothing, after(16 * 60))
        .await
        .unwrap();
    assert_eq!(o.status, Status::Renewed);
    let renewed = anon_cookie(&o);
    assert_ne!(renewed, c);
    let o = e
        .resolve(&renewed, IfMissing::Nothing, after(30 * 60))
        .await
        .unwrap();
    assert_eq!(o.status, Status::Loaded, "alive past the first idle expiry");
    assert_eq!(o.session.unwrap().key, s.key);
    // Logout clears the cookie.
    let o = e.logout(&renewed, after(40 * 60)).await.unwrap();
    assert_eq!(o.status, Status::LoggedOut);
    assert!(
        o.set_cookie.contains(&ANON_REMOVAL.to_owned()),
        "{:?}",
        o.set_cookie
    );

    assert_eq!(f.store_ops(""), 0, "no store read, write or delete");
    assert_eq!(
        f.counter("tessera_session_writes_total{kind=\"anonymous\",reason=\"create\"}"),
        0
    );
    assert!(f.counter("tessera_anonymous_cookies_total{event=\"sealed\"}") >= 3);
}

#[tokio::test]
async fn the_whole_set_cookie_stays_under_4096_bytes() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    let mut c = String::new();
    // Grow the data until it spills; every cookie sealed on the way fits the budget.
    for i in 0..40 {
        let o = e
            .update(&c, &set(&format!("k{i}"), json!("x".repeat(100))), NOW)
            .await
            .unwrap();
        let Some(next) = cookie_named(&o, ANON).filter(|v| v.len() > ANON.len() + 1) else {
            assert_eq!(o.session.unwrap().storage, Storage::Store, "spilled");
            assert!(i > 15, "spilled at {i}");
            return;
        };
        let sc = o.set_cookie.iter().find(|v| v.starts_with(ANON)).unwrap();
        assert!(next.len() <= 3072, "{}", next.len());
        assert!(sc.len() < 3200, "whole Set-Cookie {}", sc.len());
        c = next;
    }
    panic!("never spilled");
}

/// One outcome for every bad cookie: cleared, a fresh state, no store operation, and never
/// the original's data or identity.
#[tokio::test]
async fn tampered_truncated_spliced_renamed_expired_and_unknown_key_cookies_are_refused_alike() {
    let keys =
        SealKeys::new(SealKeyring::generate_at(NOW.unix_secs(), SealPolicy::default()).unwrap());
    let f = fixture_with(
        AnonymousMode::Client,
        keys.clone(),
        CsrfKey::from_bytes([4; 32]),
    );
    let e = &f.engine;
    let o = e
        .update("", &set("cart", json!([1, 2, 3])), NOW)
        .await
        .unwrap();
    let good = anon_cookie(&o);
    let original = o.session.unwrap();
    let csrf = e.csrf_token(&original, "default", NOW);
    let o = e.update("", &set("other", json!("x")), NOW).await.unwrap();
    let other = anon_cookie(&o);
    let value = good.split_once('=').unwrap().1.to_owned();
    let other_value = other.split_once('=').unwrap().1.to_owned();
    let body = value.rfind('.').unwrap() + 1;

    let mut flipped = value.clone().into_bytes();
    let i = body + 20;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // Another cookie of the same engine seals with the same key, under another name.
    let renamed_engine = Engine::builder(MemoryStore::new())
        .with_csrf_key(CsrfKey::from_bytes([4; 32]))
        .with_seal_keys(keys.clone())
        .with_anonymous_cookie("__Host-tessera-other")
        .build()
        .unwrap();
    let o = renamed_engine
        .update("", &set("cart", json!([1, 2, 3])), NOW)
        .await
        .unwrap();
    let sealed_for_other_name = cookie_named(&o, "__Host-tessera-other")
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let unknown_key = fixture(AnonymousMode::Client);
    let o = unknown_key
        .engine
        .update("", &set("cart", json!([1, 2, 3])), NOW)
        .await
        .unwrap();
    let foreign = anon_cookie(&o).split_once('=').unwrap().1.to_owned();

    let cases: Vec<(&str, String, Timestamp)> = vec![
        ("tampered", flipped, NOW),
        ("truncated by one", value[..value.len() - 1].to_owned(), NOW),
        (
            "truncated to half",
            value[..value.len() / 2].to_owned(),
            NOW,
        ),
        ("kid only", value[..body].to_owned(), NOW),
        (
            "spliced",
            format!("{}{}", &value[..body + 40], &other_value[body + 40..]),
            NOW,
        ),
        ("other version", format!("2{}", &value[1..]), NOW),
        ("sealed for another cookie name", sealed_for_other_name, NOW),
        ("sealed with an unknown key", foreign, NOW),
        ("expired (idle)", value.clone(), after(30 * 60)),
        ("garbage", "not-a-sealed-value".to_owned(), NOW),
    ];
    let mut outcomes = vec![];
    for (what, bad, at) in &cases {
        let cookie = format!("{ANON}={bad}");
        let o = e.resolve(&cookie, IfMissing::Nothing, *at).await.unwrap();
        assert_eq!(o.status, Status::Ended, "{what}");
        assert!(o.session.is_none(), "{what}");
        assert_eq!(o.set_cookie, vec![ANON_REMOVAL.to_owned()], "{what}");
        outcomes.push((o.status, o.set_cookie.clone(), o.token_status));

        // With create, a fresh state replaces it: one Set-Cookie, nothing of the original.
        let o = e
            .resolve(&cookie, IfMissing::CreateAnonymous, *at)
            .await
            .unwrap();
        assert_eq!(o.status, Status::Created, "{what}");
        assert_eq!(o.set_cookie.len(), 1, "{what}");
        let s = o.session.unwrap();
        assert!(s.record.data.is_empty(), "{what}");
        assert_ne!(s.key, original.key, "{what}: a new identity");
        // An edit starts from a fresh state, never from the refused one.
        let o = e.update(&cookie, &set("n", json!(1)), *at).await.unwrap();
        assert_eq!(o.status, Status::Created, "{what}");
        assert_eq!(
            o.session.unwrap().record.data,
            BTreeMap::from([("n".to_owned(), json!(1))])
        );
        // Its CSRF tokens do not validate, a login carries nothing and clears it.
        assert!(
            !e.check_csrf(&cookie, &csrf, "default", *at).await.unwrap(),
            "{what}"
        );
        let o = e.login(&cookie, login("alice"), *at).await.unwrap();
        assert!(o.session.unwrap().record.data.is_empty(), "{what}");
        assert!(o.set_cookie.contains(&ANON_REMOVAL.to_owned()), "{what}");
    }
    assert!(
        outcomes.windows(2).all(|w| w[0] == w[1]),
        "identical outcomes"
    );
    // The good cookie still opens (nothing above changed any state).
    let o = e.resolve(&good, IfMissing::Nothing, NOW).await.unwrap();
    assert_eq!(o.session.unwrap().record.data["cart"], json!([1, 2, 3]));
    // The only store operations were the logins.
    assert_eq!(f.store_ops("kind=\"anonymous\""), 0);
    assert_eq!(
        f.counter("tessera_anonymous_cookies_total{event=\"refused\"}"),
        5 * cases.len() as u64
    );
}

#[tokio::test]
async fn a_duplicated_anonymous_cookie_is_refused_like_a_bad_one() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    let a = anon_cookie(
        &e.resolve("", IfMissing::CreateAnonymous, NOW)
            .await
            .unwrap(),
    );
    let b = anon_cookie(
        &e.resolve("", IfMissing::CreateAnonymous, NOW)
            .await
            .unwrap(),
    );
    let o = e
        .resolve(&format!("{a}; {b}"), IfMissing::Nothing, NOW)
        .await
        .unwrap();
    assert_eq!(o.status, Status::Ended);
    assert_eq!(o.set_cookie, vec![ANON_REMOVAL.to_owned()]);
}

#[tokio::test]
async fn data_over_the_budget_spills_to_the_store_under_the_same_identity() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    let o = e.update("", &set("small", json!(1)), NOW).await.unwrap();
    let c = anon_cookie(&o);
    let before = o.session.unwrap();
    let csrf = e.csrf_token(&before, "default", NOW);
    assert_eq!(f.writes(), 0);

    let o = e
        .update(&c, &set("big", json!("x".repeat(4000))), after(1))
        .await
        .unwrap();
    assert_eq!(o.status, Status::Updated);
    let s = o.session.clone().unwrap();
    assert_eq!(s.storage, Storage::Store);
    assert_eq!(
        s.key, before.key,
        "stored under the identity inside the seal"
    );
    assert_eq!(s.record.data["small"], json!(1));
    let handle = cookie_named(&o, "__Host-tessera").expect("the session cookie");
    assert!(
        handle.starts_with("__Host-tessera=a"),
        "an anonymous handle: {handle}"
    );
    assert!(
        o.set_cookie.contains(&ANON_REMOVAL.to_owned()),
        "{:?}",
        o.set_cookie
    );
    assert_eq!(f.writes(), 1, "one write: the spill");
    assert_eq!(
        f.counter("tessera_session_writes_total{kind=\"anonymous\",reason=\"spill\"}"),
        1
    );
    assert!(f.store.load(&s.key, after(1)).await.unwrap().is_some());

    // The application sees one API: the same data, the same CSRF token, per-key edits.
    assert!(
        e.check_csrf(&handle, &csrf, "default", after(2))
            .await
            .unwrap()
    );
    let o = e
        .update(&handle, &set("more", json!(2)), after(2))
        .await
        .unwrap();
    assert_eq!(o.status, Status::Updated);
    let o = e
        .resolve(&handle, IfMissing::Nothing, after(3))
        .await
        .unwrap();
    let data = o.session.unwrap().record.data;
    assert_eq!(data.len(), 3, "{data:?}");
    // A stale anonymous cookie sent along is cleared; the handle speaks.
    let o = e
        .resolve(&format!("{handle}; {c}"), IfMissing::Nothing, after(4))
        .await
        .unwrap();
    assert_eq!(o.status, Status::Loaded);
    assert_eq!(o.set_cookie, vec![ANON_REMOVAL.to_owned()]);
}

#[tokio::test]
async fn a_spill_racing_a_spill_of_the_same_cookie_loses_no_edit() {
    let f = Arc::new(fixture(AnonymousMode::Client));
    let o = f
        .engine
        .resolve("", IfMissing::CreateAnonymous, NOW)
        .await
        .unwrap();
    let c = anon_cookie(&o);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (f, c) = (f.clone(), c.clone());
        tasks.spawn(async move {
            let edits = secret(&format!("s{i}"), json!(i));
            f.engine.update(&c, &edits, NOW).await.unwrap()
        });
    }
    let mut handles = vec![];
    while let Some(o) = tasks.join_next().await {
        handles.push(cookie_named(&o.unwrap(), "__Host-tessera").unwrap());
    }
    handles.dedup();
    assert_eq!(handles.len(), 1, "every spill names the one stored session");
    let s = f
        .engine
        .resolve(&handles[0], IfMissing::Nothing, NOW)
        .await
        .unwrap()
        .session
        .unwrap();
    assert_eq!(f.engine.secrets(&s, NOW).len(), 8);
}

#[tokio::test]
async fn a_secret_spills_and_never_appears_in_a_cookie() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    let c = anon_cookie(&e.update("", &set("step", json!(1)), NOW).await.unwrap());
    let plain = "oauth-state-7f3a9c";
    let o = e
        .update(&c, &secret("oauth", json!(plain)), NOW)
        .await
        .unwrap();
    for sc in &o.set_cookie {
        assert!(!sc.contains(plain), "{sc}");
    }
    let s = o.session.clone().unwrap();
    assert_eq!(s.storage, Storage::Store);
    assert_eq!(e.secret(&s, "oauth", NOW), Some(json!(plain)));
    assert_eq!(
        s.record.data,
        BTreeMap::from([("step".to_owned(), json!(1))])
    );
    // The store holds sealed text only.
    let stored = f.store.load(&s.key, NOW).await.unwrap().unwrap();
    let text = serde_json::to_string(&stored).unwrap();
    assert!(!text.contains(plain), "{text}");
    assert!(stored.secrets["oauth"].starts_with("1."), "{text}");

    // Setting it again to the same value writes nothing; removing it does.
    let handle = cookie_named(&o, "__Host-tessera").unwrap();
    let writes = f.writes();
    let o = e
        .update(&handle, &secret("oauth", json!(plain)), after(1))
        .await
        .unwrap();
    assert_eq!(o.status, Status::Unchanged);
    assert_eq!(f.writes(), writes);
    // Sealed to its session: moved into another record it does not open.
    let other = e
        .update("", &secret("x", json!(1)), NOW)
        .await
        .unwrap()
        .session
        .unwrap();
    let mut forged = other.clone();
    forged
        .record
        .secrets
        .insert("oauth".into(), stored.secrets["oauth"].clone());
    assert_eq!(e.secret(&forged, "oauth", NOW), None);
    let edits = Edits {
        remove_secrets: vec!["oauth".into()],
        ..Edits::default()
    };
    let writes = f.writes();
    let o = e.update(&handle, &edits, after(2)).await.unwrap();
    assert_eq!(o.status, Status::Updated);
    assert!(e.secrets(o.session.as_ref().unwrap(), after(2)).is_empty());
    assert_eq!(f.writes(), writes + 1);

    // A first request that keeps a secret goes to the store straight away.
    let o = e
        .update("", &secret("otp", json!("123456")), NOW)
        .await
        .unwrap();
    assert_eq!(o.status, Status::Created);
    assert!(cookie_named(&o, "__Host-tessera").is_some());
    assert!(cookie_named(&o, ANON).is_none(), "{:?}", o.set_cookie);
    assert!(o.set_cookie.iter().all(|c| !c.contains("123456")));
}

#[tokio::test]
async fn secrets_in_server_mode_are_sealed_in_the_store_too() {
    let f = fixture(AnonymousMode::Server);
    let e = &f.engine;
    let o = e
        .update("", &secret("otp", json!("998877")), NOW)
        .await
        .unwrap();
    let s = o.session.unwrap();
    let stored = f.store.load(&s.key, NOW).await.unwrap().unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains("998877"));
    assert_eq!(e.secret(&s, "otp", NOW), Some(json!("998877")));
}

#[tokio::test]
async fn login_promotes_a_client_side_session_and_clears_its_cookie() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    let c = anon_cookie(
        &e.update("", &set("return_to", json!("/wiki/X")), NOW)
            .await
            .unwrap(),
    );
    let o = e.login(&c, login("alice"), after(5)).await.unwrap();
    assert_eq!(o.status, Status::LoggedIn);
    let s = o.session.clone().unwrap();
    assert_eq!(s.record.data["return_to"], "/wiki/X");
    assert_eq!(s.record.kind, SessionKind::Authenticated);
    assert_eq!(
        o.set_cookie
            .iter()
            .map(|c| c.split('=').next().unwrap())
            .collect::<Vec<_>>(),
        ["__Host-tessera", ANON]
    );
    assert_eq!(o.set_cookie[1], ANON_REMOVAL);
    assert_eq!(
        f.counter("tessera_anonymous_cookies_total{event=\"promoted\"}"),
        1
    );
    // The only writes: the authenticated session.
    assert_eq!(f.store_ops("kind=\"anonymous\""), 0);
    assert_eq!(f.store_ops("kind=\"authenticated\",op=\"write\""), 1);
}

#[tokio::test]
async fn login_promotes_a_spilled_session_with_its_secrets_and_deletes_it() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    let c = anon_cookie(&e.update("", &set("form", json!("a")), NOW).await.unwrap());
    let o = e
        .update(&c, &secret("pkce", json!("verifier")), NOW)
        .await
        .unwrap();
    let handle = cookie_named(&o, "__Host-tessera").unwrap();
    let anon = o.session.unwrap();
    let o = e
        .login(&format!("{handle}; {c}"), login("bob"), after(5))
        .await
        .unwrap();
    let s = o.session.clone().unwrap();
    assert_eq!(s.record.data["form"], "a");
    assert_eq!(e.secret(&s, "pkce", after(5)), Some(json!("verifier")));
    assert_ne!(
        s.record.secrets["pkce"], anon.record.secrets["pkce"],
        "re-sealed"
    );
    assert!(
        f.store.load(&anon.key, after(5)).await.unwrap().is_none(),
        "the spilled record is gone"
    );
    assert!(
        o.set_cookie.contains(&ANON_REMOVAL.to_owned()),
        "{:?}",
        o.set_cookie
    );
    // The old handle is dead, the old sealed cookie carries nothing stored.
    let o = e
        .resolve(&handle, IfMissing::Nothing, after(6))
        .await
        .unwrap();
    assert_eq!(o.status, Status::Ended);
}

#[tokio::test]
async fn rotation_keeps_old_cookies_open_and_seals_new_ones_with_the_new_key() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    let old_kid = f.keys.read().sealing_kid().unwrap().to_owned();
    let o = e.update("", &set("k", json!("v")), NOW).await.unwrap();
    let old = anon_cookie(&o);
    assert!(old.starts_with(&format!("{ANON}=1.{old_kid}.")), "{old}");
    let stored = e.update("", &secret("s", json!("t")), NOW).await.unwrap();
    let handle = cookie_named(&stored, "__Host-tessera").unwrap();

    // The schedule runs 30 days on: a new key seals; the old one still opens.
    let later = NOW.saturating_add(Duration::from_secs(30 * 86_400));
    let rot = f.keys.update(|k| k.rotate_at(later.unix_secs())).unwrap();
    let new_kid = rot.generated.unwrap();
    assert_ne!(new_kid, old_kid);
    let t = after(60);
    let o = e.resolve(&old, IfMissing::Nothing, t).await.unwrap();
    assert_eq!(o.status, Status::Loaded);
    assert_eq!(o.session.unwrap().record.data["k"], "v");
    let o = e.update(&old, &set("k2", json!(1)), t).await.unwrap();
    let new = anon_cookie(&o);
    assert!(new.starts_with(&format!("{ANON}=1.{new_kid}.")), "{new}");
    let s = e
        .resolve(&handle, IfMissing::Nothing, t)
        .await
        .unwrap()
        .session
        .unwrap();
    assert_eq!(e.secret(&s, "s", t), Some(json!("t")), "old secrets open");
    // Once the old key is dropped, its cookies are refused like any bad cookie.
    f.keys.update(|k| k.retain_newest(1));
    let o = e.resolve(&old, IfMissing::Nothing, t).await.unwrap();
    assert_eq!(
        (o.status, o.set_cookie.clone()),
        (Status::Ended, vec![ANON_REMOVAL.to_owned()])
    );
    assert_eq!(
        e.resolve(&new, IfMissing::Nothing, t).await.unwrap().status,
        Status::Loaded
    );
}

#[tokio::test]
async fn csrf_tokens_need_no_write_in_either_mode() {
    for (mode, creation_writes) in [(AnonymousMode::Client, 0), (AnonymousMode::Server, 1)] {
        let f = fixture(mode);
        let e = &f.engine;
        let o = e
            .resolve("", IfMissing::CreateAnonymous, NOW)
            .await
            .unwrap();
        assert_eq!(f.writes(), creation_writes, "{mode:?}");
        let c = o.set_cookie[0].split(';').next().unwrap().to_owned();
        let s = o.session.unwrap();
        for purpose in ["default", "login", "edit"] {
            let t = e.csrf_token(&s, purpose, NOW);
            assert!(
                e.check_csrf(&c, &t, purpose, after(10)).await.unwrap(),
                "{mode:?}"
            );
        }
        let o = e.login(&c, login("carol"), after(20)).await.unwrap();
        let user = o.set_cookie[0].split(';').next().unwrap().to_owned();
        let writes = f.writes();
        let t = e.csrf_token(o.session.as_ref().unwrap(), "default", after(20));
        assert!(e.check_csrf(&user, &t, "default", after(30)).await.unwrap());
        assert_eq!(
            f.writes(),
            writes,
            "{mode:?}: issuing and checking wrote nothing"
        );
        // The pre-login token does not work for the new session.
        let old = e.csrf_token(&s, "default", NOW);
        assert!(
            !e.check_csrf(&user, &old, "default", after(30))
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn the_server_enforces_idle_and_absolute_timeouts_on_sealed_cookies() {
    let f = fixture(AnonymousMode::Client);
    let e = &f.engine;
    let mut c = anon_cookie(
        &e.resolve("", IfMissing::CreateAnonymous, NOW)
            .await
            .unwrap(),
    );
    // Kept alive by renewals every 20 minutes up to the 12-hour absolute limit, then dead.
    let mut t = 0;
    loop {
        t += 20 * 60;
        let o = e.resolve(&c, IfMissing::Nothing, after(t)).await.unwrap();
        if t >= 12 * 3600 {
            assert_eq!(o.status, Status::Ended, "at {t}s");
            break;
        }
        assert!(o.session.is_some(), "alive at {t}s");
        if let Some(next) = cookie_named(&o, ANON) {
            c = next;
        }
    }
    // Without renewals it dies at the idle timeout, whatever the cookie says.
    let c = anon_cookie(
        &e.resolve("", IfMissing::CreateAnonymous, NOW)
            .await
            .unwrap(),
    );
    assert!(
        e.resolve(&c, IfMissing::Nothing, after(30 * 60 - 1))
            .await
            .unwrap()
            .session
            .is_some()
    );
    assert!(
        e.resolve(&c, IfMissing::Nothing, after(30 * 60))
            .await
            .unwrap()
            .session
            .is_none()
    );
    assert_eq!(f.store_ops(""), 0);
}

#[tokio::test]
async fn server_mode_stores_new_sessions_and_moves_sealed_ones_at_their_first_write() {
    let keys = SealKeys::new(SealKeyring::new(vec![SealKey::from_bytes([8; 32])]));
    let client = fixture_with(
        AnonymousMode::Client,
        keys.clone(),
        CsrfKey::from_bytes([4; 32]),
    );
    let server = fixture_with(AnonymousMode::Server, keys, CsrfKey::from_bytes([4; 32]));
    let o = server
        .engine
        .update("", &set("a", json!(1)), NOW)
        .await
        .unwrap();
    assert!(
        cookie_named(&o, "__Host-tessera")
            .unwrap()
            .starts_with("__Host-tessera=a")
    );
    assert_eq!(
        server.counter("tessera_session_writes_total{kind=\"anonymous\",reason=\"create\"}"),
        1
    );
    // A cookie sealed before the switch still reads, and moves to the store when written.
    let c = anon_cookie(
        &client
            .engine
            .update("", &set("b", json!(2)), NOW)
            .await
            .unwrap(),
    );
    let o = server
        .engine
        .resolve(&c, IfMissing::Nothing, NOW)
        .await
        .unwrap();
    assert_eq!(o.session.unwrap().record.data["b"], json!(2));
    let o = server
        .engine
        .update(&c, &set("c", json!(3)), NOW)
        .await
        .unwrap();
    let s = o.session.unwrap();
    assert_eq!(s.storage, Storage::Store);
    assert_eq!(s.record.data.len(), 2);
    assert!(o.set_cookie.contains(&ANON_REMOVAL.to_owned()));
}
