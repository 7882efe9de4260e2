//! A deadline on every store operation, so a store that hangs costs a bounded wait and an
//! [`Error::Timeout`](tessera_core::Error::Timeout) instead of a request that never ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{
    Blob, BlobStore, KvEntry, KvKey, KvNamespace, KvStore, Result, Revocation, RevocationLog,
    SessionRecord, SessionStore, StoreKey, Timestamp,
};

/// Wraps a store so each operation fails with `Timeout` after `limit`.
///
/// # ⚠️ Warning
///
/// A timed-out write may still complete in the backend (the request was sent): callers see
/// `Timeout`, not "nothing happened". The engine's writes are compare-and-set or idempotent,
/// so a retry after a timeout is safe.
#[derive(Debug)]
pub struct Bounded {
    inner: Arc<dyn SessionStore>,
    limit: Duration,
}

impl Bounded {
    /// `inner` with a deadline of `limit` on every operation.
    pub fn new(inner: Arc<dyn SessionStore>, limit: Duration) -> Self {
        Self { inner, limit }
    }

    async fn within<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.limit, op)
            .await
            .unwrap_or(Err(tessera_core::Error::Timeout))
    }

    fn kv(&self) -> Result<&dyn KvStore> {
        self.inner.as_kv().ok_or(tessera_core::Error::Unreachable(
            "kv on a store without one",
        ))
    }
}

#[async_trait]
impl SessionStore for Bounded {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn directory(&self) -> Option<&std::path::Path> {
        self.inner.directory()
    }

    fn as_kv(&self) -> Option<&dyn KvStore> {
        self.inner.as_kv().map(|_| self as &dyn KvStore)
    }

    fn as_revocation_log(&self) -> Option<&dyn RevocationLog> {
        self.inner
            .as_revocation_log()
            .map(|_| self as &dyn RevocationLog)
    }

    fn as_blobs(&self) -> Option<&dyn BlobStore> {
        self.inner.as_blobs().map(|_| self as &dyn BlobStore)
    }

    async fn create(&self, key: &StoreKey, record: &SessionRecord) -> Result<()> {
        self.within(self.inner.create(key, record)).await
    }

    async fn load(&self, key: &StoreKey, now: Timestamp) -> Result<Option<SessionRecord>> {
        self.within(self.inner.load(key, now)).await
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<()> {
        self.within(self.inner.save(key, expected, record, now))
            .await
    }

    async fn delete(&self, key: &StoreKey, tombstone_until: Timestamp) -> Result<()> {
        self.within(self.inner.delete(key, tombstone_until)).await
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<(StoreKey, SessionRecord)>> {
        self.within(self.inner.list_user_sessions(user_id, now))
            .await
    }

    async fn revoke_user(&self, user_id: &str, at: Timestamp) -> Result<()> {
        self.within(self.inner.revoke_user(user_id, at)).await
    }

    async fn user_revoked_at(&self, user_id: &str) -> Result<Option<Timestamp>> {
        self.within(self.inner.user_revoked_at(user_id)).await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        // Purge is a background sweep that may legitimately take longer than a request.
        self.inner.purge_expired(now).await
    }
}

/// Only reachable through [`SessionStore::as_kv`], which exists only when the inner store
/// has a key-value namespace; the `Unreachable` branches cannot be taken.
#[async_trait]
impl KvStore for Bounded {
    async fn kv_get(&self, key: &[u8], now: Timestamp) -> Result<Option<Vec<u8>>> {
        match self.inner.as_kv() {
            Some(kv) => self.within(kv.kv_get(key, now)).await,
            None => Err(tessera_core::Error::Unreachable(
                "kv_get on a store without one",
            )),
        }
    }

    async fn kv_put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        match self.inner.as_kv() {
            Some(kv) => self.within(kv.kv_put(key, value, expires_at, now)).await,
            None => Err(tessera_core::Error::Unreachable(
                "kv_put on a store without one",
            )),
        }
    }

    async fn kv_delete(&self, key: &[u8]) -> Result<()> {
        match self.inner.as_kv() {
            Some(kv) => self.within(kv.kv_delete(key)).await,
            None => Err(tessera_core::Error::Unreachable(
                "kv_delete on a store without one",
            )),
        }
    }

    async fn kv_purge_expired(&self, now: Timestamp) -> Result<u64> {
        match self.inner.as_kv() {
            Some(kv) => kv.kv_purge_expired(now).await,
            None => Err(tessera_core::Error::Unreachable(
                "kv purge on a store without one",
            )),
        }
    }

    async fn ns_get(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        now: Timestamp,
    ) -> Result<Option<KvEntry>> {
        self.within(self.kv()?.ns_get(ns, key, now)).await
    }

    async fn ns_put(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        self.within(self.kv()?.ns_put(ns, key, value, expires_at, now))
            .await
    }

    async fn ns_touch(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.within(self.kv()?.ns_touch(ns, key, expires_at, now))
            .await
    }

    async fn ns_delete(&self, ns: &KvNamespace, key: &KvKey, now: Timestamp) -> Result<bool> {
        self.within(self.kv()?.ns_delete(ns, key, now)).await
    }

    async fn ns_count(&self, ns: &KvNamespace, now: Timestamp) -> Result<u64> {
        self.within(self.kv()?.ns_count(ns, now)).await
    }

    async fn ns_clear(&self, ns: &KvNamespace, now: Timestamp) -> Result<()> {
        self.within(self.kv()?.ns_clear(ns, now)).await
    }
}

/// Only reachable through [`SessionStore::as_revocation_log`], which exists only when the
/// inner store has a log.
#[async_trait]
impl RevocationLog for Bounded {
    async fn log_revocation(&self, r: &Revocation) -> Result<u64> {
        match self.inner.as_revocation_log() {
            Some(log) => self.within(log.log_revocation(r)).await,
            None => Err(tessera_core::Error::Unreachable(
                "log_revocation without a log",
            )),
        }
    }

    async fn revocations_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Revocation)>> {
        match self.inner.as_revocation_log() {
            Some(log) => self.within(log.revocations_since(after, limit)).await,
            None => Err(tessera_core::Error::Unreachable(
                "revocations_since without a log",
            )),
        }
    }

    async fn purge_revocations(&self, before: Timestamp) -> Result<u64> {
        match self.inner.as_revocation_log() {
            Some(log) => log.purge_revocations(before).await,
            None => Err(tessera_core::Error::Unreachable(
                "purge_revocations without a log",
            )),
        }
    }
}

/// Only reachable through [`SessionStore::as_blobs`], which exists only when the inner
/// store has blobs.
#[async_trait]
impl BlobStore for Bounded {
    async fn blob_get(&self, name: &str) -> Result<Option<Blob>> {
        match self.inner.as_blobs() {
            Some(b) => self.within(b.blob_get(name)).await,
            None => Err(tessera_core::Error::Unreachable("blob_get without blobs")),
        }
    }

    async fn blob_put(&self, name: &str, expected: u64, value: &[u8]) -> Result<u64> {
        match self.inner.as_blobs() {
            Some(b) => self.within(b.blob_put(name, expected, value)).await,
            None => Err(tessera_core::Error::Unreachable("blob_put without blobs")),
        }
    }
}
