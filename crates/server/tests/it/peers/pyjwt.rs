//! PyJWT (with pyca/cryptography) and the running service, Ed25519 (the default): Tessera's
//! tokens verify in PyJWT against the served JWKS, and tokens PyJWT signs with a key from
//! the service's keyring verify at `GET /v1/verify`.

use serde_json::json;

use super::{
    ISSUER, Peer, Service, TOKEN_COOKIE, Verdict, assert_peers_verify, claims_for, run, with_claims,
};

#[tokio::test]
async fn tessera_tokens_verify_in_pyjwt_against_the_served_jwks() {
    let s = Service::start("optional").await;
    let (login, sid) = s.login("alice").await;
    let minted = s.mint("bot:42", json!({"rlc": "bot"})).await;
    let jwks = s.jwks().await;
    let url = json!(s.jwks_url());

    // Both peers, over the fetched set and over its URL (PyJWKClient, createRemoteJWKSet).
    for keys in [&jwks, &url] {
        let c = assert_peers_verify(&login, keys, "EdDSA").await;
        assert_eq!((&c["sub"], &c["sid"]), (&json!("alice"), &json!(sid)));
        let c = assert_peers_verify(&minted, keys, "EdDSA").await;
        assert_eq!((&c["sub"], &c["rlc"]), (&json!("bot:42"), &json!("bot")));
    }

    // PyJWT found the key by kid in the served set: it names the signing key.
    let r = run(
        Peer::PyJwt,
        &[super::verify_op(&login, &jwks, ISSUER, &["EdDSA"])],
    )
    .await;
    assert_eq!(r[0]["key_alg"], "EdDSA", "{}", r[0]);
    let (kid, _) = s.active_key();
    assert_eq!(r[0]["header"]["kid"], kid);
    assert_eq!(r[0]["header"]["typ"], "session+jwt");
}

#[tokio::test]
async fn tokens_pyjwt_signs_with_a_keyring_key_verify_in_tessera() {
    let s = Service::start("optional").await;
    let (kid, key_file) = s.active_key();
    let claims = claims_for("py-user");
    let key = json!({"pkcs8_der_file": key_file});
    let sign = |key: &serde_json::Value, headers: serde_json::Value| json!({"op": "sign", "alg": "EdDSA", "headers": headers, "claims": claims, "key": key});
    let r = run(
        Peer::PyJwt,
        &[
            // The keyring's key, with its kid as PyJWT's side derives it (RFC 7638).
            sign(&key, json!({"kid": true, "typ": "session+jwt"})),
            // A key that is not in the keyring, under its own kid and under the keyring's.
            sign(
                &json!({"generate": true}),
                json!({"kid": true, "typ": "session+jwt"}),
            ),
            sign(
                &json!({"generate": true}),
                json!({"kid": kid, "typ": "session+jwt"}),
            ),
            // The keyring's key, but PyJWT's default header type (`JWT`).
            sign(&key, json!({"kid": kid})),
        ],
    )
    .await;
    assert_eq!(
        r[0]["kid"], kid,
        "PyJWT's RFC 7638 key id differs from Tessera's"
    );
    let token = r[0]["token"].as_str().unwrap();
    let sid = claims["sid"].as_str().unwrap();

    // Both forms the verifier reads: Authorization: Bearer, and the token cookie.
    assert_eq!(
        s.verify("authorization", &format!("Bearer {token}")).await,
        Verdict::ok("py-user", sid)
    );
    assert_eq!(
        s.verify("cookie", &format!("{TOKEN_COOKIE}={token}")).await,
        Verdict::ok("py-user", sid)
    );

    let bearer = |t: &str| format!("Bearer {t}");
    let unknown = r[1]["token"].as_str().unwrap();
    assert_ne!(r[1]["kid"], kid);
    assert_eq!(
        s.verify("authorization", &bearer(unknown)).await,
        Verdict::anon("unknown_kid")
    );
    assert_eq!(
        s.verify("authorization", &bearer(r[2]["token"].as_str().unwrap()))
            .await,
        Verdict::anon("bad_signature")
    );
    assert_eq!(
        s.verify("authorization", &bearer(r[3]["token"].as_str().unwrap()))
            .await,
        Verdict::anon("wrong_type")
    );
    // Tampered: the claims changed under the signature.
    let tampered = with_claims(token, |c| c["sub"] = json!("admin"));
    assert_eq!(
        s.verify("authorization", &bearer(&tampered)).await,
        Verdict::anon("bad_signature")
    );
    let tampered = with_claims(token, |c| c["exp"] = json!(c["exp"].as_i64().unwrap() + 1));
    assert_eq!(
        s.verify("authorization", &bearer(&tampered)).await,
        Verdict::anon("bad_signature")
    );
}

/// The same token in required mode: 200 with the subject, and 401 for the forgeries.
#[tokio::test]
async fn in_required_mode_only_the_keyring_signed_token_passes() {
    let s = Service::start("required").await;
    let (kid, key_file) = s.active_key();
    let claims = claims_for("py-user");
    let r = run(
        Peer::PyJwt,
        &[
            json!({"op": "sign", "alg": "EdDSA", "claims": claims,
                   "headers": {"kid": kid, "typ": "session+jwt"},
                   "key": {"pkcs8_der_file": key_file}}),
            json!({"op": "sign", "alg": "EdDSA", "claims": claims,
                   "headers": {"kid": kid, "typ": "session+jwt"},
                   "key": {"generate": true}}),
        ],
    )
    .await;
    let good = r[0]["token"].as_str().unwrap();
    assert_eq!(
        s.verify("authorization", &format!("Bearer {good}")).await,
        Verdict::ok("py-user", claims["sid"].as_str().unwrap())
    );
    let forged = r[1]["token"].as_str().unwrap();
    let v = s.verify("authorization", &format!("Bearer {forged}")).await;
    assert_eq!(
        (v.status, v.subject, v.code.as_deref()),
        (401, None, Some("bad_signature"))
    );
}
