//! `tessera backup` and `tessera restore` over the real binary (docs/operations.md,
//! "Backups"): a backup taken while writes run against `tessera serve`, restored into a new
//! data directory, serves every session acknowledged before it began, with its secrets and
//! its token; and the refusals, each with its code and a non-zero exit.
//!
//! The backup and restore output is printed (`cargo nextest run … --no-capture`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::mediawiki_kask::Tessera;

const TOKEN_COOKIE: &str = "__Host-tessera-token";

/// The binary with `args`, `--config config` and `env`, none of the test's `TESSERA_*`.
fn command(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

async fn run(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    tokio::process::Command::from(command(config, env, args))
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts that `o` failed with exit status 1 and `error[code]: …` mentioning `needle`.
fn assert_refused(o: &Output, code: &str, needle: &str) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert!(
        err.starts_with(&format!("error[{code}]: ")) && err.contains(needle),
        "expected error[{code}] with {needle:?}, got: {err}"
    );
}

/// A session the test logged in: its cookies, id, user and secret.
#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    token: String,
    user: String,
    secret: String,
}

fn set_cookie(v: &Value, name: &str) -> String {
    v["set_cookie"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {v}"))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn post(t: &Tessera, path: &str, body: Value) -> Value {
    let r = t
        .client
        .post(format!("{}{path}", t.base))
        .bearer_auth(&t.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// Logs `user` in and gives the session a secret: two acknowledged writes.
async fn login(t: &Tessera, user: &str) -> Session {
    let v = post(
        t,
        "/v1/session/login",
        json!({"cookie": "", "user": {"id": user}}),
    )
    .await;
    let cookie = set_cookie(&v, "__Host-tessera");
    let token = set_cookie(&v, TOKEN_COOKIE);
    let secret = format!("secret of {user}");
    post(
        t,
        "/v1/session/update",
        json!({"cookie": cookie, "secrets": {"oauth": secret}}),
    )
    .await;
    Session {
        cookie,
        token,
        user: user.to_owned(),
        secret,
    }
}

/// The session resolves with its user and its secret, and its token verifies at
/// `/v1/verify` (keys and the session record both restored).
async fn assert_restored(t: &Tessera, s: &Session) {
    let v = post(
        t,
        "/v1/session/resolve",
        json!({"cookie": s.cookie, "secrets": true}),
    )
    .await;
    assert_eq!(v["session"]["user"]["id"], s.user.as_str(), "{v}");
    assert_eq!(v["session"]["secrets"]["oauth"], s.secret.as_str(), "{v}");
    let r = t
        .client
        .get(format!("{}/v1/verify", t.base))
        .header("cookie", &s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = |n: &str| r.headers()[n].to_str().unwrap().to_owned();
    assert_eq!(h("x-tessera-token-status"), "ok", "{}", s.user);
    assert_eq!(h("x-tessera-subject"), s.user);
}

fn config_for(dir: &Path) -> PathBuf {
    let file = dir.join("tessera.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    file
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_session_into_a_new_data_dir() {
    let src = Tessera::start("", &[]).await;
    let addr = src.addr.clone();
    let listen = [("TESSERA_LISTEN", addr.as_str())];
    let mut before = vec![];
    for i in 0..20 {
        before.push(login(&src, &format!("before-{i}")).await);
    }
    // The load: writers log users in and write Kask values until told to stop; each
    // session is recorded with the moment its last write was acknowledged.
    let src = Arc::new(src);
    let acked: Arc<Mutex<Vec<(Instant, Session, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (t, acked, stop) = (src.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let s = login(&t, &format!("load-{w}-{n}")).await;
                    let r = t
                        .client
                        .post(format!("{}/sessions/v1/load-{w}-{n}", t.base))
                        .bearer_auth(&t.api_key)
                        .body(format!("value {w} {n}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    acked
                        .lock()
                        .await
                        .push((Instant::now(), s, format!("load-{w}-{n}")));
                    n += 1;
                }
                n
            })
        })
        .collect();
    // The load is running: some of its writes are acknowledged before the backup starts.
    let grown = |at_least: usize| {
        let acked = acked.clone();
        async move {
            tessera_test_support::process::poll_until(
                Duration::from_secs(20),
                Duration::from_millis(20),
                async || (acked.lock().await.len() >= at_least).then_some(()),
            )
            .await
            .is_some()
        }
    };
    assert!(grown(20).await, "the load did not get going");

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("backups").join("tessera-1");
    let started = Instant::now();
    let b = run(
        &src.config_file(),
        &listen,
        &["backup", target.to_str().unwrap()],
    )
    .await;
    let took = started.elapsed();
    // And some after it ended.
    let so_far = acked.lock().await.len();
    assert!(
        grown(so_far + 4).await,
        "the load stopped during the backup"
    );
    stop.store(true, Ordering::Relaxed);
    let mut during = 0;
    for w in writers {
        during += w.await.unwrap();
    }
    let (b_out, b_err) = text(&b);
    assert!(b.status.success(), "backup failed: {b_out}{b_err}");
    assert!(
        b_out.contains("from the running service"),
        "a running service makes the copy: {b_out}"
    );
    let acked = acked.lock().await.clone();
    let acked_before: Vec<Session> = acked
        .iter()
        .filter(|(at, ..)| *at < started)
        .map(|(_, s, _)| s.clone())
        .collect();
    assert!(
        !acked_before.is_empty() && acked.len() > acked_before.len(),
        "writes ran before and during the backup ({} before, {} in all)",
        acked_before.len(),
        acked.len()
    );

    // What the backup holds, and with which modes.
    for f in [
        "backup.json",
        "sessions.redb",
        "csrf.key",
        "api-key",
        "keys/manifest.json",
        "keys/seal.json",
    ] {
        let p = target.join(f);
        assert!(p.is_file(), "{f} missing from the backup");
        assert_eq!(mode(&p), 0o600, "{f}");
    }
    assert_eq!(mode(&target), 0o700);
    assert!(!target.join("keys/.lock").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(target.join("backup.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], 1);
    assert_eq!(manifest["source"], "service");
    assert!(manifest["sessions"].as_u64().unwrap() >= 20, "{manifest}");
    assert!(manifest["kv_entries"].as_u64().unwrap() >= 1, "{manifest}");

    // Restore into a new data directory, and serve from it.
    let dst_dir = tempfile::tempdir().unwrap();
    let dst_config = config_for(dst_dir.path());
    let r = run(&dst_config, &[], &["restore", target.to_str().unwrap()]).await;
    let (r_out, r_err) = text(&r);
    assert!(r.status.success(), "restore failed: {r_out}{r_err}");
    println!(
        "sample run ({during} load iterations, the backup took {took:?}):\n\
         $ tessera backup {}\n{b_out}$ tessera restore {}\n{r_out}",
        target.display(),
        target.display()
    );
    // The backup is left as it was: restore copies.
    assert!(target.join("sessions.redb").is_file());
    let dst = Tessera::start_in(dst_dir, "", &[]).await;
    assert_eq!(dst.api_key, src.api_key, "the API key is restored");
    assert!(
        dst.startup_log.contains("using the token signing keys")
            && dst.startup_log.contains("using the sealing keys"),
        "the restored keys are used, none generated:\n{}",
        dst.startup_log
    );
    for s in before.iter().chain(&acked_before) {
        assert_restored(&dst, s).await;
    }
    for (_, _, key) in acked.iter().filter(|(at, ..)| *at < started) {
        let (status, body) = dst.kask_get(key).await;
        assert_eq!(status, 200, "{key}");
        assert!(String::from_utf8(body).unwrap().starts_with("value "));
    }
    println!(
        "restored: {} sessions acknowledged before the backup all resolve, with their \
         secrets and tokens; {} acknowledged in all",
        before.len() + acked_before.len(),
        before.len() + acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_refuse_what_they_cannot_do_well() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(dir.path());
    // No service has run yet: nothing to back up.
    let first = dir.path().join("b0");
    let o = run(&config, &[], &["backup", first.to_str().unwrap()]).await;
    assert_refused(&o, "backup-io", "api-key");
    assert!(!first.exists());

    // A copy a crash left beside the store goes at the next start; nothing else does.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let stale = data.join(".backup-0123456789abcdef01234567.redb");
    std::fs::write(&stale, "left by a crash").unwrap();
    std::fs::write(data.join(".backup-mine.redb"), "not a copy").unwrap();

    // A service ran and stopped: the copy is made from the file.
    let mut t = Tessera::start_in(dir, "", &[]).await;
    assert!(!stale.exists(), "a stale copy is removed at start");
    assert!(data.join(".backup-mine.redb").exists());
    login(&t, "alice").await;
    let addr = t.addr.clone();
    t.signal("TERM");
    t.exit_within(Duration::from_secs(10)).await.unwrap();
    let config = t.config_file();
    let listen = [("TESSERA_LISTEN", addr.as_str())];
    let base = tempfile::tempdir().unwrap();
    let ok = base.path().join("ok");
    let o = run(&config, &listen, &["backup", ok.to_str().unwrap()]).await;
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("from the store file (no service was running)"),
        "{out}"
    );

    // The target exists: never overwritten.
    let existing = base.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("mine"), "keep").unwrap();
    let o = run(&config, &listen, &["backup", existing.to_str().unwrap()]).await;
    assert_refused(&o, "backup-target-exists", "never overwrites");
    assert_eq!(
        std::fs::read_to_string(existing.join("mine")).unwrap(),
        "keep"
    );
    let o = run(&config, &listen, &["backup", ok.to_str().unwrap()]).await;
    assert_refused(&o, "backup-target-exists", "exists already");

    // An unwritable path (its parent is a file; as root, permissions would not stop it).
    let file = base.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let o = run(
        &config,
        &listen,
        &["backup", file.join("backup").to_str().unwrap()],
    )
    .await;
    assert_refused(&o, "backup-io", "a-file: not a directory");

    // A store that is not redb: nothing the service could copy.
    let o = run(
        &config,
        &[("TESSERA_STORE", "memory:")],
        &["backup", base.path().join("m").to_str().unwrap()],
    )
    .await;
    assert_refused(&o, "backup-not-redb", "not an embedded redb store");

    // Restore: into the data directory of a running service.
    let t = Tessera::start("", &[]).await;
    let o = run(&t.config_file(), &[], &["restore", ok.to_str().unwrap()]).await;
    assert_refused(&o, "backup-in-use", "is in use");
    drop(t);

    // Into a data directory that is not empty.
    let busy = tempfile::tempdir().unwrap();
    let busy_config = config_for(busy.path());
    std::fs::create_dir_all(busy.path().join("data")).unwrap();
    std::fs::write(busy.path().join("data/csrf.key"), "old").unwrap();
    let o = run(&busy_config, &[], &["restore", ok.to_str().unwrap()]).await;
    assert_refused(&o, "backup-target-exists", "empty or absent data directory");
    assert_eq!(
        std::fs::read_to_string(busy.path().join("data/csrf.key")).unwrap(),
        "old"
    );

    // A file that is not a redb store, bare or in a backup whose manifest was rewritten.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_config = config_for(fresh.path());
    let junk = base.path().join("junk.redb");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let o = run(&fresh_config, &[], &["restore", junk.to_str().unwrap()]).await;
    assert_refused(&o, "backup-not-a-store", "not a usable Tessera store");
    assert!(
        !fresh.path().join("data").exists(),
        "a failed restore leaves nothing behind"
    );
    let o = run(
        &fresh_config,
        &[],
        &["restore", base.path().to_str().unwrap()],
    )
    .await;
    assert_refused(&o, "backup-not-a-backup", "no backup.json");

    // A damaged backup: one byte of the store changed.
    let damaged = base.path().join("damaged");
    copy_dir(&ok, &damaged);
    let store = damaged.join("sessions.redb");
    let mut bytes = std::fs::read(&store).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&store, bytes).unwrap();
    let o = run(&fresh_config, &[], &["restore", damaged.to_str().unwrap()]).await;
    assert_refused(&o, "backup-damaged", "sessions.redb");
    assert!(!fresh.path().join("data").exists());

    // The good one restores, and the service starts from it.
    let o = run(&fresh_config, &[], &["restore", ok.to_str().unwrap()]).await;
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// With `[store.anonymous]` on redb, the backup holds both stores and the restore puts each
/// where the target's configuration says; the keyed store of `/v1/kv` comes back too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_anonymous_redb_store_is_backed_up_and_restored_too() {
    let src_dir = tempfile::tempdir().unwrap();
    let anon = |dir: &Path| format!("redb:{}", dir.join("anon/anonymous.redb").display());
    let src_anon = anon(src_dir.path());
    let env = [
        ("TESSERA_ANONYMOUS", "server"),
        ("TESSERA_ANON_STORE", src_anon.as_str()),
    ];
    let src = Tessera::start_in(src_dir, "", &env).await;
    let v = post(
        &src,
        "/v1/session/update",
        json!({"cookie": "", "set": {"cart": [1, 2]}}),
    )
    .await;
    assert_eq!(v["session"]["storage"], "store", "{v}");
    let cookie = v["set_cookie"][0]
        .as_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let alice = login(&src, "alice").await;
    // The keyed store of /v1/kv lives in the session store too.
    let r = src
        .client
        .put(format!("{}/v1/kv/sess/abc", src.base))
        .bearer_auth(&src.api_key)
        .json(&json!({"value": {"n": 1}, "ttl": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("b");
    let mut with_listen = env.to_vec();
    with_listen.push(("TESSERA_LISTEN", src.addr.as_str()));
    let b = run(
        &src.config_file(),
        &with_listen,
        &["backup", target.to_str().unwrap()],
    )
    .await;
    let (b_out, b_err) = text(&b);
    assert!(b.status.success(), "{b_out}{b_err}");
    assert!(target.join("anonymous.redb").is_file());

    let dst_dir = tempfile::tempdir().unwrap();
    let dst_config = config_for(dst_dir.path());
    let dst_anon = anon(dst_dir.path());
    let dst_env = [
        ("TESSERA_ANONYMOUS", "server"),
        ("TESSERA_ANON_STORE", dst_anon.as_str()),
    ];
    let r = run(
        &dst_config,
        &dst_env,
        &["restore", target.to_str().unwrap()],
    )
    .await;
    let (r_out, r_err) = text(&r);
    assert!(r.status.success(), "{r_out}{r_err}");
    assert!(dst_dir.path().join("anon/anonymous.redb").is_file());
    let dst = Tessera::start_in(dst_dir, "", &dst_env).await;
    let v = post(&dst, "/v1/session/resolve", json!({"cookie": cookie})).await;
    assert_eq!(v["session"]["data"]["cart"], json!([1, 2]), "{v}");
    assert_restored(&dst, &alice).await;
    let r = dst
        .client
        .get(format!("{}/v1/kv/sess/abc", dst.base))
        .bearer_auth(&dst.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["value"], json!({"n": 1}), "{v}");
}

/// One backup at a time: while a copy is being sent (its body not read to the end), a second
/// request gets 409 `backup-in-progress`; once the first is done, the next one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backup_at_a_time() {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use crate::common::{KEY, TestSettings as _};

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(tessera_store_redb::RedbStore::open(dir.path().join("s.redb")).unwrap());
    let mut settings = tessera_server::Settings::default_for_tests();
    settings.redb_stores = vec![("session", store.clone())];
    let state = tessera_server::AppState::new(
        tessera::Stores::single(store),
        settings,
        tessera::csrf::CsrfKey::generate().unwrap(),
        tessera_server::ApiKeys::new([KEY]),
        Arc::new(tessera_core::ManualClock::new(crate::common::START)),
    )
    .unwrap();
    let app = tessera_server::app(state);
    let get = || {
        Request::get("/v1/admin/backup")
            .header("authorization", format!("Bearer {KEY}"))
            .body(Body::empty())
            .unwrap()
    };
    let first = app.clone().oneshot(get()).await.unwrap();
    assert_eq!(first.status(), 200);
    let second = app.clone().oneshot(get()).await.unwrap();
    assert_eq!(second.status(), 409);
    let problem: Value =
        serde_json::from_slice(&second.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(problem["type"], "urn:tessera:problem:backup-in-progress");
    let bytes = first.into_body().collect().await.unwrap().to_bytes();
    assert!(!bytes.is_empty());
    let third = app.clone().oneshot(get()).await.unwrap();
    assert_eq!(third.status(), 200);
    drop(third);
    // Without the API key: 401, as every management endpoint.
    let anon = Request::get("/v1/admin/backup")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.oneshot(anon).await.unwrap().status(), 401);
    // Nothing is left beside the store.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["s.redb".to_owned()]);
}

/// Files restored into an existing data directory get its owner (systemd's dynamic user, a
/// dedicated user), so the service can read what root restored. Run as root (as CI does),
/// the directory is given to `nobody` first; otherwise the files must stay the caller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_files_belong_to_the_data_directorys_owner() {
    use std::os::unix::fs::MetadataExt as _;

    let t = Tessera::start("", &[]).await;
    let backup = tempfile::tempdir().unwrap();
    let target = backup.path().join("b");
    let listen = [("TESSERA_LISTEN", t.addr.as_str())];
    let o = run(
        &t.config_file(),
        &listen,
        &["backup", target.to_str().unwrap()],
    )
    .await;
    assert!(o.status.success(), "{:?}", text(&o));

    let dst = tempfile::tempdir().unwrap();
    let config = config_for(dst.path());
    let data = dst.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let me = std::fs::metadata(&data).unwrap().uid();
    if me == 0 {
        std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    } else {
        println!("not root: the files must stay uid {me} (the chown path needs root)");
    }
    let dir = std::fs::metadata(&data).unwrap();
    let owner = (dir.uid(), dir.gid());
    let o = run(&config, &[], &["restore", target.to_str().unwrap()]).await;
    assert!(o.status.success(), "{:?}", text(&o));
    for f in [
        "sessions.redb",
        "csrf.key",
        "api-key",
        "keys",
        "keys/manifest.json",
        "keys/seal.json",
    ] {
        let m = std::fs::metadata(data.join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), owner, "{f}");
    }
}
