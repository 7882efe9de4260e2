//! Keys: algorithms, key ids, the public form ([`PublicKey`]) and the secret form
//! ([`SigningKey`]), JWK encoding and PKCS#8 files.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self as lc_sig, KeyPair as _, ParsedPublicKey};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::{b64, json};

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

// === impl PublicKey ===

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
    fn ed25519_checked(vk: ed25519_dalek::VerifyingKey) -> Self {
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

    fn from_p256(vk: p256::ecdsa::VerifyingKey) -> Self {
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

// === impl SigningKey ===

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
            .field("kid", &self.public.kid)
            .field("alg", &self.public.algorithm())
            .finish_non_exhaustive()
    }
}

/// Two signing keys are equal when their key ids are; the secret bytes are never compared.
impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.public.kid == other.public.kid
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
        &self.public.kid
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

    #[test]
    fn key_ids_have_the_fixed_length() {
        let sk = SigningKey::generate(Algorithm::Es256).unwrap();
        assert_eq!(sk.kid().as_str().len(), KEY_ID_LEN);
        assert!(KeyId::try_new(sk.kid().as_str()).is_ok());
        assert!(KeyId::try_new("short").is_err());
        assert!(KeyId::try_new("0123456789abcde/").is_err());
    }

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
