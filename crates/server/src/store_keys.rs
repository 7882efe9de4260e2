//! Keys in the store (`[keys] storage = "store"`): what `tessera serve` does with them.
//!
//! At start-up the node reads the sealed key manifest from the session store, or creates it
//! if the fleet has none yet ([`KeyVault::load_or_create`]). While it serves, a background
//! task ([`StoreKeySync::tick`], every `[keys] refresh`) reads the manifest again and swaps
//! changed keys in, so every node picks up a rotation within `refresh`. Requests never read
//! the store for keys: they use the copy in memory.
//!
//! With `[tokens] rotate` on, the same tick runs the fleet's schedule: on a copy of the keys
//! just read, and only when something is due does the node take the rotation lease
//! ([`KeyVault::take_lease`]) and write the result by compare-and-set at the version it
//! read. One node rotates at a time; a node that loses the race reads the winner's keys at
//! its next tick. The CSRF keys rotate with them; the sid key (session `sid`s are derived from
//! it) never does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;
use tessera::csrf::CsrfKeySet;

use sha2::{Digest as _, Sha256};
use tessera::keys::stored::{
    KeyVault, StoredKeys, StoredKeysError, StoredPolicies, StoredRotation,
};
use tessera::keys::{CsrfKeys, SealKeys, TokenKeys};
use tessera_core::{Handle, SessionKind, StoreKey};
use zeroize::Zeroizing;

/// Whether the schedule at `now` changes anything in the keys of `plain`, found with a key
/// source that refuses to generate (a key it is asked for means a rotation is due).
fn is_due(
    plain: &[u8],
    version: u64,
    policies: &StoredPolicies,
    now: i64,
) -> Result<bool, StoredKeysError> {
    let mut asked = false;
    let mut probe =
        |_: tessera_token::Algorithm| -> tessera_token::Result<tessera_token::SigningKey> {
            asked = true;
            Err(tessera_token::Error::Unreachable(
                "a probe generates no key",
            ))
        };
    match KeyVault::rotate_plain(plain, version, policies, now, &mut probe) {
        Ok((_, r)) => Ok(r.changed()),
        Err(_) if asked => Ok(true),
        Err(e) => Err(e),
    }
}

/// What one [`StoreKeySync::tick`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct StoreTick {
    /// The manifest version in use after the tick.
    pub version: u64,
    /// Whether another node had changed the keys and they were swapped in.
    pub reloaded: bool,
    /// Whether the stored sid key differs from the one in use (it cannot be swapped while
    /// serving: a restart picks it up).
    pub sid_changed: bool,
    /// What this node's rotation wrote, if it rotated.
    pub rotation: Option<StoredRotation>,
    /// Whether a rotation was due but another node holds the lease.
    pub lease_elsewhere: bool,
    /// Whether this node's rotation lost the race to another node's write.
    pub lost_race: bool,
}

/// How the schedule runs on the stored keys.
#[derive(Debug, Clone)]
pub struct StoreRotation {
    /// This node's name in the lease (random per process).
    pub holder: String,
    /// How long a lease lasts unless renewed.
    pub lease: Duration,
    /// Where new token keys come from.
    pub key_source: tessera_token::OsKeySource,
}

/// Keeps a node's keys in step with the fleet's key manifest in the store.
#[derive(Debug)]
pub struct StoreKeySync {
    vault: Arc<KeyVault>,
    policies: StoredPolicies,
    tokens: Option<(TokenKeys, tessera_token::Config)>,
    seal: SealKeys,
    csrf: CsrfKeys,
    /// A probe of the sid key in use: its `sid` of a fixed store key.
    sid_probe: String,
    probe_key: StoreKey,
    known: AtomicU64,
    /// The SHA-256 of the manifest's plaintext in use, when known: a manifest of the same
    /// version but other content (a write acknowledged, then lost in a store failover, and
    /// another node's write since) is read again rather than trusted by its version.
    digest: Mutex<Option<[u8; 32]>>,
    /// `None` with `[tokens] rotate = false`: the node only follows the store.
    rotation: Option<StoreRotation>,
    /// Serialises key swaps.
    swapping: Mutex<()>,
}

impl StoreKeySync {
    /// Syncs the keys read at `keys.version`: `tokens` (with the codec of the service's
    /// tokens) when tokens are on, and `seal`.
    ///
    /// # Errors
    ///
    /// Only if the OS random source fails (the CSRF probe's key).
    pub fn new(
        vault: Arc<KeyVault>,
        policies: StoredPolicies,
        tokens: Option<(TokenKeys, tessera_token::Config)>,
        seal: SealKeys,
        csrf: &CsrfKeySet,
        version: u64,
        rotation: Option<StoreRotation>,
    ) -> Result<Self, getrandom::Error> {
        let probe_key = Handle::generate(SessionKind::Anonymous)?.store_key();
        Ok(Self {
            vault,
            policies,
            tokens,
            seal,
            csrf: csrf.keys.clone(),
            sid_probe: csrf.sid.sid(&probe_key),
            probe_key,
            known: AtomicU64::new(version),
            digest: Mutex::new(None),
            rotation,
            swapping: Mutex::new(()),
        })
    }

    /// The manifest version in use.
    pub fn version(&self) -> u64 {
        self.known.load(Ordering::Acquire)
    }

    /// One refresh at `now`: reads the manifest; if its version is not the one in use,
    /// opens and decodes it and swaps the token and sealing keys in. Then, with rotation on,
    /// applies the schedule to a copy and, if anything is due, takes the lease and writes
    /// the copy by compare-and-set (then uses it).
    ///
    /// # Errors
    ///
    /// The store's failures, a record that does not open ([`StoredKeysError::Tampered`],
    /// [`StoredKeysError::WrongMasterKey`]) or holds bad keys, and
    /// [`StoredKeysError::Invalid`] for keys of an algorithm the service does not accept: the
    /// node keeps its current keys and the next tick tries again.
    pub async fn tick(&self, now: i64) -> Result<StoreTick, StoredKeysError> {
        let mut tick = StoreTick {
            version: self.version(),
            ..StoreTick::default()
        };
        let Some((plain, version)) = self.vault.read().await? else {
            // Someone removed the manifest: keep serving with the keys in use, and write
            // nothing (a node that starts now creates new keys, which is the operator's call).
            tracing::warn!("the key manifest is missing from the store; keeping the keys in use");
            return Ok(tick);
        };
        let plain = Arc::new(plain);
        let seen: [u8; 32] = Sha256::digest(plain.as_slice()).into();
        let reload = version != tick.version || self.digest().is_some_and(|d| d != seen);
        if !reload {
            self.set_digest(Some(seen));
        }
        let rotating = self.rotation.is_some();
        // Key parsing is CPU work (RSA above all): off the runtime's threads. Whether a
        // rotation is due is found on a copy with a key source that generates nothing, so
        // nodes without the lease never make keys in vain.
        let (fresh, due) = self
            .blocking(&plain, version, move |plain, version, policies| {
                let fresh = reload
                    .then(|| KeyVault::decode(plain, version, policies))
                    .transpose()?;
                let due = rotating && is_due(plain, version, policies, now)?;
                Ok((fresh, due))
            })
            .await?;
        if let Some(keys) = fresh {
            tick.sid_changed = self.install(keys)?;
            self.set_digest(Some(seen));
            tick.reloaded = true;
            tick.version = version;
        }
        let Some(rotation) = self.rotation.clone().filter(|_| due) else {
            return Ok(tick);
        };
        if !self
            .vault
            .take_lease(&rotation.holder, now, rotation.lease)
            .await?
        {
            tick.lease_elsewhere = true;
            return Ok(tick);
        }
        // Said before the keys are made (RSA takes seconds): which node is rotating, and
        // since when, if it dies before it writes.
        tracing::info!(
            holder = %rotation.holder,
            version,
            "took the rotation lease; rotating the keys in the store"
        );
        let (mut keys, r) = self
            .blocking(&plain, version, move |plain, version, policies| {
                let mut source = rotation.key_source;
                KeyVault::rotate_plain(plain, version, policies, now, &mut source)
            })
            .await?;
        if !r.changed() {
            return Ok(tick);
        }
        match self.vault.write(version, &keys).await {
            Ok(v) => {
                keys.version = v;
                self.install(keys)?;
                // What this node wrote, as the store holds it (unknown if it cannot say).
                let written = match self.vault.read().await {
                    Ok(Some((p, at))) if at == v => Some(Sha256::digest(p.as_slice()).into()),
                    _ => None,
                };
                self.set_digest(written);
                tick.version = v;
                tick.rotation = Some(r);
            }
            // Another node wrote first (its lease lapsed under it, or it is a `tessera keys`
            // command): its keys are read at the next tick.
            Err(StoredKeysError::Store(tessera_core::Error::Conflict)) => tick.lost_race = true,
            Err(e) => return Err(e),
        }
        Ok(tick)
    }

    fn digest(&self) -> Option<[u8; 32]> {
        *self.digest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_digest(&self, d: Option<[u8; 32]>) {
        *self.digest.lock().unwrap_or_else(PoisonError::into_inner) = d;
    }

    /// Runs `f` on the plaintext on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        plain: &Arc<Zeroizing<Vec<u8>>>,
        version: u64,
        f: impl FnOnce(&[u8], u64, &StoredPolicies) -> Result<T, StoredKeysError> + Send + 'static,
    ) -> Result<T, StoredKeysError> {
        let plain = plain.clone();
        let policies = self.policies.clone();
        tokio::task::spawn_blocking(move || f(&plain, version, &policies))
            .await
            .map_err(|_| StoredKeysError::Invalid {
                name: tessera::keys::stored::KEYS_BLOB,
                reason: "the key task failed".to_owned(),
            })?
    }

    /// Swaps `keys` in; returns whether their sid key differs from the one in use.
    fn install(&self, keys: StoredKeys) -> Result<bool, StoredKeysError> {
        let _one = self.swapping.lock().unwrap_or_else(PoisonError::into_inner);
        let StoredKeys {
            tokens,
            seal,
            sid,
            csrf,
            version,
            ..
        } = keys;
        if let Some((ring, codec)) = &self.tokens {
            if let Some(k) = tokens
                .keys()
                .find(|k| !crate::keys::accepts(codec, k.algorithm))
            {
                return Err(StoredKeysError::Invalid {
                    name: tessera::keys::stored::KEYS_BLOB,
                    reason: format!(
                        "it holds {} keys, which this service accepts only after a restart",
                        k.algorithm.name()
                    ),
                });
            }
            ring.replace(tokens);
        }
        self.seal.replace(seal);
        self.csrf.replace(csrf);
        self.known.store(version, Ordering::Release);
        Ok(sid.sid(&self.probe_key) != self.sid_probe)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera::keys::stored::MasterKey;
    use tessera_core::SessionStore;
    use tessera_store_memory::MemoryStore;
    use tessera_token::seal::SealPolicy;
    use tessera_token::{OsKeySource, RotationPolicy};

    use super::*;

    const T0: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn policies() -> StoredPolicies {
        StoredPolicies {
            tokens: RotationPolicy::default(),
            seal: SealPolicy::default(),
            csrf: tessera::csrf::CsrfPolicy::default(),
        }
    }

    fn codec() -> tessera_token::Config {
        tessera_token::Config::new("tessera")
    }

    /// A node on `store`: its sync and its token and sealing keys.
    async fn node(
        store: &Arc<MemoryStore>,
        name: &str,
        rotate: bool,
    ) -> (StoreKeySync, TokenKeys, SealKeys) {
        let store: Arc<dyn SessionStore> = store.clone();
        let vault = Arc::new(KeyVault::new(store, MasterKey::from_bytes([9; 32])).unwrap());
        let (k, _) = vault
            .load_or_create(&policies(), T0, &mut OsKeySource::default())
            .await
            .unwrap();
        let tokens = TokenKeys::new(k.tokens);
        let seal = SealKeys::new(k.seal);
        let csrf = CsrfKeySet::new(k.sid, CsrfKeys::new(k.csrf));
        let rotation = rotate.then(|| StoreRotation {
            holder: name.to_owned(),
            lease: Duration::from_secs(30),
            key_source: OsKeySource::default(),
        });
        let sync = StoreKeySync::new(
            vault,
            policies(),
            Some((tokens.clone(), codec())),
            seal.clone(),
            &csrf,
            k.version,
            rotation,
        )
        .unwrap();
        (sync, tokens, seal)
    }

    fn jwks(k: &TokenKeys) -> String {
        k.read().jwks(&codec())
    }

    #[tokio::test]
    async fn one_node_rotates_and_the_others_follow_within_a_tick() {
        let store = Arc::new(MemoryStore::new());
        let (a, a_keys, a_seal) = node(&store, "a", true).await;
        let (b, b_keys, b_seal) = node(&store, "b", true).await;
        assert_eq!(jwks(&a_keys), jwks(&b_keys));
        // Nothing due: nothing written, no lease taken.
        let t = a.tick(T0 + 60).await.unwrap();
        assert!(
            t.rotation.is_none() && !t.reloaded && !t.lease_elsewhere,
            "{t:?}"
        );
        assert_eq!(t.version, 1);
        // Thirty days on, a rotates (a next key is published, a new sealing key seals).
        let later = T0 + 30 * DAY;
        let t = a.tick(later).await.unwrap();
        let r = t.rotation.as_ref().expect("a rotated");
        assert!(
            r.tokens.generated.is_some() && r.seal.generated.is_some(),
            "{r:?}"
        );
        assert_eq!(t.version, 2);
        assert_ne!(jwks(&a_keys), jwks(&b_keys));
        // b finds the new keys and does not rotate again: the lease is a's, and nothing is
        // due in the keys it just read.
        let t = b.tick(later + 1).await.unwrap();
        assert!(
            t.reloaded && t.rotation.is_none() && !t.sid_changed,
            "{t:?}"
        );
        assert_eq!(t.version, 2);
        assert_eq!(jwks(&a_keys), jwks(&b_keys));
        assert_eq!(a_seal.read().sealing_kid(), b_seal.read().sealing_kid());
        // A value sealed by a opens on b.
        let v = a_seal.read().seal("c", "p", b"x", later + DAY).unwrap();
        assert_eq!(b_seal.read().open("c", "p", &v, later + 2).unwrap(), b"x");
        // A token signed by a verifies on b.
        assert_eq!(
            a_keys.read().signing_key_at(later).unwrap().kid(),
            b_keys.read().signing_key_at(later).unwrap().kid()
        );
    }

    #[tokio::test]
    async fn a_due_rotation_waits_for_the_lease_holder() {
        let store = Arc::new(MemoryStore::new());
        let (a, _, _) = node(&store, "a", true).await;
        let (b, b_keys, _) = node(&store, "b", true).await;
        let before = jwks(&b_keys);
        // a holds the lease (it was about to rotate, then died).
        let vault = Arc::clone(&a.vault);
        assert!(
            vault
                .take_lease("a", T0, Duration::from_secs(30))
                .await
                .unwrap()
        );
        let later = T0 + 30 * DAY;
        // The lease was taken at T0 for 30 s: long lapsed by `later`, so b rotates.
        let t = b.tick(later).await.unwrap();
        assert!(t.rotation.is_some(), "{t:?}");
        // Now b holds it: a, due as well with its old copy, reads b's keys and waits.
        assert!(
            vault
                .take_lease("b", later, Duration::from_secs(30))
                .await
                .unwrap()
        );
        let t = a.tick(later + 5).await.unwrap();
        assert!(t.reloaded && t.rotation.is_none(), "{t:?}");
        assert_ne!(jwks(&b_keys), before);
        // With the lease held elsewhere and a rotation due, a node writes nothing.
        let (c, _, _) = node(&store, "c", true).await;
        let much_later = later + 40 * DAY;
        assert!(
            vault
                .take_lease("b", much_later, Duration::from_secs(30))
                .await
                .unwrap()
        );
        let t = c.tick(much_later + 1).await.unwrap();
        assert!(t.lease_elsewhere && t.rotation.is_none(), "{t:?}");
        assert_eq!(vault.version().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn without_rotation_a_node_only_follows_the_store() {
        let store = Arc::new(MemoryStore::new());
        let (a, a_keys, _) = node(&store, "a", false).await;
        let before = jwks(&a_keys);
        let t = a.tick(T0 + 90 * DAY).await.unwrap();
        assert!(t.rotation.is_none() && !t.lease_elsewhere, "{t:?}");
        assert_eq!(jwks(&a_keys), before);
        assert_eq!(a.vault.version().await.unwrap(), 1);
        // Another node's rotation still reaches it.
        let (b, b_keys, _) = node(&store, "b", true).await;
        assert!(b.tick(T0 + 90 * DAY).await.unwrap().rotation.is_some());
        assert!(a.tick(T0 + 90 * DAY).await.unwrap().reloaded);
        assert_eq!(jwks(&a_keys), jwks(&b_keys));
    }

    #[tokio::test]
    async fn a_manifest_of_the_same_version_but_other_keys_is_read_again() {
        use tessera_core::BlobStore as _;
        // a rotates (version 2) and b follows; then the store loses a's write in a failover
        // and c, which never saw it, writes another version 2: a and b must take c's keys.
        let lost = Arc::new(MemoryStore::new());
        let (a, a_keys, _) = node(&lost, "a", true).await;
        let (b, b_keys, _) = node(&lost, "b", true).await;
        let v1 = lost
            .blob_get(tessera::keys::stored::KEYS_BLOB)
            .await
            .unwrap()
            .unwrap();
        assert!(a.tick(T0 + 30 * DAY).await.unwrap().rotation.is_some());
        assert!(b.tick(T0 + 30 * DAY).await.unwrap().reloaded);
        // The failover: the store is back at version 1 ...
        let failed_over = Arc::new(MemoryStore::new());
        failed_over
            .blob_put(tessera::keys::stored::KEYS_BLOB, 0, &v1.value)
            .await
            .unwrap();
        // ... and c rotates from there: another version 2.
        let (c, c_keys, _) = node(&failed_over, "c", true).await;
        assert!(c.tick(T0 + 30 * DAY + 5).await.unwrap().rotation.is_some());
        assert_ne!(jwks(&c_keys), jwks(&a_keys));
        let moved = |_: &StoreKeySync| {
            let store: Arc<dyn SessionStore> = failed_over.clone();
            Arc::new(KeyVault::new(store, MasterKey::from_bytes([9; 32])).unwrap())
        };
        for (n, keys) in [(&a, &a_keys), (&b, &b_keys)] {
            let n = StoreKeySync {
                vault: moved(n),
                policies: policies(),
                tokens: n.tokens.clone(),
                seal: n.seal.clone(),
                csrf: n.csrf.clone(),
                sid_probe: n.sid_probe.clone(),
                probe_key: n.probe_key,
                known: AtomicU64::new(n.version()),
                rotation: None,
                swapping: Mutex::new(()),
                digest: Mutex::new(n.digest()),
            };
            assert_eq!(n.version(), 2);
            let t = n.tick(T0 + 30 * DAY + 6).await.unwrap();
            assert!(t.reloaded, "{t:?}");
            assert_eq!(jwks(keys), jwks(&c_keys));
        }
    }

    #[tokio::test]
    async fn a_tampered_manifest_is_refused_and_the_keys_in_use_stay() {
        use tessera_core::BlobStore as _;
        let store = Arc::new(MemoryStore::new());
        let (a, a_keys, _) = node(&store, "a", true).await;
        let before = jwks(&a_keys);
        store
            .blob_put(tessera::keys::stored::KEYS_BLOB, 1, b"{\"tampered\":1}")
            .await
            .unwrap();
        let err = a.tick(T0 + 60).await.unwrap_err();
        assert_eq!(err.code(), "keys-record-tampered");
        assert_eq!(jwks(&a_keys), before);
        assert_eq!(a.version(), 1);
    }
}
