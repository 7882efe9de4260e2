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

/// A memory store whose `delete` fails while `failing` is set: a logout that fails after the
/// session's end was published.
#[derive(Debug, Default)]
struct FailingDelete {
    inner: MemoryStore,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl SessionStore for FailingDelete {
    fn backend(&self) -> &'static str {
        "failing-delete"
    }
    fn as_revocation_log(&self) -> Option<&dyn tessera_core::RevocationLog> {
        self.inner.as_revocation_log()
    }
    async fn create(
        &self,
        key: &tessera_core::StoreKey,
        record: &tessera_core::SessionRecord,
    ) -> tessera_core::Result<()> {
        self.inner.create(key, record).await
    }
    async fn load(
        &self,
        key: &tessera_core::StoreKey,
        now: Timestamp,
    ) -> tessera_core::Result<Option<tessera_core::SessionRecord>> {
        self.inner.load(key, now).await
    }
    async fn save(
        &self,
        key: &tessera_core::StoreKey,
        expected: u64,
        record: &tessera_core::SessionRecord,
        now: Timestamp,
    ) -> tessera_core::Result<()> {
        self.inner.save(key, expected, record, now).await
    }
    async fn delete(
        &self,
        key: &tessera_core::StoreKey,
        tombstone_until: Timestamp,
    ) -> tessera_core::Result<()> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tessera_core::Error::Timeout);
        }
        self.inner.delete(key, tombstone_until).await
    }
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> tessera_core::Result<Vec<(tessera_core::StoreKey, tessera_core::SessionRecord)>> {
        self.inner.list_user_sessions(user_id, now).await
    }
    async fn revoke_user(&self, user_id: &str, at: Timestamp) -> tessera_core::Result<()> {
        self.inner.revoke_user(user_id, at).await
    }
    async fn user_revoked_at(&self, user_id: &str) -> tessera_core::Result<Option<Timestamp>> {
        self.inner.user_revoked_at(user_id).await
    }
    async fn purge_expired(&self, now: Timestamp) -> tessera_core::Result<u64> {
        self.inner.purge_expired(now).await
    }
}

#[tokio::test]
async fn a_logout_that_fails_after_its_revocation_leaves_it_published_and_a_retry_ends_the_session()
{
    let store = Arc::new(FailingDelete::default());
    let e = engine(
        Stores::single(store.clone()),
        SessionConfig::default(),
        CookieConfig::default(),
    );
    let o = e.login("", login("alice"), NOW).await.unwrap();
    let c = cookie(&o);
    let log = store.as_revocation_log().unwrap();
    assert!(log.revocations_since(0, 10).await.unwrap().is_empty());

    // The store fails the tombstone: the caller gets an error, but the session's end is in
    // the revocation log already, so its tokens are refused from now on.
    store
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(e.logout(&c, NOW).await.is_err());
    let published = log.revocations_since(0, 10).await.unwrap();
    assert_eq!(published.len(), 1, "{published:?}");
    assert!(
        matches!(
            published[0].1.subject,
            tessera_core::RevokedSubject::Session(_)
        ),
        "{published:?}"
    );

    // The record is still there, so a retry finds it and ends it.
    store
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let o = e.logout(&c, NOW).await.unwrap();
    assert_eq!(o.status, Status::LoggedOut);
    let after = e.resolve(&c, IfMissing::Nothing, NOW).await.unwrap();
    assert!(after.session.is_none(), "{after:?}");
    let published = log.revocations_since(0, 10).await.unwrap();
    assert_eq!(published[0].1.subject, published.last().unwrap().1.subject);
}
