//! The README walkthrough, step by step, plus login fixation and carry-over.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, cookie_of};

#[tokio::test]
async fn readme_walkthrough() {
    let s = TestServer::memory().await;

    // 1. A first visit: no cookie, no session, nothing written.
    let v = s.ok("/v1/session/resolve", json!({"cookie": ""})).await;
    assert_eq!(v["session"], serde_json::Value::Null);
    assert_eq!(v["set_cookie"], json!([]));
    assert_eq!(v["status"], "none");
    assert_eq!(s.writes().await, 0);

    // 2. The login form stores state: an anonymous session is created, client-side (the
    //    default): a sealed cookie, still nothing written.
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"return_to": "/wiki/Main"}}),
        )
        .await;
    assert_eq!(v["status"], "created");
    assert_eq!(v["session"]["kind"], "anonymous");
    assert_eq!(v["session"]["storage"], "cookie");
    assert_eq!(v["session"]["user"], serde_json::Value::Null);
    assert!(v["csrf_token"].is_string());
    let anon = cookie_of(&v);
    let sc = v["set_cookie"][0].as_str().unwrap();
    assert!(sc.starts_with("__Host-tessera-anon=1."), "{sc}");
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(sc.contains(attr), "{sc} lacks {attr}");
    }
    assert!(!sc.contains("Domain"), "{sc}");
    assert!(
        !sc.contains("Max-Age"),
        "not remember-me: a browser-session cookie: {sc}"
    );
    assert!(sc.len() < 4096, "{}", sc.len());
    assert_eq!(s.writes().await, 0, "a client-side session costs no write");

    // 3. Login: a new handle, the anonymous data carried over, the anonymous cookie cleared.
    let (user_cookie, v) = s.login(&anon, "alice").await;
    assert!(user_cookie.starts_with("__Host-tessera=u"), "{user_cookie}");
    assert_eq!(v["status"], "logged_in");
    assert_eq!(v["session"]["user"]["id"], "alice");
    assert_eq!(v["session"]["kind"], "authenticated");
    assert_eq!(v["session"]["storage"], "store");
    assert_eq!(v["session"]["data"]["return_to"], "/wiki/Main");
    assert_eq!(
        v["set_cookie"][1],
        "__Host-tessera-anon=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax"
    );
    assert_eq!(
        v["set_cookie"].as_array().unwrap().len(),
        2,
        "one Set-Cookie per name"
    );
    // A client-side session cannot be revoked early: the old sealed cookie, replayed, still
    // opens until it expires; it is anonymous and names nothing stored (fixation defence:
    // the user's session has a new handle).
    let v = s.ok("/v1/session/resolve", json!({"cookie": anon})).await;
    assert_eq!(v["session"]["user"], serde_json::Value::Null);
    assert_eq!(v["session"]["storage"], "cookie");

    // 4. Update and resolve.
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": user_cookie, "set": {"theme": "dark", "cart": [1, 2]}, "remove": ["return_to"]}),
        )
        .await;
    assert_eq!(v["status"], "updated");
    let v = s
        .ok("/v1/session/resolve", json!({"cookie": user_cookie}))
        .await;
    assert_eq!(v["status"], "loaded");
    assert_eq!(
        v["session"]["data"],
        json!({"theme": "dark", "cart": [1, 2]})
    );
    assert_eq!(v["token_status"], "disabled");
    let csrf = v["csrf_token"].as_str().unwrap().to_owned();

    // 5. CSRF: valid for this session and purpose only; issuing wrote nothing.
    let writes = s.writes().await;
    let ok = s
        .ok(
            "/v1/session/csrf/check",
            json!({"cookie": user_cookie, "token": csrf}),
        )
        .await;
    assert_eq!(ok, json!({"valid": true}));
    let other_purpose = s
        .ok(
            "/v1/session/csrf/check",
            json!({"cookie": user_cookie, "token": csrf, "purpose": "delete-account"}),
        )
        .await;
    assert_eq!(other_purpose, json!({"valid": false}));
    let forged = s
        .ok(
            "/v1/session/csrf/check",
            json!({"cookie": user_cookie, "token": "A".repeat(54)}),
        )
        .await;
    assert_eq!(forged, json!({"valid": false}));
    let no_session = s
        .ok(
            "/v1/session/csrf/check",
            json!({"cookie": "", "token": csrf}),
        )
        .await;
    assert_eq!(no_session, json!({"valid": false}));
    assert_eq!(s.writes().await, writes, "CSRF costs no write");

    // 6. Logout: the session ends, the cookie is cleared with matching attributes.
    let v = s
        .ok("/v1/session/logout", json!({"cookie": user_cookie}))
        .await;
    assert_eq!(v["status"], "logged_out");
    assert_eq!(
        v["set_cookie"],
        json!([
            "__Host-tessera=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax"
        ])
    );
    let v = s
        .ok("/v1/session/resolve", json!({"cookie": user_cookie}))
        .await;
    assert_eq!(v["session"], serde_json::Value::Null);
    // The old CSRF token died with the session.
    let v = s
        .ok(
            "/v1/session/csrf/check",
            json!({"cookie": user_cookie, "token": csrf}),
        )
        .await;
    assert_eq!(v, json!({"valid": false}));
    // Logout is idempotent.
    s.ok("/v1/session/logout", json!({"cookie": user_cookie}))
        .await;

    // 7. Log out everywhere.
    let (a, _) = s.login("", "alice").await;
    let (b, _) = s.login("", "alice").await;
    let (bob, _) = s.login("", "bob").await;
    let (st, list) = s.get("/v1/users/alice/sessions").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2);
    let (st, v) = s.delete("/v1/users/alice/sessions").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["revoked"], 2);
    for c in [&a, &b] {
        let v = s.ok("/v1/session/resolve", json!({"cookie": c})).await;
        assert_eq!(v["session"], serde_json::Value::Null);
    }
    let v = s.ok("/v1/session/resolve", json!({"cookie": bob})).await;
    assert_eq!(
        v["session"]["user"]["id"], "bob",
        "other users keep their sessions"
    );
    // A login after the revocation works.
    s.clock.advance(std::time::Duration::from_millis(1));
    let (c, _) = s.login("", "alice").await;
    let v = s.ok("/v1/session/resolve", json!({"cookie": c})).await;
    assert_eq!(v["session"]["user"]["id"], "alice");
}

/// The same steps with `[session] anonymous = "server"`: the anonymous session is stored
/// (one write) and the login kills its handle.
#[tokio::test]
async fn readme_walkthrough_with_server_side_anonymous_sessions() {
    let s = TestServer::memory_server_anonymous().await;
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"return_to": "/wiki/Main"}}),
        )
        .await;
    assert_eq!(v["status"], "created");
    assert_eq!(v["session"]["storage"], "store");
    let anon = cookie_of(&v);
    assert!(anon.starts_with("__Host-tessera=a"), "{anon}");
    assert_eq!(s.writes().await, 1);
    let (user_cookie, v) = s.login(&anon, "alice").await;
    assert_ne!(user_cookie, anon);
    assert_eq!(v["session"]["data"]["return_to"], "/wiki/Main");
    assert_eq!(v["set_cookie"].as_array().unwrap().len(), 1);
    // The pre-login handle is dead (fixation defence).
    let v = s.ok("/v1/session/resolve", json!({"cookie": anon})).await;
    assert_eq!(v["session"], serde_json::Value::Null);
    assert_eq!(v["status"], "ended");
    assert!(v["set_cookie"][0].as_str().unwrap().contains("Max-Age=0"));
    let (st, p) = s
        .post(
            "/v1/session/update",
            json!({"cookie": anon, "set": {"x": 1}}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{p}");
}

#[tokio::test]
async fn revoke_one_session_by_reference() {
    let s = TestServer::memory().await;
    let (a, va) = s.login("", "carol").await;
    let (b, _) = s.login("", "carol").await;
    let r = va["session"]["ref"].as_str().unwrap();
    // Another user cannot revoke it through their own path.
    let (st, _) = s.delete(&format!("/v1/users/dave/sessions/{r}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.delete(&format!("/v1/users/carol/sessions/{r}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let v = s.ok("/v1/session/resolve", json!({"cookie": a})).await;
    assert_eq!(v["session"], serde_json::Value::Null);
    let v = s.ok("/v1/session/resolve", json!({"cookie": b})).await;
    assert_eq!(v["session"]["user"]["id"], "carol");
    let (st, _) = s.delete(&format!("/v1/users/carol/sessions/{r}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "a second revoke finds nothing");
}

#[tokio::test]
async fn login_as_another_user_does_not_carry_data() {
    let s = TestServer::memory().await;
    let (alice, _) = s.login("", "alice").await;
    s.ok(
        "/v1/session/update",
        json!({"cookie": alice, "set": {"secret": 1}}),
    )
    .await;
    let (_, v) = s.login(&alice, "mallory").await;
    assert_eq!(v["session"]["data"], json!({}));
    let (_, v) = s.login("", "alice").await;
    assert_eq!(v["session"]["data"], json!({}));
}

#[tokio::test]
async fn remember_me_sets_a_persistent_cookie_up_to_expiry() {
    let s = TestServer::memory().await;
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "erin", "name": "Erin"}, "remember": true, "claims": {"rlc": "trusted"}}),
        )
        .await;
    let sc = v["set_cookie"][0].as_str().unwrap();
    assert!(sc.contains(&format!("Max-Age={}", 7 * 86400)), "{sc}");
    assert_eq!(v["session"]["remember"], true);
    assert_eq!(v["session"]["claims"], json!({"rlc": "trusted"}));
    assert_eq!(v["session"]["user"]["name"], "Erin");
}

#[tokio::test]
async fn resolve_with_create_makes_one_anonymous_session() {
    for s in [
        TestServer::memory().await,
        TestServer::memory_server_anonymous().await,
    ] {
        resolve_with_create(s).await;
    }
}

async fn resolve_with_create(s: TestServer) {
    let v = s
        .ok("/v1/session/resolve", json!({"cookie": "", "create": true}))
        .await;
    assert_eq!(v["status"], "created");
    assert!(v["csrf_token"].is_string());
    let c = cookie_of(&v);
    let v2 = s
        .ok("/v1/session/resolve", json!({"cookie": c, "create": true}))
        .await;
    assert_eq!(v2["status"], "loaded");
    assert_eq!(v2["session"]["ref"], v["session"]["ref"]);
}
