//! Keys: algorithms, key ids, the public form ([`PublicKey`]) and the secret form
//! ([`SigningKey`]), JWK encoding and PKCS#8 files.
//!
//! | module | what |
//! |---|---|
//! | `mod.rs` | [`Algorithm`], [`JwsAlgorithm`], [`KeyId`] and its derivation |
//! | `public.rs` | [`PublicKey`]: validated constructors, JWK in and out, verifying |
//! | `signing.rs` | [`SigningKey`], [`RsaBits`]: generation, PKCS#8, signing |

use std::fmt;

use serde::Serialize;

use crate::b64;
use crate::error::{Error, Result};

mod public;
mod signing;

pub(crate) use self::public::Jwk;
pub use self::public::PublicKey;
pub use self::signing::{RsaBits, SigningKey};

/// How many base64url characters of the RFC 7638 thumbprint form a [`KeyId`]: 16
/// characters, 96 bits. Fixed forever: changing it would orphan every key id in use.
pub const KEY_ID_LEN: usize = 16;

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3, RFC 8725 §3.5).
pub const RSA_MIN_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits (bounds verification cost).
pub const RSA_MAX_BITS: usize = 8192;

/// What a key is: one key, one algorithm, forever (RFC 8725 §3.1).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519 (RFC 8032), header `alg` `EdDSA` or `Ed25519`. The default.
    Ed25519,
    /// ECDSA on P-256 with SHA-256, RFC 6979 deterministic nonces, header `alg` `ES256`.
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, modulus 2048 to 8192 bits, header `alg` `RS256`.
    #[serde(rename = "RS256")]
    Rs256,
}

impl Algorithm {
    /// The name used in the keyring manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "Ed25519",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// A JWS header `alg` value Tessera knows. Anything else (`none`, `HS256`, `PS256`, …) is
/// refused before any key is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwsAlgorithm {
    /// `EdDSA` (RFC 8037): Ed25519 keys. The default header value.
    EdDsa,
    /// `Ed25519` (RFC 9864, fully specified): Ed25519 keys, same signature bytes.
    Ed25519,
    /// `ES256`: P-256 keys.
    Es256,
    /// `RS256`: RSA keys.
    Rs256,
}

impl JwsAlgorithm {
    pub(crate) const ALL: [Self; 4] = [Self::EdDsa, Self::Ed25519, Self::Es256, Self::Rs256];

    /// The header value, exactly as it appears in a token.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Ed25519 => "Ed25519",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The header value `name`, compared exactly (case-sensitive, RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The algorithm of the keys this header value may name.
    pub fn key_algorithm(self) -> Algorithm {
        match self {
            Self::EdDsa | Self::Ed25519 => Algorithm::Ed25519,
            Self::Es256 => Algorithm::Es256,
            Self::Rs256 => Algorithm::Rs256,
        }
    }

    pub(crate) fn bit(self) -> u8 {
        match self {
            Self::EdDsa => 1,
            Self::Ed25519 => 2,
            Self::Es256 => 4,
            Self::Rs256 => 8,
        }
    }
}

/// A key id: the first [`KEY_ID_LEN`] characters of the base64url (no padding) SHA-256
/// JWK thumbprint of the public key (RFC 7638).
///
/// Derived from public material only, so every party computes the same id, and distinct
/// keys (of any algorithm) get distinct ids. Public: it may be logged.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
// Always KEY_ID_LEN base64url characters (ASCII): held inline, so a clone allocates nothing.
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn from_thumbprint(thumbprint: &[u8; 32]) -> Self {
        let s = b64::encode(thumbprint);
        let mut id = [0u8; KEY_ID_LEN];
        for (d, b) in id.iter_mut().zip(s.bytes()) {
            *d = b;
        }
        Self(id)
    }

    /// Checks that `s` has the shape of a key id ([`KEY_ID_LEN`] base64url characters).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] otherwise.
    pub fn try_new(s: &str) -> Result<Self> {
        match <[u8; KEY_ID_LEN]>::try_from(s.as_bytes()) {
            Ok(id)
                if id
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') =>
            {
                Ok(Self(id))
            }
            _ => Err(Error::InvalidKey {
                reason: "not a key id",
            }),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only base64url characters ever get in, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_have_the_fixed_length() {
        let sk = SigningKey::generate(Algorithm::Es256).unwrap();
        assert_eq!(sk.kid().as_str().len(), KEY_ID_LEN);
        assert!(KeyId::try_new(sk.kid().as_str()).is_ok());
        assert!(KeyId::try_new("short").is_err());
        assert!(KeyId::try_new("0123456789abcde/").is_err());
    }
}
