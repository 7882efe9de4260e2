//! Bad input gets a 4xx problem body: no panic, no state change, never a session.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{KEY, TestServer};

/// What must not change: every write counter, and the known session's content.
async fn snapshot(s: &TestServer, cookie: &str) -> (u64, Value, Value) {
    let writes = s.writes().await;
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    let (_, list) = s.get("/v1/users/alice/sessions").await;
    (writes, v["session"].clone(), list)
}

fn assert_problem(status: StatusCode, body: &Value, what: &str) {
    assert!(status.is_client_error(), "{what}: {status} {body:.300}");
    let t = body["type"].as_str().unwrap_or_default();
    assert!(t.starts_with("urn:tessera:problem:"), "{what}: {body:.300}");
    assert_eq!(body["status"], status.as_u16(), "{what}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn malformed_cookies_and_unknown_handles_change_nothing() {
    let s = TestServer::memory().await;
    let (cookie, _) = s.login("", "alice").await;
    let good = cookie.split_once('=').unwrap().1.to_owned();
    let before = snapshot(&s, &cookie).await;

    let never_issued = format!("u{}", "A".repeat(43));
    let malformed = [
        format!("__Host-tessera={}", &good[..good.len() - 1]),
        format!("__Host-tessera={good}x"),
        format!("__Host-tessera=x{}", &good[1..]),
        format!("__Host-tessera={}=", &good[..good.len() - 1]),
        "__Host-tessera=%00%00".to_owned(),
        "__Host-tessera=\u{00e9}\u{00e9}".to_owned(),
        format!("__Host-tessera={good}; __Host-tessera=u{}", "B".repeat(43)),
        format!("__Host-tessera={}", "a".repeat(5000)),
        format!("x={}", "y".repeat(9000)),
    ];
    for c in &malformed {
        for path in [
            "/v1/session/resolve",
            "/v1/session/update",
            "/v1/session/login",
            "/v1/session/csrf/check",
        ] {
            let body = json!({"cookie": c, "set": {"x": 1}, "user": {"id": "alice"}, "token": "t"});
            let body = match path {
                "/v1/session/resolve" => json!({"cookie": c, "create": true}),
                "/v1/session/update" => json!({"cookie": c, "set": {"x": 1}}),
                "/v1/session/login" => json!({"cookie": c, "user": {"id": "alice"}}),
                _ => json!({"cookie": c, "token": body["token"]}),
            };
            let (st, v) = s.post(path, body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{path} {c:.60}: {v}");
            assert_problem(st, &v, path);
            assert_eq!(v["type"], "urn:tessera:problem:malformed-cookie");
            assert!(v["set_cookie"][0].as_str().unwrap().contains("Max-Age=0"));
            assert!(
                !v.to_string().contains(&good),
                "the problem echoes the handle"
            );
        }
    }
    // A never-issued handle is never adopted: update refuses it, resolve clears it.
    let c = format!("__Host-tessera={never_issued}");
    let (st, v) = s
        .post("/v1/session/update", json!({"cookie": c, "set": {"x": 1}}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_problem(st, &v, "never issued");
    assert_eq!(v["type"], "urn:tessera:problem:session-not-found");
    let v = s.ok("/v1/session/resolve", json!({"cookie": c})).await;
    assert_eq!(v["session"], Value::Null);
    let v = s.ok("/v1/session/logout", json!({"cookie": c})).await;
    assert_eq!(v["status"], "logged_out");

    assert_eq!(snapshot(&s, &cookie).await, before);
}

#[tokio::test]
async fn bad_bodies_get_problems_and_change_nothing() {
    let s = TestServer::memory().await;
    let (cookie, _) = s.login("", "alice").await;
    let before = snapshot(&s, &cookie).await;
    let url = |p: &str| format!("{}{p}", s.base);

    let raw: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        (
            "/v1/session/update",
            b"{\"cookie\":".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/session/update",
            b"not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/session/update", b"".to_vec(), StatusCode::BAD_REQUEST),
        (
            "/v1/session/update",
            b"[]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/session/update",
            vec![0xff, 0xfe, b'{'],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/session/login",
            format!("{{\"cookie\":\"{cookie}\",\"user\":{{}}}}").into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/session/update",
            format!("{{\"cookie\":\"{cookie}\",\"set\":\"{cookie}\"}}").into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/session/update",
            format!("{{\"cookie\":\"{cookie}\",\"unknown\":1}}").into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/session/update",
            format!(
                "{{\"cookie\":\"{cookie}\",\"set\":{{\"a\":{}1{}}}}}",
                "[".repeat(200),
                "]".repeat(200)
            )
            .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/session/update",
            format!(
                "{{\"cookie\":\"{cookie}\",\"set\":{{\"big\":\"{}\"}}}}",
                "x".repeat(100_000)
            )
            .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (path, body, want) in raw {
        let r = s
            .client
            .post(url(path))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let st = r.status();
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{path} {:.80}",
            String::from_utf8_lossy(&body)
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            st,
            want,
            "{path} {:.80}: {v}",
            String::from_utf8_lossy(&body)
        );
        assert_problem(st, &v, path);
        assert!(
            !v.to_string().contains(cookie.split_once('=').unwrap().1),
            "echoed the handle: {v}"
        );
    }

    // Valid JSON, invalid values.
    let deep = (0..40).fold(json!(1), |v, _| json!([v]));
    let json_cases = vec![
        (
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"": 1}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"a\u{0007}": 1}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"k": deep}}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"a": 1}, "remove": ["a"]}),
        ),
        (
            "/v1/session/update",
            json!({"cookie": cookie, "remove": (0..300).map(|i| i.to_string()).collect::<Vec<_>>()}),
        ),
        (
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": ""}}),
        ),
        (
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "a\nb"}}),
        ),
        (
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "x".repeat(300)}}),
        ),
        (
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "z"}, "claims": {"exp": 1}}),
        ),
        (
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "z"}, "claims": {"big": "x".repeat(2000)}}),
        ),
        (
            "/v1/session/resolve",
            json!({"cookie": cookie, "csrf_purpose": "p".repeat(200)}),
        ),
        ("/v1/session/csrf/check", json!({"cookie": cookie})),
    ];
    for (path, body) in json_cases {
        let (st, v) = s.post(path, body.clone()).await;
        assert_problem(st, &v, &format!("{path} {body:.80}"));
    }

    // Wrong methods, types and paths.
    let r = s
        .client
        .get(url("/v1/session/resolve"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = s
        .client
        .post(url("/v1/session/resolve"))
        .bearer_auth(KEY)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (st, v) = s.delete("/v1/users/alice/sessions/not-a-ref").await;
    assert_problem(st, &v, "bad ref");
    let (st, v) = s.get("/v1/users/a%0Ab/sessions").await;
    assert_problem(st, &v, "bad user id");
    let (st, v) = s.get("/v1/nothing").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_problem(st, &v, "no route");

    // Oversized headers.
    let r = s
        .client
        .post(url("/v1/session/resolve"))
        .bearer_auth(KEY)
        .header("x-filler", "f".repeat(20_000))
        .json(&json!({"cookie": cookie}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    assert_eq!(snapshot(&s, &cookie).await, before);
}

#[tokio::test]
async fn the_management_api_needs_the_key() {
    let s = TestServer::memory().await;
    let url = |p: &str| format!("{}{p}", s.base);
    for (auth, ok) in [
        (None, false),
        (
            Some("Bearer wrong-key-wrong-key-wrong-key-wrong".to_owned()),
            false,
        ),
        (Some(format!("Basic {KEY}")), false),
        (Some(format!("Bearer {KEY}x")), false),
        (Some(format!("Bearer {KEY}")), true),
    ] {
        let mut req = s
            .client
            .post(url("/v1/session/resolve"))
            .json(&json!({"cookie": ""}));
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        if ok {
            assert_eq!(r.status(), StatusCode::OK);
        } else {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            let v: Value = r.json().await.unwrap();
            assert_problem(StatusCode::UNAUTHORIZED, &v, "auth");
        }
    }
    let r = s
        .client
        .delete(url("/v1/users/alice/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Public endpoints.
    for p in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let r = s.client.get(url(p)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p}");
    }
}

#[tokio::test]
async fn data_over_the_session_limit_is_refused_whole() {
    let s = TestServer::memory().await;
    let (cookie, _) = s.login("", "alice").await;
    s.ok(
        "/v1/session/update",
        json!({"cookie": cookie, "set": {"a": "x".repeat(40_000)}}),
    )
    .await;
    let before = snapshot(&s, &cookie).await;
    let (st, v) = s
        .post(
            "/v1/session/update",
            json!({"cookie": cookie, "set": {"b": "y".repeat(30_000), "c": 1}}),
        )
        .await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["type"], "urn:tessera:problem:data-too-large");
    assert_eq!(snapshot(&s, &cookie).await, before, "no partial edit");
}
