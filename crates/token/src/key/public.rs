//! [`PublicKey`]: the public half of a key, validated on every way in; JWK encoding (RFC 7517,
//! RFC 7638 thumbprints) and signature verification.

use std::fmt;

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self as lc_sig, ParsedPublicKey};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Algorithm, JwsAlgorithm, KeyId, RSA_MAX_BITS, RSA_MIN_BITS};
use crate::error::{Error, Result};
use crate::{b64, json};

/// The public half of a signing key: verifies signatures and appears in the JWKS.
///
/// Every constructor validates the key: Ed25519 keys must be canonical and not of small
/// order ([`Error::WeakKey`]), P-256 points must be on the curve, RSA moduli must be 2048
/// to 8192 bits with exponent 65537.
#[derive(Clone)]
pub struct PublicKey {
    kid: KeyId,
    thumbprint: [u8; 32],
    inner: PublicInner,
}

#[derive(Clone)]
enum PublicInner {
    Ed25519(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
    Rs256(Box<RsaPublic>),
}

#[derive(Clone)]
struct RsaPublic {
    n: Vec<u8>,
    e: Vec<u8>,
    parsed: ParsedPublicKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// Two public keys are equal when their key ids are.
impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid
    }
}

impl Eq for PublicKey {}

/// A public JWK as Tessera writes it (RFC 7517 §4, RFC 8037 §2, RFC 7518 §6): members in a
/// fixed order, never a private member.
#[derive(Serialize)]
pub(crate) struct Jwk<'a> {
    kty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    kid: &'a str,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}

impl PublicKey {
    /// An Ed25519 public key from its 32-byte encoding.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] unless `bytes` is 32 bytes encoding a curve point;
    /// [`Error::WeakKey`] for a point of small order (RFC 8032 §5.1.7, Wycheproof): with
    /// such a key one signature verifies for many messages.
    pub fn ed25519(bytes: &[u8]) -> Result<Self> {
        let arr: &[u8; 32] = bytes.try_into().map_err(|_| Error::InvalidKey {
            reason: "an Ed25519 public key is 32 bytes",
        })?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(arr).map_err(|_| Error::InvalidKey {
            reason: "not an Ed25519 point",
        })?;
        Self::from_ed25519(vk)
    }

    fn from_ed25519(vk: ed25519_dalek::VerifyingKey) -> Result<Self> {
        if vk.is_weak() {
            return Err(Error::WeakKey);
        }
        // Refuse non-canonical encodings (y >= p), which curve25519-dalek decompresses
        // silently: the key must re-encode to its input, or two encodings would name one
        // key under two kids and hash differently in the signature check. Refusing a
        // small-order key here, once, is what lets the check skip `verify_strict`'s test of
        // `A` (crate::ed25519).
        if vk.to_edwards().compress().as_bytes() != vk.as_bytes() {
            return Err(Error::InvalidKey {
                reason: "non-canonical Ed25519 point encoding",
            });
        }
        Ok(Self::ed25519_checked(vk))
    }

    /// `vk` must already be known canonical and not weak.
    pub(super) fn ed25519_checked(vk: ed25519_dalek::VerifyingKey) -> Self {
        let x = b64::encode(vk.as_bytes());
        Self::with_thumbprint(
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            PublicInner::Ed25519(vk),
        )
    }

    /// A P-256 public key from its uncompressed SEC1 encoding (`0x04 || x || y`, 65 bytes).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] unless the bytes are an uncompressed point on the curve (not
    /// the identity).
    pub fn es256_from_sec1(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 65 || bytes.first() != Some(&4) {
            return Err(Error::InvalidKey {
                reason: "a P-256 key is an uncompressed 65-byte SEC1 point",
            });
        }
        let vk =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(|_| Error::InvalidKey {
                reason: "not a P-256 point",
            })?;
        Ok(Self::from_p256(vk))
    }

    pub(super) fn from_p256(vk: p256::ecdsa::VerifyingKey) -> Self {
        let point = vk.to_encoded_point(false);
        let (x, y) = match (point.x(), point.y()) {
            (Some(x), Some(y)) => (b64::encode(x), b64::encode(y)),
            // Unreachable: an uncompressed non-identity point has both coordinates.
            _ => (String::new(), String::new()),
        };
        Self::with_thumbprint(
            format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            PublicInner::Es256(vk),
        )
    }

    /// An RSA public key from its modulus `n` and exponent `e`, big-endian without leading
    /// zeros.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] unless `n` is 2048 to 8192 bits and `e` is 65537 (JWKS import
    /// rules of the security checklist, I4).
    pub fn rs256(n: &[u8], e: &[u8]) -> Result<Self> {
        let bits = match n.first() {
            Some(&first) if first != 0 => n.len() * 8 - first.leading_zeros() as usize,
            _ => {
                return Err(Error::InvalidKey {
                    reason: "RSA modulus is empty or has a leading zero",
                });
            }
        };
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
            return Err(Error::InvalidKey {
                reason: "RSA modulus must be 2048 to 8192 bits",
            });
        }
        if e != [1, 0, 1] {
            return Err(Error::InvalidKey {
                reason: "RSA exponent must be 65537",
            });
        }
        let parsed = PublicKeyComponents { n, e }
            .to_parsed_public_key(&lc_sig::RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| Error::InvalidKey {
                reason: "not an RSA public key",
            })?;
        let (nb, eb) = (b64::encode(n), b64::encode(e));
        Ok(Self::with_thumbprint(
            format!(r#"{{"e":"{eb}","kty":"RSA","n":"{nb}"}}"#),
            PublicInner::Rs256(Box::new(RsaPublic {
                n: n.to_vec(),
                e: e.to_vec(),
                parsed,
            })),
        ))
    }

    /// `canonical` is the RFC 7638 §3.2 form: required members only, sorted, no spaces.
    fn with_thumbprint(canonical: String, inner: PublicInner) -> Self {
        let thumbprint: [u8; 32] = Sha256::digest(canonical.as_bytes()).into();
        Self {
            kid: KeyId::from_thumbprint(&thumbprint),
            thumbprint,
            inner,
        }
    }

    /// A public key from a JWK (RFC 7517), strictly: `kty` `OKP` (`crv` `Ed25519`), `EC`
    /// (`crv` `P-256`) or `RSA`; no private member; `use`, if present, `sig`; `alg`, if
    /// present, matching the key type; `kid`, if present, equal to the derived
    /// [`KeyId`]; no duplicate member names.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] or [`Error::WeakKey`].
    pub fn from_jwk(json: &[u8]) -> Result<Self> {
        let map = json::parse_object(json).ok_or(Error::InvalidKey {
            reason: "a JWK is one JSON object without duplicate members",
        })?;
        Self::from_jwk_map(&map)
    }

    pub(crate) fn from_jwk_map(map: &Map<String, Value>) -> Result<Self> {
        fn member<'a>(map: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>> {
            match map.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(Error::InvalidKey {
                    reason: "a JWK member has the wrong type",
                }),
            }
        }
        fn bytes(map: &Map<String, Value>, name: &str) -> Result<Vec<u8>> {
            member(map, name)?
                .and_then(|s| b64::decode(s.as_bytes()))
                .ok_or(Error::InvalidKey {
                    reason: "a JWK key member is missing or not base64url",
                })
        }
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            if map.contains_key(private) {
                return Err(Error::InvalidKey {
                    reason: "private member in a public JWK",
                });
            }
        }
        if member(map, "use")?.is_some_and(|u| u != "sig") {
            return Err(Error::InvalidKey {
                reason: "JWK is not for signatures",
            });
        }
        let key = match (member(map, "kty")?, member(map, "crv")?) {
            (Some("OKP"), Some("Ed25519")) => Self::ed25519(&bytes(map, "x")?)?,
            (Some("EC"), Some("P-256")) => {
                let (x, y) = (bytes(map, "x")?, bytes(map, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(Error::InvalidKey {
                        reason: "P-256 coordinates are 32 bytes",
                    });
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                Self::es256_from_sec1(&sec1)?
            }
            (Some("RSA"), None) => Self::rs256(&bytes(map, "n")?, &bytes(map, "e")?)?,
            _ => {
                return Err(Error::InvalidKey {
                    reason: "unsupported kty or crv",
                });
            }
        };
        if let Some(alg) = member(map, "alg")? {
            let ok =
                JwsAlgorithm::from_name(alg).is_some_and(|a| a.key_algorithm() == key.algorithm());
            if !ok {
                return Err(Error::InvalidKey {
                    reason: "JWK alg does not match the key",
                });
            }
        }
        if member(map, "kid")?.is_some_and(|k| k != key.kid.as_str()) {
            return Err(Error::InvalidKey {
                reason: "JWK kid is not the key's thumbprint id",
            });
        }
        Ok(key)
    }

    /// The key id.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The full SHA-256 JWK thumbprint (RFC 7638) the key id is cut from.
    pub fn thumbprint(&self) -> [u8; 32] {
        self.thumbprint
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            PublicInner::Ed25519(_) => Algorithm::Ed25519,
            PublicInner::Es256(_) => Algorithm::Es256,
            PublicInner::Rs256(_) => Algorithm::Rs256,
        }
    }

    /// The public JWK, with `alg` `ed25519_alg` for an Ed25519 key.
    pub(crate) fn jwk(&self, ed25519_alg: JwsAlgorithm) -> Jwk<'_> {
        let mut jwk = Jwk {
            kty: "OKP",
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: self.kid.as_str(),
            alg: "",
            use_: "sig",
        };
        match &self.inner {
            PublicInner::Ed25519(vk) => {
                jwk.crv = Some("Ed25519");
                jwk.x = Some(b64::encode(vk.as_bytes()));
                jwk.alg = ed25519_alg.name();
            }
            PublicInner::Es256(vk) => {
                let p = vk.to_encoded_point(false);
                jwk.kty = "EC";
                jwk.crv = Some("P-256");
                jwk.x = p.x().map(|x| b64::encode(x));
                jwk.y = p.y().map(|y| b64::encode(y));
                jwk.alg = "ES256";
            }
            PublicInner::Rs256(rsa) => {
                jwk.kty = "RSA";
                jwk.n = Some(b64::encode(&rsa.n));
                jwk.e = Some(b64::encode(&rsa.e));
                jwk.alg = "RS256";
            }
        }
        jwk
    }

    /// The public JWK as JSON text (`alg` `EdDSA` for an Ed25519 key).
    pub fn to_jwk_json(&self) -> String {
        serde_json::to_string(&self.jwk(JwsAlgorithm::EdDsa)).unwrap_or_default()
    }

    /// Checks `signature` over `message`: Ed25519 refusing exactly what ed25519-dalek's
    /// `verify_strict` refuses (canonical `S`, no small-order `R` or key) at the cost of its
    /// non-strict `verify` (docs/tokens.md, "Ed25519: strict at the cost of non-strict"),
    /// ECDSA P-256 with a 64-byte `r || s` (both in `[1, n-1]`),
    /// RSA PKCS#1 v1.5 with a signature of exactly the modulus length.
    ///
    /// # Errors
    ///
    /// [`Error::BadSignature`].
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        let ok = match &self.inner {
            // `vk` is canonical and not of small order: every constructor checks it.
            PublicInner::Ed25519(vk) => <&[u8; 64]>::try_from(signature)
                .is_ok_and(|s| crate::ed25519::verify_strict(vk, message, s)),
            PublicInner::Es256(vk) => {
                use p256::ecdsa::signature::Verifier as _;
                // `from_slice` refuses r or s equal to zero or >= n: the "psychic
                // signature" (CVE-2022-21449) r = s = 0 never reaches the arithmetic.
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| vk.verify(message, &s).is_ok())
            }
            PublicInner::Rs256(rsa) => rsa.parsed.verify_sig(message, signature).is_ok(),
        };
        if ok { Ok(()) } else { Err(Error::BadSignature) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::SigningKey;

    #[test]
    fn weak_ed25519_keys_are_refused() {
        // The identity point and a point of order 8 (Wycheproof SmallOrderPublicKey).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(PublicKey::ed25519(&identity), Err(Error::WeakKey)));
        let order8 =
            b"\xc7\x17\x6a\x70\x3d\x4d\xd8\x4f\xba\x3c\x0b\x76\x0d\x10\x67\x0f\x2a\x20\x53\xfa\x2c\x39\xcc\xc6\x4e\xc7\xfd\x77\x92\xac\x03\x7a";
        assert!(matches!(PublicKey::ed25519(order8), Err(Error::WeakKey)));
        assert!(PublicKey::ed25519(&[0u8; 31]).is_err());
    }

    #[test]
    fn jwk_round_trips_and_refuses_private_members() {
        for alg in [Algorithm::Ed25519, Algorithm::Es256] {
            let sk = SigningKey::generate(alg).unwrap();
            let json = sk.public_key().to_jwk_json();
            let back = PublicKey::from_jwk(json.as_bytes()).unwrap();
            assert_eq!(&back, sk.public_key());
        }
        let sk = SigningKey::ed25519_from_seed(&[1; 32]);
        let json = sk.public_key().to_jwk_json();
        let with_d = json.replace("\"kty\"", "\"d\":\"AAAA\",\"kty\"");
        assert!(PublicKey::from_jwk(with_d.as_bytes()).is_err());
        let short = r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#;
        assert!(PublicKey::from_jwk(short.as_bytes()).is_err());
        let wrong_kid = json.replace(sk.kid().as_str(), "AAAAAAAAAAAAAAAA");
        assert!(PublicKey::from_jwk(wrong_kid.as_bytes()).is_err());
        let enc = json.replace("\"sig\"", "\"enc\"");
        assert!(PublicKey::from_jwk(enc.as_bytes()).is_err());
        let hs = r#"{"kty":"oct","k":"AAAA"}"#;
        assert!(PublicKey::from_jwk(hs.as_bytes()).is_err());
        let wrong_alg = json.replace("EdDSA", "RS256");
        assert!(PublicKey::from_jwk(wrong_alg.as_bytes()).is_err());
    }
}
