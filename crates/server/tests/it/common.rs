//! A test server on a real loopback socket with an injected clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::Stores;
use tessera::cookie::CookieConfig;
use tessera::csrf::CsrfKey;
use tessera_core::{ManualClock, SessionStore, Timestamp};
use tessera_server::config::Limits;
use tessera_server::{ApiKeys, AppState, Settings, app};
use tessera_store_memory::MemoryStore;
use tessera_store_redb::RedbStore;

pub(crate) const KEY: &str = "test-api-key-0123456789abcdef0123456789";
/// 2026-06-01T00:00:00Z.
pub(crate) const START: Timestamp = Timestamp::from_unix_secs(1_780_272_000);

pub(crate) struct TestServer {
    pub(crate) base: String,
    pub(crate) clock: ManualClock,
    pub(crate) client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub(crate) async fn memory() -> Self {
        Self::start(Arc::new(MemoryStore::new()), Settings::default_for_tests()).await
    }

    /// A memory store, anonymous sessions in it (server-side mode).
    pub(crate) async fn memory_server_anonymous() -> Self {
        Self::start(Arc::new(MemoryStore::new()), server_anonymous()).await
    }

    /// A memory store and `settings`.
    pub(crate) async fn memory_with(settings: Settings) -> Self {
        Self::start(Arc::new(MemoryStore::new()), settings).await
    }

    pub(crate) async fn redb(path: &Path) -> Self {
        // A server that was just stopped releases the file when its last connection task
        // ends, which can be a moment after `stop` returns.
        let mut tries = 0;
        let store = loop {
            match RedbStore::open(path) {
                Ok(s) => break s,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot open {}: {e}", path.display()),
            }
        };
        Self::start(Arc::new(store), Settings::default_for_tests()).await
    }

    pub(crate) async fn start(store: Arc<dyn SessionStore>, settings: Settings) -> Self {
        Self::start_with(Stores::single(store), settings).await
    }

    pub(crate) async fn start_with(stores: Stores, settings: Settings) -> Self {
        let clock = ManualClock::new(START);
        let state = AppState::new(
            stores,
            settings,
            CsrfKey::generate().unwrap(),
            ApiKeys::new([KEY]),
            Arc::new(clock.clone()),
        )
        .unwrap();
        Self::serve(state, clock).await
    }

    /// Serves `state` on a free loopback port until [`TestServer::stop`].
    pub(crate) async fn serve(state: AppState, clock: ManualClock) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app(state))
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            base,
            clock,
            client: reqwest::Client::new(),
            task,
            shutdown: Some(tx),
        }
    }

    /// Stops the server and waits until every handle on the store is gone.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn ok(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, body).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one counter line in `/metrics`, 0 if absent.
    pub(crate) async fn counter(&self, name_and_labels: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Every session write so far, all kinds and reasons.
    pub(crate) async fn writes(&self) -> u64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("tessera_session_writes_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub(crate) async fn login(&self, cookie: &str, user: &str) -> (String, Value) {
        let v = self
            .ok(
                "/v1/session/login",
                json!({"cookie": cookie, "user": {"id": user}}),
            )
            .await;
        (cookie_of(&v), v)
    }
}

/// `name=value` of the first `Set-Cookie` in a response.
pub(crate) fn cookie_of(v: &Value) -> String {
    let sc = v["set_cookie"][0].as_str().expect("a Set-Cookie value");
    sc.split(';').next().unwrap().to_owned()
}

pub(crate) trait TestSettings {
    fn default_for_tests() -> Self;
}

impl TestSettings for Settings {
    fn default_for_tests() -> Self {
        Self {
            session: tessera::SessionConfig::default(),
            cookie: CookieConfig::default(),
            limits: Limits::default(),
            kask: tessera_server::kask::KaskSettings::default(),
            kv: tessera_server::kv::KvSettings::default(),
            revocation_keep: tessera_server::revocations::DEFAULT_KEEP,
            tokens: None,
            verify_required: false,
            verify_refresh: Duration::ZERO,
            verify_claims: Vec::new(),
            verify_claim_set: tessera_token::ClaimSet::Tessera,
            verify_pem: None,
            seal_keys: None,
            redb_stores: Vec::new(),
            access_log: true,
            token_rotation: false,
        }
    }
}

/// The test settings with anonymous sessions in the store (`[session] anonymous = "server"`).
pub(crate) fn server_anonymous() -> Settings {
    let mut s = Settings::default_for_tests();
    s.session.anonymous = tessera::AnonymousMode::Server;
    s
}

/// The test settings with session tokens on: a fresh Ed25519 keyring valid from [`START`],
/// issuer `tessera-test`, a 10-minute soft lifetime (below the 15-minute renewal point of the
/// default 30-minute idle timeout, so a soft expiry is not hidden by a renewal).
pub(crate) fn token_settings(verify_required: bool) -> Settings {
    let mut s = Settings::default_for_tests();
    let ring = tessera_token::Keyring::generate_at(
        START.unix_secs(),
        tessera_token::RotationPolicy::default(),
        &mut tessera_token::OsKeySource::default(),
    )
    .unwrap();
    let mut t = tessera::token::TokenSettings::new(
        tessera_token::Config::new("tessera-test"),
        tessera::keys::TokenKeys::new(ring),
        &s.cookie,
    )
    .unwrap();
    t.soft_lifetime = Duration::from_secs(600);
    s.tokens = Some(t);
    s.verify_required = verify_required;
    s
}

/// A server built from configuration text the way `tessera serve` builds it
/// (`startup::prepare`: keys in the data directory, `[tokens]` applied), in a fresh data
/// directory, on the memory store, with the test API key and a manual clock at [`START`].
/// `toml` may hold any sections but `[store]` and `[verify]`.
pub(crate) async fn server_from_config(toml: &str) -> (TestServer, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    // The verifier reads new revocations on every request, like the other test servers.
    let text = format!(
        "data_dir = {:?}\napi_keys = [{KEY:?}]\n[store]\nurl = \"memory:\"\n\
         [verify]\nrefresh = \"0s\"\n{toml}\n",
        data.path().display().to_string()
    );
    let config = tessera_server::config::Config::from_toml(&text, |_| None).unwrap();
    let clock = ManualClock::new(START);
    let prepared = tessera_server::startup::prepare(&config, Arc::new(clock.clone()))
        .await
        .unwrap();
    let state = prepared.state;
    let server = TestServer::serve(state, clock).await;
    (server, data)
}

/// The address in the `Tessera listening on http://ADDR` (or `Tessera verifier listening on
/// …`) line of a `tessera serve` log, text or JSON.
pub(crate) fn listening_addr(log: &str) -> Option<String> {
    let rest = log.split(" listening on http://").nth(1)?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// The `tessera` binary with none of the test's own `TESSERA_*` variables in its environment.
pub(crate) fn tessera_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Waits until a `tessera` process (`serve` or `verifier`, on port 0) logs the address it
/// bound, in one of the files `logs` (read together), and returns it. Panics with the logs if
/// the process exits first or says nothing within `timeout`.
pub(crate) async fn wait_listening(
    child: &mut std::process::Child,
    logs: &[&Path],
    timeout: Duration,
) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let out: String = logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        if let Some(addr) = listening_addr(&out) {
            return addr;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("tessera exited ({status}):\n{out}");
        }
        if tokio::time::Instant::now() > deadline {
            panic!("tessera did not say where it listens within {timeout:?}:\n{out}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
