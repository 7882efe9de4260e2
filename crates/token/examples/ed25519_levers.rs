//! Timing of the Ed25519 verification candidates for issue 12 (BENCHMARKS.md, "What bounds
//! the missed targets", `/v1/verify` fresh): ed25519-dalek's `verify` and `verify_strict`,
//! aws-lc-rs's ED25519 (parsed and unparsed key), and curve25519-dalek's precomputed
//! `[B, -A]` multiscalar multiplication, plus the hashes around them. Each figure is the
//! minimum mean over batches of ten, so that a shared machine disturbs it least. Run:
//! `cargo run --release -p tessera-token --example ed25519_levers -- 3` (three rounds).
#![allow(clippy::unwrap_used)]
use std::hint::black_box;
use std::time::Instant;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::VartimeEdwardsPrecomputation;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimePrecomputedMultiscalarMul;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use sha2::{Digest, Sha512};

fn time(name: &str, n: u32, mut f: impl FnMut() -> bool) {
    for _ in 0..n / 10 {
        assert!(f());
    }
    // The minimum over batches: the machine is shared, the least disturbed batch is the
    // closest to the CPU's own figure.
    let batch: u32 = 10;
    let mut best = u128::MAX;
    for _ in 0..n / 10 {
        let t = Instant::now();
        for _ in 0..batch {
            assert!(black_box(f()));
        }
        best = best.min(t.elapsed().as_nanos() / u128::from(batch));
    }
    println!("{name:40} {best:>8} ns");
}

fn main() {
    let sk = SigningKey::from_bytes(&[7; 32]);
    let vk = sk.verifying_key();
    let msg = vec![b'a'; 260];
    let sig = sk.sign(&msg).to_bytes();
    let pk = vk.to_bytes();
    let parsed =
        aws_lc_rs::signature::ParsedPublicKey::new(&aws_lc_rs::signature::ED25519, pk).unwrap();
    let unparsed = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, pk);
    let a = vk.to_edwards();
    let pre = VartimeEdwardsPrecomputation::new([ED25519_BASEPOINT_POINT, -a]);
    let r_bytes: [u8; 32] = sig[..32].try_into().unwrap();
    let s_bytes: [u8; 32] = sig[32..].try_into().unwrap();
    let s = Scalar::from_canonical_bytes(s_bytes).unwrap();
    let precomputed = |m: &[u8]| {
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(pk);
        h.update(m);
        let k = Scalar::from_hash(h);
        pre.vartime_multiscalar_mul([s, k]).compress().to_bytes() == r_bytes
    };
    let dsig = ed25519_dalek::Signature::from_bytes(&sig);
    let rounds = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    for _ in 0..rounds {
        time("dalek verify", 20_000, || vk.verify(&msg, &dsig).is_ok());
        time("dalek verify_strict", 20_000, || {
            vk.verify_strict(&msg, &dsig).is_ok()
        });
        time("aws-lc ParsedPublicKey", 20_000, || {
            parsed.verify_sig(&msg, &sig).is_ok()
        });
        time("aws-lc UnparsedPublicKey", 20_000, || {
            unparsed.verify(&msg, &sig).is_ok()
        });
        time("dalek precomputed [B, -A] width 8", 20_000, || {
            precomputed(&msg)
        });
        time("sha512 of R||A||M", 200_000, || {
            let mut h = Sha512::new();
            h.update(r_bytes);
            h.update(pk);
            h.update(&msg);
            black_box(h.finalize())[0] != 1
        });
        time("sha256 of M (cache digest)", 200_000, || {
            black_box(sha2::Sha256::digest(&msg))[0] != 1
        });
        time("aws-lc sha256 of M", 200_000, || {
            black_box(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &msg)).as_ref()[0] != 1
        });
    }
}
