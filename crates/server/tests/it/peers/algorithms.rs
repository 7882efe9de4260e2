//! ES256 and RS256 with the peers, at the level of `tessera-token`: keyrings from the
//! crate's API (generated, signed with, published as a JWKS and saved to a key directory as
//! the service does). `service_algorithms` does the same through the running service.

use serde_json::{Value, json};
use tessera_token::{
    Algorithm, Claims, Config, JwsAlgorithm, Keyring, OsKeySource, RevocationList, RotationPolicy,
};

use super::{ISSUER, Peer, assert_peers_verify, claims_for, now, run};

/// Tessera signs, both peers verify against its JWKS; PyJWT signs with the key file Tessera
/// saved, Tessera verifies; keys not in the keyring and tampered tokens are refused.
async fn keyring_interoperates(alg: Algorithm, jws: JwsAlgorithm) {
    let now = now();
    let ring = Keyring::generate_at(
        now,
        RotationPolicy::default().with_algorithm(alg),
        &mut OsKeySource::default(),
    )
    .unwrap();
    let config = Config::new(ISSUER).with_algorithms([jws]);
    let mut claims = Claims::new(
        ISSUER,
        "carol",
        "sid-carol",
        "jti-1",
        now,
        now + 300,
        now + 600,
    );
    claims.custom.insert("rlc".into(), json!("bot"));
    let token = ring.sign_at(&config, &claims, now).unwrap();
    let jwks: Value = serde_json::from_str(&ring.jwks(&config)).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], jws.name(), "{jwks}");

    let c = assert_peers_verify(&token, &jwks, jws.name()).await;
    assert_eq!(c["sub"], "carol");
    assert_eq!(c["rlc"], "bot");
    assert_eq!(c["exp"], now + 600);

    // The other way: PyJWT signs with the private-key file of the saved keyring.
    let dir = tempfile::tempdir().unwrap();
    ring.save(dir.path()).unwrap();
    let kid = ring.signing_key_at(now).unwrap().kid().to_string();
    let key_file = dir.path().join(format!("{kid}.pk8"));
    let py_claims = claims_for("dave");
    let sign = |key: Value, headers: Value| json!({"op": "sign", "alg": jws.name(), "headers": headers, "claims": py_claims, "key": key});
    let r = run(
        Peer::PyJwt,
        &[
            sign(
                json!({"pkcs8_der_file": key_file}),
                json!({"kid": true, "typ": "session+jwt"}),
            ),
            sign(
                json!({"generate": true}),
                json!({"kid": true, "typ": "session+jwt"}),
            ),
            sign(
                json!({"generate": true}),
                json!({"kid": kid, "typ": "session+jwt"}),
            ),
        ],
    )
    .await;
    assert_eq!(
        r[0]["kid"], kid,
        "PyJWT's RFC 7638 key id differs from Tessera's"
    );
    let verify = |t: &Value| {
        ring.verify_at(
            &config,
            t["token"].as_str().unwrap(),
            now,
            &RevocationList::default(),
        )
    };
    let ok = verify(&r[0]).unwrap();
    assert_eq!((ok.outcome(), ok.claims.sub.as_str()), ("ok", "dave"));
    assert_eq!(ok.claims.sid, "sid-dave");
    assert_eq!(verify(&r[1]).unwrap_err().outcome(), "unknown_kid");
    assert_eq!(verify(&r[2]).unwrap_err().outcome(), "bad_signature");
    let tampered = super::with_claims(r[0]["token"].as_str().unwrap(), |c| {
        c["sub"] = json!("admin");
    });
    let err = ring
        .verify_at(&config, &tampered, now, &RevocationList::default())
        .unwrap_err();
    assert_eq!(err.outcome(), "bad_signature");
    // The allow-list holds: the same token is refused where its `alg` is not allowed.
    let others = Config::new(ISSUER).with_algorithms(
        [
            JwsAlgorithm::EdDsa,
            JwsAlgorithm::Ed25519,
            JwsAlgorithm::Es256,
            JwsAlgorithm::Rs256,
        ]
        .into_iter()
        .filter(|a| *a != jws),
    );
    let err = ring
        .verify_at(
            &others,
            r[0]["token"].as_str().unwrap(),
            now,
            &RevocationList::default(),
        )
        .unwrap_err();
    assert_eq!(err.outcome(), "alg_not_allowed");
}

#[tokio::test]
async fn es256_keyrings_interoperate_with_pyjwt_and_jose() {
    keyring_interoperates(Algorithm::Es256, JwsAlgorithm::Es256).await;
}

#[tokio::test]
async fn rs256_keyrings_interoperate_with_pyjwt_and_jose() {
    keyring_interoperates(Algorithm::Rs256, JwsAlgorithm::Rs256).await;
}

/// The default algorithm through the same checks (the service-level tests cover it too).
#[tokio::test]
async fn ed25519_keyrings_interoperate_with_pyjwt_and_jose() {
    keyring_interoperates(Algorithm::Ed25519, JwsAlgorithm::EdDsa).await;
}
