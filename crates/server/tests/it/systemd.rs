//! docs/operations.md as an operator would use it: the unit files in `docs/` pass
//! `systemd-analyze verify` (and `security` rates the service's unit OK), and every `sh`
//! block of the document (each starts with `# runbook: NAME`) runs as written against the real
//! binary, in order, with its effects checked between blocks.
//!
//! What cannot run here is played, and only that: no systemd is PID 1 where tests run, so
//! `systemctl` is `systemd_stub.py` (it reads the *installed* unit file and does what systemd
//! would with its `Environment=`, `StateDirectory=` and `Exec*=` lines); and the runbooks'
//! absolute paths under `/etc/`, `/var/` and `/usr/local/` are taken under a temporary root,
//! with the documented port 7300 replaced by a free one. Everything else (the `tessera`
//! commands, `install`, `openssl`, `flock`, `tar`, `sed`, `chown`, the shell) is real.
//!
//! `systemd-analyze` comes with Debian's `systemd` package, which scripts/test installs: the
//! tests fail, never skip, without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tessera_test_support::process::find_binary;
use tessera_test_support::{Watchdog, free_port, temp_dir};

const OPERATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
const UNITS: [&str; 3] = [
    "tessera.service",
    "tessera-backup.service",
    "tessera-backup.timer",
];

/// A root for `systemd-analyze verify --root`: systemd's own units (the targets a unit
/// refers to), the unit files of `docs/` where the install puts them, and the programs their
/// `Exec*=` lines name (verify checks that they are executable).
fn verify_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let systemd_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("sysinit.target").exists())
        .expect("systemd's unit directory (Debian's `systemd` package)");
    copy_tree(systemd_units, &root.path().join("usr/lib/systemd/system"));
    let etc = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&etc).unwrap();
    for u in UNITS {
        std::fs::copy(Path::new(DOCS).join(u), etc.join(u)).unwrap();
    }
    for (program, from) in [
        (
            "usr/local/bin/tessera",
            PathBuf::from(env!("CARGO_BIN_EXE_tessera")),
        ),
        ("bin/sh", PathBuf::from("/bin/sh")),
        ("usr/bin/find", find_binary("find", "findutils")),
        ("usr/bin/install", find_binary("install", "coreutils")),
    ] {
        let to = root.path().join(program);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap();
    }
    root
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if t.is_symlink() {
            let target = std::fs::read_link(e.path()).unwrap();
            std::os::unix::fs::symlink(target, dest).unwrap();
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn the_unit_files_pass_systemd_analyze_verify_without_a_warning() {
    let analyze = find_binary("systemd-analyze", "systemd");
    let root = verify_root();
    for u in UNITS {
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(format!("--root={}", root.path().display()))
            .arg(format!("/etc/systemd/system/{u}"))
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "systemd-analyze verify {u}: {}\n{said}",
            out.status
        );
    }
    // It does complain: a typo is caught.
    let etc = root.path().join("etc/systemd/system");
    let unit = std::fs::read_to_string(etc.join("tessera.service")).unwrap();
    std::fs::write(
        etc.join("tessera.service"),
        unit.replace("ProtectSystem=strict", "ProtectSytem=strict"),
    )
    .unwrap();
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .arg("/etc/systemd/system/tessera.service")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown key 'ProtectSytem'"));
}

#[test]
fn systemd_analyze_security_rates_the_service_ok() {
    let analyze = find_binary("systemd-analyze", "systemd");
    let root = verify_root();
    let out = Command::new(&analyze)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", root.path().display()))
        .arg("tessera.service")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tessera.service: ")
                .nth(1)
        })
        .unwrap_or_else(|| {
            panic!(
                "no overall level in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = level.split_whitespace().next().unwrap().parse().unwrap();
    println!("systemd-analyze security tessera.service: {level}");
    // systemd's scale: below 2 is OK, 0 to 1.0 SAFE; the docs say 1.1.
    assert!(score <= 1.5, "exposure {level}");
}

// === the runbooks ===

/// The `sh` blocks of docs/operations.md, each with the name on its first line.
fn runbooks() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(OPERATIONS).unwrap();
    let mut out = vec![];
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") && line.trim() != "```" {
            let info = line.trim().trim_start_matches('`');
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            if info == "sh" {
                let first = body.first().copied().unwrap_or_default();
                let name = first
                    .strip_prefix("# runbook: ")
                    .unwrap_or_else(|| panic!("an sh block without `# runbook: NAME`: {first}"))
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_owned();
                out.push((name, body.join("\n") + "\n"));
            }
        } else if line.trim() == "```" {
            // An unlabelled fence: skip to its end.
            lines
                .by_ref()
                .take_while(|l| l.trim() != "```")
                .for_each(drop);
        }
    }
    out
}

/// The sandbox a runbook runs in.
struct Host {
    root: PathBuf,
    checkout: PathBuf,
    port: u16,
    path: String,
    client: reqwest::Client,
    _watchdog: Watchdog,
}

impl Host {
    fn new() -> Self {
        let root = temp_dir("runbooks");
        for d in [
            "stub/bin",
            "etc/systemd/system",
            "usr/local/bin",
            "var/lib",
            "var/backups",
            "checkout/target/release",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let stub = root.join("stub/bin/systemctl");
        std::fs::write(&stub, include_str!("systemd_stub.py")).unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let checkout = root.join("checkout");
        std::os::unix::fs::symlink(DOCS, checkout.join("docs")).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_tessera"),
            checkout.join("target/release/tessera"),
        )
        .unwrap();
        let path = format!(
            "{}:{}:{}",
            root.join("stub/bin").display(),
            root.join("usr/local/bin").display(),
            std::env::var("PATH").unwrap()
        );
        let watchdog = Watchdog::spawn(
            &format!(
                "for f in {}/stub/*.pid; do kill -9 $(cat \"$f\") 2>/dev/null; done",
                root.display()
            ),
            &root,
        );
        find_binary("python3", "python3");
        find_binary("openssl", "openssl");
        find_binary("flock", "util-linux");
        Self {
            root,
            checkout,
            port: free_port(),
            path,
            client: reqwest::Client::new(),
            _watchdog: watchdog,
        }
    }

    /// `text` with its paths under the root and the port replaced.
    fn map(&self, text: &str) -> String {
        let root = self.root.display().to_string();
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'outer: while !rest.is_empty() {
            for prefix in ["/etc/", "/var/", "/usr/local/"] {
                if rest.starts_with(prefix) {
                    let prev = out.chars().last();
                    let boundary = prev.is_none_or(|c| {
                        !(c.is_alphanumeric() || matches!(c, '.' | '/' | '_' | '-'))
                    });
                    if boundary {
                        out.push_str(&root);
                    }
                    out.push_str(prefix);
                    rest = &rest[prefix.len()..];
                    continue 'outer;
                }
            }
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out.replace("127.0.0.1:7300", &format!("127.0.0.1:{}", self.port))
    }

    fn p(&self, abs: &str) -> PathBuf {
        PathBuf::from(self.map(abs))
    }

    /// Runs the runbook `name` of `books` with `sh -eu`, in the checkout; its output.
    fn run(&self, books: &mut Vec<(String, String)>, name: &str) -> String {
        let i = books
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no runbook {name} in docs/operations.md"));
        let (_, text) = books.remove(i);
        let script = self.map(&text);
        let out = Command::new("sh")
            .arg("-eu")
            .arg("-c")
            .arg(&script)
            .current_dir(&self.checkout)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", &self.root)
            .env("STUB_ROOT", &self.root)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "runbook {name} failed ({}):\n{script}\n--- output ---\n{said}\n--- service log ---\n{}",
            out.status,
            std::fs::read_to_string(self.root.join("stub/tessera.service.log")).unwrap_or_default()
        );
        println!("--- runbook {name}:\n{said}");
        said
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn data(&self, rel: &str) -> PathBuf {
        self.p("/var/lib/tessera/").join(rel)
    }

    fn api_keys(&self) -> Vec<String> {
        std::fs::read_to_string(self.data("api-key"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base()))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let key = self.api_keys()[0].clone();
        let (s, v) = self.post(&key, path, body).await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }

    /// Logs `user` in with a secret; the session cookie and the token cookie.
    async fn login(&self, user: &str) -> (String, String) {
        let v = self
            .ok(
                "/v1/session/login",
                json!({"cookie": "", "user": {"id": user}}),
            )
            .await;
        let cookie = |name: &str| {
            v["set_cookie"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .find(|c| c.starts_with(&format!("{name}=")))
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        };
        let (c, t) = (cookie("__Host-tessera"), cookie("__Host-tessera-token"));
        self.ok(
            "/v1/session/update",
            json!({"cookie": c, "secrets": {"s": format!("secret of {user}")}}),
        )
        .await;
        (c, t)
    }

    /// The user of a session cookie now (`None`: no live session), and its secret.
    async fn resolve(&self, cookie: &str) -> (Option<String>, Option<String>) {
        let v = self
            .ok(
                "/v1/session/resolve",
                json!({"cookie": cookie, "secrets": true}),
            )
            .await;
        let user = v["session"]["user"]["id"].as_str().map(str::to_owned);
        let secret = v["session"]["secrets"]["s"].as_str().map(str::to_owned);
        (user, secret)
    }

    async fn verify(&self, token: &str) -> String {
        let r = self
            .client
            .get(format!("{}/v1/verify", self.base()))
            .header("cookie", token)
            .send()
            .await
            .unwrap();
        r.headers()["x-tessera-token-status"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn kids(&self, file: &str) -> Vec<String> {
        let m: Value =
            serde_json::from_slice(&std::fs::read(self.data("keys").join(file)).unwrap()).unwrap();
        m["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    fn backups(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.p("/var/backups/tessera/"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runbook_of_docs_operations_md_runs_as_written() {
    let mut books = runbooks();
    let names: Vec<String> = books.iter().map(|(n, _)| n.clone()).collect();
    let host = Host::new();

    let out = host.run(&mut books, "install");
    let r = reqwest::get(format!("{}/healthz", host.base()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(host.api_keys().len(), 1);
    assert_eq!(
        out.trim(),
        host.api_keys()[0],
        "the install prints the API key"
    );

    let (alice, alice_token) = host.login("alice").await;
    assert_eq!(host.verify(&alice_token).await, "ok");

    let out = host.run(&mut books, "backup-timer");
    let backups = host.backups();
    assert_eq!(backups.len(), 1, "{out}");
    assert!(backups[0].join("backup.json").is_file());
    let stub_log = std::fs::read_to_string(host.root.join("stub/systemctl.log")).unwrap();
    assert!(
        stub_log.contains("enable --now tessera-backup.timer"),
        "{stub_log}"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    host.run(&mut books, "backup");
    assert_eq!(host.backups().len(), 2);
    assert!(host.backups()[1].to_string_lossy().ends_with("Z-by-hand"));

    // After the backups: in neither.
    let (bob, _) = host.login("bob").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    host.run(&mut books, "restore");
    assert_eq!(
        host.resolve(&alice).await,
        (Some("alice".into()), Some("secret of alice".into()))
    );
    assert_eq!(host.verify(&alice_token).await, "ok");
    assert_eq!(
        host.resolve(&bob).await.0,
        None,
        "bob came after the backup"
    );
    let old: Vec<_> = std::fs::read_dir(host.p("/var/lib/"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tessera.old-"))
        .collect();
    assert_eq!(old.len(), 1, "the old data is kept aside");

    let signing = host.kids("manifest.json");
    host.run(&mut books, "rotate-signing");
    let after = host.kids("manifest.json");
    assert_eq!(after.len(), signing.len() + 1, "a next key is published");
    host.run(&mut books, "rotate-signing-now");
    assert_eq!(
        host.verify(&alice_token).await,
        "ok",
        "a retired key verifies"
    );
    host.run(&mut books, "replace-signing-keys");
    let replaced = host.kids("manifest.json");
    assert!(
        replaced.iter().all(|k| !after.contains(k)),
        "{replaced:?} vs {after:?}"
    );

    let seal = host.kids("seal.json");
    host.run(&mut books, "replace-sealing-keys");
    assert!(host.kids("seal.json").iter().all(|k| !seal.contains(k)));
    assert_eq!(
        host.resolve(&alice).await,
        (Some("alice".into()), None),
        "the session stays; its secret no longer opens"
    );

    let v = host
        .ok("/v1/session/resolve", json!({"cookie": alice}))
        .await;
    let csrf = v["csrf_token"].as_str().unwrap().to_owned();
    let check = json!({"cookie": alice, "token": csrf});
    assert_eq!(
        host.ok("/v1/session/csrf/check", check.clone()).await["valid"],
        true
    );
    let sid_key = std::fs::read(host.data("csrf.key")).unwrap();
    let csrf_keys = std::fs::read(host.data("keys/csrf.json")).unwrap();
    host.run(&mut books, "replace-csrf-keys");
    assert_ne!(
        std::fs::read(host.data("keys/csrf.json")).unwrap(),
        csrf_keys
    );
    assert_eq!(
        std::fs::read(host.data("csrf.key")).unwrap(),
        sid_key,
        "the sid key never changes"
    );
    assert_eq!(
        host.ok("/v1/session/csrf/check", check).await["valid"],
        false
    );
    assert_eq!(
        host.resolve(&alice).await.0.as_deref(),
        Some("alice"),
        "sessions are untouched"
    );

    let old_key = host.api_keys()[0].clone();
    let out = host.run(&mut books, "rotate-api-key-add");
    let keys = host.api_keys();
    assert_eq!(keys.len(), 2);
    assert_eq!(out.trim(), keys[1], "the runbook prints the new key");
    for k in &keys {
        let (s, _) = host
            .post(k, "/v1/session/resolve", json!({"cookie": ""}))
            .await;
        assert_eq!(s, 200, "both keys are accepted during the rotation");
    }
    host.run(&mut books, "rotate-api-key-drop");
    assert_eq!(host.api_keys(), vec![keys[1].clone()]);
    let (s, _) = host
        .post(&old_key, "/v1/session/resolve", json!({"cookie": ""}))
        .await;
    assert_eq!(s, 401, "the old key is refused");
    let (s, _) = host
        .post(&keys[1], "/v1/session/resolve", json!({"cookie": ""}))
        .await;
    assert_eq!(s, 200);

    host.run(&mut books, "backup-keys");
    let tars: Vec<_> = std::fs::read_dir(host.p("/var/backups/tessera-keys/"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tars.len(), 1);
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&tars[0])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for f in [
        "keys/manifest.json",
        "keys/seal.json",
        "csrf.key",
        "api-key",
    ] {
        assert!(list.lines().any(|l| l == f), "{f} not in {list}");
    }

    let before = host.backups().len();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = host.run(&mut books, "upgrade");
    assert!(out.contains("(commit "), "--version: {out}");
    assert_eq!(
        host.backups().len(),
        before + 1,
        "a backup before the upgrade"
    );
    let r = reqwest::get(format!("{}/healthz", host.base()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    assert!(
        books.is_empty(),
        "runbooks of docs/operations.md this test does not run: {:?} (all: {names:?})",
        books.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    // The service stops cleanly.
    let stop = Command::new(host.root.join("stub/bin/systemctl"))
        .args(["stop", "tessera"])
        .env("STUB_ROOT", &host.root)
        .env("PATH", &host.path)
        .status()
        .unwrap();
    assert!(stop.success());
}
