//! What web frameworks need, over HTTP (issue 13 phase B, docs/frameworks.md): `update`'s
//! `expiry`, `POST /v1/session/rotate`, `storage: "store"` on `resolve` and `update`, and
//! `resolve {"renew": false}`; and their bad input (a problem, no state change).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestServer, cookie_of, token_settings};

const MIN: Duration = Duration::from_secs(60);

fn max_age(v: &Value) -> Option<i64> {
    v["set_cookie"][0]
        .as_str()?
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .map(|n| n.parse().unwrap())
}

/// A stored anonymous session with `{"k": 1}` (client-side mode, kept in the store).
async fn stored(s: &TestServer) -> (String, Value) {
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": "", "set": {"k": 1}, "storage": "store"}),
        )
        .await;
    assert_eq!(v["status"], "created");
    assert_eq!(v["session"]["storage"], "store");
    (cookie_of(&v), v)
}

#[tokio::test]
async fn an_expiry_is_kept_shown_and_enforced() {
    let s = TestServer::memory().await;
    let (cookie, v) = stored(&s).await;
    assert_eq!(v["session"]["expiry"], Value::Null);
    let now = v["session"]["created_at"].as_i64().unwrap();
    assert_eq!(v["session"]["expires_at"], now + 30 * 60);

    // `idle`: this session's idle timeout; the cookie's Max-Age follows it.
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"idle": 120}}),
        )
        .await;
    assert_eq!(v["status"], "updated");
    assert_eq!(v["session"]["expiry"], json!({"idle": 120}));
    assert_eq!(v["session"]["expires_at"], now + 120);
    assert_eq!(max_age(&v), Some(120));
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["session"]["expiry"], json!({"idle": 120}), "kept");

    // An integer written as a float is an integer (JSON Schema's `integer`).
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"idle": 120.0}}),
        )
        .await;
    assert_eq!(v["session"]["expiry"], json!({"idle": 120}));

    // `at`: a fixed end; activity does not push it.
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"at": now + 600}}),
        )
        .await;
    assert_eq!(v["session"]["expiry"], json!({"at": now + 600}));
    assert_eq!(v["session"]["expires_at"], now + 600);
    assert_eq!(max_age(&v), Some(600));
    s.clock.advance(9 * MIN);
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["status"], "loaded");
    s.clock.advance(MIN);
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["status"], "ended");
    assert_eq!(v["session"], Value::Null);
}

#[tokio::test]
async fn an_end_in_the_past_ends_the_session_and_null_restores_the_defaults() {
    let s = TestServer::memory().await;
    let (cookie, v) = stored(&s).await;
    let now = v["session"]["created_at"].as_i64().unwrap();
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": "browser"}),
        )
        .await;
    assert_eq!(v["session"]["expiry"], "browser");
    assert_eq!(max_age(&v), None);
    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": null}),
        )
        .await;
    assert_eq!(v["session"]["expiry"], Value::Null);
    assert_eq!(v["session"]["expires_at"], now + 30 * 60);

    let v = s
        .ok(
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"at": now - 1}, "set": {"k": 2}}),
        )
        .await;
    assert_eq!(v["status"], "ended");
    assert_eq!(v["session"], Value::Null);
    assert!(v["set_cookie"][0].as_str().unwrap().contains("Max-Age=0"));
    let (st, body) = s
        .post(
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"k": 3}}),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn rotation_gives_a_new_handle_and_retires_the_old() {
    let s = TestServer::memory().await;
    let (cookie, v) = stored(&s).await;
    let old_ref = v["session"]["ref"].clone();
    let v = s.ok("/v1/session/rotate", json!({"cookie": cookie})).await;
    assert_eq!(v["status"], "rotated");
    let new = cookie_of(&v);
    assert_ne!(new, cookie);
    assert_ne!(v["session"]["ref"], old_ref);
    assert_eq!(v["session"]["data"], json!({"k": 1}));
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["status"], "ended");
    let v = s.ok("/v1/session/resolve", json!({"cookie": new})).await;
    assert_eq!(v["session"]["data"], json!({"k": 1}));
    // The retired handle rotates no more.
    let (st, body) = s
        .post("/v1/session/rotate", json!({"cookie": cookie}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], "urn:tessera:problem:session-not-found");
}

#[tokio::test]
async fn rotating_a_users_session_issues_a_token_for_the_new_sid() {
    let s = TestServer::memory_with(token_settings(false)).await;
    let (cookie, v) = s.login("", "alice").await;
    let old_sid = v["session"]["sid"].clone();
    let v = s.ok("/v1/session/rotate", json!({"cookie": cookie})).await;
    assert_eq!(v["session"]["user"]["id"], "alice");
    assert_ne!(v["session"]["sid"], old_sid);
    assert_eq!(v["token_status"], "issued");
    assert_eq!(v["set_cookie"].as_array().unwrap().len(), 2, "{v}");
    let (_, list) = s.get("/v1/users/alice/sessions").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(list["sessions"][0]["ref"], v["session"]["ref"]);
}

#[tokio::test]
async fn must_create_and_a_pure_read() {
    let s = TestServer::memory().await;
    // Client-side mode, but `storage: "store"`: one write, a stored session.
    let writes = s.writes().await;
    let v = s
        .ok(
            "/v1/session/resolve",
            json!({"create": true, "storage": "store"}),
        )
        .await;
    assert_eq!(v["status"], "created");
    assert_eq!(v["session"]["storage"], "store");
    assert_eq!(s.writes().await, writes + 1);
    let v = s.ok("/v1/session/resolve", json!({"create": true})).await;
    assert_eq!(v["session"]["storage"], "cookie");
    // The update form, without data.
    let v = s
        .ok("/v1/session/update", json!({"storage": "store"}))
        .await;
    assert_eq!(v["session"]["storage"], "store");

    // `renew: false` reads and writes nothing, even when a renewal is due.
    let (cookie, _) = stored(&s).await;
    s.clock.advance(20 * MIN);
    let writes = s.writes().await;
    let v = s
        .ok(
            "/v1/session/resolve",
            json!({"cookie": cookie, "renew": false}),
        )
        .await;
    assert_eq!(v["status"], "loaded");
    assert_eq!(v["set_cookie"], json!([]));
    assert_eq!(s.writes().await, writes);
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["status"], "renewed");
}

#[tokio::test]
async fn bad_expiries_storages_and_rotations_get_problems_and_change_nothing() {
    let s = TestServer::memory().await;
    let (cookie, _) = stored(&s).await;
    let before = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    let writes = s.writes().await;
    let bad: Vec<(&str, Value)> = vec![
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"idle": 0}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"idle": -5}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"idle": 2_147_483_648_u64}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"at": -1}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"at": 253_402_300_800_i64}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"at": 1.5}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {"at": 1, "idle": 1}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": {}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": "forever"}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "expiry": 60}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "storage": "cookie"}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "storage": null}),
        ),
        (
            "/v1/session/resolve",
            json!({"cookie": cookie, "storage": "disk"}),
        ),
        (
            "/v1/session/resolve",
            json!({"cookie": cookie, "renew": "no"}),
        ),
        (
            "/v1/session/rotate",
            json!({"cookie": cookie, "create": true}),
        ),
        ("/v1/session/rotate", json!({"cookie": 5})),
    ];
    for (path, body) in bad {
        let (st, problem) = s.post(path, body.clone()).await;
        assert_eq!(
            st,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {problem}"
        );
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:tessera:problem:"),
            "{problem}"
        );
    }
    // A malformed cookie: 400, cleared.
    let (st, problem) = s
        .post(
            "/v1/session/rotate",
            json!({"cookie": "__Host-tessera=zzz"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{problem}");
    // No cookie: nothing to rotate, nothing created.
    let (st, _) = s.post("/v1/session/rotate", json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(s.writes().await, writes, "no write");
    let after = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(after["session"], before["session"]);
}
