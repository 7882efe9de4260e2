//! A store in its own temporary directory, removed when the store is dropped.

// Test helpers outside `#[test]` functions, where clippy.toml's test allowances don't reach.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use async_trait::async_trait;
use tessera_core::{
    KvEntry, KvKey, KvNamespace, Result, SessionRecord, SessionStore, StoreKey, Timestamp,
};
use tessera_store_redb::RedbStore;

/// A [`RedbStore`] that owns the temporary directory its file lives in. Fields drop in order:
/// the database closes before the directory goes.
#[derive(Debug)]
pub(crate) struct TempStore {
    store: RedbStore,
    _dir: tempfile::TempDir,
}

impl TempStore {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("sessions.redb")).unwrap();
        Self { store, _dir: dir }
    }
}

/// A fresh path for a store file that does not exist yet, in a directory that does not either.
pub(crate) fn fresh_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested").join("data").join("sessions.redb")
}

#[async_trait]
impl SessionStore for TempStore {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }
    async fn create(&self, key: &StoreKey, record: &SessionRecord) -> Result<()> {
        self.store.create(key, record).await
    }
    async fn load(&self, key: &StoreKey, now: Timestamp) -> Result<Option<SessionRecord>> {
        self.store.load(key, now).await
    }
    async fn save(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<()> {
        self.store.save(key, expected, record, now).await
    }
    async fn delete(&self, key: &StoreKey, tombstone_until: Timestamp) -> Result<()> {
        self.store.delete(key, tombstone_until).await
    }
    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<(StoreKey, SessionRecord)>> {
        self.store.list_user_sessions(user_id, now).await
    }
    async fn revoke_user(&self, user_id: &str, at: Timestamp) -> Result<()> {
        self.store.revoke_user(user_id, at).await
    }
    async fn user_revoked_at(&self, user_id: &str) -> Result<Option<Timestamp>> {
        self.store.user_revoked_at(user_id).await
    }
    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.store.purge_expired(now).await
    }
}

#[async_trait]
impl tessera_core::KvStore for TempStore {
    async fn kv_get(&self, key: &[u8], now: Timestamp) -> Result<Option<Vec<u8>>> {
        self.store.kv_get(key, now).await
    }
    async fn kv_put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        self.store.kv_put(key, value, expires_at, now).await
    }
    async fn kv_delete(&self, key: &[u8]) -> Result<()> {
        self.store.kv_delete(key).await
    }
    async fn kv_purge_expired(&self, now: Timestamp) -> Result<u64> {
        self.store.kv_purge_expired(now).await
    }
    async fn ns_get(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        now: Timestamp,
    ) -> Result<Option<KvEntry>> {
        self.store.ns_get(ns, key, now).await
    }
    async fn ns_put(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        self.store.ns_put(ns, key, value, expires_at, now).await
    }
    async fn ns_touch(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.store.ns_touch(ns, key, expires_at, now).await
    }
    async fn ns_delete(&self, ns: &KvNamespace, key: &KvKey, now: Timestamp) -> Result<bool> {
        self.store.ns_delete(ns, key, now).await
    }
    async fn ns_count(&self, ns: &KvNamespace, now: Timestamp) -> Result<u64> {
        self.store.ns_count(ns, now).await
    }
    async fn ns_clear(&self, ns: &KvNamespace, now: Timestamp) -> Result<()> {
        self.store.ns_clear(ns, now).await
    }
}

#[async_trait]
impl tessera_core::RevocationLog for TempStore {
    async fn log_revocation(&self, r: &tessera_core::Revocation) -> Result<u64> {
        self.store.log_revocation(r).await
    }
    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, tessera_core::Revocation)>> {
        self.store.revocations_since(after, limit).await
    }
    async fn purge_revocations(&self, before: Timestamp) -> Result<u64> {
        self.store.purge_revocations(before).await
    }
}
