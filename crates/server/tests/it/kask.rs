//! The Kask-compatible API, request by request as MediaWiki's RESTBagOStuff sends them.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{KEY, TestServer};

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

async fn send(
    s: &TestServer,
    method: Method,
    path: &str,
    body: Option<&[u8]>,
    auth: bool,
) -> Answer {
    let mut req = s.client.request(method, format!("{}{path}", s.base));
    if auth {
        req = req.bearer_auth(KEY);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/octet-stream")
            .body(b.to_vec());
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: r.bytes().await.unwrap().to_vec(),
    }
}

fn assert_kask_problem(a: &Answer, kind: &str) {
    assert_eq!(a.content_type, "application/json");
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(
        v["type"],
        format!("https://www.mediawiki.org/wiki/Kask/errors/{kind}"),
        "{v}"
    );
    for f in ["title", "detail", "instance"] {
        assert!(v[f].is_string(), "{f} missing in {v}");
    }
}

/// A session blob framed as RESTBagOStuff frames it: `<type>.<base64 hmac>.<serialized>`.
const BLOB: &[u8] =
    b"PHP.dGVzdA==.a:2:{s:4:\"data\";a:1:{s:5:\"wsUserID\";i:7;}s:8:\"metadata\";a:0:{}}";

#[tokio::test]
async fn the_kask_contract() {
    let s = TestServer::memory().await;
    // rawurlencode("mywiki:MWSession:abc") as RESTBagOStuff builds the URL.
    let path = "/sessions/v1/mywiki%3AMWSession%3Aabc";

    let a = send(&s, Method::GET, path, None, true).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_kask_problem(&a, "not_found");

    let a = send(&s, Method::POST, path, Some(BLOB), true).await;
    assert_eq!(a.status, StatusCode::CREATED);

    let a = send(&s, Method::GET, path, None, true).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type, "application/octet-stream");
    assert_eq!(a.body, BLOB);
    // The same key unencoded is the same key.
    let a = send(
        &s,
        Method::GET,
        "/sessions/v1/mywiki:MWSession:abc",
        None,
        true,
    )
    .await;
    assert_eq!(a.body, BLOB);

    // Overwrite, binary-safe.
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    assert_eq!(
        send(&s, Method::POST, path, Some(&binary), true)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(send(&s, Method::GET, path, None, true).await.body, binary);

    // Delete is 204 and idempotent.
    assert_eq!(
        send(&s, Method::DELETE, path, None, true).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&s, Method::DELETE, path, None, true).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&s, Method::GET, path, None, true).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn what_kask_refuses_changes_nothing() {
    let s = TestServer::memory().await;
    let path = "/sessions/v1/k";
    assert_eq!(
        send(&s, Method::POST, path, Some(b"v"), true).await.status,
        StatusCode::CREATED
    );

    // (method, path, body, status, problem kind; "" for a HEAD, whose body is dropped)
    type Case<'a> = (Method, &'a str, Option<&'a [u8]>, StatusCode, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            Method::POST,
            path,
            Some(b""),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::PUT,
            path,
            Some(b"x"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::PATCH,
            path,
            Some(b"x"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (Method::HEAD, path, None, StatusCode::BAD_REQUEST, ""),
        (
            Method::GET,
            "/sessions/v1/k?x=1",
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            "/sessions/v1/k?",
            Some(b"x"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::DELETE,
            "/sessions/v1/k?all",
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::GET,
            "/sessions/v1/",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/sessions/v1/",
            Some(b"x"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/sessions/v1",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/sessions/v1/k/extra",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/sessions/v1/k/extra",
            Some(b"x"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/sessions/v1/k%2Fextra",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/sessions/v1/k%zz",
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (method, p, body, want, kind) in cases {
        let a = send(&s, method.clone(), p, body, true).await;
        assert_eq!(a.status, want, "{method} {p}");
        if !kind.is_empty() {
            assert_kask_problem(&a, kind);
        }
    }
    let long = format!("/sessions/v1/{}", "k".repeat(2000));
    assert_eq!(
        send(&s, Method::GET, &long, None, true).await.status,
        StatusCode::BAD_REQUEST
    );
    // Nothing above touched the stored value.
    assert_eq!(send(&s, Method::GET, path, None, true).await.body, b"v");
}

#[tokio::test]
async fn one_server_side_ttl() {
    let s = TestServer::memory().await;
    let path = "/sessions/v1/ttl";
    send(&s, Method::POST, path, Some(b"v"), true).await;
    s.clock.advance(Duration::from_secs(86_399));
    assert_eq!(
        send(&s, Method::GET, path, None, true).await.status,
        StatusCode::OK
    );
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(
        send(&s, Method::GET, path, None, true).await.status,
        StatusCode::NOT_FOUND
    );
    // A write restarts the TTL.
    send(&s, Method::POST, path, Some(b"w"), true).await;
    s.clock.advance(Duration::from_secs(86_000));
    assert_eq!(send(&s, Method::GET, path, None, true).await.body, b"w");
}

#[tokio::test]
async fn the_api_key_is_required_and_values_are_bounded() {
    let s = TestServer::memory().await;
    let path = "/sessions/v1/secret";
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let a = send(&s, method.clone(), path, Some(b"v"), false).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method}");
        assert_kask_problem(&a, "not_authorized");
    }
    assert_eq!(
        send(&s, Method::GET, path, None, true).await.status,
        StatusCode::NOT_FOUND
    );
    let big = vec![b'x'; 256 * 1024 + 1];
    let a = send(&s, Method::POST, path, Some(&big), true).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        send(&s, Method::GET, path, None, true).await.status,
        StatusCode::NOT_FOUND
    );
    let fits = vec![b'x'; 256 * 1024];
    assert_eq!(
        send(&s, Method::POST, path, Some(&fits), true).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_survive_a_restart_on_redb() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    let s = TestServer::redb(&db).await;
    send(&s, Method::POST, "/sessions/v1/w%3Ax", Some(BLOB), true).await;
    s.stop().await;
    let s = TestServer::redb(&db).await;
    assert_eq!(
        send(&s, Method::GET, "/sessions/v1/w%3Ax", None, true)
            .await
            .body,
        BLOB
    );
}
