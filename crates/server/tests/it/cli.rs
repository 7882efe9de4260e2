//! The `tessera keys …` and `tessera token …` commands, run as the real binary on a
//! temporary data directory.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::binary::tessera;

/// A data directory with an optional configuration file.
struct Env {
    dir: tempfile::TempDir,
    config: Option<PathBuf>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn output(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            config: None,
        }
    }

    /// With `[tokens]` keys (and anything after them).
    fn with_tokens(tokens: &str) -> Self {
        let mut env = Self::new();
        let path = env.dir.path().join("tessera.toml");
        std::fs::write(&path, format!("[tokens]\n{tokens}\n")).unwrap();
        env.config = Some(path);
        env
    }

    fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("tessera-data/keys")
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = tessera();
        c.args(args).current_dir(self.dir.path());
        if let Some(p) = &self.config {
            c.arg("--config").arg(p);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        output(self.command(args).stdin(Stdio::null()).output().unwrap())
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command may refuse before it reads its input (no keyring: exit 1) and be gone
        // before this write: a broken pipe is then its answer, not the test's failure.
        match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.unwrap(),
        }
        output(child.wait_with_output().unwrap())
    }

    fn keys(&self) -> Vec<Value> {
        self.run(&["keys", "list", "--json"]).ok().json()["keys"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn mint(&self, args: &[&str]) -> String {
        let mut all = vec!["token", "mint"];
        all.extend_from_slice(args);
        let r = self.run(&all).ok();
        r.stdout.trim().to_owned()
    }

    fn inspect(&self, token: &str) -> Run {
        self.run_with_stdin(&["token", "inspect", "--json"], token)
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn kids(keys: &[Value]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn keys_generate_list_rotate_and_jwks() {
    let env = Env::new();
    // No keyring yet: every command that needs one says how to make it.
    for args in [
        &["keys", "list"][..],
        &["keys", "rotate"],
        &["keys", "jwks"],
        &["token", "mint", "--sub", "a"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("no keyring in") && r.stderr.contains("tessera keys generate"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = env.run_with_stdin(&["token", "inspect"], "x.y.z");
    assert!(
        r.code == 1 && r.stderr.contains("no keyring in"),
        "{}",
        r.stderr
    );

    let r = env.run(&["keys", "generate"]).ok();
    assert!(
        r.stdout.contains("generated the keyring in"),
        "{}",
        r.stdout
    );
    assert_eq!(mode(&env.dir.path().join("tessera-data")), 0o700);
    assert_eq!(mode(&env.keys_dir()), 0o700);
    let keys = env.keys();
    assert_eq!(keys.len(), 1);
    let first = keys[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(keys[0]["algorithm"], "Ed25519");
    assert_eq!(keys[0]["signing"], true);
    assert_eq!(keys[0]["has_private_key"], true);
    assert!(keys[0]["valid_from"].as_i64().unwrap() > 1_700_000_000);
    assert!(keys[0]["valid_from_utc"].as_str().unwrap().ends_with('Z'));
    assert_eq!(mode(&env.keys_dir().join(format!("{first}.pk8"))), 0o600);

    // An existing keyring is never replaced by accident.
    let r = env.run(&["keys", "generate"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--overwrite"),
        "{}",
        r.stderr
    );
    assert_eq!(env.keys()[0]["kid"], first.as_str());

    // The human-readable list.
    let r = env.run(&["keys", "list"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("KID") && lines[0].contains("VALID FROM (UTC)"));
    assert!(
        lines[1].starts_with(&first)
            && lines[1].contains("Ed25519")
            && lines[1].contains("active")
            && lines[1].contains("signs now"),
        "{}",
        r.stdout
    );

    // The schedule has nothing to do; promoting needs a published next key first.
    let r = env.run(&["keys", "rotate"]).ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    let r = env.run(&["keys", "rotate", "--promote"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no next key to promote"), "{}", r.stderr);

    // A forced rotation publishes a next key a day ahead, and only one.
    let r = env.run(&["keys", "rotate", "--force"]).ok();
    assert!(r.stdout.contains("as next, signing from"), "{}", r.stdout);
    assert!(r.stdout.contains("picks this up within a minute"));
    let keys = env.keys();
    let (next, next_state) = kids(&keys)[0].clone();
    assert_eq!(next_state, "next");
    // A day ahead of now, and now is a moment after `generate`.
    let ahead = keys[0]["valid_from"].as_i64().unwrap() - keys[1]["valid_from"].as_i64().unwrap();
    assert!((86_400..86_400 + 60).contains(&ahead), "{ahead}");
    let r = env.run(&["keys", "rotate", "--force"]).ok();
    assert!(r.stdout.contains("already published"), "{}", r.stdout);
    assert_eq!(env.keys().len(), 2);

    // The JWKS shows both, newest first, as the service serves it.
    let r = env.run(&["keys", "jwks"]).ok();
    let jwks: Value = serde_json::from_str(&r.stdout).unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(published, [next.as_str(), first.as_str()]);
    assert!(
        !r.stdout.ends_with('\n'),
        "exact bytes when not on a terminal"
    );
    assert!(!r.stdout.contains("\"d\""));

    // A token signed before the promotion still verifies afterwards.
    let before = env.mint(&["--sub", "alice"]);
    let r = env.run(&["keys", "rotate", "--promote"]).ok();
    assert!(
        r.stdout.contains(&format!("promoted {next}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("retired {first}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("unknown_kid"),
        "the warning: {}",
        r.stderr
    );
    // (Listed newest first by valid_from; within one second the order is by kid.)
    let keys = env.keys();
    let mut states = kids(&keys);
    states.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        states,
        [
            (next.clone(), "active".into()),
            (first.clone(), "retired".into())
        ]
    );
    let retired = keys.iter().find(|k| k["kid"] == first.as_str()).unwrap();
    assert_eq!(retired["has_private_key"], false);
    assert!(!env.keys_dir().join(format!("{first}.pk8")).exists());
    assert_eq!(env.inspect(&before).ok().json()["kid"], first.as_str());
    let after = env.mint(&["--sub", "alice"]);
    assert_eq!(segment(&after, 0)["kid"], next.as_str());

    // Overwriting discards every key.
    let r = env.run(&["keys", "generate", "--overwrite"]).ok();
    assert!(r.stderr.contains("previous keys are gone"), "{}", r.stderr);
    let keys = env.keys();
    assert_eq!(keys.len(), 1);
    assert!(keys[0]["kid"] != next.as_str() && keys[0]["kid"] != first.as_str());
    assert!(!env.keys_dir().join(format!("{next}.pk8")).exists());
    let r = env.inspect(&after);
    assert_eq!(
        (r.code, r.json()["outcome"].as_str()),
        (3, Some("unknown_kid"))
    );
}

#[test]
fn the_configured_algorithm_and_header_names_are_used() {
    let env = Env::with_tokens("algorithm = \"ES256\"");
    env.run(&["keys", "generate"]).ok();
    assert_eq!(env.keys()[0]["algorithm"], "ES256");
    let token = env.mint(&["--sub", "a"]);
    assert_eq!(segment(&token, 0)["alg"], "ES256");
    env.inspect(&token).ok();

    let env = Env::with_tokens("algorithm = \"RS256\"\nrsa_bits = 2048");
    env.run(&["keys", "generate"]).ok();
    let jwks = env.run(&["keys", "jwks"]).ok().json();
    let n = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    assert_eq!(n.len() * 8, 2048);
    assert_eq!(jwks["keys"][0]["alg"], "RS256");

    let env = Env::with_tokens("ed25519_alg = \"Ed25519\"\ntyp = \"JWT\"");
    env.run(&["keys", "generate"]).ok();
    let token = env.mint(&["--sub", "a"]);
    assert_eq!(segment(&token, 0)["alg"], "Ed25519");
    assert_eq!(segment(&token, 0)["typ"], "JWT");
    let jwks = env.run(&["keys", "jwks"]).ok().json();
    assert_eq!(jwks["keys"][0]["alg"], "Ed25519");
    env.inspect(&token).ok();

    // Unknown algorithms are configuration errors, named as such.
    for (toml, field) in [
        ("algorithm = \"HS256\"", "tokens.algorithm"),
        ("algorithm = \"none\"", "tokens.algorithm"),
        ("ed25519_alg = \"ed25519\"", "tokens.ed25519_alg"),
    ] {
        let r = Env::with_tokens(toml).run(&["keys", "generate"]);
        assert_eq!(r.code, 1, "{toml}");
        assert!(r.stderr.contains(field), "{toml}: {}", r.stderr);
    }
    let r = output(
        Env::new()
            .command(&["keys", "generate"])
            .env("TESSERA_TOKEN_ALGORITHM", "PS256")
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert!(
        r.code == 1 && r.stderr.contains("TESSERA_TOKEN_ALGORITHM"),
        "{}",
        r.stderr
    );
}

#[test]
fn token_mint_and_inspect() {
    let env = Env::new();
    env.run(&["keys", "generate"]).ok();
    let token = env.mint(&[
        "--sub", "alice", "--claim", "rlc=bot", "--claim", "level:=3", "--claim", "note=a=b",
        "--ttl", "30m",
    ]);
    let claims = segment(&token, 1);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], "tessera");
    assert_eq!(
        (claims["rlc"].as_str(), claims["level"].as_i64()),
        (Some("bot"), Some(3))
    );
    assert_eq!(claims["note"], "a=b");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 1800);
    assert_eq!(
        claims["sxp"].as_i64().unwrap() - iat,
        1800,
        "sxp within ttl"
    );
    assert!(claims["sid"].as_str().unwrap().len() >= 22);

    // A valid token: exit 0, header, claims, code.
    let r = env
        .run_with_stdin(&["token", "inspect"], &format!("{token}\n"))
        .ok();
    assert!(
        r.stdout.starts_with("valid: ok (signed by "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\"sub\": \"alice\""), "{}", r.stdout);
    assert!(!r.stdout.contains("UNVERIFIED"), "{}", r.stdout);
    let j = env.inspect(&token).ok().json();
    assert_eq!(
        (j["valid"].as_bool(), j["outcome"].as_str()),
        (Some(true), Some("ok"))
    );
    assert_eq!(j["claims"], claims);
    assert_eq!(j["header"]["typ"], "session+jwt");
    assert_eq!(j["revocations_checked"], false);
    // `-` names standard input.
    env.run_with_stdin(&["token", "inspect", "-"], &token).ok();
    env.run_with_stdin(&["token", "inspect"], &format!("{token}\r\n"))
        .ok();
    // One line ending is the line's; other whitespace and quotes are the value's, refused
    // as /v1/verify refuses them (issue 16 item 6), never trimmed into a valid token.
    for spelled in [
        format!(" {token}"),
        format!("{token} "),
        format!("{token}\n\n"),
        format!("\t{token}\n"),
        format!("\"{token}\""),
    ] {
        let r = env.inspect(&spelled);
        assert_eq!(
            (r.code, r.json()["outcome"].as_str()),
            (3, Some("bad_encoding")),
            "{spelled:?}"
        );
    }

    // A bad signature: exit 3, and the decoded parts shown, marked unverified.
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 1;
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
    let r = env.run_with_stdin(&["token", "inspect"], &forged);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("REFUSED: bad_signature"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("claims (UNVERIFIED: do not trust):")
            && r.stdout.contains("\"sub\": \"alice\""),
        "{}",
        r.stdout
    );
    let j = env.inspect(&forged).json();
    assert_eq!(
        (j["valid"].as_bool(), j["outcome"].as_str()),
        (Some(false), Some("bad_signature"))
    );
    assert_eq!(j["claims"]["sub"], "alice");

    // Garbage: exit 3, nothing decodable.
    let r = env.inspect("not a token");
    assert_eq!(r.code, 3);
    let j = r.json();
    assert_eq!(j["outcome"], "bad_encoding");
    assert!(j["header"].is_null() && j["claims"].is_null());
    let r = env.run_with_stdin(&["token", "inspect"], "a.b");
    assert!(
        r.code == 3 && r.stdout.contains("header: not decodable"),
        "{}",
        r.stdout
    );

    // Another issuer's configuration refuses it: wrong_issuer.
    let other = Env::with_tokens("issuer = \"https://elsewhere.example\"");
    std::fs::create_dir_all(other.dir.path().join("tessera-data")).unwrap();
    copy_dir(&env.keys_dir(), &other.keys_dir());
    let r = other.inspect(&token);
    assert_eq!(
        (r.code, r.json()["outcome"].as_str()),
        (3, Some("wrong_issuer"))
    );
    // Another keyring does not know its key.
    let stranger = Env::new();
    stranger.run(&["keys", "generate"]).ok();
    let r = stranger.inspect(&token);
    assert_eq!(
        (r.code, r.json()["outcome"].as_str()),
        (3, Some("unknown_kid"))
    );

    // Empty or oversized standard input is an error, not a verdict.
    let r = env.run_with_stdin(&["token", "inspect"], "  \n");
    assert!(
        r.code == 1 && r.stderr.contains("no token on standard input"),
        "{}",
        r.stderr
    );
    let r = env.run_with_stdin(&["token", "inspect"], &"a".repeat(20_000));
    assert!(
        r.code == 1 && r.stderr.contains("more than"),
        "{}",
        r.stderr
    );

    // Bad mint input.
    for (args, want) in [
        (
            &["--sub", "a", "--claim", "exp:=1"][..],
            "set by the token itself",
        ),
        (&["--sub", "a", "--ttl", "5h"], "--ttl must be between"),
        (&["--sub", ""], "the subject must be"),
    ] {
        let mut all = vec!["token", "mint"];
        all.extend_from_slice(args);
        let r = env.run(&all);
        assert!(
            r.code == 1 && r.stderr.contains(want),
            "{args:?}: {}",
            r.stderr
        );
    }
    for args in [
        &["token", "mint"][..],
        &["token", "mint", "--sub", "a", "--claim", "novalue"],
        &["token", "mint", "--sub", "a", "--claim", "x:=notjson"],
        &["token", "mint", "--sub", "a", "--user", "b"],
        &["token", "mint", "--sub", "a", "--ttl", "soon"],
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
}

#[test]
fn a_token_is_never_taken_as_an_argument() {
    let env = Env::new();
    env.run(&["keys", "generate"]).ok();
    let token = env.mint(&["--sub", "alice"]);
    let r = env.run(&["token", "inspect", &token]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not accepted as an argument") && r.stderr.contains("standard input"),
        "{}",
        r.stderr
    );
    // Not echoed back, not inspected.
    assert!(!r.stderr.contains(&token) && !r.stdout.contains(&token));
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let r = env.run(&["token", "inspect", "--token", &token]);
    assert_eq!(r.code, 2);
    assert!(
        !r.stderr.contains(&token) && !r.stdout.contains(&token),
        "{}",
        r.stderr
    );
}

#[test]
fn mint_writes_the_subject_like_session_tokens_with_the_mediawiki_profile() {
    let env = Env::with_tokens(
        "profile = \"mediawiki\"\nissuer = \"https://meta.wikimedia.org\"\nrsa_bits = 2048",
    );
    let r = env.run(&["config", "check"]).ok();
    assert!(
        r.stdout.contains("RS256 keys") && r.stdout.contains("profile mediawiki"),
        "{}",
        r.stdout
    );
    env.run(&["keys", "generate"]).ok();
    assert_eq!(env.keys()[0]["algorithm"], "RS256");
    let token = env.mint(&["--user", "123"]);
    let header = segment(&token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    let claims = segment(&token, 1);
    assert_eq!(claims["sub"], "mw:CentralAuth::123");
    assert_eq!(claims["iss"], "https://meta.wikimedia.org");
    assert_eq!(claims["rlc"], "authed-user");
    let token = env.mint(&["--sub", "mw:CentralAuth::7", "--claim", "rlc=approved-bot"]);
    assert_eq!(segment(&token, 1)["rlc"], "approved-bot");
    env.inspect(&token).ok();

    // The profile refuses the default issuer.
    let r = Env::with_tokens("profile = \"mediawiki\"").run(&["config", "check"]);
    assert!(
        r.code == 1 && r.stderr.contains("tokens.issuer") && r.stderr.contains("mediawiki"),
        "{}",
        r.stderr
    );
}

/// The JWKS `keys jwks` prints is byte for byte what a running service serves.
#[test]
fn keys_jwks_is_what_the_service_serves() {
    let env = Env::with_tokens("ed25519_alg = \"Ed25519\"");
    env.run(&["keys", "generate"]).ok();
    env.run(&["keys", "rotate", "--force"]).ok();
    let printed = env.run(&["keys", "jwks"]).ok().stdout;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = env
        .command(&["serve"])
        .env("TESSERA_LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA_STORE", "memory:")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut served = None;
    for _ in 0..200 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.write_all(
                b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            let mut response = String::new();
            s.read_to_string(&mut response).unwrap();
            served = Some(response);
            break;
        }
        // A plain test waiting for a child process: nothing async to block.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    let response = served.expect("the service did not start");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, printed);
    assert!(printed.contains("\"alg\":\"Ed25519\""), "{printed}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        std::fs::copy(e.path(), &dest).unwrap();
    }
}

/// The configuration block of docs/configuration.md is a valid configuration (so it cannot
/// drift from the keys `tessera config check` knows).
#[test]
fn the_documented_configuration_block_is_valid() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .unwrap();
    let section = &doc[doc.find("## A configuration file").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &section[start..start + section[start..].find("```").unwrap()];
    assert!(
        block.contains("[tokens]") && block.contains("publish_ahead"),
        "{block}"
    );
    let c = tessera_server::config::Config::from_toml(block, |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.tokens, tessera_server::config::TokensConfig::default());
}

/// One claim rule: whatever `POST /v1/tokens` refuses, `tessera token mint` refuses with the
/// same message (reserved names, bad names, size, depth, the subject), and what one accepts
/// the other accepts.
#[tokio::test]
async fn token_mint_refuses_what_the_api_refuses() {
    use serde_json::json;

    let s = crate::common::TestServer::memory_with(crate::common::token_settings(false)).await;
    let env = Env::new();
    env.run(&["keys", "generate"]).ok();
    let deep = (0..=tessera_token::MAX_CLAIM_DEPTH).fold(json!(1), |v, _| json!([v]));
    let mint = |sub: &str, claims: &Value| {
        let mut args = vec![
            "token".to_owned(),
            "mint".to_owned(),
            "--sub".to_owned(),
            sub.to_owned(),
        ];
        for (k, v) in claims.as_object().unwrap() {
            args.push("--claim".to_owned());
            args.push(format!("{k}:={v}"));
        }
        env.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let refused = [
        ("alice", json!({"exp": 1})),
        ("alice", json!({"typ": "JWT"})),
        ("alice", json!({"kid": "k"})),
        (
            "alice",
            json!({"big": "x".repeat(tessera_token::MAX_CLAIMS_BYTES)}),
        ),
        ("alice", json!({"deep": deep})),
        ("alice", json!({"bell\u{7}": 1})),
        ("alice", json!({ "x".repeat(257): 1 })),
        ("", json!({})),
        ("a\nb", json!({})),
    ];
    for (sub, claims) in &refused {
        let (st, v) = s
            .post("/v1/tokens", json!({"sub": sub, "claims": claims}))
            .await;
        assert_eq!(
            st,
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "{claims}: {v}"
        );
        let detail = v["detail"].as_str().unwrap();
        let r = mint(sub, claims);
        assert!(
            r.code == 1 && r.stderr.contains(detail),
            "{sub:?} {claims}: the API says {detail:?}, mint: {} {}",
            r.code,
            r.stderr
        );
    }
    let accepted = json!({"rlc": "bot", "nested": [[1]], "fits": "x".repeat(900)});
    let (st, v) = s
        .post("/v1/tokens", json!({"sub": "bot:1", "claims": accepted}))
        .await;
    assert_eq!(st, reqwest::StatusCode::OK, "{v}");
    mint("bot:1", &accepted).ok();
}
