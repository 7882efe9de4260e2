//! The keyed store on `/v1/kv` (express-session's `Store`): values with their TTL, touch,
//! count and clear, over HTTP; and every bad request refused with its problem and no change.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{KEY, START, TestServer, TestSettings};
use tessera_server::Settings;

async fn send(
    s: &TestServer,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = s
        .client
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn count(s: &TestServer, ns: &str) -> u64 {
    let (st, v) = send(s, Method::GET, &format!("/v1/kv/{ns}"), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["count"].as_u64().unwrap()
}

fn problem(v: &Value, code: &str) {
    assert_eq!(v["type"], format!("urn:tessera:problem:{code}"), "{v}");
}

#[tokio::test]
async fn values_round_trip_with_their_ttl_touch_count_and_clear() {
    let s = TestServer::memory().await;
    let session = json!({"cookie": {"originalMaxAge": 3_600_000, "expires": "2026-06-01T01:00:00.000Z"}, "user": "ünï", "n": [1, 2.5, null]});
    let (st, _) = send(
        &s,
        Method::PUT,
        "/v1/kv/sess/abc",
        Some(json!({"value": session, "ttl": 3600})),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = send(&s, Method::GET, "/v1/kv/sess/abc", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v,
        json!({"value": session, "expires_at": START.unix_secs() + 3600, "ttl": 3600})
    );
    assert_eq!(count(&s, "sess").await, 1);

    // Replacing is not a new value; other namespaces are apart.
    send(
        &s,
        Method::PUT,
        "/v1/kv/sess/abc",
        Some(json!({"value": null, "ttl": 60})),
    )
    .await;
    assert_eq!(count(&s, "sess").await, 1);
    assert_eq!(count(&s, "other").await, 0);
    let (_, v) = send(&s, Method::GET, "/v1/kv/sess/abc", None).await;
    assert_eq!(v["value"], Value::Null);
    assert_eq!(v["ttl"], 60);

    // Touch moves the expiry and keeps the value.
    s.clock.advance(Duration::from_secs(30));
    let (st, _) = send(
        &s,
        Method::PATCH,
        "/v1/kv/sess/abc",
        Some(json!({"ttl": 600})),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = send(&s, Method::GET, "/v1/kv/sess/abc", None).await;
    assert_eq!(
        v,
        json!({"value": null, "expires_at": START.unix_secs() + 630, "ttl": 600})
    );

    // Keys are the application's: any UTF-8, percent-encoded, a slash included.
    for key in ["a%2Fb", "%C3%BC-%F0%9F%94%91", "a%20b"] {
        let path = format!("/v1/kv/sess/{key}");
        let (st, v) = send(
            &s,
            Method::PUT,
            &path,
            Some(json!({"value": key, "ttl": 60})),
        )
        .await;
        assert_eq!(st, StatusCode::NO_CONTENT, "{key}: {v}");
        assert_eq!(send(&s, Method::GET, &path, None).await.1["value"], key);
    }
    assert_eq!(count(&s, "sess").await, 4);

    // Delete is idempotent and counted once.
    for _ in 0..2 {
        let (st, _) = send(&s, Method::DELETE, "/v1/kv/sess/a%2Fb", None).await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    assert_eq!(count(&s, "sess").await, 3);
    let (st, v) = send(&s, Method::GET, "/v1/kv/sess/a%2Fb", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    problem(&v, "kv-not-found");

    // Clear empties the namespace at once; it takes new values right away.
    send(
        &s,
        Method::PUT,
        "/v1/kv/keep/abc",
        Some(json!({"value": 1, "ttl": 60})),
    )
    .await;
    let (st, _) = send(&s, Method::DELETE, "/v1/kv/sess", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(count(&s, "sess").await, 0);
    let (st, _) = send(&s, Method::GET, "/v1/kv/sess/abc", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = send(
        &s,
        Method::PATCH,
        "/v1/kv/sess/abc",
        Some(json!({"ttl": 60})),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(count(&s, "keep").await, 1);
    send(
        &s,
        Method::PUT,
        "/v1/kv/sess/abc",
        Some(json!({"value": 2, "ttl": 60})),
    )
    .await;
    assert_eq!(count(&s, "sess").await, 1);
    s.stop().await;
}

#[tokio::test]
async fn values_expire_by_the_clock_and_ttls_are_cut_to_the_maximum() {
    let mut settings = Settings::default_for_tests();
    settings.kv.max_ttl = Duration::from_secs(3600);
    let s = TestServer::memory_with(settings).await;
    send(
        &s,
        Method::PUT,
        "/v1/kv/sess/k",
        Some(json!({"value": "v", "ttl": 10})),
    )
    .await;
    s.clock.advance(Duration::from_millis(9_500));
    let (_, v) = send(&s, Method::GET, "/v1/kv/sess/k", None).await;
    // Half a second left: rounded up.
    assert_eq!(v["ttl"], 1, "{v}");
    s.clock.advance(Duration::from_millis(500));
    let (st, v) = send(&s, Method::GET, "/v1/kv/sess/k", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    // An expired value cannot be touched back to life.
    let (st, _) = send(&s, Method::PATCH, "/v1/kv/sess/k", Some(json!({"ttl": 10}))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    send(
        &s,
        Method::PUT,
        "/v1/kv/sess/k",
        Some(json!({"value": "v", "ttl": u32::MAX})),
    )
    .await;
    let (_, v) = send(&s, Method::GET, "/v1/kv/sess/k", None).await;
    assert_eq!(v["ttl"], 3600, "{v}");
    // A whole number written with a fraction is a whole number (JSON Schema's integer).
    let (st, _) = send(
        &s,
        Method::PATCH,
        "/v1/kv/sess/k",
        Some(json!({"ttl": 99_999.0})),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = send(&s, Method::GET, "/v1/kv/sess/k", None).await;
    assert_eq!(v["ttl"], 3600, "{v}");
    s.stop().await;
}

#[tokio::test]
async fn the_keyed_store_and_kask_do_not_share_keys() {
    let s = TestServer::memory().await;
    send(
        &s,
        Method::PUT,
        "/v1/kv/sess/k",
        Some(json!({"value": "v", "ttl": 60})),
    )
    .await;
    let r = s
        .client
        .get(format!("{}/sessions/v1/k", s.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s
        .client
        .post(format!("{}/sessions/v1/other", s.base))
        .bearer_auth(KEY)
        .body("kask")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (st, _) = send(&s, Method::GET, "/v1/kv/sess/other", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    s.stop().await;
}

/// One bad request: what is sent and the problem it gets.
struct Bad {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    auth: bool,
    status: StatusCode,
    code: &'static str,
}

fn bad(method: Method, path: &str, body: Value, status: StatusCode, code: &'static str) -> Bad {
    Bad {
        method,
        path: path.to_owned(),
        content_type: Some("application/json"),
        body: serde_json::to_vec(&body).unwrap(),
        auth: true,
        status,
        code,
    }
}

#[tokio::test]
async fn bad_requests_get_their_problem_and_change_nothing() {
    let mut settings = Settings::default_for_tests();
    settings.kv.max_value_bytes = 1024;
    let s = TestServer::memory_with(settings).await;
    let stored = json!({"value": {"kept": true}, "ttl": 3600});
    send(&s, Method::PUT, "/v1/kv/sess/k", Some(stored)).await;
    let put = Method::PUT;
    let patch = Method::PATCH;
    let long_key = "k".repeat(1025);
    let long_ns = "n".repeat(65);
    let mut cases = vec![
        // Namespaces and keys out of bounds.
        bad(
            put.clone(),
            "/v1/kv/.hidden/k",
            json!({"value": 1, "ttl": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/a%2Fb/k",
            json!({"value": 1, "ttl": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            &format!("/v1/kv/{long_ns}/k"),
            json!({"value": 1, "ttl": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            &format!("/v1/kv/sess/{long_key}"),
            json!({"value": 1, "ttl": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/%FF",
            json!({"value": 1, "ttl": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            Method::GET,
            "/v1/kv/s%20s",
            json!(null),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            Method::DELETE,
            "/v1/kv/s%20s",
            json!(null),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            Method::DELETE,
            "/v1/kv/sess/%FF",
            json!(null),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        // Bodies of the wrong shape.
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": 1, "ttl": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": 1, "ttl": -1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": 1, "ttl": 4_294_967_296_u64}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": 1, "ttl": 1.5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"ttl": 60}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": 1, "ttl": 60, "expires_at": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!([1, 60]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            patch.clone(),
            "/v1/kv/sess/k",
            json!({"ttl": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        bad(
            patch.clone(),
            "/v1/kv/sess/k",
            json!({"ttl": 60, "value": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
        ),
        // Too large: the value, or the body.
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": "x".repeat(1023), "ttl": 60}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "value-too-large",
        ),
        bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": "x".repeat(70_000), "ttl": 60}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
        ),
        // No such value.
        bad(
            patch.clone(),
            "/v1/kv/sess/absent",
            json!({"ttl": 60}),
            StatusCode::NOT_FOUND,
            "kv-not-found",
        ),
        bad(
            Method::GET,
            "/v1/kv/sess/absent",
            json!(null),
            StatusCode::NOT_FOUND,
            "kv-not-found",
        ),
        // Other methods.
        bad(
            Method::POST,
            "/v1/kv/sess/k",
            json!({"value": 1, "ttl": 1}),
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
        bad(
            Method::PUT,
            "/v1/kv/sess",
            json!({"value": 1, "ttl": 1}),
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
        bad(
            Method::GET,
            "/v1/kv/sess/k/more",
            json!(null),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
    ];
    cases.push(Bad {
        body: b"{\"value\": 1, \"ttl\"".to_vec(),
        ..bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!(null),
            StatusCode::BAD_REQUEST,
            "invalid-json",
        )
    });
    cases.push(Bad {
        content_type: Some("text/plain"),
        ..bad(
            put.clone(),
            "/v1/kv/sess/k",
            json!({"value": 1, "ttl": 1}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
    });
    cases.push(Bad {
        content_type: None,
        ..bad(
            patch.clone(),
            "/v1/kv/sess/k",
            json!({"ttl": 1}),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        )
    });
    for (method, path) in [
        (Method::PUT, "/v1/kv/sess/k"),
        (Method::PATCH, "/v1/kv/sess/k"),
        (Method::DELETE, "/v1/kv/sess/k"),
        (Method::GET, "/v1/kv/sess/k"),
        (Method::GET, "/v1/kv/sess"),
        (Method::DELETE, "/v1/kv/sess"),
    ] {
        cases.push(Bad {
            auth: false,
            ..bad(
                method,
                path,
                json!({"value": 1, "ttl": 1}),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            )
        });
    }
    for c in cases {
        let mut req = s
            .client
            .request(c.method.clone(), format!("{}{}", s.base, c.path));
        if c.auth {
            req = req.bearer_auth(KEY);
        }
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        let r = req.body(c.body.clone()).send().await.unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let v: Value = r.json().await.unwrap();
        let what = format!("{} {}", c.method, &c.path[..c.path.len().min(40)]);
        assert_eq!(status, c.status, "{what}: {v}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{what}");
        problem(&v, c.code);
        // Nothing changed.
        let (_, now) = send(&s, Method::GET, "/v1/kv/sess/k", None).await;
        assert_eq!(
            now["value"],
            json!({"kept": true}),
            "{what} changed the value"
        );
        assert_eq!(now["ttl"], 3600, "{what} changed the expiry");
        assert_eq!(count(&s, "sess").await, 1, "{what} changed the count");
    }
    s.stop().await;
}
