//! Debian's nginx with `auth_request` to `GET /v1/verify`, in front of an upstream that
//! echoes the headers it receives. The nginx configuration is docs/edge.md's "Behind nginx"
//! block, read from docs/edge.md and run as written except for the addresses and the
//! certificate, so the documentation cannot drift from what is tested.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    Reply, Service, TOKEN_COOKIE, Upstream, edge_doc_block, free_port, https_get, identity, path,
    replace_exactly, self_signed, with_claims, with_spoofed,
};

/// The nginx binary: `TESSERA_NGINX` (scripts/test sets it), else `nginx` on `PATH`, else
/// Debian's `/usr/sbin/nginx`. Fails the test unless it has the auth_request module.
fn nginx_binary() -> PathBuf {
    let found = std::env::var_os("TESSERA_NGINX")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join("nginx"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
    let out = std::process::Command::new(&found)
        .arg("-V")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run nginx ({}: {e}): run ./scripts/test, which installs Debian's nginx",
                found.display()
            )
        });
    let v = String::from_utf8_lossy(&out.stderr);
    assert!(
        v.contains("--with-http_auth_request_module"),
        "{} has no auth_request module: {v}",
        found.display()
    );
    found
}

/// docs/edge.md's nginx configuration (the `nginx` code block of "Behind nginx").
fn readme_config() -> String {
    edge_doc_block("Behind nginx", "nginx")
}

/// nginx in the foreground (`daemon off`, one process: `master_process off`, so killing
/// the child stops all of it), everything it writes in a temporary directory, serving the
/// docs/edge.md's configuration over TLS with a fresh self-signed certificate.
pub(crate) struct Nginx {
    port: u16,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// docs/edge.md's configuration, for Tessera on `tessera` and the application on `app`.
    async fn start(tessera: &str, app: &str) -> Self {
        let (tessera, app) = (tessera.to_owned(), app.to_owned());
        Self::start_site(move |port, crt, key| {
            let mut site = readme_config();
            for (from, to) in [
                ("server 127.0.0.1:7300;", format!("server {tessera};")),
                ("server 127.0.0.1:8080;", format!("server {app};")),
                ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
                ("/etc/nginx/tls/example.org.crt", crt.to_owned()),
                ("/etc/nginx/tls/example.org.key", key.to_owned()),
            ] {
                site = replace_exactly(&site, from, &to, 1, "nginx");
            }
            site
        })
        .await
    }

    /// nginx serving the `http {}` contents `site(port, certificate, key)` gives.
    pub(crate) async fn start_site(site: impl Fn(u16, &str, &str) -> String) -> Self {
        let bin = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (crt, key) = self_signed(d).await;
        // A free port can be taken between the check and nginx's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            let site = site(port, &path(&crt), &path(&key));
            let t = path(d);
            let conf = format!(
                "daemon off;\nmaster_process off;\npid {t}/nginx.pid;\nerror_log {t}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                 access_log {t}/access.log;\n\
                 client_body_temp_path {t}/client_body;\nproxy_temp_path {t}/proxy;\n\
                 fastcgi_temp_path {t}/fastcgi;\nuwsgi_temp_path {t}/uwsgi;\nscgi_temp_path {t}/scgi;\n\
                 {site}\n}}\n"
            );
            std::fs::write(d.join("nginx.conf"), conf).unwrap();
            let mut child = std::process::Command::new(&bin)
                .arg("-p")
                .arg(d)
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-e")
                .arg(d.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("stderr.txt")).unwrap())
                .spawn()
                .unwrap();
            for _ in 0..500 {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
                        + &std::fs::read_to_string(d.join("stderr.txt")).unwrap_or_default();
                    assert!(
                        log.contains("Address already in use"),
                        "nginx exited ({status}):\n{log}"
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
        panic!("nginx did not start");
    }

    /// `GET path` through nginx over TLS (curl), with `headers` sent as given.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        https_get(&format!("https://127.0.0.1:{}{path}", self.port), headers).await
    }

    /// The port nginx listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn nginx_passes_the_subject_for_a_valid_token_and_no_identity_for_a_forged_one() {
    let mut tessera =
        Service::start_with("[verify]\nmode = \"optional\"\nrefresh = \"0s\"\n").await;
    let app = Upstream::start().await;
    let nginx = Nginx::start(&tessera.addr, &app.addr).await;

    let (token, sid) = tessera.login("alice").await;
    let cookie = format!("{TOKEN_COOKIE}={token}");
    let alice = identity("alice", Some(&sid), "ok");

    // A valid token cookie: the upstream sees the user, also when the client sends
    // identity headers of its own.
    let r = nginx.get("/wiki/Main_Page", &[("Cookie", &cookie)]).await;
    assert_eq!(r.upstream_identity(), alice, "{}", nginx.error_log());
    let r = nginx
        .get("/", &with_spoofed(&[("Cookie", cookie.as_str())]))
        .await;
    assert_eq!(r.upstream_identity(), alice);

    // Forged (claims changed under the signature) and garbage tokens: anonymous, no session,
    // and the client's headers do not get through either.
    let forged = format!(
        "{TOKEN_COOKIE}={}",
        with_claims(&token, |c| c["sub"] = json!("admin"))
    );
    let anon_bad_sig = identity("anon", None, "bad_signature");
    let r = nginx.get("/", &[("Cookie", &forged)]).await;
    assert_eq!(r.upstream_identity(), anon_bad_sig);
    let r = nginx
        .get("/", &with_spoofed(&[("Cookie", forged.as_str())]))
        .await;
    assert_eq!(r.upstream_identity(), anon_bad_sig);
    let r = nginx
        .get("/", &[("Cookie", &format!("{TOKEN_COOKIE}=not.a.token"))])
        .await;
    assert_eq!(
        r.upstream_identity(),
        identity("anon", None, "bad_encoding")
    );
    // No token at all.
    let r = nginx.get("/", &with_spoofed(&[])).await;
    assert_eq!(r.upstream_identity(), identity("anon", None, "none"));

    // The Authorization: Bearer form, with a token for a session that is not stored.
    let bot = tessera.mint("bot:42", json!({})).await;
    let bot_sid = super::claims_of(&bot)["sid"].clone();
    let bearer = format!("Bearer {bot}");
    let r = nginx
        .get("/api", &with_spoofed(&[("Authorization", bearer.as_str())]))
        .await;
    assert_eq!(
        r.upstream_identity(),
        identity("bot:42", bot_sid.as_str(), "ok")
    );
    let forged_bearer = format!(
        "Bearer {}",
        with_claims(&bot, |c| c["sub"] = json!("admin"))
    );
    let r = nginx
        .get("/api", &[("Authorization", &forged_bearer)])
        .await;
    assert_eq!(r.upstream_identity(), anon_bad_sig);

    // The check's location is internal; the JWKS and the feed are served through nginx.
    let hits = app.hits();
    let r = nginx.get("/_tessera_verify", &[("Cookie", &cookie)]).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = nginx.get("/.well-known/jwks.json", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let jwks: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], tessera.active_key().0, "{jwks}");
    let r = nginx.get("/v1/revocations?after=0", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(app.hits(), hits, "none of these reached the upstream");

    // "Log out everywhere": the same cookie is anonymous from now on.
    let (st, v) = tessera.delete("/v1/users/alice/sessions").await;
    assert_eq!(st, 200, "{v}");
    let r = nginx.get("/", &[("Cookie", &cookie)]).await;
    assert_eq!(r.upstream_identity(), identity("anon", None, "revoked"));

    // Tessera gone: nginx fails closed, the upstream is not reached.
    tessera.kill();
    let hits = app.hits();
    let r = nginx.get("/", &[("Cookie", &cookie)]).await;
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(app.hits(), hits);
}

#[tokio::test]
async fn in_required_mode_nginx_answers_401_and_the_upstream_is_not_reached() {
    let mut tessera = Service::start("required").await;
    let app = Upstream::start().await;
    let nginx = Nginx::start(&tessera.addr, &app.addr).await;
    let (token, sid) = tessera.login("alice").await;
    let cookie = format!("{TOKEN_COOKIE}={token}");

    let forged = format!(
        "{TOKEN_COOKIE}={}",
        with_claims(&token, |c| c["sub"] = json!("admin"))
    );
    // RFC 6750 §3.1: `error="invalid_token"` when a token was sent, a bare challenge when
    // none was; nginx passes the verifier's challenge on.
    let invalid = Some(r#"Bearer error="invalid_token""#);
    for (headers, challenge) in [
        (vec![("Cookie", forged.as_str())], invalid),
        (with_spoofed(&[("Cookie", forged.as_str())]), invalid),
        (with_spoofed(&[]), Some("Bearer")),
        (vec![("Authorization", "Bearer a.b.c")], invalid),
    ] {
        let r = nginx.get("/", &headers).await;
        assert_eq!(r.status, 401, "{headers:?}: {r:?}");
        assert_eq!(r.header("www-authenticate"), challenge, "{r:?}");
    }
    assert_eq!(app.hits(), 0, "a refused request reached the upstream");

    let r = nginx
        .get("/", &with_spoofed(&[("Cookie", cookie.as_str())]))
        .await;
    assert_eq!(r.upstream_identity(), identity("alice", Some(&sid), "ok"));
    assert_eq!(app.hits(), 1);

    tessera.kill();
    let r = nginx.get("/", &[("Cookie", &cookie)]).await;
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(app.hits(), 1);
}
