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
//! its next tick. The CSRF key never rotates (session `sid`s are derived from it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;
use tessera::csrf::CsrfKey;

use tessera::keys::stored::{
    KeyVault, StoredKeys, StoredKeysError, StoredPolicies, StoredRotation,
};
use tessera::keys::{SealKeys, TokenKeys};
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
    /// Whether the stored CSRF key differs from the one in use (it cannot be swapped while
    /// serving: a restart picks it up).
    pub csrf_changed: bool,
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
    /// A probe of the CSRF key in use: its `sid` of a fixed store key.
    csrf_probe: String,
    probe_key: StoreKey,
    known: AtomicU64,
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
        csrf: &CsrfKey,
        version: u64,
        rotation: Option<StoreRotation>,
    ) -> Result<Self, getrandom::Error> {
        let probe_key = Handle::generate(SessionKind::Anonymous)?.store_key();
        Ok(Self {
            vault,
            policies,
            tokens,
            seal,
            csrf_probe: csrf.sid(&probe_key),
            probe_key,
            known: AtomicU64::new(version),
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
        let reload = version != tick.version;
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
            tick.csrf_changed = self.install(keys)?;
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
        let (mut keys, r) = self
            .blocking(&plain, version, move |plain, version, policies| {
                let mut source = rotation.key_source;
                KeyVault::rotate_plain(plain, version, policies, now, &mut source)
            })
            .await?;
        if !r.changed() {
            return Ok(tick);
        }
        match self
            .vault
            .write(version, &keys.tokens, &keys.seal, &keys.csrf)
            .await
        {
            Ok(v) => {
                keys.version = v;
                self.install(keys)?;
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

    /// Swaps `keys` in; returns whether their CSRF key differs from the one in use.
    fn install(&self, keys: StoredKeys) -> Result<bool, StoredKeysError> {
        let _one = self.swapping.lock().unwrap_or_else(PoisonError::into_inner);
        let StoredKeys {
            tokens,
            seal,
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
        self.known.store(version, Ordering::Release);
        Ok(csrf.sid(&self.probe_key) != self.csrf_probe)
    }
}
