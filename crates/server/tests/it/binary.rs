//! The `tessera` binary: first run, and `config check`.

use std::process::Command;

pub(crate) fn tessera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn config_check_accepts_defaults_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera()
        .args(["config", "check"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("127.0.0.1:7300"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[session]\nidle_timeout = \"forever\"\n").unwrap();
    let out = tessera()
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("session.idle_timeout"), "{stderr}");

    std::fs::write(&bad, "[sesion]\n").unwrap();
    let out = tessera()
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("unknown field"),
        "{stderr}"
    );

    let out = tessera()
        .args(["config", "check"])
        .env("TESSERA_LISTEN", "nowhere")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("TESSERA_LISTEN"),
        "{stderr}"
    );
}

#[test]
fn first_run_generates_private_keys_in_the_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Port 1 cannot be bound by... root can. Use an address that is never local instead,
    // so the server prepares everything and then fails to bind.
    let out = tessera()
        .arg("serve")
        .env("TESSERA_LISTEN", "192.0.2.1:7300")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot listen on 192.0.2.1:7300"),
        "{stderr}"
    );
    let data = dir.path().join("tessera-data");
    for f in ["api-key", "csrf.key", "sessions.redb"] {
        let meta = std::fs::metadata(data.join(f)).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o077,
            0,
            "{f} is readable by others"
        );
    }
    // The sealing keys of anonymous cookies and secrets, beside the token keys.
    let keys = data.join("keys");
    assert!(keys.join("seal.json").exists());
    let seal_files: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seal"))
        .collect();
    assert_eq!(seal_files.len(), 1, "{seal_files:?}");
    for f in seal_files.iter().chain([&keys]) {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is readable by others", f.display());
    }
    // A key file others can read is refused.
    std::fs::set_permissions(
        data.join("csrf.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = tessera()
        .arg("serve")
        .env("TESSERA_LISTEN", "192.0.2.1:7300")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

/// The README's curl walkthrough, run as written against the real binary (on a free port),
/// so the README cannot drift from the service.
#[test]
fn readme_curl_walkthrough_runs_as_written() {
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "curl is needed for this test; scripts/test installs it"
    );
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("K=$(cat tessera-data/api-key)")
        .expect("walkthrough block");
    let end = start + readme[start..].find("```").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = readme[start..end].replace("127.0.0.1:7300", &format!("127.0.0.1:{port}"));

    let dir = tempfile::tempdir().unwrap();
    let mut server = tessera()
        .arg("serve")
        .env("TESSERA_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        // A plain test waiting for a child process: nothing async to block.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(up, "the service did not start");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines.len(), 13, "{stdout}");
    assert!(lines[0].contains("\"status\":\"none\""), "{}", lines[0]);
    assert!(
        lines[1].contains("\"status\":\"created\"")
            && lines[1].contains("\"storage\":\"cookie\"")
            && lines[1].contains("__Host-tessera-anon=1."),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2], "0",
        "no store operation for the anonymous session"
    );
    assert!(
        lines[3].contains("\"status\":\"logged_in\"")
            && lines[3].contains("__Host-tessera-token=")
            && lines[3].contains("\"return_to\":\"/wiki/Main\"")
            && lines[3].contains("__Host-tessera-anon=; Path=/; Max-Age=0"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4].trim_end(), "x-tessera-subject: alice");
    assert!(lines[5].starts_with("x-tessera-session: "), "{}", lines[5]);
    assert_eq!(lines[6].trim_end(), "x-tessera-token-status: ok");
    assert!(lines[7].contains("\"theme\":\"dark\""), "{}", lines[7]);
    assert!(
        lines[8].contains("\"status\":\"loaded\"") && lines[8].contains("\"token_status\":\"ok\""),
        "{}",
        lines[8]
    );
    assert_eq!(lines[9], "{\"valid\":true}");
    assert!(
        lines[10].contains("\"status\":\"logged_out\"") && lines[10].contains("Max-Age=0"),
        "{}",
        lines[10]
    );
    assert!(lines[11].contains("\"sessions\":[{"), "{}", lines[11]);
    assert!(lines[12].starts_with("{\"revoked\":1,"), "{}", lines[12]);
}

/// `config check` shows networked store URLs with their passwords hidden.
#[test]
fn config_check_hides_store_passwords() {
    let out = tessera()
        .args(["config", "check"])
        .env("TESSERA_STORE", "postgres://app:hunter2@db:5432/sessions")
        .env(
            "TESSERA_ANON_STORE",
            "redis+cluster://:hunter2@10.0.0.1:7000,10.0.0.2:7000",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("postgres://app:***@db:5432/sessions"),
        "{stdout}"
    );
    assert!(
        stdout.contains("redis+cluster://:***@10.0.0.1:7000,10.0.0.2:7000"),
        "{stdout}"
    );
}

/// `config check --print`: every setting in effect, with where its value came from, and no
/// secret (API keys, passwords in URLs).
#[test]
fn config_check_print_shows_every_setting_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "api_keys = [\"file-s3cret-file-s3cret-file-s3cret-1\"]\n[kask]\nttl = \"2h\"\n\
         [session]\nidle_timeout = \"1h\"\n",
    )
    .unwrap();
    let out = tessera()
        .args(["config", "check", "--print", "--config"])
        .arg(&file)
        .env("TESSERA_LISTEN", "127.0.0.1:9000")
        .env("TESSERA_IDLE_TIMEOUT", "45m")
        .env("TESSERA_STORE", "postgres://app:hunter2@db:5432/sessions")
        .env("TESSERA_API_KEY", "env-s3cret-env-s3cret-env-s3cret-env-1")
        .env(
            "TESSERA_VERIFY_JWKS",
            "https://u:hunter2@idp.example/jwks.json",
        )
        .env("TESSERA_VERIFY_REVOCATIONS", "none")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("s3cret") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
    let row = |key: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in\n{stdout}"));
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    let shown = |key: &str| row(key).join(" ");
    assert_eq!(
        shown("listen"),
        "127.0.0.1:9000 environment (TESSERA_LISTEN)"
    );
    assert_eq!(shown("kask.ttl"), "2h file");
    assert_eq!(
        shown("session.idle_timeout"),
        "45m environment (TESSERA_IDLE_TIMEOUT)"
    );
    assert_eq!(shown("store.timeout"), "1s default");
    assert_eq!(
        shown("store.url"),
        "postgres://app:***@db:5432/sessions environment (TESSERA_STORE)"
    );
    assert_eq!(
        shown("api_keys"),
        "*** (2 keys) environment (TESSERA_API_KEY)"
    );
    assert_eq!(
        shown("verify.jwks"),
        "https://u:***@idp.example/jwks.json environment (TESSERA_VERIFY_JWKS)"
    );
    // Every setting of the table, once.
    for s in tessera_server::config::SETTINGS {
        let n = stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(s.key))
            .count();
        assert_eq!(n, 1, "{} in\n{stdout}", s.key);
    }
}

/// The rows of the markdown table under `heading` in `doc`: the cells, backticks removed.
fn table_rows(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let section = &doc[doc.find(heading).unwrap_or_else(|| panic!("no {heading}"))..];
    let section = &section[heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

/// docs/configuration.md lists exactly the settings the parser reads (its table of settings,
/// checked against the file schema by the unit tests), with their variables, types and
/// defaults, and exactly the variables without a file key; its configuration block is valid
/// and all defaults.
#[test]
fn docs_configuration_lists_exactly_the_settings_of_the_parser() {
    use std::collections::BTreeMap;
    use tessera_server::config::settings::ENV_ONLY;
    use tessera_server::config::{Config, SETTINGS};
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .unwrap();
    let documented: BTreeMap<String, Vec<String>> = table_rows(&doc, "## Every setting")
        .into_iter()
        .map(|r| (r[0].clone(), r[1..4].to_vec()))
        .collect();
    let parsed: BTreeMap<String, Vec<String>> = SETTINGS
        .iter()
        .map(|s| {
            (
                s.key.to_owned(),
                vec![
                    s.env.to_owned(),
                    s.kind.name().to_owned(),
                    s.default.to_owned(),
                ],
            )
        })
        .collect();
    let missing: Vec<_> = parsed
        .keys()
        .filter(|k| !documented.contains_key(*k))
        .collect();
    let unknown: Vec<_> = documented
        .keys()
        .filter(|k| !parsed.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "not in docs/configuration.md: {missing:?}; not a setting: {unknown:?}"
    );
    assert_eq!(documented, parsed, "variable, type or default differ");

    let env_only: Vec<String> = table_rows(&doc, "## Variables without a file key")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(env_only, ENV_ONLY);

    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    let c = Config::from_toml(block, |_| None).unwrap_or_else(|e| panic!("{e}"));
    let defaults = Config::from_toml("", |_| None).unwrap();
    for (e, d) in c.effective().iter().zip(defaults.effective()) {
        if e.setting.key != "api_key_file" {
            assert_eq!(
                e.value, d.value,
                "{} in the block is not the default",
                e.setting.key
            );
        }
    }
}

/// `tessera --version`: the version and the commit it was built from (`unknown` without git).
#[test]
fn version_prints_the_version_and_the_commit() {
    let out = tessera().arg("--version").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let want = format!("tessera {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = stdout
        .trim_end()
        .strip_prefix(&want)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{stdout:?} is not {want}<commit>)"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit:?}"
    );
    // In a git checkout (CI's clone, a developer's tree) it is a real commit of it.
    let git = Command::new("git")
        .args(["cat-file", "-t", commit])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(git) = git
        && Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .is_ok_and(|o| o.status.success())
    {
        assert_eq!(
            String::from_utf8_lossy(&git.stdout).trim(),
            "commit",
            "{commit}"
        );
    }
}
