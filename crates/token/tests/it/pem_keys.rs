//! Public keys as PEM files (OpenSSL's output, checked in under `tests/vectors/pem/`, see
//! its README), and key sets in which one bad key does not spoil the others (issue 16 items
//! 3 and 4).

use base64::Engine as _;
use tessera_token::{
    Algorithm, ClaimSet, Config, JwsAlgorithm, NoRevocations, PublicKey, SigningKey, SkipReason,
    TrustedKeys,
};

use crate::common::{NOW, forge};

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/vectors/pem/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The private key OpenSSL wrote (PKCS#8 PEM), as a signing key.
fn private(name: &str, alg: Algorithm) -> SigningKey {
    let text = String::from_utf8(pem(name)).unwrap();
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    SigningKey::from_pkcs8_der(alg, &der).unwrap()
}

fn reason(name: &str) -> Option<SkipReason> {
    let mut keys = TrustedKeys::new();
    keys.add_pem(name, &pem(name));
    keys.skipped().first().map(|s| s.reason)
}

#[test]
fn openssl_public_keys_load_and_are_the_private_keys_public_halves() {
    for (public, private_file, alg) in [
        ("rsa2048.pub", "rsa2048.key", Algorithm::Rs256),
        ("p256.pub", "p256.key", Algorithm::Es256),
        ("p256-compressed.pub", "p256.key", Algorithm::Es256),
        ("ed25519.pub", "ed25519.key", Algorithm::Ed25519),
    ] {
        let key = PublicKey::from_pem(&pem(public)).unwrap();
        assert_eq!(key.algorithm(), alg, "{public}");
        assert_eq!(key.kid(), private(private_file, alg).kid(), "{public}");
        assert_eq!(reason(public), None, "{public}");
    }
}

#[test]
fn unusable_pem_keys_are_skipped_with_their_reason() {
    for (file, want) in [
        ("rsa2048.key", SkipReason::Private),
        ("p256.key", SkipReason::Private),
        ("ed25519.key", SkipReason::Private),
        ("ed25519-small-order.pub", SkipReason::Weak),
        ("ed25519-short.pub", SkipReason::Invalid),
        ("rsa1024.pub", SkipReason::Invalid),
        ("rsa2048-e3.pub", SkipReason::Invalid),
        ("p384.pub", SkipReason::Unsupported),
        ("x25519.pub", SkipReason::Unsupported),
        ("rsa-pss.pub", SkipReason::Unsupported),
        ("rsa2048-pkcs1.pub", SkipReason::Unsupported),
        ("p256.crt", SkipReason::Unsupported),
    ] {
        assert_eq!(reason(file), Some(want), "{file}");
        assert!(PublicKey::from_pem(&pem(file)).is_err(), "{file}");
    }
    // A block that does not decode, and text without any block.
    let broken = String::from_utf8(pem("p256.pub"))
        .unwrap()
        .replace('A', "!");
    let mut keys = TrustedKeys::new();
    keys.add_pem("broken.pem", broken.as_bytes());
    keys.add_pem("nothing.pem", b"just text\n");
    let r: Vec<_> = keys.skipped().iter().map(|s| s.reason).collect();
    assert_eq!(r, [SkipReason::Invalid, SkipReason::Invalid]);
}

/// One PEM set, good and bad keys mixed (also in one file, between comments): the good
/// ones verify tokens without a kid, as MediaWiki writes them, and the bad ones are
/// reported once each.
#[test]
fn a_pem_set_with_bad_keys_keeps_verifying_with_the_good_ones() {
    let mut bundle = b"# MediaWiki's key and an older one\n".to_vec();
    bundle.extend(pem("rsa2048.pub"));
    bundle.extend(b"\n# the signer's private key, by mistake\n");
    bundle.extend(pem("rsa2048.key"));
    bundle.extend(pem("ed25519-small-order.pub"));
    let mut keys = TrustedKeys::new();
    keys.add_pem("mw.pem", &bundle);
    keys.add_pem("p256.pub", &pem("p256.pub"));
    keys.add_pem("ed25519.pub", &pem("ed25519.pub"));
    keys.add_pem("x25519.pub", &pem("x25519.pub"));
    keys.add_pem("again.pem", &pem("rsa2048.pub"));
    assert_eq!(keys.usable(), 3);
    let skipped: Vec<_> = keys
        .skipped()
        .iter()
        .map(|s| (s.location.as_str(), s.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            ("mw.pem#2", SkipReason::Private),
            ("mw.pem#3", SkipReason::Weak),
            ("x25519.pub#1", SkipReason::Unsupported),
            ("again.pem#1", SkipReason::Duplicate),
        ]
    );
    let (ring, _) = keys.build().unwrap();
    assert_eq!(ring.keys_without_kid().len(), 3);

    let config = Config::new("https://wiki.example")
        .with_typ("JWT")
        .with_algorithms([
            JwsAlgorithm::Rs256,
            JwsAlgorithm::Es256,
            JwsAlgorithm::EdDsa,
        ])
        .with_claim_set(ClaimSet::mediawiki("mw:CentralAuth::"));
    let claims = format!(
        r#"{{"iss":"https://wiki.example","sxp":{},"jti":"x","sub":"mw:CentralAuth::7","iat":{NOW}}}"#,
        NOW + 3600
    );
    for (file, alg, name) in [
        ("rsa2048.key", Algorithm::Rs256, "RS256"),
        ("p256.key", Algorithm::Es256, "ES256"),
        ("ed25519.key", Algorithm::Ed25519, "EdDSA"),
    ] {
        let key = private(file, alg);
        let header = format!(r#"{{"typ":"JWT","alg":"{name}"}}"#);
        let mut token = forge(&key, &header, &claims);
        if alg == Algorithm::Es256 {
            // Other signers write either s; ours must be the low one.
            let sig = crate::common::unb64(token.rsplit_once('.').unwrap().1);
            if crate::negative::p256_high_s(&sig) {
                token = crate::negative::with_high_s(&token);
            }
        }
        let v = ring
            .verify_at(&config, &token, NOW, &NoRevocations)
            .unwrap();
        assert_eq!(
            (v.outcome(), v.kid.clone()),
            ("ok", key.kid().clone()),
            "{name}"
        );
        // The same key by its thumbprint id.
        let with_kid = forge(
            &key,
            &format!(r#"{{"typ":"JWT","alg":"{name}","kid":"{}"}}"#, key.kid()),
            &claims,
        );
        if alg != Algorithm::Es256 {
            assert_eq!(
                ring.verify_at(&config, &with_kid, NOW, &NoRevocations)
                    .unwrap()
                    .outcome(),
                "ok"
            );
        }
        // Altered under the signature.
        let (input, sig) = token.rsplit_once('.').unwrap();
        let altered = format!("{}.{sig}", input.replacen('e', "f", 1));
        let err = ring
            .verify_at(&config, &altered, NOW, &NoRevocations)
            .unwrap_err();
        assert!(
            ["bad_signature", "bad_json", "bad_encoding"].contains(&err.outcome()),
            "{name}: {err:?}"
        );
    }
}

/// The named seeds of `fuzz/corpus/{jwks_keys,pem_keys}/` load as their names say.
#[test]
fn key_set_corpus_seeds_have_their_expected_reports() {
    let dir = format!("{}/../../fuzz/corpus", env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read(format!("{dir}/{p}")).unwrap();
    let jwks = |name: &str| {
        let mut keys = TrustedKeys::new();
        keys.add_jwks(&read(&format!("jwks_keys/{name}")))
            .map(|()| {
                let r: Vec<_> = keys.skipped().iter().map(|s| s.reason.as_str()).collect();
                (keys.usable(), r)
            })
    };
    assert_eq!(jwks("good-three").unwrap(), (3, vec![]));
    assert_eq!(
        jwks("mixed-bad").unwrap(),
        (
            2,
            vec![
                "weak",
                "invalid",
                "private",
                "private",
                "unsupported",
                "unsupported",
                "unsupported",
                "invalid",
                "invalid",
                "invalid",
                "duplicate"
            ]
        )
    );
    assert_eq!(jwks("kid-mismatch").unwrap(), (0, vec!["kid_mismatch"]));
    assert_eq!(jwks("rsa-e3").unwrap(), (0, vec!["invalid"]));
    assert_eq!(jwks("empty").unwrap(), (0, vec![]));
    assert!(jwks("not-a-set").is_err());
    assert!(jwks("dup-keys-member").is_err());
    let pem_set = |name: &str| {
        let mut keys = TrustedKeys::new();
        keys.add_pem(name, &read(&format!("pem_keys/{name}")));
        let r: Vec<_> = keys.skipped().iter().map(|s| s.reason.as_str()).collect();
        (keys.usable(), r)
    };
    assert_eq!(pem_set("bundle-mixed"), (2, vec!["weak"]));
    assert_eq!(pem_set("private-rfc8410"), (0, vec!["private"]));
    assert_eq!(pem_set("label-mismatch"), (0, vec!["invalid"]));
    assert_eq!(pem_set("unfinished"), (0, vec!["invalid"]));
    assert_eq!(pem_set("text"), (0, vec!["invalid"]));
}
