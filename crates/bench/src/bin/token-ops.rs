//! `token-ops`: runs one token operation N times, for counting its instructions with
//! `valgrind --tool=callgrind` (`scripts/bench-token-instructions`). Instruction counts do not
//! depend on what else the machine is doing, where criterion's times on this shared machine
//! drift by ±30 % between runs of the same code.
//!
//! Every run builds the same fixtures (keys, the token, jsonwebtoken's keys) whatever the
//! operation, so `instructions(op, N) - instructions(op, 0)` is N times the operation.
//!
//! Run with: `cargo run --release -p tessera-bench --bin token-ops -- verify-strict 1000`

use std::hint::black_box;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use tessera_token::{
    Claims, Config, JwsAlgorithm, KeyState, Keyring, NoRevocations, RotationPolicy, SigningKey,
    VerifiedCache,
};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://meta.wikimedia.org";
const SEED: [u8; 32] = [42; 32];

/// The claims of the criterion benchmark (`crates/token/benches/token.rs`): MediaWiki's, plus
/// `exp` and `sid`.
#[derive(Serialize, Deserialize)]
struct JwtClaims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    sxp: i64,
    jti: String,
    sid: String,
    rlc: String,
}

const OPS: &[&str] = &[
    "tessera-sign",
    "raw-sign",
    "jsonwebtoken-sign",
    "tessera-verify",
    "tessera-verify-cached",
    "raw-verify-strict",
    "raw-verify",
    "jsonwebtoken-verify",
    "tessera-ed25519",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(op), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!("usage: token-ops <{}> <iterations>", OPS.join("|"));
        return ExitCode::from(2);
    };
    if !OPS.contains(&op.as_str()) {
        eprintln!("unknown operation {op}; one of {}", OPS.join(", "));
        return ExitCode::from(2);
    }
    let Ok(ring) = Keyring::builder(RotationPolicy::default())
        .key(
            SigningKey::ed25519_from_seed(&SEED),
            KeyState::Active,
            NOW - 60,
        )
        .build()
    else {
        return ExitCode::FAILURE;
    };
    let config = Config::new(ISS).with_algorithms([JwsAlgorithm::EdDsa]);
    let mut claims = Claims::new(
        ISS,
        "mw:CentralAuth::123",
        "3q0sVQ8o0bDLKhwA5Ws1Yw",
        "RGO1bBxGZtR1atOrs5B3PQ==",
        NOW,
        NOW + 3600,
        NOW + 4 * 3600,
    );
    claims
        .custom
        .insert("rlc".into(), "established-user".into());
    let Ok(token) = ring.sign_at(&config, &claims, NOW) else {
        return ExitCode::FAILURE;
    };
    let Some((input, _)) = token.rsplit_once('.') else {
        return ExitCode::FAILURE;
    };
    let input = input.as_bytes().to_vec();
    let dalek = ed25519_dalek::SigningKey::from_bytes(&SEED);
    let dalek_pub = dalek.verifying_key();
    let dalek_sig = dalek.sign(&input);
    let Ok(der) = SigningKey::ed25519_from_seed(&SEED).to_pkcs8_der() else {
        return ExitCode::FAILURE;
    };
    let jwt_enc = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let Ok(jwt_dec) = jsonwebtoken::DecodingKey::from_ed_components(
        &URL_SAFE_NO_PAD.encode(dalek_pub.as_bytes()),
    ) else {
        return ExitCode::FAILURE;
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("session+jwt".into());
    let jwt_claims = JwtClaims {
        iss: ISS.into(),
        sub: claims.sub.clone(),
        iat: NOW,
        exp: NOW + 4 * 3600,
        sxp: NOW + 3600,
        jti: claims.jti.clone(),
        sid: claims.sid.clone(),
        rlc: "established-user".into(),
    };
    let Ok(jwt_token) = jsonwebtoken::encode(&header, &jwt_claims, &jwt_enc) else {
        return ExitCode::FAILURE;
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[ISS]);
    validation.validate_exp = false;
    let cache = VerifiedCache::new(1024);
    let Ok(tessera_pub) = tessera_token::PublicKey::ed25519(dalek_pub.as_bytes()) else {
        return ExitCode::FAILURE;
    };
    let sig_bytes = dalek_sig.to_bytes();
    // Every path must accept what it is given, or the count means nothing.
    let ok = ring
        .verify_cached_at(&config, &token, NOW, &NoRevocations, &cache)
        .is_ok()
        && dalek_pub.verify_strict(&input, &dalek_sig).is_ok()
        && tessera_pub.verify(&input, &sig_bytes).is_ok()
        && jsonwebtoken::decode::<JwtClaims>(&jwt_token, &jwt_dec, &validation).is_ok();
    if !ok {
        eprintln!("a fixture does not verify");
        return ExitCode::FAILURE;
    }
    for _ in 0..n {
        let ok = match op.as_str() {
            "tessera-sign" => ring
                .sign_at(black_box(&config), black_box(&claims), NOW)
                .is_ok(),
            "raw-sign" => {
                black_box(dalek.sign(black_box(&input)));
                true
            }
            "jsonwebtoken-sign" => {
                jsonwebtoken::encode(black_box(&header), black_box(&jwt_claims), &jwt_enc).is_ok()
            }
            "tessera-verify" => ring
                .verify_at(black_box(&config), black_box(&token), NOW, &NoRevocations)
                .is_ok(),
            "tessera-verify-cached" => ring
                .verify_cached_at(
                    black_box(&config),
                    black_box(&token),
                    NOW,
                    &NoRevocations,
                    &cache,
                )
                .is_ok(),
            "raw-verify-strict" => dalek_pub
                .verify_strict(black_box(&input), black_box(&dalek_sig))
                .is_ok(),
            "raw-verify" => dalek_pub
                .verify(black_box(&input), black_box(&dalek_sig))
                .is_ok(),
            // Tessera's strict Ed25519 primitive alone (issue 12, item 3).
            "tessera-ed25519" => tessera_pub
                .verify(black_box(&input), black_box(&sig_bytes))
                .is_ok(),
            _ => jsonwebtoken::decode::<JwtClaims>(black_box(&jwt_token), &jwt_dec, &validation)
                .is_ok(),
        };
        if !ok {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
