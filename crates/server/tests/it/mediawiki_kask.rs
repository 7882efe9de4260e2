//! Debian's MediaWiki keeping its sessions in Tessera through the Kask API, set up as
//! docs/kask.md tells an operator to (issue 16).
//!
//! Everything is real: a throwaway SQLite wiki installed by MediaWiki's own
//! `maintenance/install.php`, its `LocalSettings.php` with the `$wgObjectCaches` block of
//! docs/kask.md appended **as written** (only the address and the serialization changed, as
//! the doc says to), served by `php -S` on a free loopback port, against the built `tessera`
//! binary on redb (the default) or a throwaway Redis. A client with a cookie jar drives
//! MediaWiki's action API as a bot would: login token, `clientlogin`, `userinfo`, a CSRF
//! token, an `edit` with `assertuser`, `logout`; then the same cookies, and the pre-logout
//! cookies replayed, are anonymous. Tessera's side is checked through its metrics and the
//! Kask API (the session value is there, framed and HMAC'd as `RESTBagOStuff` frames it), and
//! MediaWiki's side through its `session` and `objectcache` log channels.
//!
//! `scripts/test` installs MediaWiki and PHP (Debian's packages); when they are missing, the
//! tests fail saying so: they never skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::cookie::{CookieStore as _, Jar};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tessera_test_support::redis::RedisServer;
use tokio::time::Instant;

/// Where Debian's `mediawiki` package puts MediaWiki.
const MEDIAWIKI_DIR: &str = "/usr/share/mediawiki";
/// The wiki's administrator, created by `install.php`.
const ADMIN: &str = "Admin";
const PASSWORD: &str = "Tessera-Test-Pass-1";
/// The wiki's database name, and so its id: its cookies are `wiki_session`, `wikiUserID`...
/// and its session keys `wiki:MWSession:<id>`.
const WIKI: &str = "wiki";
/// How long a process gets to start answering.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long one request to MediaWiki may take (the first builds its localisation cache).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const HINT: &str = "run ./scripts/test, which installs Debian's mediawiki and the PHP it runs on";

/// The PHP CLI on `PATH` (Debian's php-cli), with the extensions MediaWiki needs.
fn php() -> PathBuf {
    let php = PathBuf::from("php");
    let out = Command::new(&php)
        .arg("-m")
        .output()
        .unwrap_or_else(|e| panic!("cannot run php ({e}): {HINT}"));
    let modules = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for m in ["curl", "intl", "mbstring", "pdo_sqlite", "xml"] {
        assert!(
            modules.lines().any(|l| l.trim() == m),
            "php lacks the {m} extension: {HINT}"
        );
    }
    php
}

/// The version of the installed MediaWiki (`MW_VERSION` in `includes/Defines.php`).
fn mediawiki_version() -> String {
    let defines = Path::new(MEDIAWIKI_DIR).join("includes/Defines.php");
    let text = std::fs::read_to_string(&defines)
        .unwrap_or_else(|e| panic!("no MediaWiki in {MEDIAWIKI_DIR} ({e}): {HINT}"));
    let rest = text
        .split_once("define( 'MW_VERSION', '")
        .expect("MW_VERSION in Defines.php")
        .1;
    rest.split_once('\'').unwrap().0.to_owned()
}

/// The `php` block of docs/kask.md's "Pointing MediaWiki at Tessera", as written.
fn documented_snippet() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/kask.md"))
        .unwrap();
    let section = doc
        .split_once("\n## Pointing MediaWiki at Tessera\n")
        .expect("docs/kask.md has a \"Pointing MediaWiki at Tessera\" section")
        .1;
    let block = section
        .split_once("```php\n")
        .expect("a php block in \"Pointing MediaWiki at Tessera\"")
        .1;
    block.split_once("```").unwrap().0.to_owned()
}

/// `text` with `from` replaced by `to`, where `from` occurs exactly once (so a change of the
/// doc is noticed rather than silently testing something else).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "docs/kask.md's snippet should have `{from}` once:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// A free loopback port (another process may take it before it is used: callers retry).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The file's text, or empty when it does not exist (yet).
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `ready` until it is true, failing the test when `child` exits or `what` is not ready
/// by the deadline. `Ok(false)` from `ready` means "not yet"; `Err` means "give up now" (with
/// the reason), e.g. a port that another process took.
async fn wait_for(
    what: &str,
    child: &mut Child,
    mut ready: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if ready()? {
            return Ok(());
        }
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("{what} exited ({status})"));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not start within {DEADLINE:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// === impl Tessera ===

/// `tessera serve`, the built binary, on a free loopback port in a temporary directory, with
/// the Kask request log on. Killed on drop.
pub(crate) struct Tessera {
    pub(crate) base: String,
    /// `127.0.0.1:<port>`.
    pub(crate) addr: String,
    /// The management API key it generated in its data directory on this first run, as
    /// docs/kask.md tells MediaWiki to send it.
    pub(crate) api_key: String,
    pub(crate) startup_log: String,
    pub(crate) client: reqwest::Client,
    stderr: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Tessera {
    /// With `config` (TOML, e.g. a `[store]`) after `listen` and `data_dir`, and `env` on top
    /// of `TESSERA_LOG=info,tessera::kask=debug` (every Kask request logged).
    pub(crate) async fn start(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), config, env).await
    }

    /// [`Tessera::start`] in `dir`, whose `data` is the data directory (it may hold one
    /// already: a restored backup).
    pub(crate) async fn start_in(
        dir: tempfile::TempDir,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let data_dir = dir.path().join("data");
        let file = dir.path().join("tessera.toml");
        std::fs::write(
            &file,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{config}",
                data_dir.display()
            ),
        )
        .unwrap();
        let stdout = dir.path().join("stdout.txt");
        let stderr = dir.path().join("stderr.txt");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TESSERA_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .env("TESSERA_LOG", "info,tessera::kask=debug")
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        // The binary logs the address it bound (port 0: the kernel chose it).
        let up = wait_for("tessera", &mut child, || {
            Ok(crate::common::listening_addr(&read(&stderr)).is_some())
        })
        .await;
        let out = read(&stderr);
        if let Err(why) = up {
            let _ = child.kill();
            panic!("{why}:\n{}\n{out}", read(&stdout));
        }
        let addr = crate::common::listening_addr(&out).unwrap();
        let api_key = read(&data_dir.join("api-key")).trim().to_owned();
        Self {
            base: format!("http://{addr}"),
            addr,
            api_key,
            startup_log: out,
            client: reqwest::Client::new(),
            stderr,
            child,
            _dir: dir,
        }
    }

    /// Everything it logged so far.
    pub(crate) fn logs(&self) -> String {
        read(&self.stderr)
    }

    /// `GET /sessions/v1/{key}` with the API key: status and body.
    pub(crate) async fn kask_get(&self, key: &str) -> (u16, Vec<u8>) {
        let r = self
            .client
            .get(format!(
                "{}/sessions/v1/{}",
                self.base,
                key.replace(':', "%3A")
            ))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }

    /// The Kask API's request counts so far by method and status, from `/metrics`.
    pub(crate) async fn kask_requests(&self) -> BTreeMap<(String, u16), u64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let Some(labels) = line.strip_prefix("tessera_http_requests_total{") else {
                continue;
            };
            if !labels.contains("route=\"/sessions/v1/{*key}\"") {
                continue;
            }
            let label = |name: &str| {
                let start = labels.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                labels[start..].split('"').next().unwrap().to_owned()
            };
            let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            counts.insert((label("method"), label("status").parse().unwrap()), n);
        }
        counts
    }
}

impl Tessera {
    /// Its configuration file (`listen` says port 0: the address it bound is
    /// [`Tessera::addr`]).
    pub(crate) fn config_file(&self) -> PathBuf {
        self._dir.path().join("tessera.toml")
    }

    /// Its data directory (the redb file is `sessions.redb` there).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// What it wrote on standard output (nothing, when every line is in the log).
    pub(crate) fn stdout(&self) -> String {
        read(&self._dir.path().join("stdout.txt"))
    }

    /// Sends it `signal` (`TERM`, `INT`) with kill(1).
    pub(crate) fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// Its exit status, waiting at most `within` (`None` if it is still running then).
    pub(crate) async fn exit_within(
        &mut self,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One count of [`Tessera::kask_requests`], 0 when absent.
fn count(counts: &BTreeMap<(String, u16), u64>, method: &str, status: u16) -> u64 {
    counts
        .get(&(method.to_owned(), status))
        .copied()
        .unwrap_or(0)
}

// === impl Wiki ===

/// A throwaway MediaWiki served by `php -S` on a free loopback port. Killed on drop.
struct Wiki {
    base: String,
    /// `$wgSecretKey` of this install: the snippet's `hmac_key`.
    secret_key: String,
    dir: tempfile::TempDir,
    php: Child,
}

impl Wiki {
    /// Installs a SQLite wiki in a temporary directory with `maintenance/install.php`,
    /// appends `snippet` to its `LocalSettings.php` with what the test needs around it (the
    /// server's URL, the log channels in files), and serves it with `php -S`, MediaWiki's
    /// environment holding `TESSERA_API_KEY` as docs/kask.md says.
    async fn start(snippet: &str, api_key: &str) -> Self {
        let php = php();
        let installer = Path::new(MEDIAWIKI_DIR).join("maintenance/install.php");
        assert!(installer.exists(), "no {}: {HINT}", installer.display());
        let dir = tempfile::tempdir().unwrap();
        let install = tokio::process::Command::new(&php)
            .arg(&installer)
            .args(["--dbtype", "sqlite", "--dbname", WIKI, "--dbpath"])
            .arg(dir.path().join("db"))
            .arg("--confpath")
            .arg(dir.path())
            .args(["--server", "http://127.0.0.1", "--scriptpath", ""])
            .args(["--lang", "en", "--skins", "", "--pass", PASSWORD])
            .args(["Tessera test wiki", ADMIN])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), install)
            .await
            .expect("install.php did not finish within 2 minutes")
            .unwrap_or_else(|e| panic!("cannot run install.php ({e}): {HINT}"));
        let settings = dir.path().join("LocalSettings.php");
        assert!(
            out.status.success() && settings.exists(),
            "install.php failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let installed = read(&settings);
        let secret_key = installed
            .split_once("$wgSecretKey = \"")
            .expect("install.php wrote $wgSecretKey")
            .1
            .split_once('"')
            .unwrap()
            .0
            .to_owned();

        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let base = format!("http://127.0.0.1:{port}");
            let tail = format!(
                "\n# --- docs/kask.md, as written (only the address and serialization set) ---\n\
                 {snippet}\n\
                 # --- for the test ---\n\
                 $wgServer = '{base}';\n\
                 $wgDebugLogGroups['session'] = '{dir}/session.log';\n\
                 $wgDebugLogGroups['objectcache'] = '{dir}/objectcache.log';\n",
                dir = dir.path().display()
            );
            std::fs::write(&settings, format!("{installed}{tail}")).unwrap();
            let log = dir.path().join(format!("php-{port}.log"));
            let file = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(&php)
                .args(["-S", &format!("127.0.0.1:{port}"), "-t", MEDIAWIKI_DIR])
                .env("MW_CONFIG_FILE", &settings)
                .env("TESSERA_API_KEY", api_key)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(file.try_clone().unwrap())
                .stderr(file)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start php -S ({e}): {HINT}"));
            let up = wait_for("php -S", &mut child, || {
                if read(&log).contains("Failed to listen") {
                    return Err("the port was taken".to_owned());
                }
                Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
            })
            .await;
            match up {
                Ok(()) => {
                    return Self {
                        base,
                        secret_key,
                        dir,
                        php: child,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!("{why}:\n{}", read(&log));
                }
            }
        }
        panic!("php -S did not start: {last}");
    }

    fn api(&self) -> String {
        format!("{}/api.php", self.base)
    }

    /// What MediaWiki logged on `channel` (`$wgDebugLogGroups`).
    fn log(&self, channel: &str) -> String {
        read(&self.dir.path().join(format!("{channel}.log")))
    }

    /// Both channels, for failure messages.
    fn logs(&self) -> String {
        format!(
            "--- session channel ---\n{}\n--- objectcache channel ---\n{}",
            self.log("session"),
            self.log("objectcache")
        )
    }
}

impl Drop for Wiki {
    fn drop(&mut self) {
        let _ = self.php.kill();
        let _ = self.php.wait();
    }
}

// === the client ===

/// A client of the action API with a cookie jar, as a bot or a browser has.
struct Browser {
    jar: Arc<Jar>,
    client: reqwest::Client,
    api: String,
}

impl Browser {
    fn new(wiki: &Wiki) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap();
        Self {
            jar,
            client,
            api: wiki.api(),
        }
    }

    /// The `Cookie` header the jar sends to the wiki.
    fn cookies(&self) -> String {
        let url = reqwest::Url::parse(&self.api).unwrap();
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// The id in the jar's `wiki_session` cookie.
    fn session_id(&self) -> String {
        let cookies = self.cookies();
        cookies
            .split("; ")
            .find_map(|c| c.strip_prefix(&format!("{WIKI}_session=")))
            .unwrap_or_else(|| panic!("no {WIKI}_session cookie in {cookies:?}"))
            .to_owned()
    }

    async fn get(&self, params: &[(&str, &str)]) -> Value {
        let r = self.client.get(&self.api).query(&with_format(params));
        json_of(r.send().await.unwrap()).await
    }

    async fn post(&self, params: &[(&str, &str)]) -> Value {
        let r = self.client.post(&self.api).form(&with_format(params));
        json_of(r.send().await.unwrap()).await
    }
}

fn with_format<'a>(params: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = params.to_vec();
    all.extend([("format", "json"), ("formatversion", "2")]);
    all
}

async fn json_of(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const USERINFO: &[(&str, &str)] = &[("action", "query"), ("meta", "userinfo")];

// === checks ===

/// HMAC-SHA-256 (RFC 2104), as PHP's `hash_hmac('sha256', ..., true)`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// A stored session value is `RESTBagOStuff`'s frame, `<type>.<base64 HMAC>.<serialized>`,
/// with the HMAC of `hmac_key`, and holds the logged-in user.
fn check_stored_value(value: &[u8], serialization: &str, hmac_key: &str) {
    let text = std::str::from_utf8(value).unwrap();
    let mut parts = text.splitn(3, '.');
    let (kind, mac, body) = (
        parts.next().unwrap(),
        parts.next().expect("a framed value"),
        parts.next().expect("a framed value"),
    );
    assert_eq!(kind, serialization, "{text}");
    assert_eq!(
        mac,
        STANDARD.encode(hmac_sha256(hmac_key.as_bytes(), body.as_bytes())),
        "the value's HMAC is not that of $wgSecretKey: {text}"
    );
    match serialization {
        "JSON" => {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["data"]["wsUserName"], ADMIN, "{v}");
            assert_eq!(v["data"]["wsUserID"], 1, "{v}");
        }
        _ => assert!(
            body.starts_with("a:")
                && body.contains(&format!("s:10:\"wsUserName\";s:5:\"{ADMIN}\";")),
            "{body}"
        ),
    }
}

/// Every request `RESTBagOStuff` sent (its HTTP client logs them on the `objectcache`
/// channel) was a `GET`, `POST` or `DELETE` that succeeded or found nothing, and it logged no
/// failure.
fn check_objectcache_log(log: &str, logs: &str) {
    let done: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("HTTP complete: "))
        .collect();
    assert!(!done.is_empty(), "no request to Tessera logged:\n{logs}");
    for line in &done {
        let request = line.split("HTTP complete: ").nth(1).unwrap();
        let method = request.split(' ').next().unwrap();
        let code = request
            .split(" code=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert!(
            ["GET", "POST", "DELETE"].contains(&method),
            "{method} sent:\n{logs}"
        );
        assert!(
            ["200", "201", "204", "404"].contains(&code),
            "a request answered {code}:\n{logs}"
        );
    }
    assert!(!log.contains("Failed to "), "a store error:\n{logs}");
}

/// The whole flow on a Tessera started with `store` (a TOML `[store]` section, or nothing for
/// redb), MediaWiki serializing as `serialization` (`JSON` or `PHP`), HMAC'd with
/// `$wgSecretKey`.
async fn wiki_session_in_tessera(store: &str, store_note: &str, serialization: &str) {
    let started = Instant::now();
    let tessera = Tessera::start(store, &[]).await;
    assert!(
        tessera.startup_log.contains(store_note),
        "not the store under test:\n{}",
        tessera.startup_log
    );
    assert!(
        tessera
            .startup_log
            .contains("Kask API on /sessions/v1/: values kept 1d (kask.ttl)"),
        "{}",
        tessera.startup_log
    );
    assert!(!tessera.api_key.is_empty(), "no generated API key");

    // The snippet as written, at this Tessera's address, serializing as asked.
    let mut snippet = replace_once(&documented_snippet(), "127.0.0.1:7300", &tessera.addr);
    if serialization != "JSON" {
        snippet = replace_once(
            &snippet,
            "'serialization_type' => 'JSON'",
            &format!("'serialization_type' => '{serialization}'"),
        );
    }
    assert!(snippet.contains("'hmac_key' => $wgSecretKey"), "{snippet}");
    let wiki = Wiki::start(&snippet, &tessera.api_key).await;
    let b = Browser::new(&wiki);
    let v = b.get(&[("action", "query"), ("meta", "siteinfo")]).await;
    eprintln!(
        "{} (Debian's {}), PHP's server, {serialization} values, Tessera {}",
        v["query"]["general"]["generator"]
            .as_str()
            .unwrap_or_default(),
        mediawiki_version(),
        store_note
    );

    // 1. A login token: MediaWiki starts a session and stores it in Tessera.
    let v = b
        .get(&[("action", "query"), ("meta", "tokens"), ("type", "login")])
        .await;
    let login_token = v["query"]["tokens"]["logintoken"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned();
    let counts = tessera.kask_requests().await;
    assert!(
        count(&counts, "POST", 201) > 0,
        "MediaWiki stored no session in Tessera: {counts:?}\n{}",
        wiki.logs()
    );

    // 2. clientlogin, as the admin created at install.
    let v = b
        .post(&[
            ("action", "clientlogin"),
            ("username", ADMIN),
            ("password", PASSWORD),
            ("loginreturnurl", &wiki.base),
            ("logintoken", &login_token),
        ])
        .await;
    assert_eq!(v["clientlogin"]["status"], "PASS", "{v}\n{}", wiki.logs());
    let sid = b.session_id();
    let key = format!("{WIKI}:MWSession:{sid}");
    let (status, value) = tessera.kask_get(&key).await;
    assert_eq!(status, 200, "the logged-in session is not in Tessera");
    check_stored_value(&value, serialization, &wiki.secret_key);

    // 3. A new request: logged in, from the session MediaWiki reads back from Tessera.
    let reads = count(&tessera.kask_requests().await, "GET", 200);
    let v = b.get(USERINFO).await;
    assert_eq!(v["query"]["userinfo"]["name"], ADMIN, "{v}");
    assert_eq!(v["query"]["userinfo"]["id"], 1, "{v}");
    assert!(v["query"]["userinfo"].get("anon").is_none(), "{v}");
    let counts = tessera.kask_requests().await;
    assert!(
        count(&counts, "GET", 200) > reads,
        "MediaWiki did not read the session from Tessera: {counts:?}"
    );

    // 4. A CSRF token of the logged-in session (an anonymous one is `+\`).
    let v = b.get(&[("action", "query"), ("meta", "tokens")]).await;
    let csrf = v["query"]["tokens"]["csrftoken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(csrf, "+\\", "an anonymous token: {v}");

    // 5. An edit, asserting the user.
    let v = b
        .post(&[
            ("action", "edit"),
            ("title", "Tessera session test"),
            ("text", "Saved in a session kept by Tessera."),
            ("summary", "test"),
            ("assertuser", ADMIN),
            ("token", &csrf),
        ])
        .await;
    assert_eq!(v["edit"]["result"], "Success", "{v}\n{}", wiki.logs());

    // 6. Logout; the session is gone from Tessera.
    let replay = b.cookies();
    let v = b.post(&[("action", "logout"), ("token", &csrf)]).await;
    assert!(v.get("error").is_none(), "{v}");
    let (status, _) = tessera.kask_get(&key).await;
    assert_eq!(status, 404, "the session outlived the logout");
    let before_replay = wiki.log("session");

    // 7. Anonymous with the same cookies, and with the pre-logout cookies replayed.
    let v = b.get(USERINFO).await;
    assert_eq!(v["query"]["userinfo"]["anon"], true, "{v}");
    assert_eq!(v["query"]["userinfo"]["id"], 0, "{v}");
    let r = reqwest::Client::new()
        .get(b.api.as_str())
        .timeout(REQUEST_TIMEOUT)
        .query(&with_format(USERINFO))
        .header(reqwest::header::COOKIE, &replay)
        .send()
        .await
        .unwrap();
    let v = json_of(r).await;
    assert_eq!(
        v["query"]["userinfo"]["anon"], true,
        "replayed {replay}: {v}"
    );
    assert_eq!(v["query"]["userinfo"]["id"], 0, "{v}");

    // MediaWiki's logs: its session store is RESTBagOStuff, every session it looked for was
    // there until the logout, and no store request failed.
    let session_log = wiki.log("session");
    assert!(
        session_log.contains("SessionManager using store RESTBagOStuff"),
        "{}",
        wiki.logs()
    );
    for bad in [
        "Failed to load session",
        "Bad data",
        "Bad metadata",
        "exception",
    ] {
        assert!(!before_replay.contains(bad), "{bad}:\n{}", wiki.logs());
    }
    for bad in ["Failed to store", "Failed to fetch", "Failed to delete"] {
        assert!(!session_log.contains(bad), "{bad}:\n{}", wiki.logs());
    }
    check_objectcache_log(&wiki.log("objectcache"), &wiki.logs());

    // Tessera's side: no Kask request failed.
    let counts = tessera.kask_requests().await;
    for ((method, status), n) in &counts {
        assert!(
            [200, 201, 204, 404].contains(status),
            "{n} {method} answered {status}: {counts:?}\n{}",
            tessera.logs()
        );
    }
    assert!(count(&counts, "DELETE", 204) > 0, "{counts:?}");

    // Its request log names the session's key by digest only, never the id or the value.
    let logs = tessera.logs();
    // (The digest alone: the binary colours its field names even in a file.)
    let digest = tessera_server::kask::key_digest(key.as_bytes());
    assert!(
        logs.lines()
            .any(|l| l.contains("tessera::kask") && l.contains(&digest)),
        "no request log line for the session key ({digest}):\n{logs}"
    );
    assert!(!logs.contains(&sid), "the session id in clear:\n{logs}");
    assert!(!logs.contains("wsUserName"), "a value in the log:\n{logs}");
    eprintln!("took {:?}", started.elapsed());
}

#[tokio::test]
async fn mediawiki_sessions_in_tessera_on_redb_as_json() {
    wiki_session_in_tessera("", "session store: redb", "JSON").await;
}

#[tokio::test]
async fn mediawiki_sessions_in_tessera_on_redb_as_php() {
    wiki_session_in_tessera("", "session store: redb", "PHP").await;
}

#[tokio::test]
async fn mediawiki_sessions_in_tessera_on_redis_as_json() {
    let redis = RedisServer::start().await;
    let store = format!("[store]\nurl = \"{}\"\n", redis.url());
    wiki_session_in_tessera(&store, "session store: redis", "JSON").await;
}

#[tokio::test]
async fn mediawiki_sessions_in_tessera_on_redis_as_php() {
    let redis = RedisServer::start().await;
    let store = format!("[store]\nurl = \"{}\"\n", redis.url());
    wiki_session_in_tessera(&store, "session store: redis", "PHP").await;
}
