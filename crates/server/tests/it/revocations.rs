//! The revocation feed: what ends an authenticated session is listed by `sid`, "log out
//! everywhere" by user; the cursor, the ETag and the lifetime bound work.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;

async fn feed(s: &TestServer, after: u64) -> (Value, String) {
    let r = s
        .client
        .get(format!("{}/v1/revocations?after={after}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=5");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    (r.json().await.unwrap(), etag)
}

#[tokio::test]
async fn ended_sessions_and_users_reach_the_feed() {
    let s = TestServer::memory().await;
    let (empty, _) = feed(&s, 0).await;
    assert_eq!(empty, json!({"revocations": [], "next": 0}));

    // An anonymous session's end is not listed: it has no tokens.
    let v = s
        .ok("/v1/session/update", json!({"cookie": "", "set": {"a": 1}}))
        .await;
    let anon = crate::common::cookie_of(&v);
    let (a, va) = s.login(&anon, "alice").await;
    let (b, vb) = s.login("", "alice").await;
    let sid_a = va["session"]["sid"].as_str().unwrap().to_owned();
    let sid_b = vb["session"]["sid"].as_str().unwrap().to_owned();
    assert_eq!(sid_a.len(), 22);
    assert_ne!(sid_a, sid_b);
    let (none, _) = feed(&s, 0).await;
    assert_eq!(
        none["revocations"],
        json!([]),
        "an anonymous login retires nothing listed"
    );

    s.ok("/v1/session/logout", json!({"cookie": a})).await;
    let (f, etag) = feed(&s, 0).await;
    let entries = f["revocations"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{f}");
    assert_eq!(entries[0]["kind"], "session");
    assert_eq!(entries[0]["id"], sid_a);
    let first = f["next"].as_u64().unwrap();

    // Unchanged: 304 for the same ETag.
    let r = s
        .client
        .get(format!("{}/v1/revocations?after=0", s.base))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // Log out everywhere: a user entry; the cursor returns only what is new.
    let (st, _) = s.delete("/v1/users/alice/sessions").await;
    assert_eq!(st, StatusCode::OK);
    let (f, etag2) = feed(&s, first).await;
    assert_ne!(etag, etag2);
    let kinds: Vec<(&str, &str)> = f["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["id"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("user", "alice")), "{f}");
    assert!(
        kinds.iter().all(|(_, id)| *id != sid_a),
        "already seen: {f}"
    );
    let _ = b;

    // A revoked single session is listed by its sid too.
    let (c, vc) = s.login("", "carol").await;
    let r = vc["session"]["ref"].as_str().unwrap();
    let (st, _) = s.delete(&format!("/v1/users/carol/sessions/{r}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (f, _) = feed(&s, 0).await;
    let sid_c = vc["session"]["sid"].as_str().unwrap();
    assert!(
        f["revocations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == sid_c),
        "{f}"
    );
    let _ = c;

    // Entries older than the longest token lifetime (4 h 5 min) leave the feed.
    s.clock.advance(Duration::from_secs(4 * 3600 + 301));
    let (old, _) = feed(&s, 0).await;
    assert_eq!(old["revocations"], json!([]), "{old}");
}

#[tokio::test]
async fn the_feed_is_public_and_checks_its_query() {
    let s = TestServer::memory().await;
    let r = s
        .client
        .get(format!("{}/v1/revocations", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "no API key needed");
    let r = s
        .client
        .get(format!("{}/v1/revocations?after=-1", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = s
        .client
        .get(format!("{}/v1/revocations?bogus=1", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "urn:tessera:problem:invalid-query");
}

#[tokio::test]
async fn a_limit_outside_its_range_is_refused_not_clamped() {
    let s = TestServer::memory().await;
    for bad in ["0", "10001", "18446744073709551616"] {
        let (status, v) = s.get(&format!("/v1/revocations?limit={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}: {v}");
        assert_eq!(v["type"], "urn:tessera:problem:invalid-query", "{v}");
    }
    for good in ["1", "10000"] {
        let (status, v) = s.get(&format!("/v1/revocations?limit={good}")).await;
        assert_eq!(status, StatusCode::OK, "limit={good}: {v}");
    }
}
