//! CSRF tokens derived from the session, not stored: issuing one costs no write; and the
//! session `sid`s bound into tokens.
//!
//! A token is `base64url(t || HMAC-SHA256(k, "tessera-csrf-v1" || len(p) || p || key || t))`
//! where `t` is the issue time in seconds (8 bytes, big-endian), `p` the purpose and `key` the
//! session's store key. The store key changes with the handle, so tokens rotate at login and
//! die with the session. This is OWASP's signed double-submit pattern, bound to the session.
//!
//! Two kinds of key, kept apart so that one can rotate and the other never does:
//!
//! - the CSRF keys ([`CsrfKeyring`]): the newest key valid now issues, every key in the ring
//!   verifies; a new key is added on a schedule ([`CsrfKeyring::rotate_at`]), ahead of its use,
//!   and an old one stays for the tokens' maximum age after it stopped issuing;
//! - the sid key ([`SidKey`]): the `sid` of a session is a keyed digest of its store key; it is
//!   in every session token and in the revocation feed, so it never changes.
//!
//! A data directory or a fleet record of before this split held one key for both: it becomes
//! the sid key and the first CSRF key, so its tokens and sids stay valid.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tessera_core::{StoreKey, Timestamp};
use zeroize::Zeroizing;

mod ring;

pub use ring::{CsrfKeyInfo, CsrfKeySet, CsrfKeyring, CsrfPolicy, CsrfRotation};

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"tessera-csrf-v1";
const TOKEN_BYTES: usize = 8 + 32;
/// Length of a token's text form.
pub const TOKEN_LEN: usize = 54;
/// The longest purpose string, in bytes.
pub const MAX_PURPOSE_LEN: usize = 128;
/// How far in the future a token's time may be (clock skew between replicas).
const FUTURE_SKEW: Duration = Duration::from_secs(60);

/// The server secret CSRF tokens are keyed with.
///
/// # Security
///
/// Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct CsrfKey(Zeroizing<[u8; 32]>);

impl CsrfKey {
    /// A key from 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    ///
    /// # Errors
    ///
    /// Fails only if the OS random source fails.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut())?;
        Ok(Self(k))
    }

    /// The key bytes, for the fleet's sealed key record (`keys::stored`) only.
    pub(crate) fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self, purpose: &str, session: &StoreKey, t: u64) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut m) = HmacSha256::new_from_slice(self.0.as_ref()) else {
            return [0; 32];
        };
        m.update(DOMAIN);
        m.update(
            &u32::try_from(purpose.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        m.update(purpose.as_bytes());
        m.update(session.as_bytes());
        m.update(&t.to_be_bytes());
        m.finalize().into_bytes().into()
    }

    /// The key's id: a truncated HMAC under a label of its own (it reveals nothing of the
    /// key), for listings and the fleet's record.
    pub fn kid(&self) -> String {
        let Ok(mut m) = HmacSha256::new_from_slice(self.0.as_ref()) else {
            return String::new();
        };
        m.update(b"tessera-csrf-kid-v1");
        let mac: [u8; 32] = m.finalize().into_bytes().into();
        URL_SAFE_NO_PAD.encode(&mac[..8])
    }

    /// The sid key of the same bytes: what a key of before the split (one key for both)
    /// becomes, so that the sids it made stay the same.
    pub fn to_sid_key(&self) -> SidKey {
        SidKey(self.0.clone())
    }

    /// A token for `purpose` bound to the session stored under `session`, issued at `now`.
    pub fn issue(&self, purpose: &str, session: &StoreKey, now: Timestamp) -> String {
        let t = u64::try_from(now.unix_secs()).unwrap_or(0);
        let mut raw = [0u8; TOKEN_BYTES];
        raw[..8].copy_from_slice(&t.to_be_bytes());
        raw[8..].copy_from_slice(&self.mac(purpose, session, t));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `token` was issued for `purpose` and `session` no longer than `max_age` ago.
    /// The MAC is compared in constant time.
    pub fn verify(
        &self,
        token: &str,
        purpose: &str,
        session: &StoreKey,
        max_age: Duration,
        now: Timestamp,
    ) -> bool {
        parse(token, max_age, now).is_some_and(|(t, mac)| self.matches(&mac, purpose, session, t))
    }

    /// Whether `mac` is this key's MAC of a token issued at `t` (constant time).
    fn matches(&self, mac: &[u8; 32], purpose: &str, session: &StoreKey, t: u64) -> bool {
        mac.ct_eq(&self.mac(purpose, session, t)).into()
    }
}

/// A token's issue time and MAC, if it is well formed and no older than `max_age` (nor
/// issued in the future beyond the skew).
fn parse(token: &str, max_age: Duration, now: Timestamp) -> Option<(u64, [u8; 32])> {
    if token.len() != TOKEN_LEN {
        return None;
    }
    let mut raw = [0u8; TOKEN_BYTES + 2];
    let n = URL_SAFE_NO_PAD.decode_slice(token, &mut raw).ok()?;
    if n != TOKEN_BYTES {
        return None;
    }
    let (t_bytes, rest) = raw.split_at(8);
    let t = u64::from_be_bytes(<[u8; 8]>::try_from(t_bytes).ok()?);
    let issued = Timestamp::from_unix_secs(i64::try_from(t).ok()?);
    if issued > now.saturating_add(FUTURE_SKEW) || now.duration_since(issued) > max_age {
        return None;
    }
    let mac = <[u8; 32]>::try_from(rest.get(..32)?).ok()?;
    Some((t, mac))
}

/// The key of session `sid`s: never rotated, because every session token carries its
/// session's `sid` and the revocation feed lists the `sid`s of revoked sessions.
///
/// # Security
///
/// Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct SidKey(Zeroizing<[u8; 32]>);

impl SidKey {
    /// A key from 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    ///
    /// # Errors
    ///
    /// Fails only if the OS random source fails.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut())?;
        Ok(Self(k))
    }

    /// The key bytes, for the fleet's sealed key record (`keys::stored`) only.
    pub(crate) fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The session's `sid`: a short keyed digest of its store key (16 bytes of
    /// HMAC-SHA256 under a label of its own, base64url, 22 characters). Tokens carry it and
    /// the revocation feed lists it, so a verifier can refuse a logged-out session's tokens
    /// without learning its store key.
    pub fn sid(&self, session: &StoreKey) -> String {
        let Ok(mut m) = HmacSha256::new_from_slice(self.0.as_ref()) else {
            return String::new();
        };
        m.update(b"tessera-sid-v1");
        m.update(session.as_bytes());
        let mac: [u8; 32] = m.finalize().into_bytes().into();
        URL_SAFE_NO_PAD.encode(&mac[..16])
    }
}

impl fmt::Debug for SidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SidKey(REDACTED)")
    }
}

impl fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfKey(REDACTED)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::{Handle, SessionKind};

    fn key() -> StoreKey {
        Handle::generate(SessionKind::Anonymous)
            .unwrap()
            .store_key()
    }

    const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);
    const AGE: Duration = Duration::from_secs(3600);

    #[test]
    fn issued_tokens_verify_for_their_session_and_purpose_only() {
        let k = CsrfKey::generate().unwrap();
        let s = key();
        let t = k.issue("default", &s, NOW);
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(k.verify(&t, "default", &s, AGE, NOW));
        assert!(!k.verify(&t, "other", &s, AGE, NOW));
        assert!(!k.verify(&t, "default", &key(), AGE, NOW));
        assert!(
            !CsrfKey::generate()
                .unwrap()
                .verify(&t, "default", &s, AGE, NOW)
        );
    }

    #[test]
    fn tokens_expire_and_future_tokens_are_refused() {
        let k = CsrfKey::generate().unwrap();
        let s = key();
        let t = k.issue("p", &s, NOW);
        assert!(k.verify(&t, "p", &s, AGE, NOW.saturating_add(AGE)));
        assert!(!k.verify(
            &t,
            "p",
            &s,
            AGE,
            NOW.saturating_add(AGE + Duration::from_secs(1))
        ));
        let future = k.issue("p", &s, NOW.saturating_add(Duration::from_secs(120)));
        assert!(!k.verify(&future, "p", &s, AGE, NOW));
    }

    #[test]
    fn garbage_is_refused() {
        let k = CsrfKey::generate().unwrap();
        let s = key();
        let t = k.issue("p", &s, NOW);
        let mut flipped = t.clone().into_bytes();
        flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
        for bad in [
            String::new(),
            "x".repeat(TOKEN_LEN),
            format!("{}=", &t[..TOKEN_LEN - 1]),
            String::from_utf8(flipped).unwrap(),
            format!("{t}A"),
        ] {
            assert!(!k.verify(&bad, "p", &s, AGE, NOW), "{bad}");
        }
    }

    #[test]
    fn sids_are_short_stable_and_per_session() {
        let k = SidKey::from_bytes([1; 32]);
        let (a, b) = (key(), key());
        assert_eq!(k.sid(&a).len(), 22);
        assert_eq!(k.sid(&a), k.sid(&a));
        assert_ne!(k.sid(&a), k.sid(&b));
        assert_ne!(k.sid(&a), SidKey::from_bytes([2; 32]).sid(&a));
        // A key of before the split makes the sids it made before.
        assert_eq!(CsrfKey::from_bytes([1; 32]).to_sid_key().sid(&a), k.sid(&a));
    }

    #[test]
    fn a_known_sid_and_kid_stay_the_same() {
        // Fixed vectors: a change here breaks every token/session binding in the field.
        let s = StoreKey::from_ref(&"A".repeat(43)).unwrap();
        let sid = SidKey::from_bytes([1; 32]).sid(&s);
        assert_eq!(sid.len(), 22);
        assert_eq!(sid, SidKey::from_bytes([1; 32]).sid(&s));
        assert_eq!(CsrfKey::from_bytes([1; 32]).kid().len(), 11);
        assert_ne!(
            CsrfKey::from_bytes([1; 32]).kid(),
            CsrfKey::from_bytes([2; 32]).kid()
        );
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", CsrfKey::from_bytes([7; 32])),
            "CsrfKey(REDACTED)"
        );
        assert_eq!(
            format!("{:?}", SidKey::from_bytes([7; 32])),
            "SidKey(REDACTED)"
        );
    }
}
