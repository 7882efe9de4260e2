//! The CSRF keys: a small ring rotated on a schedule, each new key published ahead of its use.

use std::fmt;
use std::time::Duration;

use tessera_core::{StoreKey, Timestamp};

use super::{CsrfKey, SidKey, parse};
use crate::keys::CsrfKeys;

/// When CSRF keys are made and dropped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tessera::csrf::CsrfPolicy;
///
/// let p = CsrfPolicy::new(
///     Duration::from_secs(7 * 86_400),  // a new key a week
///     Duration::from_secs(12 * 3600),   // the tokens' maximum age
///     Duration::from_secs(180),         // published this long before it issues
/// );
/// assert_eq!(p.retention(), Duration::from_secs(12 * 3600 + 60));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrfPolicy {
    rotate_every: i64,
    retention: i64,
    ahead: i64,
}

/// Clock skew allowed between the nodes that issue and check a token.
const SKEW: i64 = 60;

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl CsrfPolicy {
    /// A new key every `rotate_every`; an old key kept `max_age` (the tokens' maximum age)
    /// plus a minute of skew after it stopped issuing; a new key in the ring `ahead` before
    /// it issues, so every node that checks tokens has it before the first token it makes
    /// (at least the time every node takes to read the keys again).
    pub fn new(rotate_every: Duration, max_age: Duration, ahead: Duration) -> Self {
        Self {
            rotate_every: secs(rotate_every).max(1),
            retention: secs(max_age).saturating_add(SKEW),
            ahead: secs(ahead),
        }
    }

    /// How long a key issues before [`CsrfKeyring::rotate_at`] replaces it.
    pub fn rotate_every(&self) -> Duration {
        Duration::from_secs(self.rotate_every.unsigned_abs())
    }

    /// How long a key keeps verifying after it stopped issuing.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention.unsigned_abs())
    }

    /// How long a new key is in the ring before it issues.
    pub fn ahead(&self) -> Duration {
        Duration::from_secs(self.ahead.unsigned_abs())
    }
}

impl Default for CsrfPolicy {
    /// A new key every 7 days, kept 12 hours and a minute after it stopped issuing,
    /// published 3 minutes ahead (the service's defaults).
    fn default() -> Self {
        Self::new(
            Duration::from_secs(7 * 86_400),
            Duration::from_secs(12 * 3600),
            Duration::from_secs(180),
        )
    }
}

struct Entry {
    key: CsrfKey,
    /// When it starts (or started) issuing (Unix seconds).
    created_at: i64,
}

/// What [`CsrfKeyring::rotate_at`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CsrfRotation {
    /// The key added, issuing from its `created_at`.
    pub generated: Option<String>,
    /// Keys whose retention ended, now gone.
    pub dropped: Vec<String>,
}

impl CsrfRotation {
    /// Whether anything changed (and the keys should be saved).
    pub fn changed(&self) -> bool {
        self.generated.is_some() || !self.dropped.is_empty()
    }
}

/// What the ring says about one key: no key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CsrfKeyInfo {
    /// The key id ([`CsrfKey::kid`]).
    pub kid: String,
    /// When it starts (or started) issuing (Unix seconds).
    pub created_at: i64,
}

/// The CSRF keys: the newest key whose time has come issues; every key verifies.
///
/// # Examples
///
/// ```
/// use tessera::csrf::{CsrfKey, CsrfKeyring, CsrfPolicy};
/// use tessera_core::{Handle, SessionKind, Timestamp};
///
/// let now = 1_800_000_000;
/// let session = Handle::generate(SessionKind::Anonymous)?.store_key();
/// let mut ring = CsrfKeyring::new(CsrfKey::generate()?, now, CsrfPolicy::default());
/// let t = ring.issue("form", &session, Timestamp::from_unix_secs(now));
/// // A week later a new key is added; it issues three minutes on, and the old token
/// // still verifies for its whole maximum age.
/// let later = now + 7 * 86_400;
/// assert!(ring.rotate_at(later)?.generated.is_some());
/// let max_age = std::time::Duration::from_secs(8 * 86_400);
/// assert!(ring.verify(&t, "form", &session, max_age, Timestamp::from_unix_secs(later + 600)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CsrfKeyring {
    // IMPORTANT: newest first (created_at descending): a key's predecessor in the list is
    // the key that replaced it, and its created_at is when this one stopped issuing.
    entries: Vec<Entry>,
    policy: CsrfPolicy,
}

impl fmt::Debug for CsrfKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrfKeyring")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .finish()
    }
}

impl CsrfKeyring {
    /// A ring of one key, issuing from `created_at`.
    pub fn new(key: CsrfKey, created_at: i64, policy: CsrfPolicy) -> Self {
        Self {
            entries: vec![Entry { key, created_at }],
            policy,
        }
    }

    /// A ring with one fresh key, issuing from `now`.
    ///
    /// # Errors
    ///
    /// Fails only if the OS random source fails.
    pub fn generate_at(now: i64, policy: CsrfPolicy) -> Result<Self, getrandom::Error> {
        Ok(Self::new(CsrfKey::generate()?, now, policy))
    }

    /// Adds `key`, issuing from `created_at`. A key already in the ring is not added twice.
    pub fn with_key(mut self, key: CsrfKey, created_at: i64) -> Self {
        let kid = key.kid();
        if self.entries.iter().all(|e| e.key.kid() != kid) {
            self.entries.push(Entry { key, created_at });
            // Stable: among equal times the key added first stays in front.
            self.entries
                .sort_by_key(|e| std::cmp::Reverse(e.created_at));
        }
        self
    }

    /// The same keys under `policy`.
    pub fn with_policy(mut self, policy: CsrfPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &CsrfPolicy {
        &self.policy
    }

    /// Every key, newest first.
    pub fn keys(&self) -> impl Iterator<Item = CsrfKeyInfo> + '_ {
        self.entries.iter().map(|e| CsrfKeyInfo {
            kid: e.key.kid(),
            created_at: e.created_at,
        })
    }

    /// Every key with the time it issues from, newest first.
    ///
    /// # Security
    ///
    /// For code that stores the keys (the data directory's file, the fleet's sealed record);
    /// never log or send them.
    pub fn secret_keys(&self) -> impl Iterator<Item = (&CsrfKey, i64)> + '_ {
        self.entries.iter().map(|e| (&e.key, e.created_at))
    }

    /// The key that issues at `now`: the newest whose time has come (the oldest if none has:
    /// a ring always issues).
    fn issuing(&self, now: i64) -> Option<&CsrfKey> {
        self.entries
            .iter()
            .find(|e| e.created_at <= now)
            .or_else(|| self.entries.last())
            .map(|e| &e.key)
    }

    /// The id of the key that issues at `now`.
    pub fn issuing_kid(&self, now: i64) -> Option<String> {
        self.issuing(now).map(CsrfKey::kid)
    }

    /// A token for `purpose` bound to the session stored under `session`, issued at `now`
    /// with the key that issues then.
    pub fn issue(&self, purpose: &str, session: &StoreKey, now: Timestamp) -> String {
        match self.issuing(now.unix_secs()) {
            Some(k) => k.issue(purpose, session, now),
            // Never empty (every constructor adds a key); an empty string verifies nowhere.
            None => String::new(),
        }
    }

    /// Whether `token` was issued by any key of the ring for `purpose` and `session` no
    /// longer than `max_age` ago. Each MAC is compared in constant time; which key matched
    /// is no secret.
    pub fn verify(
        &self,
        token: &str,
        purpose: &str,
        session: &StoreKey,
        max_age: Duration,
        now: Timestamp,
    ) -> bool {
        let Some((t, mac)) = parse(token, max_age, now) else {
            return false;
        };
        self.entries
            .iter()
            .any(|e| e.key.matches(&mac, purpose, session, t))
    }

    /// Runs the schedule at `now`:
    ///
    /// 1. when the newest key has issued for [`CsrfPolicy::rotate_every`], a new key is
    ///    added that issues [`CsrfPolicy::ahead`] from now (every node reads it before it
    ///    sees a token it made);
    /// 2. keys that stopped issuing longer than [`CsrfPolicy::retention`] ago are dropped: no
    ///    token they made is still young enough.
    ///
    /// # Errors
    ///
    /// Fails only if the OS random source fails; **the ring is then unchanged**.
    pub fn rotate_at(&mut self, now: i64) -> Result<CsrfRotation, getrandom::Error> {
        let due = self
            .entries
            .first()
            .is_none_or(|e| now >= e.created_at.saturating_add(self.policy.rotate_every));
        let mut out = CsrfRotation::default();
        if due {
            out.generated = Some(self.add(CsrfKey::generate()?, now));
        }
        out.dropped = self.drop_expired(now);
        Ok(out)
    }

    /// Adds a key that issues [`CsrfPolicy::ahead`] from now, outside the schedule
    /// (`tessera keys rotate --kind csrf --force`), unless a key is already pending. Returns
    /// its id (`None`: one was pending).
    ///
    /// # Errors
    ///
    /// Fails only if the OS random source fails; the ring is then unchanged.
    pub fn publish_next_at(&mut self, now: i64) -> Result<Option<String>, getrandom::Error> {
        if self.entries.first().is_some_and(|e| e.created_at > now) {
            return Ok(None);
        }
        Ok(Some(self.add(CsrfKey::generate()?, now)))
    }

    /// Makes the pending key issue now (`--promote`): nodes that have not read the keys
    /// again yet refuse its tokens until they do. Returns its id (`None`: none pending).
    pub fn promote_next_at(&mut self, now: i64) -> Option<String> {
        // Not before the key it replaces; at the same second it still issues (it comes first
        // in the ring, and keeps its place through a save and a load).
        let floor = self.entries.get(1).map_or(now, |e| now.max(e.created_at));
        let first = self.entries.first_mut().filter(|e| e.created_at > now)?;
        first.created_at = floor;
        Some(first.key.kid())
    }

    /// Removes key `kid` at once: tokens it made stop verifying. The last key cannot go
    /// (add one first); returns whether it was removed.
    pub fn remove(&mut self, kid: &str) -> bool {
        let before = self.entries.len();
        if before > 1 {
            self.entries.retain(|e| e.key.kid() != kid);
        }
        self.entries.len() != before
    }

    fn add(&mut self, key: CsrfKey, now: i64) -> String {
        let kid = key.kid();
        let start = now.saturating_add(self.policy.ahead);
        // Later than every key in the ring, so it is the newest.
        let created_at = self
            .entries
            .first()
            .map_or(start, |e| start.max(e.created_at.saturating_add(1)));
        self.entries.insert(0, Entry { key, created_at });
        kid
    }

    fn drop_expired(&mut self, now: i64) -> Vec<String> {
        let retention = self.policy.retention;
        let mut keep = 1;
        for pair in self.entries.windows(2) {
            let [newer, _] = pair else { break };
            // The older key stopped issuing when the newer one started.
            if newer.created_at <= now && newer.created_at.saturating_add(retention) <= now {
                break;
            }
            keep += 1;
        }
        self.entries
            .drain(keep.min(self.entries.len())..)
            .map(|e| e.key.kid())
            .collect()
    }
}

/// The keys of CSRF tokens and of `sid`s, as an engine is given them.
///
/// A single [`CsrfKey`] converts into a set where it is both (a key of before the split,
/// whose tokens and sids stay valid).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CsrfKeySet {
    /// The key of session `sid`s (never rotated).
    pub sid: SidKey,
    /// The CSRF keys, shared so a schedule can swap them under a running engine.
    pub keys: CsrfKeys,
}

impl CsrfKeySet {
    /// A set of these keys.
    pub fn new(sid: SidKey, keys: CsrfKeys) -> Self {
        Self { sid, keys }
    }
}

impl From<CsrfKey> for CsrfKeySet {
    fn from(key: CsrfKey) -> Self {
        Self {
            sid: key.to_sid_key(),
            keys: CsrfKeys::new(CsrfKeyring::new(key, 0, CsrfPolicy::default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::{Handle, SessionKind};

    use super::*;

    const T0: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;
    const AGE: Duration = Duration::from_secs(12 * 3600);

    fn at(t: i64) -> Timestamp {
        Timestamp::from_unix_secs(t)
    }

    fn session() -> StoreKey {
        Handle::generate(SessionKind::Anonymous)
            .unwrap()
            .store_key()
    }

    fn ring() -> CsrfKeyring {
        CsrfKeyring::new(CsrfKey::from_bytes([3; 32]), T0, CsrfPolicy::default())
    }

    #[test]
    fn a_rotation_publishes_ahead_and_keeps_old_tokens_for_their_max_age() {
        let mut r = ring();
        let s = session();
        let first = r.issuing_kid(T0).unwrap();
        assert!(!r.rotate_at(T0 + 6 * DAY).unwrap().changed());
        let rot_at = T0 + 7 * DAY;
        let old = r.issue("p", &s, at(rot_at - 10));
        let out = r.rotate_at(rot_at).unwrap();
        let new = out.generated.clone().unwrap();
        assert!(out.dropped.is_empty(), "{out:?}");
        // Not issuing yet: every node reads it first.
        assert_eq!(r.issuing_kid(rot_at + 179).unwrap(), first);
        assert_eq!(r.issuing_kid(rot_at + 180).unwrap(), new);
        // A token of the new key verifies on a ring that has it before it issues.
        let fresh = r.issue("p", &s, at(rot_at + 200));
        assert!(r.verify(&fresh, "p", &s, AGE, at(rot_at + 200)));
        // The old key's token verifies for its whole maximum age.
        let end = rot_at - 10 + 12 * 3600;
        assert!(r.verify(&old, "p", &s, AGE, at(end)));
        assert!(!r.verify(&old, "p", &s, AGE, at(end + 1)));
        // Nothing due again until the new key has issued for a week.
        assert!(r.rotate_at(rot_at + 3600).unwrap().generated.is_none());
        // Its retention ended (12 h and a minute after it stopped issuing): dropped.
        let stop = rot_at + 180;
        assert!(
            r.rotate_at(stop + 12 * 3600 + 59)
                .unwrap()
                .dropped
                .is_empty()
        );
        let out = r.rotate_at(stop + 12 * 3600 + 60).unwrap();
        assert_eq!(out.dropped, vec![first]);
        assert_eq!(r.keys().count(), 1);
        assert!(r.verify(&fresh, "p", &s, AGE, at(rot_at + 300)));
    }

    #[test]
    fn at_most_three_keys_under_the_defaults() {
        let mut r = ring();
        for day in 0..120 {
            r.rotate_at(T0 + day * DAY).unwrap();
            assert!(r.keys().count() <= 3, "{r:?}");
        }
    }

    #[test]
    fn a_forced_rotation_publishes_ahead_and_a_promotion_issues_at_once() {
        let mut r = ring();
        let s = session();
        let first = r.issuing_kid(T0).unwrap();
        assert_eq!(r.promote_next_at(T0 + 5), None);
        let next = r.publish_next_at(T0 + 10).unwrap().unwrap();
        assert_eq!(r.issuing_kid(T0 + 10).unwrap(), first);
        // One pending key at a time.
        assert_eq!(r.publish_next_at(T0 + 11).unwrap(), None);
        assert_eq!(r.promote_next_at(T0 + 20).as_deref(), Some(next.as_str()));
        assert_eq!(r.issuing_kid(T0 + 20).unwrap(), next);
        let t = r.issue("p", &s, at(T0 + 20));
        assert!(r.verify(&t, "p", &s, AGE, at(T0 + 30)));
        assert!(r.remove(&next));
        assert!(!r.verify(&t, "p", &s, AGE, at(T0 + 30)));
        // The last key stays.
        assert!(!r.remove(&first));
        assert_eq!(r.keys().count(), 1);
    }

    #[test]
    fn a_key_of_before_the_split_keeps_its_tokens_and_sids() {
        let legacy = CsrfKey::from_bytes([5; 32]);
        let s = session();
        let token = legacy.issue("p", &s, at(T0));
        let sid = legacy.to_sid_key().sid(&s);
        let set = CsrfKeySet::from(CsrfKey::from_bytes([5; 32]));
        assert!(set.keys.read().verify(&token, "p", &s, AGE, at(T0 + 60)));
        assert_eq!(set.sid.sid(&s), sid);
        // A rotation of the CSRF keys leaves the sid alone and the token valid.
        set.keys.update(|r| r.rotate_at(T0 + 60).unwrap());
        assert_eq!(set.keys.read().keys().count(), 2);
        assert!(set.keys.read().verify(&token, "p", &s, AGE, at(T0 + 120)));
        assert_eq!(set.sid.sid(&s), sid);
    }

    #[test]
    fn tokens_of_keys_not_in_the_ring_are_refused() {
        let r = ring();
        let s = session();
        let other = CsrfKey::from_bytes([4; 32]).issue("p", &s, at(T0));
        assert!(!r.verify(&other, "p", &s, AGE, at(T0)));
        assert!(!r.verify("", "p", &s, AGE, at(T0)));
        let with = ring().with_key(CsrfKey::from_bytes([4; 32]), T0 - 5);
        assert!(with.verify(&other, "p", &s, AGE, at(T0)));
        // Added twice, kept once.
        let twice = with.with_key(CsrfKey::from_bytes([4; 32]), T0 - 5);
        assert_eq!(twice.keys().count(), 2);
    }
}
