//! `[tokens] profile = "mediawiki"`: MediaWiki's `sessionJwt` token shape over HTTP, built
//! from the configuration as `tessera serve` builds it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{START, TestServer, server_from_config};

const MW: &str = "[tokens]\nprofile = \"mediawiki\"\nissuer = \"https://meta.wikimedia.org\"\n";

/// The full `Set-Cookie` value of cookie `name` in a response.
fn set_cookie(v: &Value, name: &str) -> Option<String> {
    v["set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
}

fn pair(sc: &str) -> String {
    sc.split(';').next().unwrap().to_owned()
}

fn decode(segment: &str) -> (String, Value) {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap();
    let v = serde_json::from_str(&raw).unwrap();
    (raw, v)
}

async fn verify(s: &TestServer, cookie: &str) -> reqwest::Response {
    s.client
        .get(format!("{}/v1/verify", s.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()[name].to_str().unwrap()
}

async fn jwks(s: &TestServer) -> Value {
    s.client
        .get(format!("{}/.well-known/jwks.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn mediawiki_rs256_tokens_have_mediawikis_shape_and_verify() {
    let (s, _data) = server_from_config(&format!("{MW}rsa_bits = 2048\n")).await;
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "123"}}),
        )
        .await;
    let session = pair(&set_cookie(&v, "__Host-tessera").expect("a session cookie"));

    // The cookie: sessionJwt, no __Host- prefix, still Secure, HttpOnly, Path=/, host-only.
    let sc = set_cookie(&v, "sessionJwt").expect("a sessionJwt cookie");
    for attr in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(sc.contains(attr), "{attr} missing in {sc}");
    }
    assert!(!sc.contains("Domain"), "{sc}");
    assert!(set_cookie(&v, "__Host-tessera-token").is_none(), "{v}");
    let cookie = pair(&sc);
    let token = cookie.strip_prefix("sessionJwt=").unwrap().to_owned();

    // The header: exactly alg, kid, typ JWT.
    let mut parts = token.split('.');
    let (raw_header, head) = decode(parts.next().unwrap());
    let kid = head["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        raw_header,
        format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"JWT"}}"#)
    );
    // The claims: MediaWiki's, plus exp and sid.
    let (_, claims) = decode(parts.next().unwrap());
    assert_eq!(claims["sub"], "mw:CentralAuth::123");
    assert_eq!(claims["iss"], "https://meta.wikimedia.org");
    assert_eq!(claims["rlc"], "authed-user");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(iat, START.unix_secs());
    assert_eq!(claims["sxp"].as_i64().unwrap() - iat, 3600);
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 4 * 3600);
    assert!(claims["jti"].is_string() && claims["sid"].is_string());

    // The JWKS publishes the RS256 key; the signature checks out with it alone.
    let keys = jwks(&s).await;
    let jwk = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the signing key is published");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["alg"].as_str()),
        (Some("RSA"), Some("RS256"))
    );
    let public = tessera_token::PublicKey::from_jwk(&serde_json::to_vec(jwk).unwrap()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    public
        .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
        .unwrap();

    // The verifier reads the sessionJwt cookie, and only that one.
    let r = verify(&s, &cookie).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-tessera-subject"), "mw:CentralAuth::123");
    assert_eq!(header(&r, "x-tessera-token-status"), "ok");
    let r = verify(&s, &format!("__Host-tessera-token={token}")).await;
    assert_eq!(header(&r, "x-tessera-subject"), "anon");
    assert_eq!(header(&r, "x-tessera-token-status"), "none");

    // resolve accepts it with its session.
    let r = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": format!("{session}; {cookie}")}),
        )
        .await;
    assert_eq!(r["token_status"], "ok", "{r}");
    assert_eq!(r["set_cookie"], json!([]));
    // Without it, a new sessionJwt is issued.
    let r = s
        .ok("/v1/session/resolve", json!({"cookie": session.clone()}))
        .await;
    assert_eq!(r["token_status"], "user_session_without_token", "{r}");
    assert!(set_cookie(&r, "sessionJwt").is_some(), "{r}");

    // A login's own rate-limit class wins over the default.
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "7"}, "claims": {"rlc": "approved-bot"}}),
        )
        .await;
    let bot = pair(&set_cookie(&v, "sessionJwt").unwrap());
    let (_, claims) = decode(bot.split('.').nth(1).unwrap());
    assert_eq!(
        (claims["rlc"].as_str(), claims["sub"].as_str()),
        (Some("approved-bot"), Some("mw:CentralAuth::7"))
    );

    // Log out everywhere reaches the verifier through the mw: subject.
    s.clock.advance(std::time::Duration::from_secs(1));
    let (st, _) = s.delete("/v1/users/123/sessions").await;
    assert_eq!(st, StatusCode::OK);
    let r = verify(&s, &cookie).await;
    assert_eq!(header(&r, "x-tessera-token-status"), "revoked");
    let r = verify(&s, &bot).await;
    assert_eq!(header(&r, "x-tessera-token-status"), "ok");

    // Logout clears sessionJwt with the same attributes.
    let out = s.ok("/v1/session/logout", json!({"cookie": session})).await;
    let clear = set_cookie(&out, "sessionJwt").unwrap();
    assert!(
        clear.starts_with("sessionJwt=;") && clear.contains("Max-Age=0"),
        "{clear}"
    );
    assert!(clear.contains("; Secure; HttpOnly"), "{clear}");
}

#[tokio::test]
async fn eddsa_tokens_with_the_rfc_9864_header_name_are_emitted_and_accepted() {
    let (s, data) = server_from_config(&format!(
        "{MW}algorithm = \"EdDSA\"\ned25519_alg = \"Ed25519\"\nmediawiki_scope = \"local:mywiki\"\n"
    ))
    .await;
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "42"}}),
        )
        .await;
    let session = pair(&set_cookie(&v, "__Host-tessera").unwrap());
    let cookie = pair(&set_cookie(&v, "sessionJwt").unwrap());
    let token = cookie.strip_prefix("sessionJwt=").unwrap();
    let (raw_header, head) = decode(token.split('.').next().unwrap());
    let kid = head["kid"].as_str().unwrap();
    assert_eq!(
        raw_header,
        format!(r#"{{"alg":"Ed25519","kid":"{kid}","typ":"JWT"}}"#)
    );
    let (_, claims) = decode(token.split('.').nth(1).unwrap());
    assert_eq!(claims["sub"], "mw:local:mywiki:42");
    let keys = jwks(&s).await;
    assert_eq!(keys["keys"][0]["alg"], "Ed25519");
    assert_eq!(keys["keys"][0]["crv"], "Ed25519");

    let r = verify(&s, &cookie).await;
    assert_eq!(header(&r, "x-tessera-subject"), "mw:local:mywiki:42");
    assert_eq!(header(&r, "x-tessera-token-status"), "ok");
    let r = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": format!("{session}; {cookie}")}),
        )
        .await;
    assert_eq!(r["token_status"], "ok", "{r}");

    // The same key under the RFC 8037 name (EdDSA) is accepted too: a token signed with
    // the service's own key from its key directory, by a codec that writes `EdDSA`.
    let ring = tessera_token::Keyring::load(
        &data.path().join("keys"),
        tessera_token::RotationPolicy::default(),
    )
    .unwrap();
    let codec = tessera_token::Config::new("https://meta.wikimedia.org").with_typ("JWT");
    let now = START.unix_secs();
    let mut c = tessera_token::Claims::new(
        "https://meta.wikimedia.org",
        "mw:local:mywiki:42",
        claims["sid"].as_str().unwrap(),
        "jti-eddsa",
        now,
        now + 3600,
        now + 4 * 3600,
    );
    c.custom.insert("rlc".into(), "authed-user".into());
    let eddsa = ring.sign_at(&codec, &c, now).unwrap();
    assert_eq!(decode(eddsa.split('.').next().unwrap()).1["alg"], "EdDSA");
    let r = verify(&s, &format!("sessionJwt={eddsa}")).await;
    assert_eq!(header(&r, "x-tessera-token-status"), "ok");
    let r = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": format!("{session}; sessionJwt={eddsa}")}),
        )
        .await;
    assert_eq!(r["token_status"], "ok", "{r}");
}
