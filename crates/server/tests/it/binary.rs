//! The `tessera` binary: first run, and `config check`.

use std::process::Command;

fn tessera() -> Command {
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
