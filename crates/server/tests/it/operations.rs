//! Health, readiness, metrics names, and the OpenAPI document.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn metrics_use_the_fixed_names_and_count_writes_by_reason() {
    let s = TestServer::memory_server_anonymous().await;
    let v = s
        .ok("/v1/session/update", json!({"cookie": "", "set": {"a": 1}}))
        .await;
    let anon = crate::common::cookie_of(&v);
    s.login(&anon, "alice").await;
    let m = s.metrics().await;
    for line in [
        "tessera_store_operations_total{backend=\"memory\",kind=\"anonymous\",op=\"write\",outcome=\"ok\"}",
        "tessera_store_operations_total{backend=\"memory\",kind=\"anonymous\",op=\"delete\",outcome=\"ok\"}",
        "tessera_store_operations_total{backend=\"memory\",kind=\"authenticated\",op=\"write\",outcome=\"ok\"}",
        "tessera_session_writes_total{kind=\"anonymous\",reason=\"create\"} 1",
        "tessera_session_writes_total{kind=\"authenticated\",reason=\"login\"} 1",
        "tessera_session_operations_total{op=\"login\",outcome=\"logged_in\"} 1",
        "tessera_http_requests_total{method=\"POST\",route=\"/v1/session/login\",status=\"200\"} 1",
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    assert!(!m.contains(anon.split_once('=').unwrap().1));
}

#[tokio::test]
async fn openapi_lists_every_endpoint_with_the_fixed_names() {
    let s = TestServer::memory().await;
    let (_, doc) = s.get("/openapi.json").await;
    if let Ok(path) = std::env::var("TESSERA_DUMP_OPENAPI") {
        std::fs::write(path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/session/resolve",
        "/v1/session/update",
        "/v1/session/login",
        "/v1/session/logout",
        "/v1/session/rotate",
        "/v1/session/csrf/check",
        "/v1/users/{id}/sessions",
        "/v1/users/{id}/sessions/{ref}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/sessions/v1/{key}",
        "/v1/revocations",
        "/v1/tokens",
        "/v1/verify",
        "/.well-known/jwks.json",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("ResolveRequest", "cookie"),
        ("UpdateRequest", "set"),
        ("UpdateRequest", "remove"),
        ("UpdateRequest", "secrets"),
        ("UpdateRequest", "remove_secrets"),
        ("ResolveRequest", "secrets"),
        ("ResolveRequest", "storage"),
        ("ResolveRequest", "renew"),
        ("UpdateRequest", "expiry"),
        ("UpdateRequest", "storage"),
        ("RotateRequest", "cookie"),
        ("SessionView", "expires_at"),
        ("SessionView", "expiry"),
        ("SessionView", "storage"),
        ("SessionView", "secrets"),
        ("LoginRequest", "user"),
        ("LoginRequest", "claims"),
        ("LoginRequest", "remember"),
        ("CsrfCheckRequest", "token"),
        ("SessionResponse", "set_cookie"),
        ("SessionResponse", "session"),
        ("SessionResponse", "csrf_token"),
        ("SessionResponse", "token_status"),
        ("CsrfCheckResponse", "valid"),
        ("MintRequest", "sub"),
        ("MintRequest", "claims"),
        ("MintResponse", "token"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "{schema}.{field} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
}

#[tokio::test]
async fn health_and_readiness() {
    let s = TestServer::memory().await;
    let r = s
        .client
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "ok\n");
    let r = s
        .client
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// With `[store.anonymous]`, the kind in the handle sends every operation to one backend, and
/// the store metrics say which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_and_authenticated_sessions_in_different_backends() {
    use std::sync::Arc;
    use tessera::Stores;

    let dir = tempfile::tempdir().unwrap();
    let auth = Arc::new(tessera_store_redb::RedbStore::open(dir.path().join("a.redb")).unwrap());
    let anon = Arc::new(tessera_store_memory::MemoryStore::new());
    let s =
        TestServer::start_with(Stores::split(auth, anon), crate::common::server_anonymous()).await;
    let v = s
        .ok("/v1/session/update", json!({"cookie": "", "set": {"a": 1}}))
        .await;
    let anon_cookie = crate::common::cookie_of(&v);
    s.ok("/v1/session/resolve", json!({"cookie": anon_cookie}))
        .await;
    let (user_cookie, _) = s.login(&anon_cookie, "alice").await;
    s.ok("/v1/session/resolve", json!({"cookie": user_cookie}))
        .await;

    let m = s.metrics().await;
    let count = |labels: &str| -> u64 {
        let prefix = format!("tessera_store_operations_total{{{labels}}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(0)
    };
    // Anonymous: create and read in memory only; the login retires it there.
    assert_eq!(
        count("backend=\"memory\",kind=\"anonymous\",op=\"write\",outcome=\"ok\""),
        2
    );
    assert!(count("backend=\"memory\",kind=\"anonymous\",op=\"read\",outcome=\"ok\"") >= 2);
    assert_eq!(
        count("backend=\"memory\",kind=\"anonymous\",op=\"delete\",outcome=\"ok\""),
        1
    );
    // Authenticated: in redb only.
    assert_eq!(
        count("backend=\"redb\",kind=\"authenticated\",op=\"write\",outcome=\"ok\""),
        1
    );
    assert_eq!(
        count("backend=\"redb\",kind=\"authenticated\",op=\"read\",outcome=\"ok\""),
        1
    );
    assert!(!m.contains("backend=\"redb\",kind=\"anonymous\""), "{m}");
    assert!(
        !m.contains("backend=\"memory\",kind=\"authenticated\""),
        "{m}"
    );
}
