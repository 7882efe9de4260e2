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
    pub(crate) kid: String,
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

/// Reads a header: one JSON object without duplicate members, `alg` and `kid` strings,
/// `typ` a string if present.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header> {
    let mut map: Map<String, Value> =
        json::parse_object(bytes).ok_or(bad_header("not one JSON object without duplicates"))?;
    let mut string = |name: &str| match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_header("alg, kid and typ are strings")),
    };
    let alg = string("alg")?.ok_or(bad_header("alg is missing"))?;
    let kid = string("kid")?.ok_or(bad_header("kid is missing"))?;
    let typ = string("typ")?;
    // Refused whatever their value: `crit` (RFC 7515 §4.1.11, we understand no extension),
    // `b64` (RFC 7797 unencoded payloads), `cty` (RFC 7519 §5.2: only nested JWTs use it).
    // Other members, including `jku`, `x5u`, `jwk` and `x5c`, are ignored: keys come from
    // the keyring only.
    let unsupported = ["crit", "b64", "cty"]
        .into_iter()
        .find(|n| map.contains_key(*n));
    Ok(Header {
        alg,
        kid,
        typ,
        unsupported,
    })
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
    pub(crate) kid: String,
    pub(crate) typ: Option<String>,
    pub(crate) claims: Arc<Claims>,
    /// The RFC 7638 thumbprint of the key that verified the signature.
    pub(crate) thumbprint: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_members() {
        assert!(parse_header(br#"{"alg":"EdDSA","kid":"k"}"#).is_ok());
        for bad in [
            r#"{"alg":"EdDSA"}"#,
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
        let h = parse_header(br#"{"alg":"EdDSA","kid":"k","jku":"https://x"}"#).unwrap();
        assert_eq!(h.unsupported, None);
    }
}
