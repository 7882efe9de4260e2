//! Property tests: sign/verify round trips and rotation invariants.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Map, Value};
use tessera_token::{
    Algorithm, Claims, Config, Error, JwsAlgorithm, KeyState, Keyring, NoRevocations,
    REGISTERED_CLAIMS, RotationPolicy, SigningKey, Status,
};

use crate::common::{ISS, NOW};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn custom_claims() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(".{1,8}", json_value(), 0..4).prop_map(|m| {
        m.into_iter()
            .filter(|(k, _)| !REGISTERED_CLAIMS.contains(&k.as_str()))
            .collect()
    })
}

prop_compose! {
    fn arb_claims()(
        sub in ".{0,40}",
        sid in "[A-Za-z0-9_-]{0,32}",
        jti in ".{0,24}",
        iat in -10_000_000i64..10_000_000,
        soft in 0i64..=14_400,
        hard in 1i64..=14_400,
        aud in proptest::option::of(proptest::collection::vec(".{0,10}", 1..4)),
        nbf_before in proptest::option::of(0i64..1000),
        custom in custom_claims(),
    ) -> Claims {
        let iat = NOW + iat;
        let exp = iat + hard;
        let mut c = Claims::new(ISS, sub, sid, jti, iat, (iat + soft).min(exp), exp);
        c.aud = aud;
        c.nbf = nbf_before.map(|b| iat - b);
        c.custom = custom;
        c
    }
}

fn ring_for(alg: Algorithm) -> Keyring {
    let key = match alg {
        Algorithm::Ed25519 => SigningKey::ed25519_from_seed(&[11; 32]),
        _ => SigningKey::generate(alg).unwrap(),
    };
    Keyring::builder(RotationPolicy::default())
        .key(key, KeyState::Active, i64::MIN)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sign_then_verify_gives_the_claims_back(claims in arb_claims(), es256 in any::<bool>(), ed_name in any::<bool>()) {
        thread_local! {
            static RINGS: (Keyring, Keyring) = (ring_for(Algorithm::Ed25519), ring_for(Algorithm::Es256));
        }
        let mut config = Config::new(ISS)
            .with_algorithms([JwsAlgorithm::EdDsa, JwsAlgorithm::Ed25519, JwsAlgorithm::Es256])
            .with_max_token_bytes(16_384);
        if ed_name {
            config = config.with_ed25519_header(JwsAlgorithm::Ed25519);
        }
        if let Some(aud) = &claims.aud {
            config = config.with_audience(aud[0].clone());
        }
        RINGS.with(|(ed, es)| {
            let ring = if es256 { es } else { ed };
            let token = ring.sign_at(&config, &claims, claims.iat).unwrap();
            let v = ring.verify_at(&config, &token, claims.iat, &NoRevocations).unwrap();
            prop_assert_eq!(&*v.claims, &claims);
            let expected = if claims.iat >= claims.sxp { Status::SoftExpired } else { Status::Fresh };
            prop_assert_eq!(v.status, expected);
            // Strict base64url: only the alphabet and two dots.
            prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
            prop_assert_eq!(token.matches('.').count(), 2);
            Ok(())
        })?;
    }

    #[test]
    fn any_single_byte_change_is_refused(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let ring = ring_for(Algorithm::Ed25519);
        let config = Config::new(ISS);
        let claims = crate::common::claims();
        let token = ring.sign_at(&config, &claims, NOW).unwrap();
        let mut bytes = token.into_bytes();
        let i = pos.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        if let Ok(s) = String::from_utf8(bytes) {
            prop_assert!(ring.verify_at(&config, &s, NOW, &NoRevocations).is_err(), "{} accepted", s);
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Advance(i64),
    Rotate,
    RevokeAny(prop::sample::Index),
    RevokeActive,
    PublishNext,
    PromoteNext,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0i64..8 * 3600).prop_map(Op::Advance),
        2 => (0i64..3 * 86_400).prop_map(Op::Advance),
        6 => Just(Op::Rotate),
        1 => any::<prop::sample::Index>().prop_map(Op::RevokeAny),
        1 => Just(Op::RevokeActive),
        2 => Just(Op::PublishNext),
        1 => Just(Op::PromoteNext),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Once initialised: exactly one active key and it signs, at every `now`; every
    /// unexpired token verifies unless its key was revoked, in which case it fails with
    /// `key_revoked` (a retired key still verifies); the JWKS never shows a revoked key.
    /// Forced rotations (publish a next key now, promote it by hand) keep all of this.
    #[test]
    fn rotation_invariants(ops in proptest::collection::vec(op(), 1..40)) {
        let policy = RotationPolicy::default()
            .with_rotate_every(Duration::from_secs(2 * 86_400))
            .with_publish_ahead(Duration::from_secs(6 * 3600))
            .with_max_token_lifetime(Duration::from_secs(4 * 3600))
            .with_skew(Duration::from_secs(60));
        let config = Config::new(ISS);
        let mut keys = crate::keyring::counting();
        let mut now = NOW;
        let mut ring = Keyring::generate_at(now, policy, &mut keys).unwrap();
        let mut tokens: Vec<(String, i64)> = Vec::new();
        let mut revoked = std::collections::BTreeSet::new();
        for op in ops {
            match op {
                Op::Advance(d) => now += d,
                Op::Rotate => { ring.rotate_at(now, &mut keys).unwrap(); }
                Op::RevokeAny(i) => {
                    let all: Vec<_> = ring.keys().collect();
                    let k = &all[i.index(all.len())];
                    ring.revoke_at(&k.kid, now, &mut keys).unwrap();
                    revoked.insert(k.kid.clone());
                }
                Op::RevokeActive => {
                    let kid = ring.signing_key_at(now).unwrap().kid().clone();
                    ring.revoke_at(&kid, now, &mut keys).unwrap();
                    revoked.insert(kid);
                }
                Op::PublishNext => { ring.publish_next_at(now, &mut keys).unwrap(); }
                Op::PromoteNext => { ring.promote_next_at(now); }
            }
            let active = ring.keys().filter(|k| k.state == KeyState::Active).count();
            prop_assert_eq!(active, 1, "{:?}", ring);
            let signer = ring.signing_key_at(now).unwrap().kid().clone();
            prop_assert!(!revoked.contains(&signer));
            let jwks = ring.jwks(&config);
            prop_assert!(jwks.contains(signer.as_str()));
            for kid in &revoked {
                prop_assert!(!jwks.contains(kid.as_str()));
            }
            let mut claims = crate::common::claims();
            claims.iat = now;
            claims.sxp = now + 3600;
            claims.exp = now + 4 * 3600;
            tokens.push((ring.sign_at(&config, &claims, now).unwrap(), claims.exp));
            for (token, exp) in &tokens {
                if now >= exp + 60 {
                    continue;
                }
                let kid = ring.verify_at(&config, token, now, &NoRevocations);
                let signed_by: String = {
                    let h = token.split('.').next().unwrap();
                    let h: Value = serde_json::from_slice(&crate::common::unb64(h)).unwrap();
                    h["kid"].as_str().unwrap().to_owned()
                };
                if revoked.iter().any(|k| k.as_str() == signed_by) {
                    prop_assert!(matches!(kid, Err(Error::KeyRevoked)), "{:?}", kid);
                } else {
                    prop_assert!(kid.is_ok(), "{:?} at {} {:?}", kid, now, ring);
                }
            }
        }
    }
}
