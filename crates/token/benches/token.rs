//! Token microbenchmarks (DESIGN §10): Tessera's codec against raw ed25519-dalek on the same
//! signing input and against the `jsonwebtoken` crate (EdDSA, `rust_crypto`), in one run;
//! a verification served by the verified-token cache; and the token sizes of EdDSA, ES256, RS256-2048 and RS256-4096 with the same claims.
//!
//! Run: `cargo bench -p tessera-token --bench token -- --warm-up-time 1 --measurement-time 3`
//!
//! The strict Ed25519 primitive alone against dalek's `verify_strict` and `verify` (issue 12,
//! item 3): `cargo bench -p tessera-token --bench token -- 'verify/(ed25519|raw)'`.
// A benchmark harness: a failed unwrap is a broken benchmark, printing is its output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use tessera_token::{
    Algorithm, Claims, Config, JwsAlgorithm, KeyState, Keyring, NoRevocations, RotationPolicy,
    RsaBits, SigningKey,
};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://meta.wikimedia.org";
const SEED: [u8; 32] = [42; 32];

/// MediaWiki's `sessionJwt` claims with realistic values (`iss` of WMF's central wiki, a
/// CentralAuth `sub`, `jti` as MediaWiki makes it: padded base64 of 16 random bytes, `rlc`
/// `established-user`), plus `exp` and a `sid` of 22 characters (a 128-bit keyed digest).
fn claims() -> Claims {
    let mut c = Claims::new(
        ISS,
        "mw:CentralAuth::123",
        "3q0sVQ8o0bDLKhwA5Ws1Yw",
        "RGO1bBxGZtR1atOrs5B3PQ==",
        NOW,
        NOW + 3600,
        NOW + 4 * 3600,
    );
    c.custom.insert("rlc".into(), RLC.into());
    c
}

const RLC: &str = "established-user";

/// The same claims for `jsonwebtoken`.
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

fn jwt_claims() -> JwtClaims {
    let c = claims();
    JwtClaims {
        iss: c.iss,
        sub: c.sub,
        iat: c.iat,
        exp: c.exp,
        sxp: c.sxp,
        jti: c.jti,
        sid: c.sid,
        rlc: RLC.into(),
    }
}

fn ring_of(key: SigningKey) -> Keyring {
    Keyring::builder(RotationPolicy::default())
        .key(key, KeyState::Active, NOW - 60)
        .build()
        .unwrap()
}

fn config() -> Config {
    Config::new(ISS).with_algorithms([
        JwsAlgorithm::EdDsa,
        JwsAlgorithm::Es256,
        JwsAlgorithm::Rs256,
    ])
}

fn print_sizes() {
    let cfg = config();
    let rows = [
        ("EdDSA (Ed25519)", SigningKey::ed25519_from_seed(&SEED)),
        (
            "ES256 (P-256)",
            SigningKey::generate(Algorithm::Es256).unwrap(),
        ),
        (
            "RS256-2048",
            SigningKey::generate_rsa(RsaBits::B2048).unwrap(),
        ),
        (
            "RS256-4096",
            SigningKey::generate_rsa(RsaBits::B4096).unwrap(),
        ),
    ];
    let sizes: Vec<(&str, usize)> = rows
        .into_iter()
        .map(|(name, key)| {
            let r = ring_of(key);
            let token = r.sign_at(&cfg, &claims(), NOW).unwrap();
            r.verify_at(&cfg, &token, NOW, &NoRevocations).unwrap();
            (name, token.len())
        })
        .collect();
    let rs4096 = sizes.last().map(|s| s.1).unwrap() as f64;
    println!("token sizes (claims iss, sub, iat, exp, sxp, jti, sid, rlc; header alg, kid, typ):");
    for (name, size) in &sizes {
        println!(
            "  {name:<16} {size:>5} bytes  {:.3}x RS256-4096",
            *size as f64 / rs4096
        );
    }
    let r = ring_of(SigningKey::ed25519_from_seed(&SEED));
    let t = r.sign_at(&cfg, &claims(), NOW).unwrap();
    let seg: Vec<usize> = t.split('.').map(str::len).collect();
    println!(
        "  EdDSA segments: header {} + claims {} + signature {} + 2 dots",
        seg[0], seg[1], seg[2]
    );
    // MediaWiki's own shape (header {"typ":"JWT","alg":"RS256"}, no kid, exp or sid), for
    // comparison with DESIGN §10's 936-byte anchor.
    let rsa = SigningKey::generate_rsa(RsaBits::B4096).unwrap();
    let enc =
        |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let mw_claims = format!(
        r#"{{"iss":"{ISS}","sxp":{},"jti":"RGO1bBxGZtR1atOrs5B3PQ==","sub":"mw:CentralAuth::123","iat":{NOW},"rlc":"{RLC}"}}"#,
        NOW + 14_400
    );
    let input = format!(
        "{}.{}",
        enc(br#"{"typ":"JWT","alg":"RS256"}"#),
        enc(mw_claims.as_bytes())
    );
    let mw = format!("{input}.{}", enc(&rsa.sign(input.as_bytes()).unwrap()));
    println!(
        "  MediaWiki-shaped RS256-4096 (its own header and claims): {} bytes",
        mw.len()
    );
}

fn bench(c: &mut Criterion) {
    print_sizes();

    let cfg = config();
    let ring = ring_of(SigningKey::ed25519_from_seed(&SEED));
    let claims = claims();
    let token = ring.sign_at(&cfg, &claims, NOW).unwrap();
    let (input, _) = token.rsplit_once('.').unwrap();
    let input = input.as_bytes().to_vec();

    // The same key, raw.
    let dalek = ed25519_dalek::SigningKey::from_bytes(&SEED);
    let dalek_pub = dalek.verifying_key();
    let dalek_sig = dalek.sign(&input);

    // The same key, through jsonwebtoken.
    let der = SigningKey::ed25519_from_seed(&SEED).to_pkcs8_der().unwrap();
    let jwt_enc = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let x = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        dalek_pub.as_bytes(),
    );
    let jwt_dec = jsonwebtoken::DecodingKey::from_ed_components(&x).unwrap();
    let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    jwt_header.kid = Some(ring.signing_key_at(NOW).unwrap().kid().to_string());
    jwt_header.typ = Some("session+jwt".into());
    let jwt_claims = jwt_claims();
    let jwt_token = jsonwebtoken::encode(&jwt_header, &jwt_claims, &jwt_enc).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[ISS]);
    validation.validate_exp = false; // the fixed NOW is in the future; checked by Tessera
    // Sanity: every path accepts what it is given.
    jsonwebtoken::decode::<JwtClaims>(&jwt_token, &jwt_dec, &validation).unwrap();
    dalek_pub.verify_strict(&input, &dalek_sig).unwrap();
    ring.verify_at(&cfg, &token, NOW, &NoRevocations).unwrap();

    let mut g = c.benchmark_group("sign");
    g.bench_function("tessera_eddsa", |b| {
        b.iter(|| {
            ring.sign_at(black_box(&cfg), black_box(&claims), NOW)
                .unwrap()
        })
    });
    g.bench_function("raw_ed25519_dalek", |b| {
        b.iter(|| dalek.sign(black_box(&input)))
    });
    g.bench_function("jsonwebtoken_eddsa", |b| {
        b.iter(|| {
            jsonwebtoken::encode(black_box(&jwt_header), black_box(&jwt_claims), &jwt_enc).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("verify");
    g.bench_function("tessera_eddsa_strict", |b| {
        b.iter(|| {
            ring.verify_at(black_box(&cfg), black_box(&token), NOW, &NoRevocations)
                .unwrap()
        })
    });
    // A token seen before: the memo skips the signature; times, issuer, key state and
    // revocations are still checked.
    let cache = tessera_token::VerifiedCache::new(65_536);
    ring.verify_cached_at(&cfg, &token, NOW, &NoRevocations, &cache)
        .unwrap();
    g.bench_function("tessera_eddsa_cached_hit", |b| {
        b.iter(|| {
            ring.verify_cached_at(
                black_box(&cfg),
                black_box(&token),
                NOW,
                &NoRevocations,
                &cache,
            )
            .unwrap()
        })
    });
    // Tessera's Ed25519 primitive alone (`PublicKey::verify`): what `verify_strict` refuses,
    // refused at the cost of `verify` (docs/tokens.md). Same key, input and signature as the
    // two raw benchmarks after it.
    let tessera_pub = tessera_token::PublicKey::ed25519(dalek_pub.as_bytes()).unwrap();
    let sig_bytes = dalek_sig.to_bytes();
    tessera_pub.verify(&input, &sig_bytes).unwrap();
    g.bench_function("ed25519_tessera_strict", |b| {
        b.iter(|| {
            tessera_pub
                .verify(black_box(&input), black_box(&sig_bytes))
                .unwrap()
        })
    });
    g.bench_function("raw_verify_strict", |b| {
        b.iter(|| {
            dalek_pub
                .verify_strict(black_box(&input), black_box(&dalek_sig))
                .unwrap()
        })
    });
    g.bench_function("raw_verify", |b| {
        b.iter(|| {
            dalek_pub
                .verify(black_box(&input), black_box(&dalek_sig))
                .unwrap()
        })
    });
    g.bench_function("jsonwebtoken_eddsa", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<JwtClaims>(black_box(&jwt_token), &jwt_dec, &validation).unwrap()
        })
    });
    g.finish();

    // For scale: Tessera with the other algorithms (MediaWiki signs RS256-4096).
    let mut g = c.benchmark_group("other_algorithms");
    for (name, key) in [
        ("es256", SigningKey::generate(Algorithm::Es256).unwrap()),
        (
            "rs256_4096",
            SigningKey::generate_rsa(RsaBits::B4096).unwrap(),
        ),
    ] {
        let r = ring_of(key);
        let t = r.sign_at(&cfg, &claims, NOW).unwrap();
        g.bench_function(format!("tessera_sign_{name}"), |b| {
            b.iter(|| r.sign_at(black_box(&cfg), black_box(&claims), NOW).unwrap())
        });
        g.bench_function(format!("tessera_verify_{name}"), |b| {
            b.iter(|| {
                r.verify_at(black_box(&cfg), black_box(&t), NOW, &NoRevocations)
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
