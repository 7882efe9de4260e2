//! The log of the real binary (docs/operations.md, "Logs"): one stream, one format, no colour
//! off a terminal, an access line per request with its request id, security lines sampled.

use serde_json::Value;
use tessera_server::kask::key_digest;

use crate::mediawiki_kask::Tessera;

/// Every line of `log` as JSON (the test fails on a line that is not).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l:?}")))
        .collect()
}

fn on<'a>(lines: &'a [Value], target: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["target"] == target).collect()
}

#[tokio::test]
async fn json_log_has_every_line_on_stderr_with_access_lines_and_request_ids() {
    let tessera = Tessera::start(
        "[store]\nurl = \"memory:\"\n",
        &[("TESSERA_LOG_FORMAT", "json"), ("TESSERA_LOG", "info")],
    )
    .await;
    let c = &tessera.client;
    let base = &tessera.base;

    // A usable X-Request-Id is kept and returned; an unusable one is replaced.
    let r = c
        .get(format!("{base}/healthz"))
        .header("x-request-id", "edge-7f3a.1:2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "edge-7f3a.1:2");
    let r = c
        .get(format!("{base}/healthz"))
        .header("x-request-id", "{\"forged\": \"line\"}")
        .send()
        .await
        .unwrap();
    let replaced = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        !replaced.contains("forged") && replaced.len() > 16,
        "{replaced}"
    );
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(generated, replaced);

    // Secrets in headers, paths and bodies stay out of the log.
    let r = c
        .post(format!("{base}/v1/session/resolve"))
        .bearer_auth("WrongButSecretApiKey0123456789abcdefXYZ")
        .header("cookie", "__Host-tessera=SecretCookieValue123")
        .body("{\"cookie\":\"SecretBodyValue\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let key = "logwiki:MWSession:secretsessionid0123456789abcdef";
    let r = c
        .post(format!(
            "{base}/sessions/v1/{}?x=1",
            key.replace(':', "%3A")
        ))
        .bearer_auth(&tessera.api_key)
        .header("x-request-id", "kask-1")
        .body("SecretKaskValue")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a query string is refused, as Kask does");
    let r = c
        .post(format!("{base}/sessions/v1/{}", key.replace(':', "%3A")))
        .bearer_auth(&tessera.api_key)
        .header("x-request-id", "kask-2")
        .body("SecretKaskValue")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c.get(format!("{base}/no/such/path")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let log = tessera.logs();
    let lines = json_lines(&log);
    assert_eq!(tessera.stdout(), "", "nothing on standard output");
    assert!(!log.contains('\u{1b}'), "no ANSI colour off a terminal");

    // Start-up: the notes and the address, as JSON lines on the log.
    let startup: Vec<&str> = on(&lines, "tessera::startup")
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap())
        .collect();
    assert!(
        startup
            .iter()
            .any(|m| m.starts_with("session store: memory")),
        "{startup:?}"
    );
    assert!(
        startup.iter().any(|m| m.starts_with("access log on")),
        "{startup:?}"
    );
    assert!(
        startup
            .iter()
            .any(|m| *m == format!("Tessera listening on http://{}", tessera.addr)),
        "{startup:?}"
    );

    // One access line per request, in order, with the route template.
    let access = on(&lines, "tessera::access");
    let seen: Vec<(String, String, u64, String)> = access
        .iter()
        .map(|l| {
            let f = &l["fields"];
            assert_eq!(f["message"], "request", "{l}");
            assert_eq!(l["level"], "INFO", "{l}");
            assert!(f["latency_us"].is_u64(), "{l}");
            assert!(f["bytes"].is_u64(), "{l}");
            (
                f["method"].as_str().unwrap().to_owned(),
                f["route"].as_str().unwrap().to_owned(),
                f["status"].as_u64().unwrap(),
                f["request_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("GET", "/healthz", 200, "edge-7f3a.1:2"),
        ("GET", "/healthz", 200, replaced.as_str()),
        ("GET", "/healthz", 200, generated.as_str()),
        ("POST", "/v1/session/resolve", 401, ""),
        ("POST", "/sessions/v1/{*key}", 400, "kask-1"),
        ("POST", "/sessions/v1/{*key}", 201, "kask-2"),
        ("GET", "unmatched", 404, ""),
    ];
    assert_eq!(seen.len(), want.len(), "{log}");
    for (got, want) in seen.iter().zip(want) {
        assert_eq!(
            (got.0.as_str(), got.1.as_str(), got.2),
            (want.0, want.1, want.2)
        );
        if !want.3.is_empty() {
            assert_eq!(got.3, want.3);
        }
    }
    // /healthz answers "ok\n".
    assert_eq!(access[0]["fields"]["bytes"], 3, "{}", access[0]);

    // The Kask line of a refused Kask request (info) carries the request id of its access
    // line; the created one is at debug, not shown with TESSERA_LOG=info.
    let kask = on(&lines, "tessera::kask");
    assert_eq!(kask.len(), 1, "{kask:?}");
    assert_eq!(kask[0]["fields"]["request_id"], "kask-1");
    assert_eq!(
        kask[0]["fields"]["key_sha256"],
        key_digest(key.as_bytes()).as_str()
    );

    for secret in [
        "WrongButSecretApiKey",
        "SecretCookieValue",
        "SecretBodyValue",
        "SecretKaskValue",
        "secretsessionid",
        "forged",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test]
async fn text_log_has_no_colour_off_a_terminal_and_the_access_log_can_be_off() {
    let tessera = Tessera::start(
        "[store]\nurl = \"memory:\"\n[server]\naccess_log = false\n",
        &[("TESSERA_LOG", "info")],
    )
    .await;
    let r = tessera
        .client
        .get(format!("{}/healthz", tessera.base))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    let log = tessera.logs();
    assert_eq!(tessera.stdout(), "");
    assert!(!log.contains('\u{1b}'), "ANSI colour in a file:\n{log:?}");
    assert!(
        log.contains("access log off (server.access_log = false)"),
        "{log}"
    );
    assert!(log.contains("Tessera listening on http://"), "{log}");
    assert!(!log.contains("tessera::access: request"), "{log}");

    // TESSERA_ACCESS_LOG wins over the file.
    let on = Tessera::start(
        "[store]\nurl = \"memory:\"\n[server]\naccess_log = false\n",
        &[("TESSERA_LOG", "info"), ("TESSERA_ACCESS_LOG", "true")],
    )
    .await;
    on.client
        .get(format!("{}/healthz", on.base))
        .send()
        .await
        .unwrap();
    let log = on.logs();
    let line = log
        .lines()
        .find(|l| l.contains("tessera::access: request"))
        .unwrap_or_else(|| panic!("no access line:\n{log}"));
    for part in [
        "method=\"GET\"",
        "route=\"/healthz\"",
        "status=200",
        "request_id=",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
}

#[tokio::test]
async fn a_flood_of_refused_keys_is_sampled_and_counted() {
    let tessera = Tessera::start(
        "[store]\nurl = \"memory:\"\n",
        &[("TESSERA_LOG_FORMAT", "json"), ("TESSERA_LOG", "info")],
    )
    .await;
    let c = &tessera.client;
    for _ in 0..40 {
        let r = c
            .get(format!("{}/v1/users/u1/sessions", tessera.base))
            .bearer_auth("a-bot-guessing-api-keys-0123456789abcdef")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let lines = json_lines(&tessera.logs());
    let security = on(&lines, "security");
    assert_eq!(
        security.len(),
        10,
        "at most 10 a minute per reason: {security:?}"
    );
    assert_eq!(
        on(&lines, "tessera::access").len(),
        40,
        "every request has its line"
    );
    let metrics = c
        .get(format!("{}/metrics", tessera.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "tessera_log_suppressed_total{reason=\"management request without a valid API key\"} 30"
        ),
        "{metrics}"
    );
}

/// A start-up failure of `serve` is a JSON line too when JSON is asked for.
#[test]
fn a_start_up_failure_is_a_json_line_in_json_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
    // An address that is never local: everything is prepared, then the bind fails.
    let out = cmd
        .arg("serve")
        .env("TESSERA_LISTEN", "192.0.2.1:7300")
        .env("TESSERA_STORE", "memory:")
        .env("TESSERA_LOG_FORMAT", "json")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines = json_lines(&String::from_utf8(out.stderr).unwrap());
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["fields"]["code"], "startup-bind", "{last}");
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot listen on 192.0.2.1:7300"),
        "{last}"
    );
}
