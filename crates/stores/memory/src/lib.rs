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

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tessera_core::{
    Error, KvEntry, KvKey, KvNamespace, KvStore, Result, Revocation, RevocationLog, SessionRecord,
    SessionStore, StoreKey, Timestamp,
};

mod codec;

use codec::Entry;

/// One session or tombstone: its store key, then its compact encoding ([`codec`]), in one
/// allocation. Hashed and compared by the key alone, so the set finds it by `[u8; 32]`.
#[derive(Debug)]
struct Slot(Box<[u8]>);

/// What [`Slot::key`] answers for a slot shorter than a key, which [`codec`] never makes.
const NO_KEY: [u8; 32] = [0; 32];

impl Slot {
    fn key(&self) -> &[u8; 32] {
        self.0.first_chunk().unwrap_or(&NO_KEY)
    }

    fn entry(&self) -> Result<Entry<'_>> {
        codec::entry(&self.0)
    }
}

impl Borrow<[u8; 32]> for Slot {
    fn borrow(&self) -> &[u8; 32] {
        self.key()
    }
}

// `Hash` and `Eq` must agree with `[u8; 32]`'s for `Borrow` lookups: both go through the key.
impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Slot {}

#[derive(Debug, Default)]
struct Inner {
    entries: HashSet<Slot>,
    /// The user index: (keyed hash of the user id, store key). A hash instead of the id
    /// keeps an entry at 40 bytes; two users whose ids share a hash only share a range, and
    /// `list_user_sessions` keeps the records whose user id is the one asked for.
    by_user: BTreeSet<(u64, [u8; 32])>,
    /// The key of the user-id hash, random per store: nobody outside can aim at a range.
    user_hasher: RandomState,
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
    /// The entry under `key` if it is a record live at `now` ([`SessionRecord::is_live`]),
    /// with its user id.
    fn live(&self, key: &[u8; 32], now: Timestamp) -> Result<Option<(&Slot, Option<&str>)>> {
        let Some(slot) = self.entries.get(key) else {
            return Ok(None);
        };
        Ok(match slot.entry()? {
            Entry::Live { times, user_id } => {
                let revoked_at = user_id.and_then(|u| self.revoked.get(u)).copied();
                times.is_live(now, revoked_at).then_some((slot, user_id))
            }
            Entry::Tombstone { .. } => None,
        })
    }

    fn user_hash(&self, user: &str) -> u64 {
        self.user_hasher.hash_one(user)
    }

    fn index(&mut self, key: &[u8; 32], user: Option<&str>) {
        if let Some(u) = user {
            let h = self.user_hash(u);
            self.by_user.insert((h, *key));
        }
    }

    fn unindex(&mut self, key: &[u8; 32], user: Option<&str>) {
        if let Some(u) = user {
            let h = self.user_hash(u);
            self.by_user.remove(&(h, *key));
        }
    }
}

/// Sessions in a mutex-guarded set of compact entries. Operations never hold the lock across
/// an `await`.
///
/// # Memory
///
/// Each session is one allocation: its key, its times and version at fixed width, its user's
/// strings, and its `data`, `claims` and `secrets` maps as JSON text; the set holds a pointer
/// to it, and the user index 40 bytes (a hash of the user id and the key). `load` decodes
/// the record from that form. With 1 million sessions this is measured against the raw size
/// of what they hold in BENCHMARKS.md, "Memory" (`scripts/bench-memory`).
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
        // decides before it mutates, with single set calls), so a poisoned lock is safe to
        // keep using.
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
        let slot = Slot(codec::encode_record(key, record)?);
        let mut g = self.lock();
        if g.entries.contains(key.as_bytes()) {
            return Err(Error::AlreadyExists);
        }
        g.index(key.as_bytes(), record.user_id());
        g.entries.insert(slot);
        Ok(())
    }

    async fn load(&self, key: &StoreKey, now: Timestamp) -> Result<Option<SessionRecord>> {
        let g = self.lock();
        match g.live(key.as_bytes(), now)? {
            Some((slot, _)) => codec::decode_record(&slot.0),
            None => Ok(None),
        }
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<()> {
        let slot = Slot(codec::encode_record(key, record)?);
        let mut g = self.lock();
        let (current, old_user) = g.live(key.as_bytes(), now)?.ok_or(Error::NotFound)?;
        let Entry::Live { times, .. } = current.entry()? else {
            return Err(Error::Unreachable("a live entry is a record"));
        };
        if times.version != expected {
            return Err(Error::Conflict);
        }
        let old_user = old_user.map(str::to_owned);
        if old_user.as_deref() != record.user_id() {
            g.unindex(key.as_bytes(), old_user.as_deref());
            g.index(key.as_bytes(), record.user_id());
        }
        g.entries.replace(slot);
        Ok(())
    }

    async fn delete(&self, key: &StoreKey, tombstone_until: Timestamp) -> Result<()> {
        let mut g = self.lock();
        let old_user = match g.entries.get(key.as_bytes()).map(Slot::entry).transpose()? {
            // A longer tombstone stays.
            Some(Entry::Tombstone { until }) if until > tombstone_until => return Ok(()),
            Some(Entry::Live { user_id, .. }) => user_id.map(str::to_owned),
            Some(Entry::Tombstone { .. }) | None => None,
        };
        g.unindex(key.as_bytes(), old_user.as_deref());
        g.entries
            .replace(Slot(codec::encode_tombstone(key, tombstone_until)));
        Ok(())
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<(StoreKey, SessionRecord)>> {
        let g = self.lock();
        let h = g.user_hash(user_id);
        let mut out = vec![];
        for (_, key) in g.by_user.range((h, [0; 32])..=(h, [0xff; 32])) {
            if let Some((slot, Some(u))) = g.live(key, now)?
                && u == user_id
                && let Some(r) = codec::decode_record(&slot.0)?
            {
                out.push((StoreKey::from_bytes(*key), r));
            }
        }
        Ok(out)
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
        let mut dead: Vec<([u8; 32], Option<String>)> = vec![];
        for slot in &g.entries {
            match slot.entry()? {
                Entry::Live { times, user_id } if times.is_expired(now) => {
                    dead.push((*slot.key(), user_id.map(str::to_owned)));
                }
                Entry::Tombstone { until } if until <= now => dead.push((*slot.key(), None)),
                _ => {}
            }
        }
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
