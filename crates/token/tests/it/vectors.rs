//! Known answers: RFC 8037 Appendix A (Ed25519), RFC 7515 Appendix A.2 (RS256) and A.3
//! (ES256), RFC 7638 §3.1 (thumbprint). Files in tests/vectors/.

use tessera_token::{Algorithm, Error, KEY_ID_LEN, PublicKey, SigningKey};

use crate::common::{b64, unb64, vector};

fn split(jws: &str) -> (&str, Vec<u8>) {
    let (input, sig) = jws.rsplit_once('.').unwrap();
    (input, unb64(sig))
}

#[test]
fn rfc8037_a4_ed25519_signature_is_reproduced_byte_for_byte() {
    let v = vector("rfc8037-a-ed25519.json");
    let seed: [u8; 32] = unb64(v["d"].as_str().unwrap()).try_into().unwrap();
    let key = SigningKey::ed25519_from_seed(&seed);
    let (input, expected) = split(v["jws"].as_str().unwrap());
    assert_eq!(
        input,
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    );
    let sig = key.sign(input.as_bytes()).unwrap();
    assert_eq!(sig, expected);
    assert_eq!(format!("{input}.{}", b64(&sig)), v["jws"].as_str().unwrap());
    // A.1: the public key derived from d is x.
    let public = PublicKey::ed25519(&unb64(v["x"].as_str().unwrap())).unwrap();
    assert_eq!(public.kid(), key.kid());
    // A.5: verification, strictly.
    public.verify(input.as_bytes(), &sig).unwrap();
    let mut bad = sig;
    bad[0] ^= 1;
    assert!(matches!(
        public.verify(input.as_bytes(), &bad),
        Err(Error::BadSignature)
    ));
}

#[test]
fn rfc8037_a3_thumbprint_and_key_id() {
    let v = vector("rfc8037-a-ed25519.json");
    let public = PublicKey::ed25519(&unb64(v["x"].as_str().unwrap())).unwrap();
    let expected = v["thumbprint"].as_str().unwrap();
    assert_eq!(b64(&public.thumbprint()), expected);
    assert_eq!(public.kid().as_str(), &expected[..KEY_ID_LEN]);
    assert_eq!(public.kid().as_str(), "kPrK_qmxVWaYVA9w");
}

#[test]
fn rfc7638_thumbprint_of_the_rsa_example() {
    let v = vector("rfc7638-thumbprint.json");
    let jwk = &v["jwk"];
    let key = PublicKey::rs256(
        &unb64(jwk["n"].as_str().unwrap()),
        &unb64(jwk["e"].as_str().unwrap()),
    )
    .unwrap();
    let expected = v["thumbprint"].as_str().unwrap();
    assert_eq!(b64(&key.thumbprint()), expected);
    assert_eq!(key.kid().as_str(), &expected[..KEY_ID_LEN]);
    // The JWK's own kid ("2011-04-29") is not our derived id: refused on import.
    assert!(PublicKey::from_jwk(jwk.to_string().as_bytes()).is_err());
}

#[test]
fn rfc7515_a2_rs256_is_reproduced_and_verifies() {
    let v = vector("rfc7515-a2-rs256.json");
    let key = crate::common::rfc7515_rsa_key();
    assert_eq!(key.algorithm(), Algorithm::Rs256);
    let (input, expected) = split(v["jws"].as_str().unwrap());
    // PKCS#1 v1.5 is deterministic: the RFC's signature, byte for byte.
    assert_eq!(key.sign(input.as_bytes()).unwrap(), expected);
    let public_jwk = serde_json::json!({
        "kty": "RSA", "n": v["jwk"]["n"], "e": v["jwk"]["e"],
    });
    let public = PublicKey::from_jwk(public_jwk.to_string().as_bytes()).unwrap();
    assert_eq!(public.kid(), key.kid());
    public.verify(input.as_bytes(), &expected).unwrap();
    let mut bad = expected.clone();
    bad[100] ^= 0x80;
    assert!(public.verify(input.as_bytes(), &bad).is_err());
    assert!(public.verify(input.as_bytes(), &expected[1..]).is_err());
    // The private JWK is refused as a public key.
    assert!(PublicKey::from_jwk(v["jwk"].to_string().as_bytes()).is_err());
    // And the fuzzing fixture's RS256 key is this one.
    let fixture = &tessera_token::fuzzing::fixture().0;
    assert!(fixture.public_key(public.kid()).is_some());
}

#[test]
fn rfc7515_a3_es256_verifies() {
    let v = vector("rfc7515-a3-es256.json");
    let public = PublicKey::from_jwk(v["jwk"].to_string().as_bytes()).unwrap();
    assert_eq!(public.algorithm(), Algorithm::Es256);
    let (input, sig) = split(v["jws"].as_str().unwrap());
    assert_eq!(sig.len(), 64);
    public.verify(input.as_bytes(), &sig).unwrap();
    let mut bad = sig;
    bad[63] ^= 1;
    assert!(public.verify(input.as_bytes(), &bad).is_err());
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 never verifies.
    assert!(public.verify(input.as_bytes(), &[0u8; 64]).is_err());
    assert!(public.verify(b"", &[0u8; 64]).is_err());
    let fixture = &tessera_token::fuzzing::fixture().0;
    assert!(fixture.public_key(public.kid()).is_some());
}

#[test]
fn rfc_examples_are_refused_as_session_tokens() {
    // They are valid JWS but carry no kid or typ: the codec must not take them.
    let (ring, config) = tessera_token::fuzzing::fixture();
    for file in [
        "rfc8037-a-ed25519.json",
        "rfc7515-a2-rs256.json",
        "rfc7515-a3-es256.json",
    ] {
        let jws = vector(file)["jws"].as_str().unwrap().to_owned();
        let err = ring
            .verify_at(
                config,
                &jws,
                tessera_token::fuzzing::NOW,
                &tessera_token::NoRevocations,
            )
            .unwrap_err();
        assert_eq!(err.outcome(), "bad_json", "{file}");
    }
}

#[test]
fn es256_signatures_are_deterministic_rfc6979() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let a = key.sign(b"message").unwrap();
    assert_eq!(a, key.sign(b"message").unwrap());
    assert_eq!(a.len(), 64);
    key.public_key().verify(b"message", &a).unwrap();
}
