//! Concurrent edits of one session: none lost, and none brings back a logged-out session.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestServer;

async fn two_hundred_updates_lose_none(s: TestServer) {
    let (cookie, _) = s.login("", "alice").await;
    let s = Arc::new(s);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let s = s.clone();
        let cookie = cookie.clone();
        set.spawn(async move {
            // Two hundred compare-and-sets on one record: each commit lets one of them win, so
            // on a slow (loaded) disk an edit may use up the engine's retries and be refused
            // with 409 `contention`, which says "retry" and changed nothing. A client does
            // retry it; what must never happen is an edit answered 200 and then missing.
            let mut refused = 0;
            loop {
                let (st, v) = s
                    .post(
                        "/v1/session/update",
                        json!({"cookie": cookie, "set": {format!("k{i}"): i}}),
                    )
                    .await;
                if st == StatusCode::CONFLICT
                    && v["type"] == "urn:tessera:problem:contention"
                    && refused < 20
                {
                    refused += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10 * refused)).await;
                    continue;
                }
                return (st, v, refused);
            }
        });
    }
    let mut refused = 0;
    while let Some(r) = set.join_next().await {
        let (st, v, n) = r.unwrap();
        assert_eq!(st, StatusCode::OK, "{v}");
        refused += n;
    }
    let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
    let data = v["session"]["data"].as_object().unwrap();
    assert_eq!(
        data.len(),
        200,
        "lost {} edits ({refused} refusals retried)",
        200 - data.len()
    );
    for i in 0..200 {
        assert_eq!(data[&format!("k{i}")], json!(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_distinct_keys_all_survive_memory() {
    two_hundred_updates_lose_none(TestServer::memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_distinct_keys_all_survive_redb() {
    let dir = tempfile::tempdir().unwrap();
    two_hundred_updates_lose_none(TestServer::redb(&dir.path().join("s.redb")).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_racing_a_logout_does_not_bring_the_session_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(TestServer::redb(&dir.path().join("s.redb")).await);
    for round in 0..20 {
        let user = format!("racer{round}");
        let (cookie, _) = s.login("", &user).await;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..10 {
            let s = s.clone();
            let cookie = cookie.clone();
            set.spawn(async move {
                let (st, _) = s
                    .post(
                        "/v1/session/update",
                        json!({"cookie": cookie, "set": {format!("k{i}"): i}}),
                    )
                    .await;
                st
            });
        }
        {
            let s = s.clone();
            let cookie = cookie.clone();
            set.spawn(async move {
                let (st, _) = s
                    .post("/v1/session/logout", json!({"cookie": cookie}))
                    .await;
                st
            });
        }
        while let Some(r) = set.join_next().await {
            let st = r.unwrap();
            // Each update either landed before the logout or was refused after it.
            assert!(st == StatusCode::OK || st == StatusCode::NOT_FOUND, "{st}");
        }
        let v = s.ok("/v1/session/resolve", json!({"cookie": cookie})).await;
        assert_eq!(
            v["session"],
            serde_json::Value::Null,
            "round {round} resurrected"
        );
        let (_, list) = s.get(&format!("/v1/users/{user}/sessions")).await;
        assert_eq!(list["sessions"], json!([]), "round {round}");
        let (st, _) = s
            .post(
                "/v1/session/update",
                json!({"cookie": cookie, "set": {"late": 1}}),
            )
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_racing_a_login_are_carried_over_or_refused_never_lost() {
    // Stored anonymous sessions: a sealed cookie has no compare-and-set to race (concurrent
    // edits of one cookie are last-write-wins, by nature; docs/anonymous.md).
    let s = Arc::new(TestServer::memory_server_anonymous().await);
    for round in 0..20 {
        let v = s
            .ok(
                "/v1/session/update",
                json!({"cookie": "", "set": {"seed": round}}),
            )
            .await;
        let anon = crate::common::cookie_of(&v);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..10 {
            let s = s.clone();
            let anon = anon.clone();
            set.spawn(async move {
                let (st, _) = s
                    .post(
                        "/v1/session/update",
                        json!({"cookie": anon, "set": {format!("k{i}"): i}}),
                    )
                    .await;
                (Some(i), st, serde_json::Value::Null)
            });
        }
        {
            let s = s.clone();
            let anon = anon.clone();
            set.spawn(async move {
                let (st, v) = s
                    .post(
                        "/v1/session/login",
                        json!({"cookie": anon, "user": {"id": "u"}}),
                    )
                    .await;
                (None, st, v)
            });
        }
        let mut acked = vec![];
        let mut login = None;
        while let Some(r) = set.join_next().await {
            match r.unwrap() {
                (Some(i), StatusCode::OK, _) => acked.push(i),
                (Some(_), st, _) => assert_eq!(st, StatusCode::NOT_FOUND),
                (None, st, v) => {
                    assert_eq!(st, StatusCode::OK, "{v}");
                    login = Some(v);
                }
            }
        }
        let data = &login.unwrap()["session"]["data"];
        for i in acked {
            assert_eq!(
                data[format!("k{i}")],
                json!(i),
                "round {round}: acknowledged edit k{i} lost"
            );
        }
    }
}
