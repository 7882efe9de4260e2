//! Public keys from PEM text: `PUBLIC KEY` blocks (RFC 7468 §13) holding a
//! SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) of an RSA (RFC 3279 §2.3.1), EC P-256 (RFC 5480)
//! or Ed25519 (RFC 8410) key: what `openssl pkey -pubout` writes, and the form of MediaWiki's
//! `$wgJwtPublicKey`.
//!
//! The DER is read by the RustCrypto `spki` and `pkcs1` crates (strict DER: one encoding per
//! value, no trailing bytes), the base64 by `pem-rfc7468` (strict RFC 7468), and the key
//! bytes go through the same constructors as a JWK's, so every import rule (RSA 2048 to 8192
//! bits with exponent 65537, P-256 points on the curve, Ed25519 canonical and not of small
//! order) holds for PEM keys as for JWKs.

use spki::ObjectIdentifier;
use spki::der::Decode as _;
use spki::der::asn1::AnyRef;

use crate::error::{Error, Result};
use crate::key::PublicKey;

/// rsaEncryption (RFC 8017 Appendix C).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480 §2.1.1).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1, a.k.a. prime256v1 and P-256 (RFC 5480 §2.1.1.1).
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// id-Ed25519 (RFC 8410 §3).
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The most PEM blocks one text may hold: more is not a key file.
pub(crate) const MAX_BLOCKS: usize = 64;

fn invalid(reason: &'static str) -> Error {
    Error::InvalidKey { reason }
}

/// The reason of the error for a private key where a public key belongs.
pub(crate) const PRIVATE_BLOCK: &str =
    "a private key where a public key belongs (openssl pkey -pubout gives the public key)";
/// The reason of the error for a PEM block other than `PUBLIC KEY`.
pub(crate) const OTHER_BLOCK: &str = "not a PUBLIC KEY block (SubjectPublicKeyInfo)";
/// The reason of the error for a key of another algorithm or curve.
pub(crate) const OTHER_ALGORITHM: &str =
    "a public key of an algorithm other than RSA, EC P-256 or Ed25519";

/// One PEM block of a text, as found: the label of its `BEGIN` line and its whole text.
pub(crate) struct Block<'a> {
    pub(crate) label: &'a str,
    pub(crate) text: &'a [u8],
}

/// The PEM blocks of `text`, in order. Text outside the blocks (comments, OpenSSL's `Bag
/// Attributes`) is ignored, as RFC 7468 §2 asks; a `BEGIN` line without its `END` line is
/// a block of its own that will not decode.
pub(crate) fn blocks(text: &[u8]) -> Vec<Block<'_>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    const DASHES: &[u8] = b"-----";
    let mut out = Vec::new();
    // (start of the BEGIN line, its label)
    let mut open: Option<(usize, &[u8])> = None;
    let mut pos = 0;
    for line in text.split_inclusive(|b| *b == b'\n') {
        let start = pos;
        pos += line.len();
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        let label_of = |prefix: &[u8]| {
            bare.strip_prefix(prefix)
                .and_then(|l| l.strip_suffix(DASHES))
        };
        if let Some(label) = label_of(BEGIN) {
            if let Some((s, l)) = open.take() {
                // A BEGIN inside a block: the unfinished one is kept, undecodable.
                out.push(block(text, s, start, l));
            }
            open = Some((start, label));
        } else if let (Some(_), Some((s, l))) = (label_of(END), open) {
            out.push(block(text, s, pos, l));
            open = None;
        }
        if out.len() >= MAX_BLOCKS {
            return out;
        }
    }
    if let Some((s, l)) = open {
        out.push(block(text, s, text.len(), l));
    }
    out
}

fn block<'a>(text: &'a [u8], start: usize, end: usize, label: &'a [u8]) -> Block<'a> {
    Block {
        label: std::str::from_utf8(label).unwrap_or(""),
        text: text.get(start..end).unwrap_or_default(),
    }
}

/// Whether a PEM label names private key material.
pub(crate) fn is_private_label(label: &str) -> bool {
    label.ends_with("PRIVATE KEY")
}

impl PublicKey {
    /// A public key from one PEM `PUBLIC KEY` block (RFC 7468 §13), as `openssl pkey
    /// -pubout` writes it and MediaWiki's `$wgJwtPublicKey` holds it: RSA, EC P-256
    /// (uncompressed or compressed point) or Ed25519. Text around the block is ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use tessera_token::{Algorithm, PublicKey};
    ///
    /// // RFC 8410 §10.1's example Ed25519 public key.
    /// let pem = "-----BEGIN PUBLIC KEY-----\n\
    ///            MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
    ///            -----END PUBLIC KEY-----\n";
    /// let key = PublicKey::from_pem(pem.as_bytes())?;
    /// assert_eq!(key.algorithm(), Algorithm::Ed25519);
    /// # Ok::<(), tessera_token::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] unless the text holds exactly one PEM block, labelled `PUBLIC
    /// KEY`, whose key is acceptable (a private key, a certificate or an `RSA PUBLIC KEY`
    /// block is refused, with a reason saying so); [`Error::WeakKey`] for a small-order
    /// Ed25519 point.
    pub fn from_pem(text: &[u8]) -> Result<Self> {
        match blocks(text).as_slice() {
            [one] => Self::from_pem_block(one),
            [] => Err(invalid("no PEM block")),
            _ => Err(invalid("more than one PEM block")),
        }
    }

    pub(crate) fn from_pem_block(block: &Block<'_>) -> Result<Self> {
        if is_private_label(block.label) {
            return Err(invalid(PRIVATE_BLOCK));
        }
        if block.label != "PUBLIC KEY" {
            return Err(invalid(OTHER_BLOCK));
        }
        let (label, der) = pem_rfc7468::decode_vec(block.text)
            .map_err(|_| invalid("not a well-formed PEM block (RFC 7468)"))?;
        if label != "PUBLIC KEY" {
            return Err(invalid("PEM BEGIN and END labels differ"));
        }
        Self::from_spki_der(&der)
    }

    /// A public key from a DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7): RSA
    /// (`rsaEncryption`, NULL parameters), EC P-256 (`id-ecPublicKey` with `secp256r1`) or
    /// Ed25519 (`id-Ed25519`, no parameters).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] for DER that is not exactly one such structure, another
    /// algorithm or curve, or a key the import rules refuse; [`Error::WeakKey`] for a
    /// small-order Ed25519 point.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|_| invalid("not a DER SubjectPublicKeyInfo"))?;
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or(invalid("the key bit string has unused bits"))?;
        let params = spki.algorithm.parameters;
        match spki.algorithm.oid {
            RSA_ENCRYPTION => {
                // RFC 3279 §2.3.1: the parameters MUST be NULL.
                if !params.is_some_and(|p| p.is_null()) {
                    return Err(invalid("RSA key parameters are not NULL"));
                }
                let rsa = pkcs1::RsaPublicKey::from_der(key)
                    .map_err(|_| invalid("not a DER RSAPublicKey"))?;
                Self::rs256(rsa.modulus.as_bytes(), rsa.public_exponent.as_bytes())
            }
            EC_PUBLIC_KEY => {
                let curve = params
                    .and_then(|p: AnyRef<'_>| p.decode_as::<ObjectIdentifier>().ok())
                    .ok_or(invalid("EC key parameters are not a named curve"))?;
                if curve != SECP256R1 {
                    return Err(invalid(OTHER_ALGORITHM));
                }
                // Compressed points are one encoding of the same key: read them through
                // p256, then import the uncompressed form as a JWK's would be.
                let point = p256::EncodedPoint::from_bytes(key)
                    .map_err(|_| invalid("not a P-256 point"))?;
                let vk = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| invalid("not a P-256 point"))?;
                Self::es256_from_sec1(vk.to_encoded_point(false).as_bytes())
            }
            ED25519 => {
                // RFC 8410 §3: the parameters MUST be absent.
                if params.is_some() {
                    return Err(invalid("Ed25519 key parameters are present"));
                }
                Self::ed25519(key)
            }
            _ => Err(invalid(OTHER_ALGORITHM)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Algorithm;

    // RFC 8410 §10.1.
    const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn blocks_are_found_between_other_text() {
        let text = format!(
            "a comment\n{ED25519_PEM}between\r\n{}",
            ED25519_PEM.replace('\n', "\r\n")
        );
        let b = blocks(text.as_bytes());
        assert_eq!(b.len(), 2);
        assert!(b.iter().all(|b| b.label == "PUBLIC KEY"));
        for block in &b {
            assert_eq!(
                PublicKey::from_pem_block(block).unwrap().algorithm(),
                Algorithm::Ed25519
            );
        }
        let unfinished = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n";
        let b = blocks(unfinished.as_bytes());
        assert_eq!(b.len(), 1);
        assert!(PublicKey::from_pem_block(&b[0]).is_err());
        assert!(blocks(b"").is_empty());
        assert!(blocks(b"-----BEGIN -----").len() == 1);
    }

    #[test]
    fn from_pem_takes_exactly_one_public_key_block() {
        assert_eq!(
            PublicKey::from_pem(ED25519_PEM.as_bytes())
                .unwrap()
                .algorithm(),
            Algorithm::Ed25519
        );
        let two = format!("{ED25519_PEM}{ED25519_PEM}");
        assert!(PublicKey::from_pem(two.as_bytes()).is_err());
        assert!(PublicKey::from_pem(b"no pem here").is_err());
        let private = ED25519_PEM.replace("PUBLIC KEY", "PRIVATE KEY");
        assert!(matches!(
            PublicKey::from_pem(private.as_bytes()),
            Err(Error::InvalidKey {
                reason: PRIVATE_BLOCK
            })
        ));
        let cert = ED25519_PEM.replace("PUBLIC KEY", "CERTIFICATE");
        assert!(matches!(
            PublicKey::from_pem(cert.as_bytes()),
            Err(Error::InvalidKey {
                reason: OTHER_BLOCK
            })
        ));
        let mixed = ED25519_PEM.replacen("END PUBLIC KEY", "END PRIVATE KEY", 1);
        assert!(PublicKey::from_pem(mixed.as_bytes()).is_err());
        // Ed25519 with parameters, or with a key of the wrong length.
        assert!(PublicKey::from_spki_der(&[0x30, 0x00]).is_err());
    }
}
