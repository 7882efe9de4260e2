//! The Kask request log of the real binary: one line per request, with the key's digest and
//! never the key or the value.

use serde_json::Value;
use tessera_server::kask::key_digest;

use crate::mediawiki_kask::Tessera;

#[tokio::test]
async fn one_log_line_per_kask_request_without_key_or_value() {
    let tessera = Tessera::start(
        "[store]\nurl = \"memory:\"\n",
        &[("TESSERA_LOG_FORMAT", "json")],
    )
    .await;
    let key = "logwiki:MWSession:secretsessionid0123456789abcdef";
    let value = "JSON.mac.{\"data\":{\"wsUserName\":\"VerySecretValue\"}}";
    let url = format!("{}/sessions/v1/{}", tessera.base, key.replace(':', "%3A"));
    let c = &tessera.client;
    let k = tessera.api_key.as_str();
    let sent = [
        (
            "POST",
            c.post(&url).bearer_auth(k).body(value).send().await,
            201,
        ),
        ("GET", c.get(&url).bearer_auth(k).send().await, 200),
        ("DELETE", c.delete(&url).bearer_auth(k).send().await, 204),
        ("GET", c.get(&url).bearer_auth(k).send().await, 404),
        (
            "PUT",
            c.put(&url).bearer_auth(k).body(value).send().await,
            400,
        ),
        ("POST", c.post(&url).body(value).send().await, 401),
    ];
    for (method, r, status) in &sent {
        assert_eq!(r.as_ref().unwrap().status().as_u16(), *status, "{method}");
    }

    let logs = tessera.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "tessera::kask")
        .collect();
    assert_eq!(lines.len(), sent.len(), "one line per request:\n{logs}");
    let digest = key_digest(key.as_bytes());
    for (line, (method, _, status)) in lines.iter().zip(&sent) {
        let f = &line["fields"];
        assert_eq!(f["message"], "Kask request", "{line}");
        assert_eq!(f["method"], *method, "{line}");
        assert_eq!(f["status"], *status, "{line}");
        assert_eq!(f["key_sha256"], digest.as_str(), "{line}");
        assert!(f["latency_us"].is_u64(), "{line}");
        let bytes = match (*method, *status) {
            ("POST", 201) | ("GET", 200) => value.len(),
            _ => 0,
        };
        assert_eq!(f["bytes"], bytes, "{line}");
    }
    // Successes and misses at debug; refusals at info.
    let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["DEBUG", "DEBUG", "DEBUG", "DEBUG", "INFO", "INFO"]);
    // Neither the key (plain or encoded, nor its session id) nor the value anywhere.
    for secret in ["secretsessionid", "VerySecretValue", "logwiki"] {
        assert!(!logs.contains(secret), "{secret} in the log:\n{logs}");
    }
}

/// Every `[kask]` setting can come from its variable, and the start-up log says whether the
/// API is on, with which TTL, size limit and API key rule (as docs/kask.md shows it).
#[tokio::test]
async fn kask_variables_and_the_startup_line_over_the_binary() {
    let defaults = Tessera::start("[store]\nurl = \"memory:\"\n", &[]).await;
    let all = format!("{}{}", defaults.stdout(), defaults.logs());
    assert!(
        all.contains(
            "Kask API on /sessions/v1/: values kept 1d (kask.ttl), at most 262144 bytes, \
             API key required"
        ),
        "{all}"
    );
    drop(defaults);

    let tessera = Tessera::start(
        "[store]\nurl = \"memory:\"\n[kask]\nmax_value_bytes = 5\n",
        &[
            ("TESSERA_KASK_TTL", "90m"),
            ("TESSERA_KASK_MAX_VALUE_BYTES", "1000"),
            ("TESSERA_KASK_REQUIRE_API_KEY", "false"),
        ],
    )
    .await;
    let all = format!("{}{}", tessera.stdout(), tessera.logs());
    assert!(
        all.contains(
            "Kask API on /sessions/v1/: values kept 90m (kask.ttl), at most 1000 bytes, \
             NO API key required"
        ),
        "{all}"
    );
    // Without an API key, as configured: a write of 1000 bytes is kept, 1001 is too large.
    let url = format!("{}/sessions/v1/w%3AMWSession%3Ax", tessera.base);
    let c = &tessera.client;
    let ok = c.post(&url).body(vec![b'a'; 1000]).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 201);
    let big = c.post(&url).body(vec![b'a'; 1001]).send().await.unwrap();
    assert_eq!(big.status().as_u16(), 413);
    let got = c.get(&url).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
}
