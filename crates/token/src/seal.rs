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
//! Opening fails with the one error [`SealError`], whatever went wrong (format, version,
//! unknown key, forgery, splice, other name or purpose, expiry), so a client learns nothing
//! from trying. Nothing is compressed before encryption (no length side channel from
//! compression, CRIME/BREACH).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Sha256;
use zeroize::Zeroizing;

const VERSION: &str = "1";
const KID_LEN: usize = 11;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const AAD_DOMAIN: &[u8] = b"tessera-seal-v1\0";

/// Why a value did not open. Deliberately one case: every failure looks the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid sealed value")]
pub struct SealError;

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

/// The sealing keys: the newest seals, every one of them opens. Rotation adds a key at the
/// front; keys older than the longest sealed lifetime can then be dropped.
#[derive(Debug, Default)]
pub struct SealKeyring {
    /// Newest first.
    keys: Vec<SealKey>,
}

impl SealKeyring {
    /// A keyring of `keys`, newest first.
    pub fn new(keys: Vec<SealKey>) -> Self {
        Self { keys }
    }

    /// Adds `key` as the sealing key; the others keep opening.
    pub fn rotate(&mut self, key: SealKey) {
        self.keys.insert(0, key);
    }

    /// Keeps only the `n` newest keys (at least one).
    pub fn retain_newest(&mut self, n: usize) {
        self.keys.truncate(n.max(1));
    }

    /// The keys, newest first.
    pub fn keys(&self) -> &[SealKey] {
        &self.keys
    }

    /// Seals `payload` for cookie `name` and `purpose`, valid until `expires_at` (Unix
    /// seconds).
    ///
    /// # Errors
    ///
    /// [`SealError`] if there is no key or the OS random source fails.
    pub fn seal(
        &self,
        name: &str,
        purpose: &str,
        payload: &[u8],
        expires_at: i64,
    ) -> Result<String, SealError> {
        let key = self.keys.first().ok_or(SealError)?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError)?;
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
            .map_err(|_| SealError)?;
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
    /// [`SealError`], the same for every failure.
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
            return Err(SealError);
        };
        if version != VERSION || kid.len() != KID_LEN {
            return Err(SealError);
        }
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or(SealError)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError)?;
        if raw.len() < NONCE_LEN + TAG_LEN + 8 {
            return Err(SealError);
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
                .map_err(|_| SealError)?,
        );
        let (exp, payload) = plaintext.split_first_chunk::<8>().ok_or(SealError)?;
        if now >= i64::from_be_bytes(*exp) {
            return Err(SealError);
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
                assert_eq!(r.open("n", "p", &t, NOW), Err(SealError), "byte {i}");
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
            assert_eq!(r.open("n", "p", c, NOW), Err(SealError), "{c}");
        }
        assert_eq!(
            r.open("other-name", "p", &v, NOW),
            Err(SealError),
            "replayed under another name"
        );
        assert_eq!(
            r.open("n", "other-purpose", &v, NOW),
            Err(SealError),
            "another purpose"
        );
        assert_eq!(r.open("n", "p", &v, NOW + 60), Err(SealError), "expired");
        assert_eq!(
            ring().open("n", "p", &v, NOW),
            Err(SealError),
            "unknown key"
        );
        assert!(r.open("n", "p", &v, NOW + 59).is_ok());
    }

    #[test]
    fn rotation_keeps_old_values_open_and_seals_with_the_new_key() {
        let mut r = ring();
        let old_kid = r.keys()[0].kid().to_owned();
        let old = r.seal("n", "p", b"x", NOW + 600).unwrap();
        r.rotate(SealKey::generate().unwrap());
        let new = r.seal("n", "p", b"y", NOW + 600).unwrap();
        assert!(old.contains(&old_kid) && !new.contains(&old_kid));
        assert_eq!(r.open("n", "p", &old, NOW).unwrap(), b"x");
        assert_eq!(r.open("n", "p", &new, NOW).unwrap(), b"y");
        r.retain_newest(1);
        assert_eq!(r.open("n", "p", &old, NOW), Err(SealError));
        assert_eq!(r.open("n", "p", &new, NOW).unwrap(), b"y");
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
    fn no_key_seals_nothing() {
        assert_eq!(
            SealKeyring::default().seal("n", "p", b"x", NOW),
            Err(SealError)
        );
    }
}
