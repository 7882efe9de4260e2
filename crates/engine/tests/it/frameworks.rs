//! What web frameworks need (issue 13 phase B, docs/frameworks.md): a session's own expiry,
//! rotation of its handle, creation in the store whatever the anonymous mode, and a read
//! that writes nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tessera::{
    AnonymousMode, Edits, Engine, Error, IfMissing, Lifetime, Login, Outcome, Renewal,
    SessionConfig, Status, Storage, Stores,
};
use tessera_core::{Expiry, SessionStore, Timestamp};
use tessera_store_memory::MemoryStore;

const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);

fn after(secs: u64) -> Timestamp {
    NOW.saturating_add(Duration::from_secs(secs))
}

fn engine_with(store: Arc<MemoryStore>, mode: AnonymousMode) -> Engine {
    Engine::builder(Stores::single(store))
        .with_config(SessionConfig::default().with_anonymous(mode))
        .ephemeral_keys()
        .build()
        .unwrap()
}

fn engine() -> (Engine, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (engine_with(store.clone(), AnonymousMode::Server), store)
}

fn set(k: &str, v: serde_json::Value) -> Edits {
    let mut e = Edits::default();
    e.set.insert(k.to_owned(), v);
    e
}

fn expiry(e: Expiry) -> Edits {
    Edits {
        expiry: Some(e),
        ..Edits::default()
    }
}

fn cookie(o: &Outcome) -> String {
    o.set_cookie[0].split(';').next().unwrap().to_owned()
}

fn max_age(o: &Outcome) -> Option<u64> {
    o.set_cookie[0]
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .map(|v| v.parse().unwrap())
}

async fn stored_session(e: &Engine) -> String {
    let o = e.update("", &set("k", json!(1)), NOW).await.unwrap();
    assert_eq!(o.session.as_ref().unwrap().storage, Storage::Store);
    cookie(&o)
}

#[tokio::test]
async fn an_idle_expiry_is_this_sessions_idle_timeout() {
    let (e, store) = engine();
    let c = stored_session(&e).await;
    let o = e.update(&c, &expiry(Expiry::Idle(60)), NOW).await.unwrap();
    assert_eq!(o.status, Status::Updated);
    let s = o.session.as_ref().unwrap();
    assert_eq!(s.record.expiry, Expiry::Idle(60));
    assert_eq!(s.record.expires_at(), after(60));
    assert_eq!(max_age(&o), Some(60), "{:?}", o.set_cookie);
    // Kept in the store, and the store refuses the record at it.
    let key = s.key;
    assert_eq!(
        store.load(&key, NOW).await.unwrap().unwrap().expiry,
        Expiry::Idle(60)
    );
    // Half of it passed: a renewal pushes it by 60 s, not by the server's 30 min.
    let o = e.resolve(&c, IfMissing::Nothing, after(30)).await.unwrap();
    assert_eq!(o.status, Status::Renewed);
    assert_eq!(o.session.as_ref().unwrap().record.expires_at(), after(90));
    assert_eq!(max_age(&o), Some(60));
    let o = e.resolve(&c, IfMissing::Nothing, after(90)).await.unwrap();
    assert_eq!(o.status, Status::Ended);
    assert!(store.load(&key, after(90)).await.unwrap().is_none());
    // Setting the same expiry again writes nothing.
    let c = stored_session(&e).await;
    let _ = e.update(&c, &expiry(Expiry::Idle(60)), NOW).await.unwrap();
    let o = e.update(&c, &expiry(Expiry::Idle(60)), NOW).await.unwrap();
    assert_eq!(o.status, Status::Unchanged);
}

#[tokio::test]
async fn an_end_is_fixed_and_bounded_by_the_absolute_expiry() {
    let (e, store) = engine();
    let c = stored_session(&e).await;
    let o = e
        .update(&c, &expiry(Expiry::At(after(100))), NOW)
        .await
        .unwrap();
    let key = o.session.as_ref().unwrap().key;
    assert_eq!(o.session.as_ref().unwrap().record.expires_at(), after(100));
    assert_eq!(max_age(&o), Some(100));
    // Activity does not push it: no renewal, no write.
    let o = e.resolve(&c, IfMissing::Nothing, after(99)).await.unwrap();
    assert_eq!(o.status, Status::Loaded);
    assert!(o.set_cookie.is_empty());
    let o = e.update(&c, &set("k", json!(2)), after(99)).await.unwrap();
    assert_eq!(o.session.as_ref().unwrap().record.expires_at(), after(100));
    assert_eq!(
        e.resolve(&c, IfMissing::Nothing, after(100))
            .await
            .unwrap()
            .status,
        Status::Ended
    );
    assert!(store.load(&key, after(100)).await.unwrap().is_none());
    // Never after the absolute expiry (12 h by default).
    let c = stored_session(&e).await;
    let o = e
        .update(&c, &expiry(Expiry::At(after(86_400 * 365))), NOW)
        .await
        .unwrap();
    assert_eq!(
        o.session.as_ref().unwrap().record.expires_at(),
        after(12 * 3600)
    );
    // Back to the defaults: the server's idle timeout again.
    let o = e
        .update(&c, &expiry(Expiry::Default), after(10))
        .await
        .unwrap();
    let r = &o.session.as_ref().unwrap().record;
    assert_eq!(r.expiry, Expiry::Default);
    assert_eq!(r.expires_at(), after(10 + 30 * 60));
    assert_eq!(max_age(&o), None, "a browser-session cookie by default");
}

#[tokio::test]
async fn an_end_in_the_past_ends_the_session_as_a_logout() {
    let (e, store) = engine();
    let c = stored_session(&e).await;
    let key = e
        .resolve(&c, IfMissing::Nothing, NOW)
        .await
        .unwrap()
        .session
        .unwrap()
        .key;
    let o = e
        .update(
            &c,
            &expiry(Expiry::At(NOW.saturating_sub(Duration::from_secs(1)))),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(o.status, Status::Ended);
    assert!(o.session.is_none());
    assert!(o.set_cookie[0].contains("Max-Age=0"), "{:?}", o.set_cookie);
    assert!(store.load(&key, NOW).await.unwrap().is_none());
    // A tombstone: the handle cannot be edited back to life.
    assert!(matches!(
        e.update(&c, &set("k", json!(3)), NOW).await,
        Err(Error::SessionNotFound)
    ));
}

#[tokio::test]
async fn a_browser_expiry_drops_remember_mes_persistent_cookie() {
    let (e, _) = engine();
    let o = e
        .login(
            "",
            Login::for_user("alice").with_lifetime(Lifetime::Remembered),
            NOW,
        )
        .await
        .unwrap();
    assert!(max_age(&o).is_some());
    let c = cookie(&o);
    let o = e.update(&c, &expiry(Expiry::Browser), NOW).await.unwrap();
    assert_eq!(o.session.as_ref().unwrap().record.expiry, Expiry::Browser);
    assert_eq!(max_age(&o), None, "{:?}", o.set_cookie);
    // The remember-me timeouts still apply (7 days idle).
    assert_eq!(
        o.session.as_ref().unwrap().record.expires_at(),
        after(7 * 86_400)
    );
}

#[tokio::test]
async fn an_idle_expiry_of_zero_is_refused_without_a_write() {
    let (e, store) = engine();
    let c = stored_session(&e).await;
    let before = e.resolve(&c, IfMissing::Nothing, NOW).await.unwrap();
    let key = before.session.as_ref().unwrap().key;
    let version = store.load(&key, NOW).await.unwrap().unwrap().version;
    assert!(matches!(
        e.update(&c, &expiry(Expiry::Idle(0)), NOW).await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(
        store.load(&key, NOW).await.unwrap().unwrap().version,
        version
    );
}

#[tokio::test]
async fn an_expiry_moves_a_client_side_session_to_the_store() {
    let store = Arc::new(MemoryStore::new());
    let e = engine_with(store.clone(), AnonymousMode::Client);
    let o = e.update("", &set("k", json!(1)), NOW).await.unwrap();
    assert_eq!(o.session.as_ref().unwrap().storage, Storage::Cookie);
    let anon = cookie(&o);
    let o = e
        .update(&anon, &expiry(Expiry::Idle(120)), NOW)
        .await
        .unwrap();
    let s = o.session.as_ref().unwrap();
    assert_eq!(s.storage, Storage::Store);
    assert_eq!(s.record.expiry, Expiry::Idle(120));
    assert_eq!(s.record.data["k"], json!(1));
    assert!(store.load(&s.key, NOW).await.unwrap().is_some());
    // The defaults on a client-side session change nothing and write nothing.
    let o = e.update("", &set("k", json!(1)), NOW).await.unwrap();
    let o = e
        .update(&cookie(&o), &expiry(Expiry::Default), NOW)
        .await
        .unwrap();
    assert_eq!(o.status, Status::Unchanged);
    assert_eq!(o.session.as_ref().unwrap().storage, Storage::Cookie);
}

#[tokio::test]
async fn a_login_carries_the_expiry_with_the_data() {
    let (e, _) = engine();
    let c = stored_session(&e).await;
    let _ = e.update(&c, &expiry(Expiry::Idle(300)), NOW).await.unwrap();
    let o = e.login(&c, Login::for_user("bob"), after(1)).await.unwrap();
    let r = &o.session.as_ref().unwrap().record;
    assert_eq!(r.expiry, Expiry::Idle(300));
    assert_eq!(r.expires_at(), after(301));
    assert_eq!(r.data["k"], json!(1));
}

#[tokio::test]
async fn rotation_is_a_new_handle_for_the_same_session() {
    let (e, store) = engine();
    let mut edits = set("k", json!("v"));
    edits.secrets.insert("otp".to_owned(), json!("one-time"));
    edits.expiry = Some(Expiry::Idle(600));
    let o = e.update("", &edits, NOW).await.unwrap();
    let old = cookie(&o);
    let old_session = o.session.unwrap();
    let o = e.rotate(&old, after(5)).await.unwrap();
    assert_eq!(o.status, Status::Rotated);
    let new = cookie(&o);
    assert_ne!(new, old);
    let s = o.session.as_ref().unwrap();
    assert_ne!(s.key, old_session.key);
    assert_eq!(s.record.data, old_session.record.data);
    assert_eq!(s.record.created_at, old_session.record.created_at);
    assert_eq!(s.record.expiry, Expiry::Idle(600));
    assert_eq!(s.record.version, 1);
    assert_eq!(e.secret(s, "otp", after(5)), Some(json!("one-time")));
    assert_eq!(max_age(&o), Some(595), "the cookie follows the kept expiry");
    // The old handle is retired (a tombstone), the new one resolves.
    assert!(
        store
            .load(&old_session.key, after(5))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        e.resolve(&old, IfMissing::Nothing, after(5))
            .await
            .unwrap()
            .status,
        Status::Ended
    );
    assert!(matches!(
        e.update(&old, &set("k", json!(0)), after(5)).await,
        Err(Error::SessionNotFound)
    ));
    assert_eq!(
        e.resolve(&new, IfMissing::Nothing, after(5))
            .await
            .unwrap()
            .session
            .unwrap()
            .record
            .data["k"],
        json!("v")
    );
    // Rotating the retired handle again finds nothing.
    assert!(matches!(
        e.rotate(&old, after(6)).await,
        Err(Error::SessionNotFound)
    ));
}

#[tokio::test]
async fn rotation_keeps_the_user_and_the_index() {
    let (e, _) = engine();
    let o = e
        .login(
            "",
            Login::for_user("carol").with_lifetime(Lifetime::Remembered),
            NOW,
        )
        .await
        .unwrap();
    let old_key = o.session.as_ref().unwrap().key;
    let o = e.rotate(&cookie(&o), after(1)).await.unwrap();
    let s = o.session.as_ref().unwrap();
    assert_eq!(s.record.user_id(), Some("carol"));
    assert!(s.record.remember);
    let list = e.list_user_sessions("carol", after(1)).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].key, s.key);
    assert_ne!(list[0].key, old_key);
}

#[tokio::test]
async fn rotation_needs_a_stored_session_and_changes_nothing_otherwise() {
    let store = Arc::new(MemoryStore::new());
    let e = engine_with(store.clone(), AnonymousMode::Client);
    assert!(matches!(
        e.rotate("", NOW).await,
        Err(Error::SessionNotFound)
    ));
    // A client-side session has no stored handle to retire.
    let o = e.update("", &set("k", json!(1)), NOW).await.unwrap();
    assert!(matches!(
        e.rotate(&cookie(&o), NOW).await,
        Err(Error::SessionNotFound)
    ));
    assert!(matches!(
        e.rotate("__Host-tessera=not-a-handle", NOW).await,
        Err(Error::MalformedCookie)
    ));
    assert_eq!(store.purge_expired(after(86_400 * 400)).await.unwrap(), 0);
}

#[tokio::test]
async fn must_create_makes_a_stored_session_whatever_the_anonymous_mode() {
    let store = Arc::new(MemoryStore::new());
    let e = engine_with(store.clone(), AnonymousMode::Client);
    let o = e.resolve("", IfMissing::CreateStored, NOW).await.unwrap();
    assert_eq!(o.status, Status::Created);
    let s = o.session.as_ref().unwrap();
    assert_eq!(s.storage, Storage::Store);
    assert!(store.load(&s.key, NOW).await.unwrap().is_some());
    assert!(
        o.set_cookie[0].starts_with("__Host-tessera=a"),
        "{:?}",
        o.set_cookie
    );
    // The update form: the data in the one write that creates it, even without data.
    let mut edits = set("k", json!([1, 2]));
    edits.in_store = true;
    let o = e.update("", &edits, NOW).await.unwrap();
    assert_eq!(o.status, Status::Created);
    let s = o.session.as_ref().unwrap();
    assert_eq!(s.storage, Storage::Store);
    assert_eq!(s.record.version, 1, "one write");
    assert_eq!(
        store.load(&s.key, NOW).await.unwrap().unwrap().data["k"],
        json!([1, 2])
    );
    let empty = Edits {
        in_store: true,
        ..Edits::default()
    };
    let o = e.update("", &empty, NOW).await.unwrap();
    assert_eq!(o.session.as_ref().unwrap().storage, Storage::Store);
    // Without it, client-side mode keeps a new session in its cookie.
    let o = e
        .resolve("", IfMissing::CreateAnonymous, NOW)
        .await
        .unwrap();
    assert_eq!(o.session.as_ref().unwrap().storage, Storage::Cookie);
}

#[tokio::test]
async fn a_read_without_renewal_writes_nothing() {
    let (e, store) = engine();
    let c = stored_session(&e).await;
    let at = after(20 * 60);
    let key = e
        .resolve_with(&c, IfMissing::Nothing, Renewal::Never, NOW)
        .await
        .unwrap()
        .session
        .unwrap()
        .key;
    let version = store.load(&key, at).await.unwrap().unwrap().version;
    let o = e
        .resolve_with(&c, IfMissing::Nothing, Renewal::Never, at)
        .await
        .unwrap();
    assert_eq!(o.status, Status::Loaded);
    assert!(o.set_cookie.is_empty());
    assert_eq!(
        store.load(&key, at).await.unwrap().unwrap().version,
        version
    );
    // The same read may renew.
    let o = e.resolve(&c, IfMissing::Nothing, at).await.unwrap();
    assert_eq!(o.status, Status::Renewed);
    // A client-side session is not re-sealed either.
    let e = engine_with(Arc::new(MemoryStore::new()), AnonymousMode::Client);
    let o = e.update("", &set("k", json!(1)), NOW).await.unwrap();
    let o = e
        .resolve_with(&cookie(&o), IfMissing::Nothing, Renewal::Never, at)
        .await
        .unwrap();
    assert_eq!(o.status, Status::Loaded);
    assert!(o.set_cookie.is_empty());
}
