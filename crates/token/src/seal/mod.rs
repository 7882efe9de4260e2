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
//! compression, CRIME/BREACH).//!
//! | module | what |
//! |---|---|
//! | `mod.rs` | the format: [`SealKey`], [`SealKeyring::seal`], [`SealKeyring::open`], [`sealed_len`], [`SealError`] |
//! | `keyring.rs` | the keys: [`SealKeyring`] (newest seals, all open), [`SealPolicy`], [`SealKeyring::rotate_at`] |

use std::fmt;

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

mod keyring;

pub(crate) use self::keyring::SealEntry;
pub use self::keyring::{SealKeyInfo, SealKeyring, SealPolicy, SealRotation};

// === the format: sealing and opening with the keyring's keys ===

impl SealKeyring {
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
        let key = &self.entries().first().ok_or(SealError::NoKey)?.key;
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
            .entries()
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
    use std::time::Duration;

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
