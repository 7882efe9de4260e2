//! The sealing keys: [`SealKeyring`] (the newest seals, every one opens), its schedule
//! ([`SealPolicy`], [`SealKeyring::rotate_at`]) and what it says about its keys.

use std::fmt;
use std::time::Duration;

use super::{SealKey, generate};
use crate::error::{Error, Result};

/// When sealing keys are made and dropped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tessera_token::seal::SealPolicy;
///
/// let p = SealPolicy::default().with_retention(Duration::from_secs(12 * 3600 + 60));
/// assert_eq!(p.rotate_every(), Duration::from_secs(30 * 86_400));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealPolicy {
    rotate_every: i64,
    retention: i64,
}

impl Default for SealPolicy {
    /// A new key every 30 days; an old key kept 30 days and 60 seconds after it stopped
    /// sealing (the longest remember-me session, whose secrets it may have sealed, plus
    /// skew).
    fn default() -> Self {
        Self {
            rotate_every: 30 * 86_400,
            retention: 30 * 86_400 + 60,
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl SealPolicy {
    /// How long a key seals before [`SealKeyring::rotate_at`] replaces it.
    pub fn with_rotate_every(mut self, d: Duration) -> Self {
        self.rotate_every = secs(d).max(1);
        self
    }

    /// How long a key keeps opening after it stopped sealing: the longest lifetime of any
    /// value sealed with it, plus clock skew. Values older than that could not open anyway
    /// (their expiry is inside), so the key can go.
    pub fn with_retention(mut self, d: Duration) -> Self {
        self.retention = secs(d);
        self
    }

    /// See [`SealPolicy::with_rotate_every`].
    pub fn rotate_every(&self) -> Duration {
        Duration::from_secs(self.rotate_every.unsigned_abs())
    }

    /// See [`SealPolicy::with_retention`].
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention.unsigned_abs())
    }
}

pub(crate) struct SealEntry {
    pub(crate) key: SealKey,
    /// When it started sealing (Unix seconds).
    pub(crate) created_at: i64,
}

/// What [`SealKeyring::rotate_at`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SealRotation {
    /// The key generated to seal from now on.
    pub generated: Option<String>,
    /// Keys whose retention ended, now gone.
    pub dropped: Vec<String>,
}

impl SealRotation {
    /// Whether anything changed (and the keyring should be saved).
    pub fn changed(&self) -> bool {
        self.generated.is_some() || !self.dropped.is_empty()
    }
}

/// What the keyring says about one sealing key: no key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SealKeyInfo {
    /// The key id (the `kid` part of values it seals).
    pub kid: String,
    /// When it started sealing (Unix seconds).
    pub created_at: i64,
    /// Whether it seals new values (only the newest key does; the others only open).
    pub sealing: bool,
}

/// The sealing keys: the newest seals, every one of them opens. [`SealKeyring::rotate_at`]
/// adds a key at the front on a schedule and drops keys whose retention has ended.
///
/// This is the symmetric half of Tessera's keyring (the signing half is
/// [`Keyring`](crate::Keyring)): it lives in the same directory, under the same file rules
/// ([`SealKeyring::save`]), and is rotated by the same schedule.
///
/// # Examples
///
/// ```
/// use tessera_token::seal::{SealKeyring, SealPolicy};
///
/// let now = 1_800_000_000;
/// let mut ring = SealKeyring::generate_at(now, SealPolicy::default())?;
/// let v = ring.seal("__Host-tessera-anon", "anon", b"{}", now + 60).unwrap();
/// assert_eq!(ring.open("__Host-tessera-anon", "anon", &v, now).unwrap(), b"{}");
/// // 30 days later a new key seals; the old value still opens.
/// let later = now + 30 * 86_400;
/// assert!(ring.rotate_at(later)?.generated.is_some());
/// assert_eq!(ring.open("__Host-tessera-anon", "anon", &v, now).unwrap(), b"{}");
/// # Ok::<(), tessera_token::Error>(())
/// ```
#[derive(Default)]
pub struct SealKeyring {
    // IMPORTANT: newest first (created_at descending): the first key seals, and a key's
    // predecessor in the list is the key that replaced it.
    entries: Vec<SealEntry>,
    policy: SealPolicy,
}

impl fmt::Debug for SealKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKeyring")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .finish()
    }
}

impl SealKeyring {
    /// A keyring of `keys`, newest first, under the default policy. Their creation times
    /// are unknown, so the first [`SealKeyring::rotate_at`] replaces the newest one; for a
    /// keyring that rotates, use [`SealKeyring::generate_at`] or [`SealKeyring::with_key`].
    pub fn new(keys: Vec<SealKey>) -> Self {
        Self {
            entries: keys
                .into_iter()
                .map(|key| SealEntry {
                    key,
                    created_at: i64::MIN,
                })
                .collect(),
            policy: SealPolicy::default(),
        }
    }

    /// An empty keyring under `policy` (nothing seals until a key is added).
    pub fn with_policy(policy: SealPolicy) -> Self {
        Self {
            entries: Vec::new(),
            policy,
        }
    }

    /// A keyring with one fresh key, sealing from `now`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyGeneration`] if the OS random source fails.
    pub fn generate_at(now: i64, policy: SealPolicy) -> Result<Self> {
        Ok(Self::with_policy(policy).with_key(generate()?, now))
    }

    /// Adds `key`, created at `created_at`; the newest key seals.
    pub fn with_key(mut self, key: SealKey, created_at: i64) -> Self {
        self.insert(key, created_at);
        self
    }

    fn insert(&mut self, key: SealKey, created_at: i64) {
        self.entries.push(SealEntry { key, created_at });
        // Stable: among equal times the key added last stays behind the earlier ones.
        self.entries
            .sort_by_key(|e| std::cmp::Reverse(e.created_at));
    }

    /// Adds `key` as the sealing key at once; the others keep opening. For an emergency
    /// rotation (a key that may have leaked): follow it with [`SealKeyring::retain_newest`]
    /// to stop the old keys opening too.
    pub fn rotate(&mut self, key: SealKey) {
        let created_at = self
            .entries
            .first()
            .map_or(i64::MIN, |e| e.created_at)
            .max(i64::MIN + 1);
        self.entries.insert(0, SealEntry { key, created_at });
    }

    /// Removes key `kid` (one that may have leaked): what it sealed no longer opens. The
    /// sealing key stays (add a new one with [`SealKeyring::rotate`] first); returns whether
    /// a key was removed.
    pub fn remove(&mut self, kid: &str) -> bool {
        let before = self.entries.len();
        let mut first = true;
        self.entries.retain(|e| {
            let keep = first || e.key.kid != kid;
            first = false;
            keep
        });
        self.entries.len() != before
    }

    /// Keeps only the `n` newest keys (at least one).
    pub fn retain_newest(&mut self, n: usize) {
        self.entries.truncate(n.max(1));
    }

    /// The rotation policy.
    pub fn policy(&self) -> &SealPolicy {
        &self.policy
    }

    /// Every key, newest (the sealing one) first.
    pub fn keys(&self) -> impl Iterator<Item = SealKeyInfo> + '_ {
        self.entries.iter().enumerate().map(|(i, e)| SealKeyInfo {
            kid: e.key.kid.clone(),
            created_at: e.created_at,
            sealing: i == 0,
        })
    }

    /// The key that seals: the newest.
    pub fn sealing_kid(&self) -> Option<&str> {
        self.entries.first().map(|e| e.key.kid())
    }

    /// Every key with the time it started sealing, newest (the sealing key) first.
    ///
    /// # Security
    ///
    /// For code that stores the keys elsewhere than [`SealKeyring::save`]'s directory (a
    /// fleet's store seals them under its master key before they leave the process); never
    /// log or send them.
    pub fn secret_keys(&self) -> impl Iterator<Item = (&SealKey, i64)> + '_ {
        self.entries.iter().map(|e| (&e.key, e.created_at))
    }

    pub(crate) fn entries(&self) -> &[SealEntry] {
        &self.entries
    }

    pub(crate) fn from_entries(entries: Vec<SealEntry>, policy: SealPolicy) -> Self {
        let mut ring = Self::with_policy(policy);
        for e in entries {
            ring.insert(e.key, e.created_at);
        }
        ring
    }

    /// Runs the rotation schedule at `now`:
    ///
    /// 1. if no key seals, or the sealing key has sealed for
    ///    [`SealPolicy::with_rotate_every`], a new key seals from `now`;
    /// 2. keys that stopped sealing (were replaced) longer than
    ///    [`SealPolicy::with_retention`] ago are dropped: nothing they sealed can still
    ///    open.
    ///
    /// Nothing needs publishing ahead (only this service opens what it seals), so a new
    /// key seals at once. Call it on a schedule and save the keyring when
    /// [`SealRotation::changed`].
    ///
    /// # Errors
    ///
    /// [`Error::KeyGeneration`] if the OS random source fails; **the keyring is then
    /// unchanged** and the current key keeps sealing.
    pub fn rotate_at(&mut self, now: i64) -> Result<SealRotation> {
        let due = self
            .entries
            .first()
            .is_none_or(|e| now >= e.created_at.saturating_add(self.policy.rotate_every));
        // Generate before changing anything.
        let new_key = if due { Some(generate()?) } else { None };
        let mut out = SealRotation::default();
        if let Some(key) = new_key {
            if self.entries.iter().any(|e| e.key.kid == key.kid) {
                return Err(Error::InvalidKey {
                    reason: "the generated key is already in the keyring",
                });
            }
            out.generated = Some(key.kid.clone());
            let created_at = self
                .entries
                .first()
                .map_or(now, |e| now.max(e.created_at.saturating_add(1)));
            self.entries.insert(0, SealEntry { key, created_at });
        }
        // A key stopped sealing when the key before it in the list was created.
        let retention = self.policy.retention;
        let mut keep = 1;
        for pair in self.entries.windows(2) {
            let [newer, _] = pair else { break };
            if newer.created_at.saturating_add(retention) <= now {
                break;
            }
            keep += 1;
        }
        for e in self.entries.drain(keep.min(self.entries.len())..) {
            out.dropped.push(e.key.kid.clone());
        }
        Ok(out)
    }
}
