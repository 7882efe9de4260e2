//! Tessera's Ed25519 check (a table lookup on `R`, canonical `S`, then ed25519-dalek's
//! cofactorless `verify`) against ed25519-dalek's `verify_strict`, on honest, adversarial
//! and random signatures: they must accept and refuse exactly the same ones, for every key
//! that [`PublicKey::ed25519`] loads (docs/tokens.md, "Ed25519: strict at the cost of
//! non-strict"). Signatures are made here from scalars, so keys with a torsion component
//! and forgeries with a small-order `R` can be built.

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::Verifier as _;
use proptest::prelude::*;
use sha2::{Digest as _, Sha512};
use tessera_token::PublicKey;

/// ℓ, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// p = 2^255 - 19 plus `y` (`y < 19`), with sign bit `sign`: a non-canonical encoding of `y`.
fn y_plus_p(y: u8, sign: u8) -> [u8; 32] {
    let mut e = [0xff; 32];
    e[0] = 0xed + y;
    e[31] = 0x7f | sign;
    e
}

/// Every encoding curve25519-dalek decompresses to a point of small order: the canonical
/// ones, the sign bit flipped (a second canonical one where `x ≠ 0`, else a non-canonical
/// one), and `y + p` where that fits in 255 bits.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut out = vec![];
    for p in EIGHT_TORSION {
        let e = p.compress().to_bytes();
        let mut flipped = e;
        flipped[31] ^= 0x80;
        out.extend([e, flipped]);
        if e[1..31].iter().all(|&b| b == 0) && e[31] & 0x7f == 0 && e[0] < 19 {
            out.extend([y_plus_p(e[0], 0), y_plus_p(e[0], 0x80)]);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Non-canonical encodings (`y + p`, both signs) of the points of large order with
/// `y < 19`: they decompress, and `verify_strict` does not refuse them for their order.
fn non_canonical_large_order() -> Vec<[u8; 32]> {
    let mut out = vec![];
    for y in 0..19u8 {
        for sign in [0, 0x80] {
            let e = y_plus_p(y, sign);
            if CompressedEdwardsY(e)
                .decompress()
                .is_some_and(|p| !p.is_small_order())
            {
                out.push(e);
            }
        }
    }
    out
}

/// `s + ℓ` (little-endian; `None` past 2^256): the same scalar, not canonical.
fn plus_l(s: &[u8; 32]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    (carry == 0).then_some(out)
}

/// The challenge `k = H(R ‖ A ‖ M) mod ℓ` of RFC 8032 §5.1.7.
fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h.finalize());
    Scalar::from_bytes_mod_order_wide(&wide)
}

fn signature(r: &[u8; 32], s: &Scalar) -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// Whether dalek's non-strict `verify` accepts.
fn plain(a: &[u8; 32], m: &[u8], sig: &[u8; 64]) -> bool {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(a).unwrap();
    vk.verify(m, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// Asserts that Tessera's answer and `verify_strict`'s agree; returns it.
fn agree(a: &[u8; 32], m: &[u8], sig: &[u8; 64]) -> bool {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(a).unwrap();
    let strict = vk
        .verify_strict(m, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok();
    let ours = PublicKey::ed25519(a).unwrap().verify(m, sig).is_ok();
    assert_eq!(ours, strict, "key {a:?} message {m:?} signature {sig:?}");
    ours
}

/// With `R` the identity and `S = k·a`, the cofactorless equation holds for any message, so
/// non-strict `verify` accepts this forgery; `verify_strict` and Tessera refuse it. The
/// same with every other encoding of a small-order point as `R`.
#[test]
fn the_identity_forgery_is_refused() {
    let a = Scalar::from_bytes_mod_order([9; 32]);
    let big_a = (EdwardsPoint::mul_base(&a)).compress().to_bytes();
    let identity = EdwardsPoint::default().compress().to_bytes();
    for m in [&b""[..], b"header.payload", &[0xff; 300]] {
        let sig = signature(&identity, &(challenge(&identity, &big_a, m) * a));
        assert!(plain(&big_a, m, &sig), "the forgery must pass `verify`");
        assert!(!agree(&big_a, m, &sig));
        for r in small_order_encodings() {
            let sig = signature(&r, &(challenge(&r, &big_a, m) * a));
            assert!(!agree(&big_a, m, &sig));
        }
    }
    assert_eq!(small_order_encodings().len(), 14);
}

/// A key with a torsion component, `A = [a]B + T` with `T` of order 8, is not of small
/// order: it loads. With `S = k·a` the equation gives `R' = -[k]T`, a small-order point that
/// is not the identity for most `k`; where it equals `R`, non-strict `verify` accepts. Such
/// forgeries exist for each of the other seven small-order points as `R`; every one must be
/// refused.
#[test]
fn small_order_forgeries_under_a_mixed_order_key_are_refused() {
    let a = Scalar::from_bytes_mod_order([5; 32]);
    let t = EIGHT_TORSION[1];
    let big_a = (EdwardsPoint::mul_base(&a) + t).compress().to_bytes();
    assert!(
        PublicKey::ed25519(&big_a).is_ok(),
        "a mixed-order key loads"
    );
    let mut forged = std::collections::BTreeSet::new();
    for n in 0u32..2_000 {
        let m = n.to_le_bytes();
        for p in EIGHT_TORSION {
            let r = p.compress().to_bytes();
            let k = challenge(&r, &big_a, &m);
            let sig = signature(&r, &(k * a));
            if plain(&big_a, &m, &sig) {
                assert!(!agree(&big_a, &m, &sig), "forgery accepted: R {r:?}");
                forged.insert(r);
            }
        }
        if forged.len() == 8 {
            break;
        }
    }
    assert_eq!(forged.len(), 8, "a forgery for every small-order R");
}

/// A mixed-order key and an `R` that carries the matching torsion: the cofactorless
/// equation holds, `R` is of large (mixed) order, and both checks accept.
#[test]
fn a_mixed_order_r_under_a_mixed_order_key_is_accepted_by_both() {
    let a = Scalar::from_bytes_mod_order([5; 32]);
    let t = EIGHT_TORSION[1];
    let big_a = (EdwardsPoint::mul_base(&a) + t).compress().to_bytes();
    let m = b"mixed";
    // [j]T for j in 0..8, by additions (a scalar multiplication per case is slow in debug).
    let mut multiples = [EdwardsPoint::default(); 8];
    for j in 1..8 {
        multiples[j] = multiples[j - 1] + t;
    }
    let mut found = 0;
    for seed in 1u8..=24 {
        let r = Scalar::from_bytes_mod_order([seed; 32]);
        let base = EdwardsPoint::mul_base(&r);
        for (j, tj) in multiples.iter().enumerate() {
            let big_r = (base - tj).compress().to_bytes();
            let k = challenge(&big_r, &big_a, m);
            let sig = signature(&big_r, &(r + k * a));
            // Valid exactly when -[k]T = -[j]T, that is k = j mod 8.
            let valid = plain(&big_a, m, &sig);
            assert_eq!(
                valid,
                usize::from(k.as_bytes()[0] % 8) == j,
                "seed {seed} j {j}"
            );
            assert_eq!(agree(&big_a, m, &sig), valid, "seed {seed} j {j}");
            found += usize::from(valid);
        }
    }
    assert!(found >= 8, "{found}");
}

/// A non-canonical `R` (`y + p`) is refused by both, whatever `S`: the equation compares
/// with the canonical encoding of `R'`. The same `R`s also go through the property test.
#[test]
fn non_canonical_r_is_refused() {
    let encodings = non_canonical_large_order();
    assert!(!encodings.is_empty());
    let a = Scalar::from_bytes_mod_order([3; 32]);
    let big_a = (EdwardsPoint::mul_base(&a)).compress().to_bytes();
    for r in encodings {
        let point = CompressedEdwardsY(r).decompress().unwrap();
        assert_ne!(point.compress().to_bytes(), r, "not canonical");
        let m = b"m";
        for s in [challenge(&r, &big_a, m) * a, Scalar::ONE, Scalar::ZERO] {
            assert!(!agree(&big_a, m, &signature(&r, &s)));
        }
    }
}

/// How a signature is changed after it is made.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    /// `R` replaced by the i-th small-order encoding; `S = k·a`, the forgery's `S`.
    SmallOrderR(usize),
    /// `R` replaced by the i-th non-canonical encoding of a large-order point.
    NonCanonicalR(usize, [u8; 32]),
    /// `S + ℓ`: the same scalar, not canonical.
    SPlusL,
    /// `S` replaced by these bytes (≥ ℓ fifteen times in sixteen).
    S([u8; 32]),
    /// One bit flipped.
    Flip(usize),
    /// Another message.
    Message(Vec<u8>),
    /// Random bytes as the signature.
    Random([u8; 32], [u8; 32]),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::None),
        2 => (0..14usize).prop_map(Mutation::SmallOrderR),
        1 => (0..64usize, any::<[u8; 32]>()).prop_map(|(i, s)| Mutation::NonCanonicalR(i, s)),
        1 => Just(Mutation::SPlusL),
        1 => any::<[u8; 32]>().prop_map(Mutation::S),
        2 => (0..512usize).prop_map(Mutation::Flip),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Message),
        1 => (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(r, s)| Mutation::Random(r, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A key `[a]B + T_t` (`t = 0`: an honest key), a signature with nonce `[r]B + T_j` and
    /// `S = r + k·a` (valid whenever the torsion parts cancel, always for `t = j = 0`), then
    /// one mutation: Tessera and `verify_strict` agree, and an honest signature verifies.
    #[test]
    fn agrees_with_verify_strict(
        a in any::<[u8; 32]>(),
        t in prop_oneof![3 => Just(0usize), 1 => 1..8usize],
        r in any::<[u8; 32]>(),
        j in prop_oneof![3 => Just(0usize), 1 => 1..8usize],
        message in proptest::collection::vec(any::<u8>(), 0..256),
        m in mutation(),
    ) {
        let a = Scalar::from_bytes_mod_order(a);
        let big_a = (EdwardsPoint::mul_base(&a) + EIGHT_TORSION[t]).compress().to_bytes();
        prop_assume!(PublicKey::ed25519(&big_a).is_ok());
        let r = Scalar::from_bytes_mod_order(r);
        let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[j]).compress().to_bytes();
        let mut sig = signature(&big_r, &(r + challenge(&big_r, &big_a, &message) * a));
        let mut msg = message;
        let honest = t == 0 && j == 0 && matches!(m, Mutation::None);
        match m {
            Mutation::None => {}
            Mutation::SmallOrderR(i) => {
                let encodings = small_order_encodings();
                let r = encodings[i % encodings.len()];
                sig = signature(&r, &(challenge(&r, &big_a, &msg) * a));
            }
            Mutation::NonCanonicalR(i, s) => {
                let encodings = non_canonical_large_order();
                sig[..32].copy_from_slice(&encodings[i % encodings.len()]);
                sig[32..].copy_from_slice(&s);
            }
            Mutation::SPlusL => {
                let s: [u8; 32] = sig[32..].try_into().unwrap();
                if let Some(s) = plus_l(&s) {
                    sig[32..].copy_from_slice(&s);
                    prop_assert!(!agree(&big_a, &msg, &sig), "S + ℓ accepted");
                }
            }
            Mutation::S(s) => sig[32..].copy_from_slice(&s),
            Mutation::Flip(bit) => sig[bit / 8] ^= 1 << (bit % 8),
            Mutation::Message(other) => msg = other,
            Mutation::Random(r, s) => {
                sig[..32].copy_from_slice(&r);
                sig[32..].copy_from_slice(&s);
            }
        }
        let ours = agree(&big_a, &msg, &sig);
        if honest {
            prop_assert!(ours, "an honest signature refused");
        }
    }
}
