//! Strict base64url without padding (RFC 7515 §2, RFC 4648 §5).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes `bytes` as base64url without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the base64url encoding of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes strict base64url: only `A-Z a-z 0-9 - _`, no padding, no whitespace, and
/// canonical (the unused low bits of the last character are zero), so every byte string has
/// exactly one accepted encoding. A denylist keyed on token strings cannot be bypassed by
/// re-encoding the same bytes differently.
pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
    // The engine rejects padding (`RequireNone`), characters outside the alphabet, a length
    // of 1 mod 4 and non-zero trailing bits (`decode_allow_trailing_bits` is off).
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = encode(&bytes);
            prop_assert!(!text.contains('='));
            prop_assert_eq!(decode(text.as_bytes()), Some(bytes));
        }

        /// Whatever decodes re-encodes to exactly its input: one spelling per byte string.
        #[test]
        fn accepted_text_is_canonical(text in "[A-Za-z0-9_=+/ -]{0,64}") {
            if let Some(bytes) = decode(text.as_bytes()) {
                prop_assert_eq!(encode(&bytes), text);
            }
        }
    }

    #[test]
    fn strict() {
        assert_eq!(decode(b"").as_deref(), Some(&b""[..]));
        assert_eq!(decode(b"QQ").as_deref(), Some(&b"A"[..]));
        // Same bytes, non-zero trailing bits: refused.
        assert_eq!(decode(b"QR"), None);
        assert_eq!(decode(b"QQ=="), None);
        assert_eq!(decode(b"Q"), None);
        assert_eq!(decode(b"QQ "), None);
        assert_eq!(decode(b"+/8"), None);
        assert_eq!(decode(b"-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }
}
