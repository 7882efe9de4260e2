//! Engine behaviour over memory stores, with explicit times.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tessera::cookie::CookieConfig;
use tessera::{Edits, Engine, Error, IfMissing, Login, SessionConfig, Status, Stores};
use tessera_core::{SessionStore, Timestamp};
use tessera_store_memory::MemoryStore;

const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);

fn engine(stores: Stores, config: SessionConfig, cookie: CookieConfig) -> Engine {
    Engine::builder(stores)
        .with_config(config)
        .with_cookie(cookie)
        .ephemeral_keys()
        .build()
        .unwrap()
}

/// Anonymous sessions in the store, as before client-side mode.
fn server_mode() -> SessionConfig {
    SessionConfig::default().with_anonymous(tessera::AnonymousMode::Server)
}

fn set(k: &str, v: serde_json::Value) -> Edits {
    let mut e = Edits::default();
    e.set.insert(k.to_owned(), v);
    e
}

fn cookie(o: &tessera::Outcome) -> String {
    o.set_cookie[0].split(';').next().unwrap().to_owned()
}

fn login(user: &str) -> Login {
    Login::for_user(user)
}

#[tokio::test]
async fn the_kind_in_the_handle_routes_to_exactly_one_store() {
    let anon = Arc::new(MemoryStore::new());
    let auth = Arc::new(MemoryStore::new());
    let e = engine(
        Stores::split(auth.clone(), anon.clone()),
        server_mode(),
        CookieConfig::default(),
    );
    let o = e
        .update("", &set("form", json!("state")), NOW)
        .await
        .unwrap();
    let anon_cookie = cookie(&o);
    let anon_key = o.session.as_ref().unwrap().key;
    assert!(anon.load(&anon_key, NOW).await.unwrap().is_some());
    assert!(auth.load(&anon_key, NOW).await.unwrap().is_none());

    let o = e.login(&anon_cookie, login("alice"), NOW).await.unwrap();
    let key = o.session.as_ref().unwrap().key;
    assert_eq!(
        o.session.as_ref().unwrap().record.data["form"],
        json!("state")
    );
    assert!(auth.load(&key, NOW).await.unwrap().is_some());
    assert!(anon.load(&key, NOW).await.unwrap().is_none());
    assert!(
        anon.load(&anon_key, NOW).await.unwrap().is_none(),
        "pre-login session ended"
    );
    assert_eq!(
        auth.list_user_sessions("alice", NOW).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn development_cookies_are_plain_and_still_http_only() {
    let e = engine(
        Stores::single(Arc::new(MemoryStore::new())),
        SessionConfig::default(),
        CookieConfig::development(),
    );
    let o = e.login("", login("dev"), NOW).await.unwrap();
    let sc = &o.set_cookie[0];
    assert!(sc.starts_with("tessera=u"), "{sc}");
    assert!(!sc.contains("Secure"), "{sc}");
    assert!(sc.contains("HttpOnly") && sc.contains("SameSite=Lax") && sc.contains("Path=/"));
    // The production name is not read in development, nor the reverse.
    let c = cookie(&o);
    let prod = format!("__Host-{c}");
    assert_eq!(
        e.resolve(&prod, IfMissing::Nothing, NOW)
            .await
            .unwrap()
            .status,
        Status::None
    );
    assert_eq!(
        e.resolve(&c, IfMissing::Nothing, NOW).await.unwrap().status,
        Status::Loaded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_all_or_nothing_when_retries_run_out() {
    let config = SessionConfig::default().with_max_conflict_retries(0);
    let e = Arc::new(engine(
        Stores::single(Arc::new(MemoryStore::new())),
        config,
        CookieConfig::default(),
    ));
    let o = e.login("", login("busy"), NOW).await.unwrap();
    let c = cookie(&o);
    let mut set_ = tokio::task::JoinSet::new();
    for i in 0..64 {
        let e = e.clone();
        let c = c.clone();
        set_.spawn(async move {
            let mut edits = set(&format!("a{i}"), json!(i));
            edits.set.insert(format!("b{i}"), json!(i));
            (i, e.update(&c, &edits, NOW).await)
        });
    }
    let mut ok = vec![];
    while let Some(r) = set_.join_next().await {
        match r.unwrap() {
            (i, Ok(_)) => ok.push(i),
            (_, Err(Error::Contention)) => {}
            (_, Err(other)) => panic!("{other:?}"),
        }
    }
    let data = e
        .resolve(&c, IfMissing::Nothing, NOW)
        .await
        .unwrap()
        .session
        .unwrap()
        .record
        .data;
    // Every acknowledged edit is there with both its keys; no refused edit left half.
    assert_eq!(data.len(), ok.len() * 2);
    for i in ok {
        assert_eq!(data[&format!("a{i}")], json!(i));
        assert_eq!(data[&format!("b{i}")], json!(i));
    }
}

#[tokio::test]
async fn switching_the_kind_letter_names_no_session() {
    // The kind letter is part of what is hashed into the store key, so a client cannot turn
    // an anonymous handle into an authenticated one (or make the engine probe another store).
    let store = Arc::new(MemoryStore::new());
    let e = engine(
        Stores::single(store.clone()),
        server_mode(),
        CookieConfig::default(),
    );
    let o = e.update("", &set("k", json!(1)), NOW).await.unwrap();
    let c = cookie(&o);
    let forged = c.replacen("=a", "=u", 1);
    let r = e.resolve(&forged, IfMissing::Nothing, NOW).await.unwrap();
    assert!(r.session.is_none());
    let later = NOW.saturating_add(Duration::from_secs(1));
    assert!(
        e.resolve(&c, IfMissing::Nothing, later)
            .await
            .unwrap()
            .session
            .is_some()
    );
}
