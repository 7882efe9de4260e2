//! Session tokens over HTTP: the token cookie beside the session cookie, its checks on
//! `resolve`, `/v1/tokens`, `/v1/verify` and the JWKS.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_store_memory::MemoryStore;

use crate::common::{TestServer, cookie_of, token_settings};

const TOKEN: &str = "__Host-tessera-token";

async fn server(required: bool) -> TestServer {
    TestServer::start(Arc::new(MemoryStore::new()), token_settings(required)).await
}

/// The full `Set-Cookie` value for the token cookie in a response, if any.
fn token_set_cookie(v: &Value) -> Option<String> {
    v["set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{TOKEN}=")))
}

/// `name=value` of the token cookie set in a response (panics when it is not set).
fn token_cookie(v: &Value) -> String {
    let sc = token_set_cookie(v).expect("a token Set-Cookie");
    sc.split(';').next().unwrap().to_owned()
}

fn token_value(cookie: &str) -> &str {
    cookie.split_once('=').unwrap().1
}

fn is_removal(sc: &str) -> bool {
    sc.contains("Max-Age=0") && sc.split(';').next().unwrap().ends_with('=')
}

async fn resolve(s: &TestServer, cookie: &str) -> Value {
    s.ok("/v1/session/resolve", json!({"cookie": cookie})).await
}

async fn verify(s: &TestServer, header: Option<(&str, String)>) -> reqwest::Response {
    let mut r = s.client.get(format!("{}/v1/verify", s.base));
    if let Some((name, value)) = header {
        r = r.header(name, value);
    }
    r.send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn login_sets_both_cookies_and_resolve_checks_the_token() {
    let s = server(false).await;
    let (session, v) = s.login("", "alice").await;
    assert_eq!(v["token_status"], "issued");
    let sc: Vec<&str> = v["set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(sc.len(), 2, "{v}");
    assert!(sc[0].starts_with("__Host-tessera="));
    let t = sc[1];
    assert!(t.starts_with(&format!("{TOKEN}=")), "{t}");
    // Like the session cookie: no Max-Age unless remembered.
    assert!(!t.contains("Max-Age"), "{t}");
    for attr in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(t.contains(attr), "{attr} missing in {t}");
    }
    assert!(!t.contains("Domain"), "{t}");
    let token = token_cookie(&v);
    let remembered = s
        .ok(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "carol"}, "remember": true}),
        )
        .await;
    let t = token_set_cookie(&remembered).unwrap();
    assert!(t.contains("; Max-Age=14400;"), "{t}");

    // The session and its token: ok, nothing to set.
    let r = resolve(&s, &format!("{session}; {token}")).await;
    assert_eq!(r["token_status"], "ok", "{r}");
    assert_eq!(r["set_cookie"], json!([]));

    // Without the token: a new one.
    let r = resolve(&s, &session).await;
    assert_eq!(r["token_status"], "user_session_without_token");
    let fresh = token_cookie(&r);
    assert_ne!(fresh, token);
    let r = resolve(&s, &format!("{session}; {fresh}")).await;
    assert_eq!(r["token_status"], "ok");

    let m = s.metrics().await;
    assert!(
        m.contains("tessera_token_validations_total{outcome=\"ok\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("tessera_token_validations_total{outcome=\"user_session_without_token\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("tessera_tokens_issued_total{alg=\"Ed25519\"} 3"),
        "{m}"
    );
}

#[tokio::test]
async fn a_soft_expired_token_is_reissued_without_a_store_write() {
    let s = server(false).await;
    let (session, v) = s.login("", "alice").await;
    let token = token_cookie(&v);
    let writes = s.writes().await;
    s.clock.advance(Duration::from_secs(601));
    let r = resolve(&s, &format!("{session}; {token}")).await;
    assert_eq!(r["token_status"], "soft_expired", "{r}");
    assert_eq!(r["status"], "loaded", "no renewal is due yet");
    let fresh = token_cookie(&r);
    assert_ne!(fresh, token);
    assert_eq!(
        s.writes().await,
        writes,
        "refreshing a token writes nothing"
    );
    let r = resolve(&s, &format!("{session}; {fresh}")).await;
    assert_eq!(r["token_status"], "ok");
}

#[tokio::test]
async fn a_tampered_token_is_replaced_and_named_by_its_code() {
    let s = server(false).await;
    let (session, v) = s.login("", "alice").await;
    let token = token_cookie(&v);
    // Flip one character of the signature.
    let mut bytes = token.into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let r = resolve(&s, &format!("{session}; {tampered}")).await;
    assert_eq!(r["token_status"], "bad_signature", "{r}");
    token_cookie(&r);

    let r = resolve(&s, &format!("{session}; {TOKEN}=not-a-token")).await;
    assert_eq!(r["token_status"], "bad_encoding", "{r}");
    token_cookie(&r);
}

#[tokio::test]
async fn a_token_of_another_user_or_session_is_cleared() {
    let s = server(false).await;
    let (alice, _) = s.login("", "alice").await;
    let (_, vb) = s.login("", "bob").await;
    let bob_token = token_cookie(&vb);
    let r = resolve(&s, &format!("{alice}; {bob_token}")).await;
    assert_eq!(r["token_status"], "wrong_user", "{r}");
    assert!(is_removal(&token_set_cookie(&r).unwrap()), "{r}");

    let (_, va2) = s.login("", "alice").await;
    let other_session_token = token_cookie(&va2);
    let r = resolve(&s, &format!("{alice}; {other_session_token}")).await;
    assert_eq!(r["token_status"], "wrong_session", "{r}");
    assert!(is_removal(&token_set_cookie(&r).unwrap()), "{r}");
}

#[tokio::test]
async fn an_anonymous_session_or_no_session_with_a_token_has_it_cleared() {
    let s = server(false).await;
    let (_, v) = s.login("", "alice").await;
    let token = token_cookie(&v);
    let anon = cookie_of(
        &s.ok("/v1/session/update", json!({"cookie": "", "set": {"a": 1}}))
            .await,
    );
    let r = resolve(&s, &format!("{anon}; {token}")).await;
    assert_eq!(r["token_status"], "anon_session_with_token", "{r}");
    assert!(is_removal(&token_set_cookie(&r).unwrap()), "{r}");

    let r = resolve(&s, &token).await;
    assert_eq!(r["token_status"], "anon_session_with_token", "{r}");
    assert!(is_removal(&token_set_cookie(&r).unwrap()), "{r}");

    // An anonymous session alone gets no token.
    let r = resolve(&s, &anon).await;
    assert_eq!(r["token_status"], "none", "{r}");
    assert!(token_set_cookie(&r).is_none());
}

#[tokio::test]
async fn logout_clears_both_cookies_and_the_verifier_refuses_the_token() {
    let s = server(false).await;
    let (session, v) = s.login("", "alice").await;
    let token = token_cookie(&v);
    let sid = v["session"]["sid"].as_str().unwrap().to_owned();

    let r = verify(&s, Some(("cookie", token.clone()))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-tessera-subject"), "alice");
    assert_eq!(header(&r, "x-tessera-session"), sid);
    assert_eq!(header(&r, "x-tessera-token-status"), "ok");

    let out = s
        .ok(
            "/v1/session/logout",
            json!({"cookie": format!("{session}; {token}")}),
        )
        .await;
    let sc = out["set_cookie"].as_array().unwrap();
    assert_eq!(sc.len(), 2, "{out}");
    assert!(sc[0].as_str().unwrap().starts_with("__Host-tessera=;"));
    assert!(sc[1].as_str().unwrap().starts_with(&format!("{TOKEN}=;")));
    assert!(sc.iter().all(|c| is_removal(c.as_str().unwrap())));

    let r = verify(&s, Some(("cookie", token.clone()))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-tessera-subject"), "anon");
    assert_eq!(header(&r, "x-tessera-token-status"), "revoked");
    assert!(r.headers().get("x-tessera-session").is_none());
}

#[tokio::test]
async fn minted_tokens_verify_without_a_store_write() {
    let s = server(false).await;
    let writes = s.writes().await;
    let (st, v) = s
        .post(
            "/v1/tokens",
            json!({"sub": "bot:42", "claims": {"rlc": "bot"}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(s.writes().await, writes, "minting writes nothing");

    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["sub"], "bot:42");
    assert_eq!(claims["rlc"], "bot");
    assert_eq!(claims["iss"], "tessera-test");

    let r = verify(&s, Some(("authorization", format!("Bearer {token}")))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-tessera-subject"), "bot:42");
    assert_eq!(
        header(&r, "x-tessera-session"),
        claims["sid"].as_str().unwrap()
    );
    assert_eq!(header(&r, "x-tessera-token-status"), "ok");

    // A UTF-8 subject reaches the header as its bytes.
    let (_, v) = s.post("/v1/tokens", json!({"sub": "bjørn"})).await;
    let r = verify(
        &s,
        Some((
            "authorization",
            format!("Bearer {}", v["token"].as_str().unwrap()),
        )),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["x-tessera-subject"].as_bytes(),
        "bjørn".as_bytes()
    );

    // The API key is required; reserved claims are refused.
    let r = s
        .client
        .post(format!("{}/v1/tokens", s.base))
        .json(&json!({"sub": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (st, _) = s
        .post("/v1/tokens", json!({"sub": "x", "claims": {"exp": 1}}))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = s.post("/v1/tokens", json!({"sub": ""})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    // No token: anonymous in optional mode.
    let r = verify(&s, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-tessera-subject"), "anon");
    assert_eq!(header(&r, "x-tessera-token-status"), "none");
}

#[tokio::test]
async fn the_jwks_lists_the_active_key_and_verifies_tokens() {
    let s = server(false).await;
    let r = s
        .client
        .get(format!("{}/.well-known/jwks.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "cache-control"), "public, max-age=300");
    let jwks: Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty(), "{jwks}");

    let (_, v) = s.login("", "alice").await;
    let cookie = token_cookie(&v);
    let token = token_value(&cookie);
    let (input, sig) = token.rsplit_once('.').unwrap();
    let head: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(input.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == head["kid"])
        .expect("the signing key is published");
    let public = tessera_token::PublicKey::from_jwk(&serde_json::to_vec(jwk).unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    public.verify(input.as_bytes(), &sig).unwrap();
    let mut bad = sig;
    bad[0] ^= 1;
    assert!(public.verify(input.as_bytes(), &bad).is_err());
}

#[tokio::test]
async fn required_mode_answers_401_without_a_valid_token() {
    let s = server(true).await;
    let r = verify(&s, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "www-authenticate"), "Bearer");
    assert_eq!(header(&r, "x-tessera-token-status"), "none");

    let r = verify(&s, Some(("authorization", "Bearer a.b.c".to_owned()))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let (_, v) = s.login("", "alice").await;
    let r = verify(&s, Some(("cookie", token_cookie(&v)))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-tessera-subject"), "alice");

    // Past the hard expiry: refused as expired.
    s.clock.advance(Duration::from_secs(4 * 3600 + 120));
    let r = verify(&s, Some(("cookie", token_cookie(&v)))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "x-tessera-token-status"), "expired");
}

#[tokio::test]
async fn without_tokens_everything_is_as_before() {
    let s = TestServer::memory().await;
    let (session, v) = s.login("", "alice").await;
    assert_eq!(v["set_cookie"].as_array().unwrap().len(), 1);
    assert_eq!(v["token_status"], "disabled");
    let r = resolve(&s, &session).await;
    assert_eq!(r["token_status"], "disabled");
    let r = verify(&s, None).await;
    assert_eq!(header(&r, "x-tessera-subject"), "anon");
    assert_eq!(header(&r, "x-tessera-token-status"), "disabled");
    let r = s
        .client
        .get(format!("{}/.well-known/jwks.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn log_out_everywhere_revokes_the_users_tokens_at_the_verifier() {
    let s = server(false).await;
    let (_, v) = s.login("", "alice").await;
    let alice = token_cookie(&v);
    let (_, v) = s.login("", "bob").await;
    let bob = token_cookie(&v);
    let (st, _) = s.delete("/v1/users/alice/sessions").await;
    assert_eq!(st, StatusCode::OK);

    let r = verify(&s, Some(("cookie", alice))).await;
    assert_eq!(header(&r, "x-tessera-subject"), "anon");
    assert_eq!(header(&r, "x-tessera-token-status"), "revoked");
    let r = verify(&s, Some(("cookie", bob))).await;
    assert_eq!(header(&r, "x-tessera-subject"), "bob");

    // A login after the revocation gets a token the verifier accepts.
    s.clock.advance(Duration::from_secs(1));
    let (_, v) = s.login("", "alice").await;
    let r = verify(&s, Some(("cookie", token_cookie(&v)))).await;
    assert_eq!(header(&r, "x-tessera-subject"), "alice");
    assert_eq!(header(&r, "x-tessera-token-status"), "ok");
}

#[tokio::test]
async fn custom_claims_of_the_session_travel_in_its_token() {
    let s = server(false).await;
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "alice"}, "claims": {"rlc": "bot"}}),
        )
        .await;
    let cookie = token_cookie(&v);
    let payload = token_value(&cookie).split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["rlc"], "bot");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], "tessera-test");
    assert_eq!(claims["sid"], v["session"]["sid"]);
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["sxp"].as_i64().unwrap() - iat, 600);
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 4 * 3600);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));
}

#[tokio::test]
async fn the_verifier_reuses_its_revocation_copy_for_the_refresh_interval() {
    let mut settings = token_settings(false);
    settings.verify_refresh = Duration::from_secs(3600);
    let s = TestServer::start(Arc::new(MemoryStore::new()), settings).await;
    let (session, v) = s.login("", "alice").await;
    let token = token_cookie(&v);
    let r = verify(&s, Some(("cookie", token.clone()))).await;
    assert_eq!(header(&r, "x-tessera-token-status"), "ok");
    s.ok("/v1/session/logout", json!({"cookie": session})).await;
    // Within the interval the copy read before the logout stands: the documented lag,
    // like an edge verifier polling the feed.
    let r = verify(&s, Some(("cookie", token))).await;
    assert_eq!(header(&r, "x-tessera-subject"), "alice");
}

#[tokio::test]
async fn a_revoked_key_is_swapped_under_the_running_service() {
    let settings = token_settings(false);
    let ring = settings.tokens.as_ref().unwrap().keyring.clone();
    let s = TestServer::start(Arc::new(MemoryStore::new()), settings).await;
    let (session, v) = s.login("", "alice").await;
    let token = token_cookie(&v);
    let kid = ring
        .read()
        .signing_key_at(crate::common::START.unix_secs())
        .unwrap()
        .kid()
        .clone();

    // Revoked with a working key source: a new key signs at once.
    ring.update(|r| {
        r.revoke_at(
            &kid,
            crate::common::START.unix_secs(),
            &mut tessera_token::OsKeySource::default(),
        )
    })
    .unwrap();
    let r = resolve(&s, &format!("{session}; {token}")).await;
    assert_eq!(r["token_status"], "key_revoked", "{r}");
    let fresh = token_cookie(&r);
    let r = resolve(&s, &format!("{session}; {fresh}")).await;
    assert_eq!(r["token_status"], "ok", "{r}");

    // No key can sign: the session still resolves, without a token.
    let kid = ring
        .read()
        .signing_key_at(crate::common::START.unix_secs())
        .unwrap()
        .kid()
        .clone();
    let mut failing =
        |_: tessera_token::Algorithm| -> tessera_token::Result<tessera_token::SigningKey> {
            Err(tessera_token::Error::BadEncoding)
        };
    let _ = ring.update(|r| r.revoke_at(&kid, crate::common::START.unix_secs(), &mut failing));
    let r = resolve(&s, &session).await;
    assert_eq!(r["status"], "loaded", "{r}");
    assert_eq!(r["token_status"], "token_failed", "{r}");
    assert!(token_set_cookie(&r).is_none());
}

#[tokio::test]
async fn a_token_seen_again_is_served_from_the_cache_and_still_refused_after_logout() {
    let s = server(false).await;
    let (session, v) = s.login("", "alice").await;
    let token = token_cookie(&v);
    let hits = || s.counter("tessera_token_cache_hits_total");
    assert_eq!(hits().await, 0);
    for _ in 0..3 {
        let r = verify(&s, Some(("cookie", token.clone()))).await;
        assert_eq!(header(&r, "x-tessera-subject"), "alice");
    }
    // The first check verified the signature; the next two were cache hits. `resolve`
    // shares the cache: the same token there is a hit too.
    assert_eq!(hits().await, 2);
    let r = resolve(&s, &format!("{session}; {token}")).await;
    assert_eq!(r["token_status"], "ok");
    assert_eq!(hits().await, 3);
    assert_eq!(s.counter("tessera_token_cache_misses_total").await, 1);
    assert_eq!(s.counter("tessera_token_cache_entries").await, 1);

    // A hit is not a pass: the revocation check still runs.
    s.ok("/v1/session/logout", json!({"cookie": session})).await;
    let r = verify(&s, Some(("cookie", token.clone()))).await;
    assert_eq!(header(&r, "x-tessera-subject"), "anon");
    assert_eq!(header(&r, "x-tessera-token-status"), "revoked");
    assert_eq!(hits().await, 4);
    // And so does expiry.
    let (_, v) = s.login("", "bob").await;
    let bob = token_cookie(&v);
    verify(&s, Some(("cookie", bob.clone()))).await;
    s.clock.advance(Duration::from_secs(4 * 3600 + 61));
    let r = verify(&s, Some(("cookie", bob))).await;
    assert_eq!(header(&r, "x-tessera-token-status"), "expired");
}

#[tokio::test]
async fn configured_claims_are_passed_upstream_as_headers() {
    let mut settings = token_settings(false);
    settings.verify_claims = vec!["rlc".into(), "groups".into(), "absent".into()];
    let s = TestServer::start(Arc::new(MemoryStore::new()), settings).await;
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "alice"},
                   "claims": {"rlc": "established-user", "groups": ["a", "b"], "other": 1}}),
        )
        .await;
    let r = verify(&s, Some(("cookie", token_cookie(&v)))).await;
    assert_eq!(header(&r, "x-tessera-claim-rlc"), "established-user");
    assert_eq!(header(&r, "x-tessera-claim-groups"), r#"["a","b"]"#);
    assert!(r.headers().get("x-tessera-claim-absent").is_none());
    assert!(r.headers().get("x-tessera-claim-other").is_none());
    // Without a valid token: no claim headers at all.
    let r = verify(&s, Some(("cookie", format!("{TOKEN}=a.b.c")))).await;
    assert_eq!(header(&r, "x-tessera-subject"), "anon");
    assert!(r.headers().get("x-tessera-claim-rlc").is_none());
}

#[tokio::test]
async fn required_mode_says_invalid_token_when_one_was_sent() {
    let s = server(true).await;
    let r = verify(&s, Some(("authorization", "Bearer a.b.c".to_owned()))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "www-authenticate"),
        r#"Bearer error="invalid_token""#
    );
    assert_eq!(header(&r, "x-tessera-token-status"), "bad_encoding");
    let r = verify(&s, Some(("cookie", "other=1".to_owned()))).await;
    assert_eq!(header(&r, "www-authenticate"), "Bearer");
    assert_eq!(header(&r, "x-tessera-token-status"), "none");
}
