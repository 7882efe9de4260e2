//! Sealed values for client-side state (DESIGN §4): XChaCha20-Poly1305 under rotatable keys.
//!
//! A sealed value is `1.<kid>.<base64url(nonce ‖ ciphertext ‖ tag)>`:
//!
//! - `1` is the format version;
//! - `kid` names the key (11 characters: base64url of the first 8 bytes of
//!   HMAC-SHA256(key, `"tessera-seal-kid-v1"`), so it reveals nothing usable about the key);
//! - the nonce is 24 random bytes (XChaCha20's extended nonce makes random nonces safe for any
//!   number of values under one key);
//! - the plaintext is the expiry (8 bytes, big-endian Unix seconds) followed by the payload;
//! - the associated data is `"tessera-seal-v1\0" ‖ name ‖ "\0" ‖ purpose`, so a value sealed
//!   for one cookie name or purpose does not open under another.
//!
//! Opening fails with the one error [`SealError::Invalid`], whatever went wrong (format,
//! version, unknown key, forgery, splice, other name or purpose, expiry), so a client learns
//! nothing from trying. Nothing is compressed before encryption (no length side channel from
//! compression, CRIME/BREACH).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const VERSION: &str = "1";
const KID_LEN: usize = 11;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"tessera-seal-v1\0";

/// Why a value was not sealed, or did not open.
///
/// Opening has deliberately one case, [`SealError::Invalid`]: every failure looks the same.
/// Sealing fails only on the server's side ([`SealError::NoKey`], [`SealError::Random`],
/// [`SealError::Encrypt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The keyring has no key to seal with.
    #[error("no sealing key")]
    NoKey,
    /// The OS random source failed to give a nonce.
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
    /// The cipher refused the plaintext (only a payload of about 256 GiB could do that; the
    /// AEAD's error is opaque by design, so there is no cause to keep).
    #[error("the value could not be encrypted")]
    Encrypt,
    /// A value did not open: not a sealed value, an unknown key, forged, spliced, sealed for
    /// another name or purpose, or expired. One case for all, on purpose.
    #[error("not a valid sealed value")]
    Invalid,
}

impl SealError {
    /// Every code [`SealError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "seal-no-key",
        "seal-random-failed",
        "seal-encrypt-failed",
        "seal-invalid",
    ];

    /// A stable identifier for this error, for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoKey => "seal-no-key",
            Self::Random(_) => "seal-random-failed",
            Self::Encrypt => "seal-encrypt-failed",
            Self::Invalid => "seal-invalid",
        }
    }
}

/// One symmetric sealing key.
///
/// # Security
///
/// Zeroized on drop; `Debug` prints only the key id.
pub struct SealKey {
    kid: String,
    key: Zeroizing<[u8; 32]>,
}

impl SealKey {
    /// A key from 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let key = Zeroizing::new(bytes);
        let kid = derive_kid(&key);
        Self { kid, key }
    }

    /// A fresh random key.
    ///
    /// # Errors
    ///
    /// Fails only if the OS random source fails.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Self::from_bytes(*bytes))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key's bytes, for persisting it.
    ///
    /// # Security
    ///
    /// Secret: write it to a file of mode 0600 and nowhere else.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn generate() -> Result<SealKey> {
    SealKey::generate().map_err(|_| Error::KeyGeneration {
        reason: "the OS random source failed",
    })
}

fn derive_kid(key: &[u8; 32]) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return String::new();
    };
    m.update(b"tessera-seal-kid-v1");
    let d = m.finalize().into_bytes();
    let first: [u8; 8] = d.get(..8).and_then(|s| s.try_into().ok()).unwrap_or([0; 8]);
    URL_SAFE_NO_PAD.encode(first)
}

fn aad(name: &str, purpose: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_DOMAIN.len() + name.len() + 1 + purpose.len());
    a.extend_from_slice(AAD_DOMAIN);
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    a.extend_from_slice(purpose.as_bytes());
    a
}

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

    /// Seals `payload` for cookie `name` and `purpose`, valid until `expires_at` (Unix
    /// seconds).
    ///
    /// # Errors
    ///
    /// [`SealError::NoKey`] if there is no key, [`SealError::Random`] if the OS random source
    /// fails, [`SealError::Encrypt`] if the cipher refuses the payload.
    pub fn seal(
        &self,
        name: &str,
        purpose: &str,
        payload: &[u8],
        expires_at: i64,
    ) -> Result<String, SealError> {
        let key = &self.entries.first().ok_or(SealError::NoKey)?.key;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let mut plaintext = Zeroizing::new(Vec::with_capacity(8 + payload.len()));
        plaintext.extend_from_slice(&expires_at.to_be_bytes());
        plaintext.extend_from_slice(payload);
        let cipher = XChaCha20Poly1305::new(key.key.as_ref().into());
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad(name, purpose),
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        let mut body = Vec::with_capacity(NONCE_LEN + ct.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ct);
        Ok(format!(
            "{VERSION}.{}.{}",
            key.kid,
            URL_SAFE_NO_PAD.encode(body)
        ))
    }

    /// Opens a value sealed for `name` and `purpose`, if it has not expired at `now`.
    ///
    /// # Errors
    ///
    /// [`SealError::Invalid`], the same for every failure.
    pub fn open(
        &self,
        name: &str,
        purpose: &str,
        value: &str,
        now: i64,
    ) -> Result<Vec<u8>, SealError> {
        let mut parts = value.splitn(3, '.');
        let (Some(version), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Invalid);
        };
        if version != VERSION || kid.len() != KID_LEN {
            return Err(SealError::Invalid);
        }
        let key = &self
            .entries
            .iter()
            .find(|e| e.key.kid == kid)
            .ok_or(SealError::Invalid)?
            .key;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SealError::Invalid)?;
        if raw.len() < NONCE_LEN + TAG_LEN + 8 {
            return Err(SealError::Invalid);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(key.key.as_ref().into());
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: &aad(name, purpose),
                    },
                )
                .map_err(|_| SealError::Invalid)?,
        );
        let (exp, payload) = plaintext
            .split_first_chunk::<8>()
            .ok_or(SealError::Invalid)?;
        if now >= i64::from_be_bytes(*exp) {
            return Err(SealError::Invalid);
        }
        Ok(payload.to_vec())
    }
}

/// The length of the sealed form of a payload of `payload_len` bytes: for size budgets.
pub fn sealed_len(payload_len: usize) -> usize {
    let body = NONCE_LEN + 8 + payload_len + TAG_LEN;
    // Unpadded base64 of n bytes is ceil(4n / 3) characters.
    VERSION.len() + 1 + KID_LEN + 1 + (body * 4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn ring() -> SealKeyring {
        SealKeyring::new(vec![SealKey::generate().unwrap()])
    }

    #[test]
    fn round_trip_and_predicted_length() {
        let r = ring();
        for len in [0usize, 1, 2, 3, 100, 3000] {
            let payload = vec![7u8; len];
            let v = r.seal("__Host-anon", "anon", &payload, NOW + 60).unwrap();
            assert_eq!(v.len(), sealed_len(len), "len {len}");
            assert_eq!(r.open("__Host-anon", "anon", &v, NOW).unwrap(), payload);
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "cookie-safe"
            );
        }
    }

    #[test]
    fn every_failure_is_the_same_error() {
        let r = ring();
        let v = r.seal("n", "p", b"{\"a\":1}", NOW + 60).unwrap();
        let other = r.seal("n", "p", b"{\"b\":2}", NOW + 60).unwrap();
        // Tampered at every position of the body.
        let prefix = v.rfind('.').unwrap() + 1;
        for i in prefix..v.len() {
            let mut b = v.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).unwrap();
            if t != v {
                assert_eq!(
                    r.open("n", "p", &t, NOW),
                    Err(SealError::Invalid),
                    "byte {i}"
                );
            }
        }
        let cases = [
            v[..v.len() - 1].to_owned(),                               // truncated
            format!("{}{}", &v[..prefix + 32], &other[prefix + 32..]), // spliced
            v.replacen('1', "2", 1),                                   // other version
            String::new(),
            "1..".to_owned(),
            format!("{v}="),
        ];
        for c in &cases {
            assert_eq!(r.open("n", "p", c, NOW), Err(SealError::Invalid), "{c}");
        }
        assert_eq!(
            r.open("other-name", "p", &v, NOW),
            Err(SealError::Invalid),
            "replayed under another name"
        );
        assert_eq!(
            r.open("n", "other-purpose", &v, NOW),
            Err(SealError::Invalid),
            "another purpose"
        );
        assert_eq!(
            r.open("n", "p", &v, NOW + 60),
            Err(SealError::Invalid),
            "expired"
        );
        assert_eq!(
            ring().open("n", "p", &v, NOW),
            Err(SealError::Invalid),
            "unknown key"
        );
        assert!(r.open("n", "p", &v, NOW + 59).is_ok());
    }

    #[test]
    fn rotation_keeps_old_values_open_and_seals_with_the_new_key() {
        let mut r = ring();
        let old_kid = r.sealing_kid().unwrap().to_owned();
        let old = r.seal("n", "p", b"x", NOW + 600).unwrap();
        r.rotate(SealKey::generate().unwrap());
        let new = r.seal("n", "p", b"y", NOW + 600).unwrap();
        assert!(old.contains(&old_kid) && !new.contains(&old_kid));
        assert_eq!(r.open("n", "p", &old, NOW).unwrap(), b"x");
        assert_eq!(r.open("n", "p", &new, NOW).unwrap(), b"y");
        r.retain_newest(1);
        assert_eq!(r.open("n", "p", &old, NOW), Err(SealError::Invalid));
        assert_eq!(r.open("n", "p", &new, NOW).unwrap(), b"y");
    }

    #[test]
    fn scheduled_rotation_seals_with_the_new_key_and_drops_old_keys_after_retention() {
        let policy = SealPolicy::default()
            .with_rotate_every(Duration::from_secs(86_400))
            .with_retention(Duration::from_secs(3600));
        let mut r = SealKeyring::generate_at(NOW, policy).unwrap();
        let first = r.sealing_kid().unwrap().to_owned();
        assert!(!r.rotate_at(NOW + 86_399).unwrap().changed());
        let old = r.seal("n", "p", b"old", NOW + 200_000).unwrap();

        let rot = r.rotate_at(NOW + 86_400).unwrap();
        let second = rot.generated.clone().unwrap();
        assert_ne!(first, second);
        assert!(rot.dropped.is_empty(), "{rot:?}");
        assert_eq!(r.sealing_kid(), Some(second.as_str()));
        let new = r.seal("n", "p", b"new", NOW + 200_000).unwrap();
        assert_eq!(new.split('.').nth(1), Some(second.as_str()));
        assert_eq!(old.split('.').nth(1), Some(first.as_str()));
        assert_eq!(r.open("n", "p", &old, NOW + 86_400).unwrap(), b"old");

        // The old key opens for its retention after it stopped sealing, then goes.
        assert!(!r.rotate_at(NOW + 86_400 + 3599).unwrap().changed());
        let rot = r.rotate_at(NOW + 86_400 + 3600).unwrap();
        assert_eq!(rot.dropped, vec![first]);
        assert_eq!(
            r.open("n", "p", &old, NOW + 86_400 + 3600),
            Err(SealError::Invalid)
        );
        assert_eq!(r.open("n", "p", &new, NOW + 86_400 + 3600).unwrap(), b"new");
        let info: Vec<_> = r.keys().collect();
        assert_eq!(info.len(), 1);
        assert!(info[0].sealing && info[0].kid == second);
    }

    #[test]
    fn an_empty_keyring_gets_a_key_at_the_first_rotation() {
        let mut r = SealKeyring::with_policy(SealPolicy::default());
        assert!(r.sealing_kid().is_none());
        let rot = r.rotate_at(NOW).unwrap();
        assert_eq!(rot.generated.as_deref(), r.sealing_kid());
        assert!(r.seal("n", "p", b"x", NOW + 1).is_ok());
        // Keys of unknown age (`new`) are replaced at the first rotation.
        let mut r = SealKeyring::new(vec![SealKey::generate().unwrap()]);
        assert!(r.rotate_at(NOW).unwrap().generated.is_some());
    }

    #[test]
    fn key_ids_are_fixed_and_debug_is_redacted() {
        let k = SealKey::from_bytes([9; 32]);
        assert_eq!(k.kid().len(), KID_LEN);
        assert_eq!(k.kid(), SealKey::from_bytes([9; 32]).kid());
        assert_ne!(k.kid(), SealKey::from_bytes([8; 32]).kid());
        let d = format!("{k:?}");
        assert!(d.contains(k.kid()) && !d.contains("9, 9"), "{d}");
    }

    #[test]
    fn error_codes_are_listed_unique_and_kebab_case() {
        let random = getrandom::Error::UNSUPPORTED;
        let all = [
            SealError::NoKey,
            SealError::Random(random),
            SealError::Encrypt,
            SealError::Invalid,
        ];
        tessera_test_support::assert_error_codes(SealError::CODES, all.iter().map(SealError::code));
    }

    #[test]
    fn no_key_seals_nothing() {
        assert_eq!(
            SealKeyring::default().seal("n", "p", b"x", NOW),
            Err(SealError::NoKey)
        );
    }
}
