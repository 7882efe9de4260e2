//! [`SigningKey`]: the secret half of a key (generation, PKCS#8 files, signing), and the RSA
//! sizes Tessera generates ([`RsaBits`]).

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self as lc_sig, KeyPair as _};
use zeroize::Zeroizing;

use super::{Algorithm, KeyId, PublicKey};
use crate::error::{Error, Result};

/// RSA modulus sizes Tessera generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RsaBits {
    /// 2048 bits: the minimum (RFC 7518 §3.3).
    B2048,
    /// 3072 bits: 128-bit security (ASVS 5 §11.2.3). The default.
    #[default]
    B3072,
    /// 4096 bits.
    B4096,
}

/// The secret half of a key: signs. Zeroized on drop, never printed, never serialized.
///
/// Its `Debug` shows only the key id and algorithm; equality is by key id. There is no
/// `Clone`: a private key lives in exactly one place.
///
/// # Security
///
/// The private scalar is zeroized on drop by ed25519-dalek (`zeroize` feature) and p256
/// (`ecdsa::SigningKey`'s `Drop`); RSA keys live in AWS-LC, whose `OPENSSL_free` clears
/// memory before freeing it. PKCS#8 bytes only ever sit in [`Zeroizing`] buffers.
pub struct SigningKey {
    public: PublicKey,
    inner: SecretInner,
}

enum SecretInner {
    Ed25519(ed25519_dalek::SigningKey),
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<RsaKeyPair>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", self.public.kid())
            .field("alg", &self.public.algorithm())
            .finish_non_exhaustive()
    }
}

/// Two signing keys are equal when their key ids are; the secret bytes are never compared.
impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.public.kid() == other.public.kid()
    }
}

impl Eq for SigningKey {}

fn random_32() -> Result<Zeroizing<[u8; 32]>> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|_| Error::KeyGeneration {
        reason: "the OS random source failed",
    })?;
    Ok(seed)
}

impl SigningKey {
    /// A new key of `algorithm` from the OS random source (RSA: [`RsaBits::default`]).
    ///
    /// # Errors
    ///
    /// [`Error::KeyGeneration`] if the random source or the generator fails.
    pub fn generate(algorithm: Algorithm) -> Result<Self> {
        match algorithm {
            Algorithm::Ed25519 => Ok(Self::ed25519_from_seed(&*random_32()?)),
            Algorithm::Es256 => {
                // A random 256-bit string is a valid scalar unless it is 0 or >= n,
                // which happens with probability < 2^-32; a few tries are plenty.
                for _ in 0..4 {
                    let bytes = random_32()?;
                    if let Ok(sk) = p256::ecdsa::SigningKey::from_bytes(
                        p256::FieldBytes::from_slice(bytes.as_slice()),
                    ) {
                        return Ok(Self::from_p256(sk));
                    }
                }
                Err(Error::KeyGeneration {
                    reason: "no valid P-256 scalar drawn",
                })
            }
            Algorithm::Rs256 => Self::generate_rsa(RsaBits::default()),
        }
    }

    /// A new RSA key of `bits` (AWS-LC's generator).
    ///
    /// # Errors
    ///
    /// [`Error::KeyGeneration`].
    pub fn generate_rsa(bits: RsaBits) -> Result<Self> {
        let size = match bits {
            RsaBits::B2048 => KeySize::Rsa2048,
            RsaBits::B3072 => KeySize::Rsa3072,
            RsaBits::B4096 => KeySize::Rsa4096,
        };
        let kp = RsaKeyPair::generate(size).map_err(|_| Error::KeyGeneration {
            reason: "RSA key generation failed",
        })?;
        Self::from_rsa(kp)
    }

    /// The Ed25519 key with this 32-byte seed (RFC 8032 §5.1.5 "private key").
    ///
    /// For known-answer tests and fixtures; keys in use come from [`SigningKey::generate`].
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        let sk = ed25519_dalek::SigningKey::from_bytes(seed);
        // A key derived from a seed is a clamped multiple of the base point: never weak,
        // never non-canonical, so it skips the import checks.
        Self {
            public: PublicKey::ed25519_checked(sk.verifying_key()),
            inner: SecretInner::Ed25519(sk),
        }
    }

    fn from_p256(sk: p256::ecdsa::SigningKey) -> Self {
        Self {
            public: PublicKey::from_p256(*sk.verifying_key()),
            inner: SecretInner::Es256(sk),
        }
    }

    fn from_rsa(kp: RsaKeyPair) -> Result<Self> {
        let pk = kp.public_key();
        let public = PublicKey::rs256(
            pk.modulus().big_endian_without_leading_zero(),
            pk.exponent().big_endian_without_leading_zero(),
        )?;
        Ok(Self {
            public,
            inner: SecretInner::Rs256(Box::new(kp)),
        })
    }

    /// Parses an unencrypted PKCS#8 (RFC 5208/5958) DER private key of `algorithm`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if the bytes are not such a key (including RSA keys outside
    /// 2048–8192 bits or with an exponent other than 65537).
    pub fn from_pkcs8_der(algorithm: Algorithm, der: &[u8]) -> Result<Self> {
        let bad = |_| Error::InvalidKey {
            reason: "not a PKCS#8 private key of the expected algorithm",
        };
        match algorithm {
            Algorithm::Ed25519 => {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                let sk = ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|_| bad(()))?;
                Ok(Self::ed25519_from_seed(&Zeroizing::new(sk.to_bytes())))
            }
            Algorithm::Es256 => {
                use p256::pkcs8::DecodePrivateKey as _;
                let sk = p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| bad(()))?;
                Ok(Self::from_p256(sk))
            }
            Algorithm::Rs256 => Self::from_rsa(RsaKeyPair::from_pkcs8(der).map_err(|_| bad(()))?),
        }
    }

    /// Encodes the private key as unencrypted PKCS#8 DER, for the keyring's key files.
    ///
    /// Ed25519 keys are written in the version 1 form of RFC 8410 §7 (the seed alone, 48
    /// bytes), not ed25519-dalek's default version 2 form with the public key (RFC 5958),
    /// which OpenSSL 3.0 and pyca/cryptography refuse to load. [`Self::from_pkcs8_der`]
    /// reads both.
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`] if the encoder fails (it does not for valid keys).
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let fail = |_| Error::Unreachable("PKCS#8 encoding failed");
        match &self.inner {
            SecretInner::Ed25519(sk) => {
                use ed25519_dalek::pkcs8::EncodePrivateKey as _;
                // Zeroized on drop, like the document it encodes into.
                let mut bytes = ed25519_dalek::pkcs8::KeypairBytes::from(sk);
                bytes.public_key = None;
                let doc = bytes.to_pkcs8_der().map_err(|_| fail(()))?;
                Ok(Zeroizing::new(doc.as_bytes().to_vec()))
            }
            SecretInner::Es256(sk) => {
                use p256::pkcs8::EncodePrivateKey as _;
                let doc = sk.to_pkcs8_der().map_err(|_| fail(()))?;
                Ok(Zeroizing::new(doc.as_bytes().to_vec()))
            }
            SecretInner::Rs256(kp) => {
                let der = kp.as_der().map_err(|_| fail(()))?;
                Ok(Zeroizing::new(der.as_ref().to_vec()))
            }
        }
    }

    /// The key id.
    pub fn kid(&self) -> &KeyId {
        self.public.kid()
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// The public half.
    ///
    /// # Security
    ///
    /// This turns secret into public: it is what the JWKS publishes and what verifies this
    /// key's signatures, and it reveals nothing of the private key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message`: Ed25519 (RFC 8032), ECDSA P-256 SHA-256 with RFC 6979
    /// deterministic nonces as `r || s` (RFC 7518 §3.4), or RSASSA-PKCS1-v1_5 SHA-256.
    ///
    /// # Errors
    ///
    /// [`Error::Signing`] if AWS-LC fails an RSA signature.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match &self.inner {
            SecretInner::Ed25519(sk) => {
                use ed25519_dalek::Signer as _;
                Ok(sk.sign(message).to_bytes().to_vec())
            }
            SecretInner::Es256(sk) => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::Signature = sk.sign(message);
                // The low `s` (at most n/2): token verification refuses the high one, so
                // every token has one spelling (`verify_jws_signature`).
                let sig = sig.normalize_s().unwrap_or(sig);
                Ok(sig.to_bytes().to_vec())
            }
            SecretInner::Rs256(kp) => {
                let mut out = vec![0u8; kp.public_modulus_len()];
                // AWS-LC ignores the RNG for PKCS#1 v1.5 (deterministic padding).
                let rng = aws_lc_rs::rand::SystemRandom::new();
                kp.sign(&lc_sig::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| Error::Signing)?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b64;

    #[test]
    fn debug_is_redacted() {
        let sk = SigningKey::ed25519_from_seed(&[7; 32]);
        let dbg = format!("{sk:?}");
        assert!(dbg.starts_with("SigningKey { kid: KeyId("), "{dbg}");
        assert!(!dbg.contains("07"), "{dbg}");
        let der = sk.to_pkcs8_der().unwrap();
        assert!(!dbg.contains(&b64::encode(&der)));
    }

    #[test]
    fn pkcs8_round_trips() {
        for alg in [Algorithm::Ed25519, Algorithm::Es256] {
            let sk = SigningKey::generate(alg).unwrap();
            let der = sk.to_pkcs8_der().unwrap();
            let back = SigningKey::from_pkcs8_der(alg, &der).unwrap();
            assert_eq!(back.kid(), sk.kid());
            let other = if alg == Algorithm::Ed25519 {
                Algorithm::Es256
            } else {
                Algorithm::Ed25519
            };
            assert!(SigningKey::from_pkcs8_der(other, &der).is_err());
        }
    }

    /// RFC 8410 §10.3's example private key, byte for byte: the version 1 form that
    /// OpenSSL and pyca/cryptography load. Keys saved earlier in ed25519-dalek's version 2
    /// form (with the public key) still load.

    #[test]
    fn ed25519_pkcs8_is_the_rfc_8410_v1_form_and_v2_still_loads() {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let rfc8410 = "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp-K06_nwoy_HU--CXqI9EdVhC";
        let der = b64::decode(rfc8410.as_bytes()).unwrap();
        let seed: [u8; 32] = der[16..].try_into().unwrap();
        let sk = SigningKey::ed25519_from_seed(&seed);
        assert_eq!(&**sk.to_pkcs8_der().unwrap(), &der[..]);

        let SecretInner::Ed25519(dalek) = &sk.inner else {
            panic!("an Ed25519 key");
        };
        let v2 = dalek.to_pkcs8_der().unwrap();
        assert_eq!(v2.as_bytes().len(), 83, "version 2, with the public key");
        let back = SigningKey::from_pkcs8_der(Algorithm::Ed25519, v2.as_bytes()).unwrap();
        assert_eq!(back.kid(), sk.kid());
    }
}
