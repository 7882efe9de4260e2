//! An in-memory [`SessionStore`]: a real backend for tests, development and single-process
//! deployments that can lose their sessions on restart. Nothing survives the process.
//!
//! ```
//! use tessera_store_memory::MemoryStore;
//! let store = MemoryStore::new();
//! # let _ = store;
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod blobs;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tessera_core::{
    Error, KvEntry, KvKey, KvNamespace, KvStore, Result, Revocation, RevocationLog, SessionRecord,
    SessionStore, StoreKey, Timestamp,
};

#[derive(Debug)]
enum Entry {
    Live(SessionRecord),
    Tombstone { until: Timestamp },
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<StoreKey, Entry>,
    by_user: HashMap<String, BTreeSet<StoreKey>>,
    revoked: HashMap<String, Timestamp>,
    /// The opaque key-value namespace: value and expiry.
    kv: HashMap<Vec<u8>, (Vec<u8>, Timestamp)>,
    /// The keyed store: each namespace's values. Clearing one drops its map: in memory
    /// there is no generation to keep.
    namespaces: HashMap<KvNamespace, HashMap<KvKey, KvEntry>>,
    /// The revocation log, in sequence order.
    revocation_log: Vec<(u64, Revocation)>,
    /// Versioned blobs: value and version.
    blobs: HashMap<String, (Vec<u8>, u64)>,
}

impl Inner {
    /// The live record under `key` at `now` ([`SessionRecord::is_live`]), if any.
    fn live(&self, key: &StoreKey, now: Timestamp) -> Option<&SessionRecord> {
        match self.entries.get(key) {
            Some(Entry::Live(r)) => {
                let revoked_at = r.user_id().and_then(|u| self.revoked.get(u)).copied();
                r.is_live(now, revoked_at).then_some(r)
            }
            Some(Entry::Tombstone { .. }) | None => None,
        }
    }

    fn unindex(&mut self, key: &StoreKey, user: Option<&str>) {
        if let Some(u) = user
            && let Some(set) = self.by_user.get_mut(u)
        {
            set.remove(key);
            if set.is_empty() {
                self.by_user.remove(u);
            }
        }
    }
}

/// Sessions in a mutex-guarded map. Operations never hold the lock across an `await`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied edit (each operation
        // mutates with single map calls), so a poisoned lock is safe to keep using.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn as_kv(&self) -> Option<&dyn KvStore> {
        Some(self)
    }

    fn as_revocation_log(&self) -> Option<&dyn RevocationLog> {
        Some(self)
    }

    fn as_blobs(&self) -> Option<&dyn tessera_core::BlobStore> {
        Some(self)
    }

    async fn create(&self, key: &StoreKey, record: &SessionRecord) -> Result<()> {
        let mut g = self.lock();
        if g.entries.contains_key(key) {
            return Err(Error::AlreadyExists);
        }
        if let Some(u) = record.user_id() {
            g.by_user.entry(u.to_owned()).or_default().insert(*key);
        }
        g.entries.insert(*key, Entry::Live(record.clone()));
        Ok(())
    }

    async fn load(&self, key: &StoreKey, now: Timestamp) -> Result<Option<SessionRecord>> {
        Ok(self.lock().live(key, now).cloned())
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<()> {
        let mut g = self.lock();
        let current = g.live(key, now).ok_or(Error::NotFound)?;
        if current.version != expected {
            return Err(Error::Conflict);
        }
        let old_user = current.user_id().map(str::to_owned);
        if old_user.as_deref() != record.user_id() {
            g.unindex(key, old_user.as_deref());
            if let Some(u) = record.user_id() {
                g.by_user.entry(u.to_owned()).or_default().insert(*key);
            }
        }
        g.entries.insert(*key, Entry::Live(record.clone()));
        Ok(())
    }

    async fn delete(&self, key: &StoreKey, tombstone_until: Timestamp) -> Result<()> {
        let mut g = self.lock();
        let prev = g.entries.insert(
            *key,
            Entry::Tombstone {
                until: tombstone_until,
            },
        );
        match prev {
            Some(Entry::Live(r)) => g.unindex(key, r.user_id()),
            Some(Entry::Tombstone { until }) if until > tombstone_until => {
                g.entries.insert(*key, Entry::Tombstone { until });
            }
            _ => {}
        }
        Ok(())
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<(StoreKey, SessionRecord)>> {
        let g = self.lock();
        let Some(keys) = g.by_user.get(user_id) else {
            return Ok(vec![]);
        };
        Ok(keys
            .iter()
            .filter_map(|k| g.live(k, now).map(|r| (*k, r.clone())))
            .collect())
    }

    async fn revoke_user(&self, user_id: &str, at: Timestamp) -> Result<()> {
        let mut g = self.lock();
        let slot = g.revoked.entry(user_id.to_owned()).or_insert(at);
        *slot = (*slot).max(at);
        Ok(())
    }

    async fn user_revoked_at(&self, user_id: &str) -> Result<Option<Timestamp>> {
        Ok(self.lock().revoked.get(user_id).copied())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64> {
        let mut g = self.lock();
        let dead: Vec<(StoreKey, Option<String>)> = g
            .entries
            .iter()
            .filter_map(|(k, e)| match e {
                Entry::Live(r) if r.is_expired(now) => Some((*k, r.user_id().map(str::to_owned))),
                Entry::Tombstone { until } if *until <= now => Some((*k, None)),
                _ => None,
            })
            .collect();
        for (k, user) in &dead {
            g.entries.remove(k);
            g.unindex(k, user.as_deref());
        }
        Ok(dead.len() as u64)
    }
}

#[async_trait]
impl KvStore for MemoryStore {
    async fn kv_get(&self, key: &[u8], now: Timestamp) -> Result<Option<Vec<u8>>> {
        Ok(match self.lock().kv.get(key) {
            Some((v, until)) if now < *until => Some(v.clone()),
            _ => None,
        })
    }

    async fn kv_put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> Result<()> {
        self.lock()
            .kv
            .insert(key.to_vec(), (value.to_vec(), expires_at));
        Ok(())
    }

    async fn kv_delete(&self, key: &[u8]) -> Result<()> {
        self.lock().kv.remove(key);
        Ok(())
    }

    async fn kv_purge_expired(&self, now: Timestamp) -> Result<u64> {
        let mut g = self.lock();
        let before = g.kv.len();
        g.kv.retain(|_, (_, until)| now < *until);
        let mut purged = (before - g.kv.len()) as u64;
        for values in g.namespaces.values_mut() {
            let before = values.len();
            values.retain(|_, e| now < e.expires_at);
            purged += (before - values.len()) as u64;
        }
        g.namespaces.retain(|_, values| !values.is_empty());
        Ok(purged)
    }

    async fn ns_get(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        now: Timestamp,
    ) -> Result<Option<KvEntry>> {
        let g = self.lock();
        let e = g.namespaces.get(ns).and_then(|values| values.get(key));
        Ok(e.filter(|e| now < e.expires_at).cloned())
    }

    async fn ns_put(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        value: &[u8],
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> Result<()> {
        let entry = KvEntry {
            value: value.to_vec(),
            expires_at,
        };
        self.lock()
            .namespaces
            .entry(ns.clone())
            .or_default()
            .insert(*key, entry);
        Ok(())
    }

    async fn ns_touch(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let mut g = self.lock();
        let e = g
            .namespaces
            .get_mut(ns)
            .and_then(|values| values.get_mut(key));
        Ok(match e {
            Some(e) if now < e.expires_at => {
                e.expires_at = expires_at;
                true
            }
            _ => false,
        })
    }

    async fn ns_delete(&self, ns: &KvNamespace, key: &KvKey, now: Timestamp) -> Result<bool> {
        let mut g = self.lock();
        let gone = g
            .namespaces
            .get_mut(ns)
            .and_then(|values| values.remove(key));
        Ok(gone.is_some_and(|e| now < e.expires_at))
    }

    async fn ns_count(&self, ns: &KvNamespace, _now: Timestamp) -> Result<u64> {
        Ok(self.lock().namespaces.get(ns).map_or(0, |v| v.len() as u64))
    }

    async fn ns_clear(&self, ns: &KvNamespace, _now: Timestamp) -> Result<()> {
        let gone = self.lock().namespaces.remove(ns);
        // Dropped after the lock is released: other requests do not wait for the free.
        drop(gone);
        Ok(())
    }
}

#[async_trait]
impl RevocationLog for MemoryStore {
    async fn log_revocation(&self, r: &Revocation) -> Result<u64> {
        let mut g = self.lock();
        let seq = g.revocation_log.last().map_or(1, |(n, _)| n + 1);
        g.revocation_log.push((seq, r.clone()));
        Ok(seq)
    }

    async fn revocations_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Revocation)>> {
        let g = self.lock();
        let start = g.revocation_log.partition_point(|(n, _)| *n <= after);
        Ok(g.revocation_log
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn purge_revocations(&self, before: Timestamp) -> Result<u64> {
        let mut g = self.lock();
        let n = g.revocation_log.len();
        g.revocation_log.retain(|(_, r)| r.at >= before);
        Ok((n - g.revocation_log.len()) as u64)
    }
}
