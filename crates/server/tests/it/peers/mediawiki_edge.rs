//! MediaWiki's own `sessionJwt` (1.45+: RS256 with `$wgJwtPrivateKey`, no `kid`, no `exp`)
//! through the real `tessera verifier` binary and through nginx, both configured with
//! docs/tokens.md's "Replacing Envoy's jwt_authn for MediaWiki" blocks as written (addresses,
//! paths and the certificate replaced). The tokens are built as MediaWiki builds them, by
//! `tests/peers/mediawiki_jwt.php` (PHP's json_encode and openssl_sign, as lcobucci/jwt 4.1.5
//! calls them), with a fresh 4096-bit RSA key from `openssl genpkey`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::nginx::Nginx;
use super::{Upstream, replace_exactly};
use super::{now, peer_file};

const ISSUER: &str = "https://meta.wikimedia.org";

/// A block of the section, the first that starts with `fence`.
fn doc_block(fence: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/tokens.md"))
        .unwrap();
    let section = doc
        .split_once("\n## Replacing Envoy's jwt_authn for MediaWiki\n")
        .expect("docs/tokens.md has the section")
        .1;
    let section = section.split("\n## ").next().unwrap();
    let block = section.split_once(fence).expect("the block").1;
    block.split_once("```").unwrap().0.to_owned()
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed; scripts/test installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh RSA key pair: `(private PEM, public PEM)` in `dir`.
fn rsa_key(dir: &Path, name: &str, bits: u32) -> (PathBuf, PathBuf) {
    let (key, public) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pem")),
    );
    let k = key.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        &format!("rsa_keygen_bits:{bits}"),
        "-out",
        k,
    ]);
    openssl(&[
        "pkey",
        "-in",
        k,
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (key, public)
}

/// Tokens MediaWiki would issue, one per spec (see mediawiki_jwt.php).
async fn mediawiki_tokens(key: &Path, specs: &[Value]) -> Vec<String> {
    let mut child = tokio::process::Command::new("php")
        .arg(peer_file("mediawiki_jwt.php"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("php is needed (scripts/test installs Debian's php-cli)");
    let input = json!({"key_file": key, "tokens": specs}).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn spec(id: Option<u64>, iat: i64, rlc: Option<&str>) -> Value {
    json!({"canonical_server": "https://en.wikipedia.org", "issuer": ISSUER, "scope": "CentralAuth:",
           "id": id, "iat": iat, "expiration": 14_400, "rlc": rlc})
}

/// `tessera verifier` with `config`, `env` on top; killed on drop.
struct Verifier {
    base: String,
    client: reqwest::Client,
    stderr: PathBuf,
    child: std::process::Child,
}

impl Drop for Verifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Verifier {
    async fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        let file = dir.join("mw-verifier.toml");
        std::fs::write(&file, config).unwrap();
        let (stdout, stderr) = (dir.join("verifier.out"), dir.join("verifier.err"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (k, _) in std::env::vars() {
            if k.starts_with("TESSERA_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .arg("verifier")
            .arg("--config")
            .arg(&file)
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let base = format!("http://{}", config_listen(config));
        let v = Self {
            base,
            client: reqwest::Client::new(),
            stderr,
            child,
        };
        for _ in 0..500 {
            if std::fs::read_to_string(&v.stderr)
                .unwrap_or_default()
                .contains("verifier listening on")
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "tessera verifier did not start: {}",
            std::fs::read_to_string(&v.stderr).unwrap_or_default()
        );
    }

    /// `(status, subject, token status, rlc, session header present)` for a cookie.
    async fn check(&self, cookie: &str) -> (u16, String, String, String, bool) {
        let r = self
            .client
            .get(format!("{}/v1/verify", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let h = |n: &str| {
            r.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        (
            r.status().as_u16(),
            h("x-tessera-subject"),
            h("x-tessera-token-status"),
            h("x-tessera-claim-rlc"),
            r.headers().contains_key("x-tessera-session"),
        )
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn config_listen(config: &str) -> String {
    let line = config.lines().find(|l| l.starts_with("listen = ")).unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The documented verifier configuration, on a free port, with `public_key` as the PEM.
fn documented_config(public_key: &Path) -> String {
    let toml = doc_block("```toml\n");
    assert!(toml.starts_with("# mw-verifier.toml"), "{toml}");
    let toml = replace_exactly(
        &toml,
        "listen = \"127.0.0.1:7400\"",
        &format!("listen = \"127.0.0.1:{}\"", free_port()),
        1,
        "docs/tokens.md toml",
    );
    replace_exactly(
        &toml,
        "/etc/mediawiki/jwt-public.pem",
        public_key.to_str().unwrap(),
        1,
        "docs/tokens.md toml",
    )
}

#[tokio::test]
async fn mediawikis_own_tokens_pass_tessera_verifier_and_nginx_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, public) = rsa_key(d, "mw", 4096);
    let (other, _) = rsa_key(d, "other", 2048);
    let now = now();
    let mut specs = vec![
        spec(Some(123), now, Some("authed-user")),
        // Issued 3 h ago with a 2 h expiration: past sxp, within the 4 h bound.
        json!({"canonical_server": "https://en.wikipedia.org", "issuer": ISSUER, "scope": "CentralAuth:",
               "id": 7, "iat": now - 3 * 3600, "expiration": 7200, "rlc": "approved-bot"}),
        // Issued 5 h ago: older than [tokens] exp (4 h).
        spec(Some(123), now - 5 * 3600, Some("authed-user")),
        spec(None, now, None),
        spec(Some(42), now, None),
    ];
    specs.push(json!({"canonical_server": "https://en.wikipedia.org", "issuer": "https://en.wikipedia.org",
                      "scope": "CentralAuth:", "id": 5, "iat": now, "expiration": 14_400, "rlc": null}));
    // MediaWiki's commented-out hard expiry (now + expiration + 60 s) is within the bound.
    specs.push(json!({"canonical_server": "https://en.wikipedia.org", "issuer": ISSUER, "scope": "CentralAuth:",
                      "id": 9, "iat": now, "expiration": 14_400, "rlc": null, "exp": now + 14_400 + 60}));
    let t = mediawiki_tokens(&key, &specs).await;
    let stranger = mediawiki_tokens(&other, &[spec(Some(123), now, Some("authed-user"))]).await;

    // MediaWiki's shape, byte for byte as the reference describes it.
    let (h, p) = (
        t[0].split('.').next().unwrap(),
        t[0].split('.').nth(1).unwrap(),
    );
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(b64.decode(h).unwrap(), br#"{"typ":"JWT","alg":"RS256"}"#);
    let claims = String::from_utf8(b64.decode(p).unwrap()).unwrap();
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&claims)
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(
        claims.starts_with(&format!(
            r#"{{"iss":"{ISSUER}","sxp":{},"jti":""#,
            now + 14_400
        )),
        "{claims}"
    );
    assert!(
        claims.ends_with(&format!(
            r#","sub":"mw:CentralAuth::123","iat":{now},"rlc":"authed-user"}}"#
        )),
        "{claims}"
    );
    assert_eq!(keys.len(), 6, "{claims}");
    assert_eq!(
        b64.decode(t[0].rsplit_once('.').unwrap().1).unwrap().len(),
        512,
        "RSA-4096"
    );

    let v = Verifier::start(d, &documented_config(&public), &[]).await;
    assert_eq!(v.get("/readyz").await.0, 200, "{}", v.log());
    let c = |t: &str| format!("sessionJwt={t}");
    assert_eq!(
        v.check(&c(&t[0])).await,
        (
            200,
            "mw:CentralAuth::123".into(),
            "ok".into(),
            "authed-user".into(),
            false
        )
    );
    assert_eq!(
        v.check(&c(&t[1])).await,
        (
            200,
            "mw:CentralAuth::7".into(),
            "soft_expired".into(),
            "approved-bot".into(),
            false
        )
    );
    assert_eq!(v.check(&c(&t[2])).await.2, "expired");
    assert_eq!(v.check(&c(&t[3])).await.2, "wrong_subject", "mw:anon");
    assert_eq!(
        v.check(&c(&t[4])).await,
        (
            200,
            "mw:CentralAuth::42".into(),
            "ok".into(),
            String::new(),
            false
        )
    );
    assert_eq!(v.check(&c(&t[5])).await.2, "wrong_issuer");
    assert_eq!(
        v.check(&c(&t[6])).await.2,
        "ok",
        "with MediaWiki's planned exp"
    );
    assert_eq!(v.check(&c(&stranger[0])).await.2, "bad_signature");
    // Altered under the signature: another user.
    let altered = super::with_claims(&t[0], |c| c["sub"] = json!("mw:CentralAuth::1"));
    assert_eq!(v.check(&c(&altered)).await.2, "bad_signature");
    // Optional mode: refused tokens pass as anonymous, as Envoy's allow_missing_or_failed.
    assert_eq!(v.check(&c(&altered)).await.1, "anon");
    // Quoted or padded: refused, not trimmed.
    assert_eq!(
        v.check(&format!("sessionJwt=\"{}\"", t[0])).await.2,
        "bad_encoding"
    );
    // The Bearer form (CentralAuth API tokens have the cookie's shape).
    let r = v
        .client
        .get(format!("{}/v1/verify", v.base))
        .bearer_auth(&t[0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-tessera-subject"], "mw:CentralAuth::123");
    let (_, metrics) = v.get("/metrics").await;
    assert!(metrics.contains("tessera_verifier_keys 1"), "{metrics}");
    assert!(
        metrics.contains("tessera_token_validations_total{outcome=\"wrong_subject\"} 1"),
        "{metrics}"
    );

    // nginx in front, with the documented configuration.
    let app = Upstream::start().await;
    let listen = v.base.trim_start_matches("http://").to_owned();
    let app_addr = app.addr.clone();
    let nginx = Nginx::start_site(move |port, crt, key| {
        let mut site = doc_block("```nginx\n");
        for (from, to) in [
            ("server 127.0.0.1:7400;", format!("server {listen};")),
            ("server 127.0.0.1:8080;", format!("server {app_addr};")),
            ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
            ("/etc/nginx/tls/wiki.example.org.crt", crt.to_owned()),
            ("/etc/nginx/tls/wiki.example.org.key", key.to_owned()),
        ] {
            site = replace_exactly(&site, from, &to, 1, "docs/tokens.md nginx");
        }
        site
    })
    .await;
    let spoofed = [
        ("X-Tessera-Subject", "mw:CentralAuth::1"),
        ("X-Tessera-Claim-Rlc", "BYPASS"),
        ("X-Tessera-Ratelimit-Class", "BYPASS"),
    ];
    fn upstream<'a>(spoofed: &[(&'a str, &'a str)], cookie: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut h = spoofed.to_vec();
        h.push(("Cookie", cookie));
        h
    }
    let want = |sub: &str, status: &str, rlc: Option<&str>, class: &str| {
        let mut w = vec![
            ("x-tessera-ratelimit-class".to_owned(), class.to_owned()),
            ("x-tessera-subject".to_owned(), sub.to_owned()),
            ("x-tessera-token-status".to_owned(), status.to_owned()),
        ];
        if let Some(r) = rlc {
            w.push(("x-tessera-claim-rlc".to_owned(), r.to_owned()));
        }
        w.sort();
        w
    };
    let cookie = c(&t[0]);
    let r = nginx
        .get("/wiki/Main_Page", &upstream(&spoofed, &cookie))
        .await;
    assert_eq!(
        r.upstream_identity(),
        want(
            "mw:CentralAuth::123",
            "ok",
            Some("authed-user"),
            "authed-user"
        ),
        "{}",
        nginx.error_log()
    );
    let cookie = c(&t[1]);
    let r = nginx.get("/", &upstream(&spoofed, &cookie)).await;
    assert_eq!(
        r.upstream_identity(),
        want(
            "mw:CentralAuth::7",
            "soft_expired",
            Some("approved-bot"),
            "approved-bot"
        )
    );
    let cookie = c(&t[4]);
    let r = nginx.get("/", &upstream(&spoofed, &cookie)).await;
    assert_eq!(
        r.upstream_identity(),
        want("mw:CentralAuth::42", "ok", None, "authed-user")
    );
    for (cookie, status) in [
        (c(&t[2]), "expired"),
        (c(&altered), "bad_signature"),
        (c(&stranger[0]), "bad_signature"),
        (String::new(), "none"),
    ] {
        let r = nginx.get("/", &upstream(&spoofed, &cookie)).await;
        assert_eq!(
            r.upstream_identity(),
            want("anon", status, None, "anon"),
            "{status}"
        );
    }
    assert!(app.hits() >= 7);
}

/// Item 4 through the binary: a PEM set holding unusable keys beside the good one keeps
/// verifying, logs each bad key once (not on every refresh), counts them, and is not ready
/// only when no usable key is left.
#[tokio::test]
async fn bad_keys_in_the_pem_set_are_skipped_logged_once_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, public) = rsa_key(d, "mw", 2048);
    let vectors = concat!(env!("CARGO_MANIFEST_DIR"), "/../token/tests/vectors/pem");
    let mut bad = std::fs::read(format!("{vectors}/ed25519-small-order.pub")).unwrap();
    bad.extend(std::fs::read(format!("{vectors}/p384.pub")).unwrap());
    bad.extend(std::fs::read(key.as_path()).unwrap());
    std::fs::write(d.join("bad.pem"), bad).unwrap();
    let t = mediawiki_tokens(&key, &[spec(Some(123), now(), Some("authed-user"))]).await;
    let files = format!("{}:{}", public.display(), d.join("bad.pem").display());
    let v = Verifier::start(
        d,
        &documented_config(&public),
        &[
            ("TESSERA_VERIFY_PUBLIC_KEYS", &files),
            ("TESSERA_VERIFY_JWKS_REFRESH", "1s"),
        ],
    )
    .await;
    assert_eq!(v.get("/readyz").await.0, 200, "{}", v.log());
    assert_eq!(v.check(&format!("sessionJwt={}", t[0])).await.2, "ok");
    // A few refreshes later, each bad key has been logged once.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let log = v.log();
    for (place, reason) in [
        ("bad.pem#1", "weak"),
        ("bad.pem#2", "unsupported"),
        ("bad.pem#3", "private"),
    ] {
        let lines: Vec<_> = log
            .lines()
            .filter(|l| l.contains("verifier-key-skipped") && l.contains(place))
            .collect();
        assert_eq!(lines.len(), 1, "{place}: {log}");
        assert!(lines[0].contains(reason), "{}", lines[0]);
    }
    let (_, metrics) = v.get("/metrics").await;
    for want in [
        "tessera_verifier_keys 1",
        "tessera_verifier_keys_skipped{reason=\"weak\"} 1",
        "tessera_verifier_keys_skipped{reason=\"unsupported\"} 1",
        "tessera_verifier_keys_skipped{reason=\"private\"} 1",
        "tessera_verifier_keys_skipped{reason=\"invalid\"} 0",
    ] {
        assert!(metrics.contains(want), "{want}: {metrics}");
    }
    assert_eq!(v.check(&format!("sessionJwt={}", t[0])).await.2, "ok");
    drop(v);

    // Only bad keys: not ready, every token refused, and it says why.
    let v = Verifier::start(
        d,
        &documented_config(&public),
        &[(
            "TESSERA_VERIFY_PUBLIC_KEYS",
            d.join("bad.pem").to_str().unwrap(),
        )],
    )
    .await;
    assert_eq!(v.get("/readyz").await.0, 503);
    assert_ne!(v.check(&format!("sessionJwt={}", t[0])).await.2, "ok");
    assert!(
        v.log().contains("fetch-no-usable-key")
            || std::fs::read_to_string(d.join("verifier.out"))
                .unwrap()
                .contains("no usable key"),
        "{}",
        v.log()
    );
}
