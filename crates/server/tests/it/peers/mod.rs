//! Real peers on loopback (issue 3 item 8): PyJWT and node's `jose` verify Tessera's tokens
//! against the JWKS the service serves, PyJWT signs tokens with keys from Tessera's keyring
//! that Tessera then accepts, and Debian's nginx (`auth_request`) and Caddy (`forward_auth`)
//! put `GET /v1/verify` in front of an upstream, configured as docs/edge.md says.
//!
//! Everything runs as real processes: the `tessera` binary (on `127.0.0.1:0`, real clock,
//! keys in its data directory), the peers' interpreters with the scripts in
//! `crates/server/tests/peers/`, nginx, Caddy. The peers are installed, pinned, by
//! `scripts/install-peers` (run by `./scripts/test`) under `TESSERA_PEERS_DIR` (default
//! `/var/tmp/tessera-peers`); nothing downloads here. A missing peer fails the test with a
//! message saying so: it never skips.
//!
//! The harness is reusable: [`run`] sends a list of operations to a peer script as JSON on
//! stdin and returns its results, [`Service`] runs the binary with any extra configuration,
//! and [`assert_peers_verify`] checks a token in both peers, with negative controls. The
//! proxy tests share [`Upstream`] (an application that echoes the headers it receives),
//! [`edge_doc_block`] (the configuration they run, from docs/edge.md), [`self_signed`] and
//! [`https_get`].

mod algorithms;
mod caddy;
mod jose;
mod mediawiki_edge;
pub(crate) mod nginx;
mod pyjwt;
mod service_algorithms;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_core::Clock as _;
use tokio::io::AsyncWriteExt as _;

/// The issuer of the service under test.
pub(crate) const ISSUER: &str = "https://sessions.example.test";
/// The management API key given to the service.
pub(crate) const API_KEY: &str = "peers-test-api-key-0123456789abcdef0123";
/// The token cookie's default name.
pub(crate) const TOKEN_COOKIE: &str = "__Host-tessera-token";

const INSTALL_HINT: &str = "run ./scripts/test (or ./scripts/install-peers), which installs the \
     pinned peers; TESSERA_PEERS_DIR names where they are";

/// Where `scripts/install-peers` put the peers.
pub(crate) fn peers_dir() -> PathBuf {
    std::env::var_os("TESSERA_PEERS_DIR")
        .map_or_else(|| PathBuf::from("/var/tmp/tessera-peers"), PathBuf::from)
}

/// `crates/server/tests/peers/<name>`: the committed peer scripts and pins.
pub(crate) fn peer_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// Now, from the wall clock: the peers check `exp` and `iat` against it.
pub(crate) fn now() -> i64 {
    tessera_core::SystemClock.now().unix_secs()
}

/// A peer implementation of JOSE.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peer {
    /// PyJWT with pyca/cryptography: `pyjwt_peer.py`.
    PyJwt,
    /// node's `jose`: `jose_peer.mjs`.
    Jose,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PyJwt => "PyJWT",
            Self::Jose => "jose",
        })
    }
}

/// Runs `ops` in one process of `peer` (`{"ops": [...]}` on stdin) and returns its results,
/// one per operation, in order. Panics (fails the test) when the peer is not installed or
/// the script fails.
pub(crate) async fn run(peer: Peer, ops: &[Value]) -> Vec<Value> {
    let dir = peers_dir();
    let mut cmd = match peer {
        Peer::PyJwt => {
            let python = dir.join("venv/bin/python");
            assert!(
                python.exists(),
                "PyJWT is not installed ({} is missing): {INSTALL_HINT}",
                python.display()
            );
            let mut c = tokio::process::Command::new(python);
            c.arg(peer_file("pyjwt_peer.py"));
            c
        }
        Peer::Jose => {
            let modules = dir.join("node/node_modules");
            assert!(
                modules.join("jose/package.json").exists(),
                "jose is not installed (no {}): {INSTALL_HINT}",
                modules.join("jose").display()
            );
            let mut c = tokio::process::Command::new("node");
            c.arg(peer_file("jose_peer.mjs"))
                .env("TESSERA_PEERS_NODE_MODULES", modules);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {peer}: {e}; {INSTALL_HINT}"));
    let input = serde_json::to_vec(&json!({ "ops": ops })).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{peer} did not answer within 60 s"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{peer} failed ({}):\n{stderr}",
        out.status
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{peer} printed no JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let results = v["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), ops.len(), "{peer}: {v}");
    results
}

/// A `verify` operation: `keys` is a JWK set (verified locally: PyJWT's `PyJWKSet`,
/// jose's `createLocalJWKSet`) or a URL string (fetched: `PyJWKClient`,
/// `createRemoteJWKSet`).
pub(crate) fn verify_op(token: &str, keys: &Value, issuer: &str, algorithms: &[&str]) -> Value {
    let mut op = json!({
        "op": "verify", "token": token, "issuer": issuer, "algorithms": algorithms,
    });
    match keys {
        Value::String(url) => op["jwks_url"] = json!(url),
        jwks => op["jwks"] = jwks.clone(),
    }
    op
}

/// The error name a peer gives for a bad signature.
fn bad_signature(peer: Peer) -> &'static str {
    match peer {
        Peer::PyJwt => "InvalidSignatureError",
        Peer::Jose => "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
    }
}

/// Checks in both peers, against `keys` (a JWK set or its URL), that `token` verifies with
/// `issuer` checked and the algorithms pinned to `alg`, and returns the claims (the same in
/// both). Negative controls, so that a peer accepting anything cannot pass: the token with
/// a changed subject, another issuer expected, and only other algorithms allowed, are all
/// refused.
pub(crate) async fn assert_peers_verify(token: &str, keys: &Value, alg: &str) -> Value {
    let others: Vec<&str> = ["EdDSA", "ES256", "RS256"]
        .into_iter()
        .filter(|a| *a != alg)
        .collect();
    let forged = with_claims(token, |c| c["sub"] = json!("admin"));
    let ops = [
        verify_op(token, keys, ISSUER, &[alg]),
        verify_op(&forged, keys, ISSUER, &[alg]),
        verify_op(token, keys, "https://other.example.test", &[alg]),
        verify_op(token, keys, ISSUER, &others),
    ];
    let mut claims = None;
    for peer in [Peer::PyJwt, Peer::Jose] {
        let r = run(peer, &ops).await;
        assert_eq!(r[0]["ok"], true, "{peer} refused a valid token: {}", r[0]);
        assert_eq!(r[0]["header"]["alg"], alg, "{peer}: {}", r[0]);
        assert_eq!(r[0]["claims"]["iss"], ISSUER, "{peer}: {}", r[0]);
        assert_eq!(
            r[1]["error"],
            bad_signature(peer),
            "{peer} on a changed subject: {}",
            r[1]
        );
        let wrong_issuer = match peer {
            Peer::PyJwt => "InvalidIssuerError",
            Peer::Jose => "ERR_JWT_CLAIM_VALIDATION_FAILED",
        };
        assert_eq!(r[2]["error"], wrong_issuer, "{peer}: {}", r[2]);
        let not_allowed = match peer {
            Peer::PyJwt => "InvalidAlgorithmError",
            Peer::Jose => "ERR_JOSE_ALG_NOT_ALLOWED",
        };
        assert_eq!(r[3]["error"], not_allowed, "{peer}: {}", r[3]);
        match &claims {
            None => claims = Some(r[0]["claims"].clone()),
            Some(c) => assert_eq!(c, &r[0]["claims"], "the peers read different claims"),
        }
    }
    claims.unwrap()
}

/// The claims of a compact JWS, unverified.
pub(crate) fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a compact JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).expect("JSON claims")
}

/// The token with its claims changed by `edit` and its signature kept: a forgery.
pub(crate) fn with_claims(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let mut claims = claims_of(token);
    edit(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// The order of P-256, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// An ES256 token's `s`, and whether it is high (above n/2). Other signers (PyJWT with
/// pyca/cryptography, OpenSSL) write either `s`; Tessera refuses the high one (one spelling
/// per token) and writes the low one.
pub(crate) fn es256_high_s(token: &str) -> bool {
    let sig = URL_SAFE_NO_PAD
        .decode(token.rsplit_once('.').unwrap().1)
        .unwrap();
    assert_eq!(sig.len(), 64, "an ES256 signature");
    // s > n/2 ⇔ 2s > n; compare n - s < s.
    other_s(&sig[32..]).as_slice() < &sig[32..]
}

/// `n - s`.
fn other_s(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    out
}

/// The same ES256 token with the other `s` (`n - s`): the same signature to ECDSA.
pub(crate) fn es256_other_s(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let s = other_s(&sig[32..]);
    sig[32..].copy_from_slice(&s);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig))
}

/// Fresh claims for `sub` as Tessera would issue them, at the wall clock's now.
pub(crate) fn claims_for(sub: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": sub, "iat": now, "sxp": now + 300, "exp": now + 600,
        "jti": format!("jti-{sub}-{now}"), "sid": format!("sid-{sub}"),
    })
}

/// The `tessera` binary serving on a free loopback port, with its data directory in a
/// temporary directory, the memory store, and issuer [`ISSUER`]. Killed on drop.
pub(crate) struct Service {
    pub(crate) base: String,
    pub(crate) addr: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) client: reqwest::Client,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Service {
    /// With `[verify] mode = "optional"` or `"required"`.
    pub(crate) async fn start(verify_mode: &str) -> Self {
        Self::start_with(&format!("[verify]\nmode = \"{verify_mode}\"\n")).await
    }

    /// With `extra` appended to the configuration file (TOML sections, e.g. a `[tokens]`
    /// algorithm once the service has one). The issuer is always [`ISSUER`]: it is put into
    /// `extra`'s `[tokens]` section, or into one of its own.
    pub(crate) async fn start_with(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let config = dir.path().join("tessera.toml");
        let issuer = format!("[tokens]\nissuer = \"{ISSUER}\"\n");
        let (tokens, extra) = if extra.contains("[tokens]\n") {
            (String::new(), extra.replacen("[tokens]\n", &issuer, 1))
        } else {
            (issuer, extra.to_owned())
        };
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[store]\nurl = \"memory:\"\n\n\
                 {tokens}{extra}",
                data_dir.display()
            ),
        )
        .unwrap();
        let stdout = dir.path().join("stdout.txt");
        let stderr = dir.path().join("stderr.txt");
        let child = crate::common::tessera_command()
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("TESSERA_API_KEY", API_KEY)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut service = Self {
            base: String::new(),
            addr: String::new(),
            data_dir,
            client: reqwest::Client::new(),
            child,
            _dir: dir,
        };
        // The binary logs the address it bound (port 0: the kernel chose it).
        let addr = crate::common::wait_listening(
            &mut service.child,
            &[&stdout, &stderr],
            Duration::from_secs(10),
        )
        .await;
        service.base = format!("http://{addr}");
        service.addr = addr;
        service
    }

    /// Stops the service at once (SIGKILL).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, reqwest::StatusCode::OK, "{path}: {v}");
        v
    }

    /// `DELETE path` with the API key: status and JSON body.
    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Logs `user` in through the HTTP API: the token of its token cookie, and the `sid`.
    pub(crate) async fn login(&self, user: &str) -> (String, String) {
        let v = self
            .post(
                "/v1/session/login",
                json!({"cookie": "", "user": {"id": user}}),
            )
            .await;
        let prefix = format!("{TOKEN_COOKIE}=");
        let token = v["set_cookie"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.as_str()?.strip_prefix(&prefix))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .next()
            .unwrap_or_else(|| panic!("no token cookie: {v}"));
        (token, v["session"]["sid"].as_str().unwrap().to_owned())
    }

    /// `POST /v1/tokens`: a token for a session that is not stored.
    pub(crate) async fn mint(&self, sub: &str, claims: Value) -> String {
        let v = self
            .post("/v1/tokens", json!({"sub": sub, "claims": claims}))
            .await;
        v["token"].as_str().unwrap().to_owned()
    }

    pub(crate) fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base)
    }

    /// The served JWK set.
    pub(crate) async fn jwks(&self) -> Value {
        let r = self.client.get(self.jwks_url()).send().await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        r.json().await.unwrap()
    }

    /// `GET /v1/verify` with one request header: status, subject, session, outcome code.
    pub(crate) async fn verify(&self, name: &str, value: &str) -> Verdict {
        let r = self
            .client
            .get(format!("{}/v1/verify", self.base))
            .header(name, value)
            .send()
            .await
            .unwrap();
        let h = |n: &str| {
            r.headers()
                .get(n)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Verdict {
            status: r.status().as_u16(),
            subject: h("x-tessera-subject"),
            session: h("x-tessera-session"),
            code: h("x-tessera-token-status"),
        }
    }

    /// The keyring's active key as the manifest in `data_dir/keys` names it: its kid and
    /// its private-key file (PKCS#8 DER).
    pub(crate) fn active_key(&self) -> (String, PathBuf) {
        let keys = self.data_dir.join("keys");
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(keys.join("manifest.json")).unwrap()).unwrap();
        let active: Vec<&Value> = manifest["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["state"] == "active")
            .collect();
        assert_eq!(active.len(), 1, "{manifest}");
        let kid = active[0]["kid"].as_str().unwrap().to_owned();
        let file = keys.join(format!("{kid}.pk8"));
        assert!(file.exists(), "no {}", file.display());
        (kid, file)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `GET /v1/verify` answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) status: u16,
    pub(crate) subject: Option<String>,
    pub(crate) session: Option<String>,
    pub(crate) code: Option<String>,
}

impl Verdict {
    /// 200 for `subject` in `session`, outcome `ok`.
    pub(crate) fn ok(subject: &str, session: &str) -> Self {
        Self {
            status: 200,
            subject: Some(subject.to_owned()),
            session: Some(session.to_owned()),
            code: Some("ok".to_owned()),
        }
    }

    /// 200 as `anon` with outcome `code` (optional mode).
    pub(crate) fn anon(code: &str) -> Self {
        Self {
            status: 200,
            subject: Some("anon".to_owned()),
            session: None,
            code: Some(code.to_owned()),
        }
    }
}

/// The pins the peers were installed from: the test fails when an older install is in use.
#[tokio::test]
async fn the_installed_peers_are_the_pinned_versions() {
    let requirements = std::fs::read_to_string(peer_file("requirements.txt")).unwrap();
    let pin = |name: &str| {
        requirements
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}==")))
            .unwrap_or_else(|| panic!("{name} is not pinned"))
            .trim()
            .to_owned()
    };
    let r = run(Peer::PyJwt, &[json!({"op": "versions"})]).await;
    assert_eq!(r[0]["pyjwt"], pin("PyJWT"), "{}: {INSTALL_HINT}", r[0]);
    assert_eq!(
        r[0]["cryptography"],
        pin("cryptography"),
        "{}: {INSTALL_HINT}",
        r[0]
    );

    let lock: Value =
        serde_json::from_slice(&std::fs::read(peer_file("package-lock.json")).unwrap()).unwrap();
    let r = run(Peer::Jose, &[json!({"op": "versions"})]).await;
    assert_eq!(
        r[0]["jose"], lock["packages"]["node_modules/jose"]["version"],
        "{}: {INSTALL_HINT}",
        r[0]
    );
}

// Proxies in front of the verifier (nginx.rs, caddy.rs).

/// The first code block in `lang` of docs/edge.md's section `## <section>`: the configuration
/// a proxy test runs.
pub(crate) fn edge_doc_block(section: &str, lang: &str) -> String {
    doc_block("docs/edge.md", section, lang)
}

/// The first `lang` code block of the `## section` of `file` (a path from the workspace
/// root), as written.
pub(crate) fn doc_block(file: &str, section: &str, lang: &str) -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(file),
    )
    .unwrap();
    let section_text = doc
        .split_once(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("{file} has a \"{section}\" section"))
        .1;
    let block = section_text
        .split_once(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("a {lang} block in \"{section}\" of {file}"))
        .1;
    block.split_once("```").unwrap().0.to_owned()
}

/// `text` with every `from` replaced by `to`, where `from` occurs exactly `times` times (so a
/// change of the documented `block` is noticed rather than silently testing something else).
pub(crate) fn replace_exactly(
    text: &str,
    from: &str,
    to: &str,
    times: usize,
    block: &str,
) -> String {
    assert_eq!(
        text.matches(from).count(),
        times,
        "the {block} block should have `{from}` {times} time(s)"
    );
    text.replace(from, to)
}

/// A loopback port that was free a moment ago (a proxy binding it may still lose a race:
/// callers retry).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `p` as a `&str` for a configuration file.
pub(crate) fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A fresh self-signed P-256 certificate and key in `dir` (`tls.crt`, `tls.key`), for
/// `localhost` and `127.0.0.1` (Caddy picks a certificate by the address when no SNI is
/// sent).
pub(crate) async fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let out = tokio::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .await
        .expect("openssl is needed for this test; scripts/test installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

/// The upstream application: answers every request with the request headers it received,
/// in order, duplicates kept, and counts the requests.
pub(crate) struct Upstream {
    pub(crate) addr: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub(crate) async fn start() -> Self {
        async fn echo(State(hits): State<Arc<AtomicUsize>>, headers: HeaderMap) -> Json<Value> {
            hits.fetch_add(1, Ordering::SeqCst);
            let list: Vec<Value> = headers
                .iter()
                .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
                .collect();
            Json(json!({ "headers": list }))
        }
        let hits = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().fallback(echo).with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, hits, task }
    }

    /// How many requests reached the upstream.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET url` over TLS with curl (the certificate is not checked), with `headers` sent as
/// given: curl sends header names as written, `_` included.
pub(crate) async fn https_get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "-k", "-i", "--max-time", "20"]).arg(url);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    let out = cmd
        .output()
        .await
        .expect("curl is needed for this test; scripts/test installs it");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A response from a proxy.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The headers the upstream received (names lower-cased), in order, duplicates kept.
    /// Fails unless the answer is the upstream's.
    pub(crate) fn upstream_headers(&self) -> Vec<(String, String)> {
        assert_eq!(self.status, 200, "{self:?}");
        let v: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not the upstream's answer ({e}): {self:?}"));
        v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_ascii_lowercase(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The identity headers the upstream received: every header whose name, lower-cased
    /// with `_` read as `-` (as CGI-style frameworks do), starts with `x-tessera-`, sorted.
    pub(crate) fn upstream_identity(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .upstream_headers()
            .into_iter()
            .map(|(k, v)| (k.replace('_', "-"), v))
            .filter(|(k, _)| k.starts_with("x-tessera-"))
            .collect();
        out.sort();
        out
    }
}

/// The identity headers expected upstream, sorted like [`Reply::upstream_identity`].
pub(crate) fn identity(
    subject: &str,
    session: Option<&str>,
    status: &str,
) -> Vec<(String, String)> {
    let mut v = vec![
        ("x-tessera-subject".to_owned(), subject.to_owned()),
        ("x-tessera-token-status".to_owned(), status.to_owned()),
    ];
    if let Some(s) = session {
        v.push(("x-tessera-session".to_owned(), s.to_owned()));
    }
    v.sort();
    v
}

/// Client headers that try to pass an identity of their own.
pub(crate) const SPOOFED: [(&str, &str); 4] = [
    ("X-Tessera-Subject", "admin"),
    ("X-Tessera-Session", "spoofed-session"),
    ("X-Tessera-Token-Status", "ok"),
    ("X_Tessera_Subject", "admin"),
];

/// `h` and then [`SPOOFED`].
pub(crate) fn with_spoofed<'a>(h: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    h.iter().copied().chain(SPOOFED).collect()
}
