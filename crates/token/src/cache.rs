//! A bounded memo of tokens whose signature already verified (DESIGN §10: a browser sends
//! the same token cookie on every request until it is refreshed, so a token seen again should
//! cost a hash lookup, not a signature check).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::jws::Decoded;

/// Shards, so that two cores verifying at once rarely wait on one lock.
const SHARDS: usize = 16;

/// A bounded cache of verified tokens, for [`crate::Keyring::verify_cached_at`].
///
/// What it remembers is only what the token's bytes say: the decoded header and claims and
/// the thumbprint of the key whose signature matched. Everything that can change later is
/// checked again on every hit: the key must still be in the keyring, not revoked and valid,
/// and the times, issuer, audience, type and revocations are checked against the caller's
/// config and `now`. So a hit gives exactly the outcome a full verification would.
///
/// Entries are keyed by the SHA-256 of the token, so the cache holds no token. It keeps at
/// most `capacity` entries, in two generations per shard: when the young one is full it
/// becomes the old one and the previous old one is dropped, and a hit in the old generation
/// moves the entry back to the young one (an approximate LRU with O(1) work per operation).
/// Only tokens that passed every check are inserted, so an attacker without a signing key
/// cannot fill it.
pub struct VerifiedCache {
    shards: Box<[Mutex<Shard>]>,
    per_generation: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Shard {
    young: HashMap<[u8; 32], Arc<Decoded>, DigestHash>,
    old: HashMap<[u8; 32], Arc<Decoded>, DigestHash>,
}

/// Keys are SHA-256 digests, already uniform: their first eight bytes are the hash (SipHash
/// over them again costs a few percent of a cache hit). Flooding is not a concern: only
/// tokens that passed every check are inserted, and nobody without a signing key can make
/// those, so a digest chosen to collide can only probe, never build a long chain.
type DigestHash = std::hash::BuildHasherDefault<DigestHasher>;

#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    // A `[u8; 32]` hashes as its length, then its bytes: the length is the same for all.
    fn write_usize(&mut self, _: usize) {}
}

/// Counters of a [`VerifiedCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups that found the token.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}

impl fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &self.capacity())
            .field("stats", &self.stats())
            .finish()
    }
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens. `0` turns it off: every lookup misses and
    /// nothing is kept.
    pub fn new(capacity: usize) -> Self {
        let shards = if capacity == 0 {
            1
        } else {
            SHARDS.min(capacity.div_ceil(2))
        };
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            per_generation: capacity / (2 * shards),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.per_generation * 2 * self.shards.len()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            s.young.clear();
            s.old.clear();
        }
    }

    /// Hits, misses and entries so far.
    pub fn stats(&self) -> CacheStats {
        let entries = self
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(PoisonError::into_inner);
                s.young.len() + s.old.len()
            })
            .sum();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
        }
    }

    pub(crate) fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The shard of `digest`, locked; `None` when the cache is off.
    fn shard(&self, digest: &[u8; 32]) -> Option<std::sync::MutexGuard<'_, Shard>> {
        if self.per_generation == 0 {
            return None;
        }
        let i = usize::from(digest.first().copied().unwrap_or(0)) % self.shards.len();
        self.shards
            .get(i)
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<Arc<Decoded>> {
        let found = {
            let mut s = self.shard(digest)?;
            match s.young.get(digest) {
                Some(d) => Some(d.clone()),
                None => s
                    .old
                    .remove(digest)
                    .inspect(|d| s.put(*digest, d.clone(), self.per_generation)),
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn insert(&self, digest: [u8; 32], decoded: Decoded) {
        if let Some(mut s) = self.shard(&digest) {
            s.put(digest, Arc::new(decoded), self.per_generation);
        }
    }

    pub(crate) fn remove(&self, digest: &[u8; 32]) {
        if let Some(mut s) = self.shard(digest) {
            s.young.remove(digest);
            s.old.remove(digest);
        }
    }
}

impl Shard {
    fn put(&mut self, digest: [u8; 32], decoded: Arc<Decoded>, per_generation: usize) {
        if self.young.len() >= per_generation && !self.young.contains_key(&digest) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(digest, decoded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Claims, JwsAlgorithm};

    fn decoded(n: i64) -> Decoded {
        Decoded {
            alg: JwsAlgorithm::EdDsa,
            kid: "k".into(),
            typ: None,
            claims: Claims::new("i", "s", "sid", "j", n, n + 1, n + 2).into(),
            thumbprint: [0; 32],
        }
    }

    fn key(n: u32) -> [u8; 32] {
        VerifiedCache::digest(&n.to_string())
    }

    #[test]
    fn bounded_and_recent_entries_survive() {
        let c = VerifiedCache::new(64);
        assert_eq!(c.capacity(), 64);
        for n in 0..10_000 {
            c.insert(key(n), decoded(n.into()));
            assert!(c.stats().entries <= 64);
            // A hot entry, touched all along, is never evicted.
            c.insert(key(1_000_000), decoded(0));
            assert!(c.get(&key(1_000_000)).is_some(), "{n}");
        }
        assert!(c.get(&key(9_999)).is_some());
        assert!(c.get(&key(0)).is_none());
    }

    #[test]
    fn old_generation_hits_are_promoted() {
        let c = VerifiedCache::new(2);
        assert_eq!((c.shards.len(), c.per_generation), (1, 1));
        c.insert(key(1), decoded(1));
        c.insert(key(2), decoded(2)); // 1 is old now
        assert_eq!(c.get(&key(1)).map(|d| d.claims.iat), Some(1)); // promoted, 2 is old
        c.insert(key(3), decoded(3)); // drops 2
        assert!(c.get(&key(2)).is_none());
        assert!(c.get(&key(1)).is_some());
        assert_eq!(c.stats().hits, 2);
        assert_eq!(c.stats().misses, 1);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let c = VerifiedCache::new(0);
        c.insert(key(1), decoded(1));
        assert!(c.get(&key(1)).is_none());
        assert_eq!(c.capacity(), 0);
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn remove_and_clear() {
        let c = VerifiedCache::new(100);
        c.insert(key(1), decoded(1));
        c.insert(key(2), decoded(2));
        c.remove(&key(1));
        assert!(c.get(&key(1)).is_none());
        c.clear();
        assert!(c.get(&key(2)).is_none());
    }
}
