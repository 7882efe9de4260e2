//! node's `jose` and the running service, Ed25519 (the default): tokens from login and
//! from `POST /v1/tokens` verify with `createLocalJWKSet` / `createRemoteJWKSet` +
//! `jwtVerify`, issuer and algorithms pinned.

use serde_json::json;

use super::{ISSUER, Peer, Service, run, verify_op, with_claims};

#[tokio::test]
async fn tessera_tokens_verify_in_jose_against_the_served_jwks() {
    // With a `[tokens]` section of the test's own (the issuer is put into it).
    let s = Service::start_with("[tokens]\nsxp = \"30m\"\n").await;
    let (login, sid) = s.login("alice").await;
    let minted = s.mint("bot:42", json!({"rlc": "bot"})).await;
    let jwks = s.jwks().await;
    let url = json!(s.jwks_url());
    let tampered = with_claims(&login, |c| c["sub"] = json!("admin"));

    let r = run(
        Peer::Jose,
        &[
            verify_op(&login, &jwks, ISSUER, &["EdDSA"]),
            verify_op(&login, &url, ISSUER, &["EdDSA"]),
            verify_op(&minted, &jwks, ISSUER, &["EdDSA"]),
            verify_op(&minted, &url, ISSUER, &["EdDSA"]),
            verify_op(&tampered, &url, ISSUER, &["EdDSA"]),
            verify_op(&login, &url, "https://other.example.test", &["EdDSA"]),
            verify_op(&login, &url, ISSUER, &["ES256", "RS256"]),
        ],
    )
    .await;
    for v in &r[..2] {
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["claims"]["sub"], "alice", "{v}");
        assert_eq!(v["claims"]["sid"], sid, "{v}");
        assert_eq!(v["claims"]["iss"], ISSUER, "{v}");
        assert_eq!(v["header"]["typ"], "session+jwt", "{v}");
    }
    let c = &r[0]["claims"];
    assert_eq!(
        c["sxp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        1800
    );
    for v in &r[2..4] {
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["claims"]["sub"], "bot:42", "{v}");
        assert_eq!(v["claims"]["rlc"], "bot", "{v}");
    }
    assert_eq!(
        r[4]["error"], "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
        "{}",
        r[4]
    );
    assert_eq!(r[5]["error"], "ERR_JWT_CLAIM_VALIDATION_FAILED", "{}", r[5]);
    assert_eq!(r[6]["error"], "ERR_JOSE_ALG_NOT_ALLOWED", "{}", r[6]);
    let (kid, _) = s.active_key();
    assert_eq!(r[0]["header"]["kid"], kid);
}

/// A token signed by a key the service does not publish fails in jose too: the JWKS it
/// fetches is the only source of keys.
#[tokio::test]
async fn jose_refuses_a_token_from_another_keyring() {
    let a = Service::start("optional").await;
    let b = Service::start("optional").await;
    let (token, _) = a.login("alice").await;
    let r = run(
        Peer::Jose,
        &[verify_op(&token, &json!(b.jwks_url()), ISSUER, &["EdDSA"])],
    )
    .await;
    assert_eq!(r[0]["error"], "ERR_JWKS_NO_MATCHING_KEY", "{}", r[0]);
}
