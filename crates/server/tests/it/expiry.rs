//! Idle and absolute expiry with an injected clock, and renewal throttling.

use std::time::Duration;

use serde_json::json;

use crate::common::TestServer;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn idle_expiry_is_enforced_by_the_server() {
    let s = TestServer::memory().await;
    let (cookie, _) = s.login("", "alice").await;
    s.clock.advance(29 * MIN);
    // 29 minutes idle: still alive (and renewed, since half the idle time passed).
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["status"], "renewed");
    s.clock.advance(30 * MIN);
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["session"], serde_json::Value::Null);
    assert_eq!(v["status"], "ended");
    assert!(v["set_cookie"][0].as_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn renewal_writes_at_most_once_per_half_idle_lifetime() {
    let s = TestServer::memory().await;
    let (cookie, _) = s.login("", "alice").await;
    let renew = "tessera_session_writes_total{kind=\"authenticated\",reason=\"renew\"}";
    // Requests every minute for 14 minutes: no renewal write, no Set-Cookie.
    for _ in 0..14 {
        s.clock.advance(MIN);
        let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
        assert_eq!(v["status"], "loaded");
        assert_eq!(v["set_cookie"], json!([]));
    }
    assert_eq!(s.counter(renew).await, 0);
    // At 15 minutes (half of 30) one renewal write, with the cookie re-sent.
    s.clock.advance(MIN);
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["status"], "renewed");
    assert_eq!(v["set_cookie"].as_array().unwrap().len(), 1);
    let before = v["session"]["idle_expires_at"].as_i64().unwrap();
    for _ in 0..10 {
        s.clock.advance(MIN);
        s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    }
    assert_eq!(s.counter(renew).await, 1);
    // Activity keeps a session alive well past one idle timeout.
    for _ in 0..60 {
        s.clock.advance(MIN);
        let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
        assert_ne!(v["session"], serde_json::Value::Null);
    }
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert!(v["session"]["idle_expires_at"].as_i64().unwrap() > before);
    // 86 minutes of activity: renewals at 15, 30, 45, 60, 75 minutes.
    assert_eq!(s.counter(renew).await, 5);
}

#[tokio::test]
async fn absolute_expiry_ends_even_an_active_session() {
    let s = TestServer::memory().await;
    let (cookie, v) = s.login("", "alice").await;
    let absolute = v["session"]["absolute_expires_at"].as_i64().unwrap();
    let created = v["session"]["created_at"].as_i64().unwrap();
    assert_eq!(absolute - created, 12 * 3600);
    let mut last_alive = 0;
    for step in 1..=(12 * 6 + 2) {
        s.clock.advance(10 * MIN);
        let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
        if v["session"].is_null() {
            break;
        }
        last_alive = step;
        // Renewal never pushes the idle expiry past the absolute one.
        assert!(v["session"]["idle_expires_at"].as_i64().unwrap() <= absolute);
    }
    // Alive through 11h50m of activity, dead at 12h.
    assert_eq!(last_alive, 12 * 6 - 1);
}

#[tokio::test]
async fn remember_me_cookie_max_age_is_refreshed_on_renewal() {
    let s = TestServer::memory().await;
    let v = s
        .ok(
            "/v1/session/login",
            json!({"cookie": "", "user": {"id": "r"}, "remember": true}),
        )
        .await;
    let cookie = crate::common::cookie_of(&v);
    s.clock.advance(Duration::from_secs(4 * 86400));
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["status"], "renewed");
    let sc = v["set_cookie"][0].as_str().unwrap();
    assert!(sc.contains(&format!("Max-Age={}", 7 * 86400)), "{sc}");
    // Near the 30-day absolute limit the Max-Age shrinks to what is left: renewals at days
    // 8, 12, 16, 20, and 24, where the idle expiry is capped at day 30.
    let mut last = v;
    for _ in 0..5 {
        s.clock.advance(Duration::from_secs(4 * 86400));
        last = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
        assert_eq!(last["status"], "renewed");
    }
    let sc = last["set_cookie"][0].as_str().unwrap();
    assert!(sc.contains(&format!("Max-Age={}", 6 * 86400)), "{sc}");
    // Day 30: dead, however active.
    s.clock.advance(Duration::from_secs(6 * 86400));
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["session"], serde_json::Value::Null);
}
