//! The CSRF keys over the real binary with `dir` keys (issue 11, item 3): a data directory
//! of before the CSRF keys rotated (`csrf.key` alone) keeps its CSRF tokens and its sids, and
//! a CSRF rotation (`tessera keys rotate --kind csrf`) breaks no CSRF token, no session token
//! and no token/session binding.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera::csrf::CsrfKey;
use tessera_core::{Clock as _, Handle, Timestamp};

const API_KEY: &str = "csrf-keys-test-api-key-0123456789abcdef0123";

/// `tessera serve` on `data` (redb and `dir` keys in it), until it listens.
async fn serve(data: &Path, log: &Path) -> (Child, String) {
    let mut child = crate::common::tessera_command()
        .arg("serve")
        .env("TESSERA_LISTEN", "127.0.0.1:0")
        .env("TESSERA_DATA_DIR", data)
        .env(
            "TESSERA_STORE",
            format!("redb:{}", data.join("sessions.redb").display()),
        )
        .env("TESSERA_API_KEY", API_KEY)
        .env("TESSERA_COOKIE_DEVELOPMENT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let addr = crate::common::wait_listening(&mut child, &[log], Duration::from_secs(30)).await;
    (child, format!("http://{addr}"))
}

/// SIGTERM, and the process reaped.
fn stop(mut child: Child) {
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = child.wait();
}

async fn post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn cookie_value(v: &Value, name: &str) -> Option<String> {
    v["set_cookie"].as_array()?.iter().find_map(|c| {
        let pair = c.as_str()?.split(';').next()?;
        let (n, value) = pair.split_once('=')?;
        (n == name && !value.is_empty()).then(|| value.to_owned())
    })
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn csrf_valid(http: &reqwest::Client, base: &str, cookie: &str, token: &str) -> bool {
    post(
        http,
        base,
        "/v1/session/csrf/check",
        json!({"cookie": cookie, "token": token}),
    )
    .await["valid"]
        .as_bool()
        .unwrap()
}

async fn verify(http: &reqwest::Client, base: &str, token: &str) -> String {
    let r = http
        .get(format!("{base}/v1/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    r.headers()["x-tessera-token-status"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn keys_cli(data: &Path, args: &[&str]) -> std::process::Output {
    crate::common::tessera_command()
        .env("TESSERA_DATA_DIR", data)
        .env(
            "TESSERA_STORE",
            format!("redb:{}", data.join("sessions.redb").display()),
        )
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_csrf_key_keeps_its_tokens_and_sids_through_a_csrf_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("stderr.txt");
    // A data directory as a version of before left it: one key for CSRF tokens and sids.
    std::fs::create_dir(&data).unwrap();
    let legacy = [9u8; 32];
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(data.join("csrf.key"))
            .unwrap();
        writeln!(f, "{}", URL_SAFE_NO_PAD.encode(legacy)).unwrap();
    }
    let old = CsrfKey::from_bytes(legacy);
    let http = reqwest::Client::new();
    let (child, base) = serve(&data, &log).await;

    // A login: its session token's sid is the one the old key made.
    let v = post(
        &http,
        &base,
        "/v1/session/login",
        json!({"cookie": "", "user": {"id": "alice"}}),
    )
    .await;
    let handle = cookie_value(&v, "tessera").unwrap();
    let token = cookie_value(&v, "tessera-token").unwrap();
    let cookie = format!("tessera={handle}; tessera-token={token}");
    let key = handle.parse::<Handle>().unwrap().store_key();
    let sid = old.to_sid_key().sid(&key);
    assert_eq!(claims(&token)["sid"], json!(sid));
    assert_eq!(v["session"]["sid"], json!(sid));
    // A CSRF token an old version issued (the old key, now) and one this version issued.
    let now = Timestamp::from_unix_secs(tessera_core::SystemClock.now().unix_secs());
    let from_before = old.issue("default", &key, now);
    assert!(csrf_valid(&http, &base, &cookie, &from_before).await);
    let v = post(
        &http,
        &base,
        "/v1/session/resolve",
        json!({"cookie": cookie}),
    )
    .await;
    let issued = v["csrf_token"].as_str().unwrap().to_owned();
    assert!(csrf_valid(&http, &base, &cookie, &issued).await);
    assert_eq!(verify(&http, &base, &token).await, "ok");
    // The old key issues. It is as old as can be, so the schedule's first run (at start-up)
    // has added a new key, which issues three minutes on (every node has it by then).
    let out = keys_cli(&data, &["keys", "list", "--kind", "csrf", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = listed["keys"].as_array().unwrap();
    let state = |kid: &str| {
        keys.iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state(&old.kid()).as_deref(), Some("issuing"), "{listed}");
    assert!(keys.len() <= 2, "{listed}");
    stop(child);

    // A CSRF rotation: a new key that issues now; the old one keeps verifying.
    let out = keys_cli(
        &data,
        &["keys", "rotate", "--kind", "csrf", "--force", "--promote"],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("it issues from now on"), "{text}");
    let out = keys_cli(&data, &["keys", "list", "--kind", "csrf", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    assert_eq!(keys[0]["state"], "issuing", "{listed}");
    assert_ne!(keys[0]["kid"], json!(old.kid()));
    let sid_file = std::fs::read(data.join("csrf.key")).unwrap();
    assert_eq!(
        String::from_utf8(sid_file).unwrap().trim(),
        URL_SAFE_NO_PAD.encode(legacy),
        "the sid key is untouched"
    );

    let (child, base) = serve(&data, &log).await;
    // Every token of before still works: both CSRF tokens, the session token, its binding.
    assert!(csrf_valid(&http, &base, &cookie, &from_before).await);
    assert!(csrf_valid(&http, &base, &cookie, &issued).await);
    assert_eq!(verify(&http, &base, &token).await, "ok");
    let v = post(
        &http,
        &base,
        "/v1/session/resolve",
        json!({"cookie": cookie}),
    )
    .await;
    assert_eq!(v["session"]["user"]["id"], "alice", "{v}");
    assert_eq!(v["session"]["sid"], json!(sid));
    assert_eq!(v["token_status"], "ok", "{v}");
    // New CSRF tokens come from the new key, and verify.
    let fresh = v["csrf_token"].as_str().unwrap().to_owned();
    assert!(csrf_valid(&http, &base, &cookie, &fresh).await);
    let age = Duration::from_secs(3600);
    let later = Timestamp::from_unix_secs(tessera_core::SystemClock.now().unix_secs());
    assert!(!old.verify(&fresh, "default", &key, age, later));
    stop(child);
}
