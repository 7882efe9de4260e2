//! Debian's Caddy with `forward_auth` to `GET /v1/verify`, in front of an upstream that
//! echoes the headers it receives. The site block is docs/edge.md's "Behind Caddy" block, read
//! from docs/edge.md and run as written except for the addresses and a self-signed certificate,
//! so the documentation cannot drift from what is tested. Caddy runs with no network access
//! beyond loopback: automatic HTTPS (ACME) off, the admin endpoint off, HTTP/3 (UDP) off, its
//! storage, configuration and data directories in a temporary directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    Reply, Service, TOKEN_COOKIE, Upstream, edge_doc_block, free_port, https_get, identity, path,
    replace_exactly, self_signed, with_claims, with_spoofed,
};

/// The Caddy binary: `TESSERA_CADDY`, else `caddy` on `PATH`, else Debian's `/usr/bin/caddy`.
/// Fails the test (naming scripts/test, which installs it) when it cannot run, and returns
/// the version it reports.
fn caddy_binary() -> (PathBuf, String) {
    let found = std::env::var_os("TESSERA_CADDY")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join("caddy"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/bin/caddy"));
    let out = std::process::Command::new(&found)
        .arg("version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run caddy ({}: {e}): run ./scripts/test, which installs Debian's caddy",
                found.display()
            )
        });
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && (version.starts_with("2.") || version.starts_with("v2.")),
        "{} is not Caddy 2 ({}): {version}{}",
        found.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (found, version)
}

/// docs/edge.md's Caddy site block (the `caddy` code block of "Behind Caddy").
fn readme_config() -> String {
    edge_doc_block("Behind Caddy", "caddy")
}

/// Caddy in the foreground (`caddy run`, one process: killing it stops all of it), serving
/// docs/edge.md's site block over TLS on a free loopback port.
struct Caddy {
    port: u16,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Caddy {
    async fn start(tessera: &str, app: &str) -> Self {
        let (bin, version) = caddy_binary();
        eprintln!("caddy {version} ({})", bin.display());
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (crt, key) = self_signed(d).await;
        let t = path(d);
        // What the test adds: no ACME, no admin endpoint, no UDP listener, everything Caddy
        // keeps in the temporary directory.
        let global = format!(
            "{{\n\tadmin off\n\tauto_https off\n\tservers {{\n\t\tprotocols h1 h2\n\t}}\n\t\
             storage file_system {t}/storage\n}}\n\n"
        );
        // A free port can be taken between the check and Caddy's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut site = readme_config();
            for (from, to, times) in [
                ("127.0.0.1:7300", tessera.to_owned(), 2),
                ("127.0.0.1:8080", app.to_owned(), 1),
                (
                    "example.org {\n",
                    format!(
                        "https://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n\ttls {} {}\n",
                        path(&crt),
                        path(&key)
                    ),
                    1,
                ),
            ] {
                site = replace_exactly(&site, from, &to, times, "Caddy");
            }
            std::fs::write(d.join("Caddyfile"), format!("{global}{site}")).unwrap();
            let mut child = std::process::Command::new(&bin)
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(d.join("Caddyfile"))
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", d)
                .env("XDG_CONFIG_HOME", d.join("config"))
                .env("XDG_DATA_HOME", d.join("data"))
                .current_dir(d)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(d.join("stdout.txt")).unwrap())
                .stderr(std::fs::File::create(d.join("stderr.txt")).unwrap())
                .spawn()
                .unwrap();
            for _ in 0..500 {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(d.join("stderr.txt")).unwrap_or_default();
                    assert!(
                        log.contains("address already in use"),
                        "caddy exited ({status}):\n{log}"
                    );
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { port, child, dir };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("caddy did not start");
    }

    /// `GET path` through Caddy over TLS (curl), with `headers` sent as given.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        https_get(&format!("https://127.0.0.1:{}{path}", self.port), headers).await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// More client headers trying to pass an identity, beyond [`super::SPOOFED`]: other cases,
/// `_` and `-` mixed, and a claim header (Caddy, unlike nginx, passes names with `_` on).
const SPOOFED_MORE: [(&str, &str); 5] = [
    ("x-tessera-session", "lower-case"),
    ("X-Tessera_Session", "mixed"),
    ("X_Tessera-Token-Status", "ok"),
    ("X_TESSERA_SUBJECT", "root"),
    ("X-Tessera-Claim-Rlc", "admin"),
];

fn with_all_spoofed<'a>(h: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    with_spoofed(h).into_iter().chain(SPOOFED_MORE).collect()
}

/// The identity headers the upstream received ([`Reply::upstream_identity`]), empty ones left
/// out (an empty header says nothing: Caddy passes an empty header on when the verifier sends
/// one), after checking that no header value is a Caddy placeholder left unexpanded.
fn seen(r: &Reply) -> Vec<(String, String)> {
    for (k, v) in r.upstream_headers() {
        assert!(
            !v.contains('{'),
            "a placeholder reached the upstream: {k}: {v}"
        );
    }
    r.upstream_identity()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

#[tokio::test]
async fn caddy_passes_the_subject_for_a_valid_token_and_no_identity_for_a_forged_one() {
    let mut tessera =
        Service::start_with("[verify]\nmode = \"optional\"\nrefresh = \"0s\"\n").await;
    let app = Upstream::start().await;
    let caddy = Caddy::start(&tessera.addr, &app.addr).await;

    let (token, sid) = tessera.login("alice").await;
    let cookie = format!("{TOKEN_COOKIE}={token}");
    let alice = identity("alice", Some(&sid), "ok");

    // A valid token cookie: the upstream sees the user with its session and outcome, also
    // when the client sends identity headers of its own.
    let r = caddy.get("/wiki/Main_Page", &[("Cookie", &cookie)]).await;
    assert_eq!(seen(&r), alice, "{}", caddy.log());
    // The cookie itself goes on to the application.
    assert!(
        r.upstream_headers()
            .iter()
            .any(|(k, v)| k == "cookie" && *v == cookie),
        "{r:?}"
    );
    let r = caddy
        .get("/", &with_all_spoofed(&[("Cookie", cookie.as_str())]))
        .await;
    assert_eq!(r.upstream_identity(), alice, "{}", caddy.log());

    // Forged (claims changed under the signature) and garbage tokens: anonymous, no session
    // (in particular no placeholder text for it), and the client's headers do not get
    // through either.
    let forged = format!(
        "{TOKEN_COOKIE}={}",
        with_claims(&token, |c| c["sub"] = json!("admin"))
    );
    let anon_bad_sig = identity("anon", None, "bad_signature");
    let r = caddy.get("/", &[("Cookie", &forged)]).await;
    assert_eq!(seen(&r), anon_bad_sig);
    let r = caddy
        .get("/", &with_all_spoofed(&[("Cookie", forged.as_str())]))
        .await;
    assert_eq!(seen(&r), anon_bad_sig);
    let r = caddy
        .get("/", &[("Cookie", &format!("{TOKEN_COOKIE}=not.a.token"))])
        .await;
    assert_eq!(seen(&r), identity("anon", None, "bad_encoding"));
    // No token at all.
    let r = caddy.get("/", &with_all_spoofed(&[])).await;
    assert_eq!(seen(&r), identity("anon", None, "none"));

    // The Authorization: Bearer form, with a token for a session that is not stored.
    let bot = tessera.mint("bot:42", json!({})).await;
    let bot_sid = super::claims_of(&bot)["sid"].clone();
    let bearer = format!("Bearer {bot}");
    let r = caddy
        .get(
            "/api",
            &with_all_spoofed(&[("Authorization", bearer.as_str())]),
        )
        .await;
    assert_eq!(seen(&r), identity("bot:42", bot_sid.as_str(), "ok"));
    let forged_bearer = format!(
        "Bearer {}",
        with_claims(&bot, |c| c["sub"] = json!("admin"))
    );
    let r = caddy
        .get("/api", &[("Authorization", &forged_bearer)])
        .await;
    assert_eq!(seen(&r), anon_bad_sig);

    // The JWKS and the feed are served by Tessera through Caddy, not by the upstream.
    let hits = app.hits();
    let r = caddy.get("/.well-known/jwks.json", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let jwks: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], tessera.active_key().0, "{jwks}");
    let r = caddy.get("/v1/revocations?after=0", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"revocations\""), "{r:?}");
    assert_eq!(app.hits(), hits, "none of these reached the upstream");

    // "Log out everywhere": the same cookie is anonymous from now on.
    let (st, v) = tessera.delete("/v1/users/alice/sessions").await;
    assert_eq!(st, 200, "{v}");
    let r = caddy.get("/", &[("Cookie", &cookie)]).await;
    assert_eq!(seen(&r), identity("anon", None, "revoked"));

    // Tessera gone: Caddy fails closed, the upstream is not reached.
    tessera.kill();
    let hits = app.hits();
    let r = caddy.get("/", &[("Cookie", &cookie)]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(app.hits(), hits);
}

#[tokio::test]
async fn in_required_mode_caddy_answers_401_and_the_upstream_is_not_reached() {
    let mut tessera = Service::start("required").await;
    let app = Upstream::start().await;
    let caddy = Caddy::start(&tessera.addr, &app.addr).await;
    let (token, sid) = tessera.login("alice").await;
    let cookie = format!("{TOKEN_COOKIE}={token}");

    let forged = format!(
        "{TOKEN_COOKIE}={}",
        with_claims(&token, |c| c["sub"] = json!("admin"))
    );
    // Caddy passes the verifier's refusal on: status, challenge (RFC 6750 §3.1) and outcome.
    let invalid = r#"Bearer error="invalid_token""#;
    for (headers, challenge, status) in [
        (vec![("Cookie", forged.as_str())], invalid, "bad_signature"),
        (
            with_all_spoofed(&[("Cookie", forged.as_str())]),
            invalid,
            "bad_signature",
        ),
        (with_all_spoofed(&[]), "Bearer", "none"),
        (
            vec![("Authorization", "Bearer a.b.c")],
            invalid,
            "bad_encoding",
        ),
    ] {
        let r = caddy.get("/", &headers).await;
        assert_eq!(r.status, 401, "{headers:?}: {r:?}");
        assert_eq!(r.header("www-authenticate"), Some(challenge), "{r:?}");
        assert_eq!(r.header("x-tessera-token-status"), Some(status), "{r:?}");
    }
    assert_eq!(app.hits(), 0, "a refused request reached the upstream");

    let r = caddy
        .get("/", &with_all_spoofed(&[("Cookie", cookie.as_str())]))
        .await;
    assert_eq!(seen(&r), identity("alice", Some(&sid), "ok"));
    assert_eq!(app.hits(), 1);

    tessera.kill();
    let r = caddy.get("/", &[("Cookie", &cookie)]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(app.hits(), 1);
}
