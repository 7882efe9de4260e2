//! Strict Ed25519 verification at the cost of the non-strict one (issue 12, item 3).
//!
//! ed25519-dalek's `verify_strict` is its `verify` (canonical `S`, then the cofactorless
//! equation, compared on the bytes of `R`) plus three refusals: `R` that does not decompress,
//! `R` of small order, `A` of small order. It pays for them with a decompression of `R` (a
//! field exponentiation) and two multiplications by 8. Here `A` is checked once, when the key
//! is loaded ([`crate::PublicKey::ed25519`]), and `R` by comparing its bytes with the 14
//! encodings of small-order points, so the check costs what `verify` costs. Why the two
//! refuse exactly the same signatures: docs/tokens.md, "Ed25519: strict at the cost of
//! non-strict".

/// The `y` coordinates (little-endian, sign bit clear) of every encoding of a point of small
/// order that curve25519-dalek decompresses: the `y`s of the eight points of the 8-torsion of
/// edwards25519, and `p` and `p + 1`, the non-canonical spellings of `y = 0` and `y = 1`.
/// With either sign bit, 14 encodings. This is libsodium's `has_small_order` list
/// (`ge25519_has_small_order`); the unit tests check it against curve25519-dalek's
/// `EIGHT_TORSION`.
const SMALL_ORDER_Y: [[u8; 32]; 7] = [
    // 0: the two points of order 4, (±sqrt(-1), 0).
    [0; 32],
    // 1: the identity (0, 1).
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    // The two `y`s of the four points of order 8.
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    // p - 1 (= -1): the point of order 2, (0, -1).
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p (= 0, not canonical).
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p + 1 (= 1, not canonical).
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// ℓ, the order of the base point, little-endian: a canonical `S` is below it.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Whether `r` is one of the 14 encodings of a point of small order.
fn is_small_order_encoding(r: &[u8; 32]) -> bool {
    let mut y = *r;
    y[31] &= 0x7f;
    SMALL_ORDER_Y.contains(&y)
}

/// Whether `s` (little-endian) is below ℓ.
fn is_canonical_s(s: &[u8; 32]) -> bool {
    for (a, l) in s.iter().rev().zip(L.iter().rev()) {
        if a != l {
            return a < l;
        }
    }
    false
}

/// Accepts exactly the signatures ed25519-dalek's `verify_strict` accepts, for a key `vk`
/// that is canonical and not of small order (what [`crate::PublicKey::ed25519`] and a key
/// derived from a seed guarantee), at the cost of its `verify`.
pub(crate) fn verify_strict(
    vk: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    use ed25519_dalek::Verifier as _;
    let (r, s) = (signature.first_chunk::<32>(), signature.last_chunk::<32>());
    let (Some(r), Some(s)) = (r, s) else {
        return false;
    };
    // `S < ℓ` is checked here even though dalek's `verify` checks it too: with its
    // `legacy_compatibility` feature (which any crate in a build may turn on) it would not.
    !is_small_order_encoding(r)
        && is_canonical_s(s)
        && vk
            .verify(message, &ed25519_dalek::Signature::from_bytes(signature))
            .is_ok()
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_COMPRESSED, EIGHT_TORSION};
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;

    use super::*;

    /// Every point of the 8-torsion is in the table, every encoding the table matches
    /// decompresses (curve25519-dalek takes non-canonical `y` and a sign bit on `x = 0`) to a
    /// point of small order, and there are 14 of them, 8 canonical: the counts docs/tokens.md
    /// gives.
    #[test]
    fn the_table_is_the_eight_torsion() {
        for p in EIGHT_TORSION {
            assert!(is_small_order_encoding(p.compress().as_bytes()), "{p:?}");
        }
        let (mut encodings, mut canonical) = (0, 0);
        for y in SMALL_ORDER_Y {
            for sign in [0, 0x80] {
                let mut e = y;
                e[31] |= sign;
                assert!(is_small_order_encoding(&e));
                let p = CompressedEdwardsY(e).decompress().unwrap();
                assert!(p.is_small_order(), "{e:?}");
                encodings += 1;
                if p.compress().to_bytes() == e {
                    canonical += 1;
                }
            }
        }
        assert_eq!((encodings, canonical), (14, 8));
        assert!(!is_small_order_encoding(
            ED25519_BASEPOINT_COMPRESSED.as_bytes()
        ));
    }

    #[test]
    fn canonical_s_is_below_the_group_order() {
        let mut below = L;
        below[0] -= 1;
        let mut above = L;
        above[0] += 1;
        let mut high_bit = [0; 32];
        high_bit[31] = 0x80;
        for (s, want) in [
            ([0; 32], true),
            (below, true),
            (L, false),
            (above, false),
            (high_bit, false),
            ([0xff; 32], false),
            (Scalar::ONE.to_bytes(), true),
            ((-Scalar::ONE).to_bytes(), true),
        ] {
            assert_eq!(is_canonical_s(&s), want, "{s:?}");
            let dalek: Option<Scalar> = Scalar::from_canonical_bytes(s).into();
            assert_eq!(dalek.is_some(), want, "{s:?}");
        }
    }
}
