//! The service itself with `[tokens] algorithm = "ES256"` / `"RS256"` and with the MediaWiki
//! profile: what it issues verifies in PyJWT and jose against the JWKS it serves, and a
//! token PyJWT signs with the service's own key file verifies at `/v1/verify`.

use serde_json::{Value, json};

use super::{ISSUER, Peer, Service, Verdict, assert_peers_verify, claims_for, claims_of, run};

/// The value of cookie `name` among a response's `set_cookie`.
fn cookie(v: &Value, name: &str) -> String {
    let prefix = format!("{name}=");
    v["set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str()?.strip_prefix(&prefix))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .next()
        .unwrap_or_else(|| panic!("no {name} cookie: {v}"))
}

fn header_of(token: &str) -> Value {
    use base64::Engine as _;
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

/// Logs in `user`, checks both peers accept the token (algorithm pinned to `alg`), and that
/// PyJWT signing with the service's key file gets through `/v1/verify`.
async fn service_interoperates(
    s: &Service,
    cookie_name: &str,
    alg: &str,
    typ: &str,
    peer_sub: &str,
) -> Value {
    let v = s
        .post(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "123"}, "claims": {"rlc": "established-user"}}),
        )
        .await;
    let token = cookie(&v, cookie_name);
    let h = header_of(&token);
    assert_eq!(
        (h["alg"].as_str(), h["typ"].as_str()),
        (Some(alg), Some(typ)),
        "{h}"
    );
    let claims = assert_peers_verify(&token, &s.jwks().await, alg).await;
    assert_eq!(claims, claims_of(&token));
    assert_eq!(claims["rlc"], "established-user");

    let (kid, key_file) = s.active_key();
    let signed = claims_for(peer_sub);
    let r = run(
        Peer::PyJwt,
        &[json!({"op": "sign", "alg": alg, "claims": signed,
                 "headers": {"kid": kid, "typ": typ},
                 "key": {"pkcs8_der_file": key_file}})],
    )
    .await;
    let mut t = r[0]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r[0]))
        .to_owned();
    // PyJWT writes either ECDSA `s`; Tessera takes the low one only (one spelling per
    // token): the high one is refused, its low twin accepted.
    if alg == "ES256" && super::es256_high_s(&t) {
        assert_eq!(
            s.verify("authorization", &format!("Bearer {t}")).await,
            Verdict::anon("bad_signature")
        );
        t = super::es256_other_s(&t);
    }
    let t = t.as_str();
    assert_eq!(
        s.verify("authorization", &format!("Bearer {t}")).await,
        Verdict::ok(peer_sub, signed["sid"].as_str().unwrap())
    );
    // The same key under another algorithm's name is refused.
    let tampered = format!(
        "{}.{}",
        {
            use base64::Engine as _;
            let other = if alg == "ES256" { "RS256" } else { "ES256" };
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(json!({"alg": other, "kid": kid, "typ": typ}).to_string())
        },
        t.split_once('.').unwrap().1
    );
    assert_eq!(
        s.verify("authorization", &format!("Bearer {tampered}"))
            .await,
        Verdict::anon("alg_not_allowed")
    );
    claims
}

#[tokio::test]
async fn an_es256_service_interoperates_with_pyjwt_and_jose() {
    let s = Service::start_with("[tokens]\nalgorithm = \"ES256\"\n").await;
    let c = service_interoperates(&s, super::TOKEN_COOKIE, "ES256", "session+jwt", "py-user").await;
    assert_eq!(c["sub"], "123");
}

#[tokio::test]
async fn an_rs256_service_interoperates_with_pyjwt_and_jose() {
    let s = Service::start_with("[tokens]\nalgorithm = \"RS256\"\nrsa_bits = 2048\n").await;
    let c = service_interoperates(&s, super::TOKEN_COOKIE, "RS256", "session+jwt", "py-user").await;
    assert_eq!(c["sub"], "123");
}

/// What an edge configured for MediaWiki checks (RS256 from the JWKS, the issuer, the
/// `sessionJwt` cookie, `sub` `mw:…`, `rlc`), with real JWT libraries.
#[tokio::test]
async fn mediawiki_profile_tokens_verify_in_pyjwt_and_jose() {
    let s = Service::start_with("[tokens]\nprofile = \"mediawiki\"\nrsa_bits = 2048\n").await;
    // The verifier checks MediaWiki's `sub` form here: the peer signs for a central id.
    let c = service_interoperates(&s, "sessionJwt", "RS256", "JWT", "mw:CentralAuth::456").await;
    assert_eq!(c["sub"], "mw:CentralAuth::123");
    assert_eq!(c["iss"], ISSUER);
    assert!(c["sxp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());
}
