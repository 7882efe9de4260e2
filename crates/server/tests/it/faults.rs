//! A store that hangs: endpoints that need it answer 503 within the store deadline, the rest
//! keep working, and the service recovers by itself when the store answers again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::json;
use tessera::bounded::Bounded;
use tessera_core::{
    KvEntry, KvKey, KvNamespace, KvStore, Result, SessionRecord, SessionStore, StoreKey, Timestamp,
};
use tessera_server::Settings;
use tessera_store_memory::MemoryStore;

use crate::common::{KEY, TestServer, TestSettings};

/// A memory store whose every operation hangs while `hang` is set.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    hang: AtomicBool,
}

impl Flaky {
    async fn gate(&self) {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl SessionStore for Flaky {
    fn backend(&self) -> &'static str {
        "flaky"
    }
    fn as_kv(&self) -> Option<&dyn KvStore> {
        Some(self)
    }
    async fn create(&self, k: &StoreKey, r: &SessionRecord) -> Result<()> {
        self.gate().await;
        self.inner.create(k, r).await
    }
    async fn load(&self, k: &StoreKey, now: Timestamp) -> Result<Option<SessionRecord>> {
        self.gate().await;
        self.inner.load(k, now).await
    }
    async fn save(&self, k: &StoreKey, e: u64, r: &SessionRecord, now: Timestamp) -> Result<()> {
        self.gate().await;
        self.inner.save(k, e, r, now).await
    }
    async fn delete(&self, k: &StoreKey, until: Timestamp) -> Result<()> {
        self.gate().await;
        self.inner.delete(k, until).await
    }
    async fn list_user_sessions(
        &self,
        u: &str,
        now: Timestamp,
    ) -> Result<Vec<(StoreKey, SessionRecord)>> {
        self.gate().await;
        self.inner.list_user_sessions(u, now).await
    }
    async fn revoke_user(&self, u: &str, at: Timestamp) -> Result<()> {
        self.gate().await;
        self.inner.revoke_user(u, at).await
    }
    async fn user_revoked_at(&self, u: &str) -> Result<Option<Timestamp>> {
        self.gate().await;
        self.inner.user_revoked_at(u).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.gate().await;
        self.inner.purge_expired(now).await
    }
}

#[async_trait]
impl KvStore for Flaky {
    async fn kv_get(&self, k: &[u8], now: Timestamp) -> Result<Option<Vec<u8>>> {
        self.gate().await;
        self.inner.kv_get(k, now).await
    }
    async fn kv_put(&self, k: &[u8], v: &[u8], until: Timestamp, now: Timestamp) -> Result<()> {
        self.gate().await;
        self.inner.kv_put(k, v, until, now).await
    }
    async fn kv_delete(&self, k: &[u8]) -> Result<()> {
        self.gate().await;
        self.inner.kv_delete(k).await
    }
    async fn kv_purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.gate().await;
        self.inner.kv_purge_expired(now).await
    }
    async fn ns_get(&self, ns: &KvNamespace, k: &KvKey, now: Timestamp) -> Result<Option<KvEntry>> {
        self.gate().await;
        self.inner.ns_get(ns, k, now).await
    }
    async fn ns_put(
        &self,
        ns: &KvNamespace,
        k: &KvKey,
        v: &[u8],
        until: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        self.gate().await;
        self.inner.ns_put(ns, k, v, until, now).await
    }
    async fn ns_touch(
        &self,
        ns: &KvNamespace,
        k: &KvKey,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.gate().await;
        self.inner.ns_touch(ns, k, until, now).await
    }
    async fn ns_delete(&self, ns: &KvNamespace, k: &KvKey, now: Timestamp) -> Result<bool> {
        self.gate().await;
        self.inner.ns_delete(ns, k, now).await
    }
    async fn ns_count(&self, ns: &KvNamespace, now: Timestamp) -> Result<u64> {
        self.gate().await;
        self.inner.ns_count(ns, now).await
    }
    async fn ns_clear(&self, ns: &KvNamespace, now: Timestamp) -> Result<()> {
        self.gate().await;
        self.inner.ns_clear(ns, now).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_store_gives_bounded_503s_and_the_service_recovers() {
    let flaky = Arc::new(Flaky::default());
    let limit = Duration::from_millis(200);
    let bounded: Arc<dyn SessionStore> = Arc::new(Bounded::new(flaky.clone(), limit));
    let s = TestServer::start(bounded, Settings::default_for_tests()).await;
    let (cookie, _) = s.login("", "alice").await;
    let r = s
        .client
        .post(format!("{}/sessions/v1/k", s.base))
        .bearer_auth(KEY)
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    flaky.hang.store(true, Ordering::SeqCst);
    for (path, body) in [
        ("/v1/session/resolve", json!({"cookie": cookie})),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"x": 1}}),
        ),
        (
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "bob"}}),
        ),
        ("/v1/session/logout", json!({"cookie": cookie})),
    ] {
        let start = tokio::time::Instant::now();
        let (st, v) = s.post(path, body).await;
        let took = start.elapsed();
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{path}: {v}");
        assert_eq!(v["type"], "urn:tessera:problem:store-unavailable");
        assert!(took < Duration::from_secs(2), "{path} took {took:?}");
    }
    let start = tokio::time::Instant::now();
    let r = s
        .client
        .get(format!("{}/sessions/v1/k", s.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.elapsed() < Duration::from_secs(2));
    // What does not need the store keeps working; readiness says the store is out.
    let get = |p: &str| s.client.get(format!("{}{p}", s.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/metrics").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/openapi.json").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get("/readyz").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The store answers again: so does the service, with the session intact.
    flaky.hang.store(false, Ordering::SeqCst);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["session"]["user"]["id"], "alice");
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"after": true}}),
        )
        .await;
    assert_eq!(v["session"]["data"]["after"], true);
}
