//! The compact JWS serialization of a token (RFC 7515 §7.1): `header.payload.signature`,
//! each strict base64url without padding; the JOSE header Tessera writes and reads; and
//! [`Decoded`], what a token's bytes say once its signature verified.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::b64;
use crate::claims::Claims;
use crate::error::{Error, Part, Result};
use crate::json;
use crate::key::JwsAlgorithm;

/// The JOSE header Tessera writes: exactly `alg`, `kid` and `typ`, in this order.
#[derive(Serialize)]
pub(crate) struct HeaderOut<'a> {
    pub(crate) alg: &'a str,
    pub(crate) kid: &'a str,
    pub(crate) typ: &'a str,
}

/// The members of a JOSE header that verification reads.
pub(crate) struct Header {
    pub(crate) alg: String,
    /// Absent in tokens of issuers that publish no key id (MediaWiki's `sessionJwt`).
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    /// The first member present that Tessera refuses whatever its value.
    pub(crate) unsupported: Option<&'static str>,
}

fn bad_header(reason: &'static str) -> Error {
    Error::BadJson {
        part: Part::Header,
        reason,
    }
}

/// The reason of the [`Error::BadJson`] for a header without `kid`, when the keyring has no
/// key for such tokens.
pub(crate) const KID_MISSING: &str = "kid is missing";

/// Reads a header: one JSON object without duplicate members, `alg` a string, `kid` and
/// `typ` strings if present (whether a missing `kid` is acceptable depends on the keyring).
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header> {
    let mut map: Map<String, Value> =
        json::parse_object(bytes).ok_or(bad_header("not one JSON object without duplicates"))?;
    let mut string = |name: &str| match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_header("alg, kid and typ are strings")),
    };
    let alg = string("alg")?.ok_or(bad_header("alg is missing"))?;
    let kid = string("kid")?;
    let typ = string("typ")?;
    // Refused whatever their value: `crit` (RFC 7515 §4.1.11, we understand no extension),
    // `b64` (RFC 7797 unencoded payloads), `cty` (RFC 7519 §5.2: only nested JWTs use it),
    // `zip` (a JWE parameter, RFC 7516 §4.1.3; compressed payloads are what RFC 8725 §3.6
    // warns against, and a JWS that says it has one is not what any honest signer writes).
    // Other members, including `jku`, `x5u`, `jwk` and `x5c`, are ignored: keys come from
    // the keyring only.
    let unsupported = ["crit", "b64", "cty", "zip"]
        .into_iter()
        .find(|n| map.contains_key(*n));
    Ok(Header {
        alg,
        kid,
        typ,
        unsupported,
    })
}

/// Half the order of P-256, rounded down, big-endian: an ES256 `s` above it is "high".
const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether a 64-byte ES256 signature `r || s` has `s > n/2`. ECDSA verifies `(r, s)` and
/// `(r, n - s)` alike, so every ES256 token has a second spelling with the other `s`; a
/// token must have exactly one (as base64url is canonical here), so only the low one is
/// accepted, as BIP 62 does for Bitcoin. Tessera's signer writes the low one.
pub(crate) fn es256_high_s(signature: &[u8]) -> bool {
    // Big-endian bytes of equal length compare as the numbers do.
    signature
        .get(32..64)
        .is_some_and(|s| s > P256_HALF_ORDER.as_slice())
}

/// The three segments of a compact JWS, decoded.
pub(crate) struct Segments<'a> {
    /// `header.payload` as sent: what the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) header: Vec<u8>,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

/// Splits a token into its three segments and decodes them.
///
/// # Errors
///
/// [`Error::Unsupported`] for five segments (a compact JWE), [`Error::BadEncoding`] for any
/// other count or a segment that is not strict, canonical base64url without padding.
pub(crate) fn split(token: &str) -> Result<Segments<'_>> {
    let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(Error::BadEncoding)?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(Error::BadEncoding)?;
    if payload_b64.contains('.') {
        let dots = token.bytes().filter(|b| *b == b'.').count();
        return Err(if dots == 4 {
            Error::Unsupported { what: "JWE" }
        } else {
            Error::BadEncoding
        });
    }
    Ok(Segments {
        signing_input,
        header: b64::decode(header_b64.as_bytes()).ok_or(Error::BadEncoding)?,
        payload: b64::decode(payload_b64.as_bytes()).ok_or(Error::BadEncoding)?,
        signature: b64::decode(sig_b64.as_bytes()).ok_or(Error::BadEncoding)?,
    })
}

/// `header.payload.signature`, where `sign` makes the signature over `header.payload`.
///
/// # Errors
///
/// What `sign` returns; [`Error::Unreachable`] if the header does not serialize.
pub(crate) fn encode(
    header: &HeaderOut<'_>,
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<String> {
    let header = serde_json::to_vec(header)
        .map_err(|_| Error::Unreachable("header serialization failed"))?;
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 100);
    b64::encode_into(&header, &mut token);
    token.push('.');
    b64::encode_into(payload, &mut token);
    let signature = sign(token.as_bytes())?;
    token.push('.');
    b64::encode_into(&signature, &mut token);
    Ok(token)
}

/// What a token's bytes say once its signature verified: everything the checks after the
/// signature need. Kept by [`VerifiedCache`](crate::VerifiedCache).
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) alg: JwsAlgorithm,
    /// The key id of the key that verified the signature: the header's `kid`, or, for a
    /// token without one, the id of the key that matched.
    pub(crate) kid: String,
    /// Whether the header named the key (`kid`), or a key for tokens without one matched.
    pub(crate) kid_in_header: bool,
    pub(crate) typ: Option<String>,
    pub(crate) claims: Arc<Claims>,
    /// The latest second the token's `iat` and `exp` may mean: a fractional NumericDate
    /// is kept rounded down in [`Claims`] and rounded up here, so each check takes the
    /// direction that refuses sooner.
    pub(crate) latest: crate::claims::Latest,
    /// The RFC 7638 thumbprint of the key that verified the signature.
    pub(crate) thumbprint: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_members() {
        assert!(parse_header(br#"{"alg":"EdDSA","kid":"k"}"#).is_ok());
        // MediaWiki's header: no kid (refused later unless the keyring has keys for it).
        let h = parse_header(br#"{"typ":"JWT","alg":"RS256"}"#).unwrap();
        assert_eq!((h.kid, h.typ.as_deref()), (None, Some("JWT")));
        for bad in [
            r#"{"kid":"k"}"#,
            r#"{"alg":1,"kid":"k"}"#,
            r#"{"alg":"EdDSA","kid":["k"]}"#,
            r#"{"alg":"EdDSA","kid":"k","typ":7}"#,
            r#"{"alg":"EdDSA","kid":"k","alg":"EdDSA"}"#,
            r#"["alg"]"#,
        ] {
            assert!(
                matches!(parse_header(bad.as_bytes()), Err(Error::BadJson { .. })),
                "{bad}"
            );
        }
        let h = parse_header(br#"{"alg":"EdDSA","kid":"k","crit":[]}"#).unwrap();
        assert_eq!(h.unsupported, Some("crit"));
        let h = parse_header(br#"{"alg":"EdDSA","kid":"k","zip":"DEF"}"#).unwrap();
        assert_eq!(h.unsupported, Some("zip"));
        let h = parse_header(br#"{"alg":"EdDSA","kid":"k","jku":"https://x"}"#).unwrap();
        assert_eq!(h.unsupported, None);
    }

    #[test]
    fn es256_high_s_is_above_half_the_order() {
        let mut sig = [0u8; 64];
        sig[32..].copy_from_slice(&P256_HALF_ORDER);
        assert!(!es256_high_s(&sig), "n/2 itself is low");
        sig[63] += 1;
        assert!(es256_high_s(&sig));
        assert!(
            !es256_high_s(&[0xff; 63]),
            "not an ES256 signature: left to verify"
        );
        // n - 1, the highest s there is.
        let n_minus_1 = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x50,
        ];
        sig[32..].copy_from_slice(&n_minus_1);
        assert!(es256_high_s(&sig));
    }
}
