//! A throwaway PostgreSQL cluster for tests.
//!
//! [`PostgresServer::shared`] gives every test of a process one server: the one named by
//! `TESSERA_TEST_POSTGRES_URL` if that is set, otherwise a fresh cluster made with `initdb`
//! in a temporary directory and started with `pg_ctl` on a free loopback port (Unix socket
//! in the same directory, `fsync=off`). As root, which `initdb` refuses, both run as the
//! `postgres` user through `runuser`. The binaries are looked up in
//! `/usr/lib/postgresql/<version>/bin` (Debian's layout), then on `PATH`.
//!
//! Each test process works in a schema of its own ([`PostgresServer::fresh_schema_url`]), so
//! a shared external server is not cluttered with tables in `public` and processes do not see
//! each other's migrations.
//!
//! A [`Watchdog`] runs `pg_ctl stop -m immediate` and removes the directory when the test
//! process ends, however it ends.
//!
//! If `initdb` cannot be found and `TESSERA_TEST_POSTGRES_URL` is not set, the helpers panic
//! with a message naming the Debian package (`postgresql`), rather than let a test pass
//! untested.

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::OnceCell;

use crate::process::{Watchdog, free_port, path_dirs, run, signal, temp_dir};

/// The environment variable naming an existing server to test against instead.
pub const URL_ENV: &str = "TESSERA_TEST_POSTGRES_URL";

const ATTEMPTS: usize = 5;

/// A PostgreSQL server for tests.
pub struct PostgresServer {
    url: String,
    /// How to stop and start it again: `None` for a server named by [`URL_ENV`].
    ctl: Option<Control>,
    _guard: Option<Watchdog>,
}

/// What [`PostgresServer::stop`] and [`PostgresServer::start_again`] need.
struct Control {
    bin: PathBuf,
    as_root: bool,
    dir: PathBuf,
    data: PathBuf,
    options: String,
}

impl Control {
    fn pg(&self, tool: &str) -> Command {
        let mut c = pg_command(&self.bin, self.as_root, tool);
        c.current_dir(&self.dir);
        c
    }

    /// `pg_ctl start` with the server's options; whether it started.
    async fn start(&self) -> std::process::Output {
        let mut start = self.pg("pg_ctl");
        start
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "-o"])
            .arg(&self.options)
            .arg("start")
            .stdin(Stdio::null());
        tokio::process::Command::from(start)
            .output()
            .await
            .expect("run pg_ctl")
    }
}

/// `tool` of the PostgreSQL binaries in `bin`, as the `postgres` user when we are root.
fn pg_command(bin: &std::path::Path, as_root: bool, tool: &str) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

impl fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A server named by URL_ENV may have a password in its URL: only ours are shown.
        let mut d = f.debug_struct("PostgresServer");
        match &self.ctl {
            Some(_) => d.field("url", &self.url),
            None => d.field("url", &URL_ENV),
        };
        d.finish_non_exhaustive()
    }
}

impl PostgresServer {
    /// The server this test process shares: `TESSERA_TEST_POSTGRES_URL`, or a cluster started
    /// on first use.
    pub async fn shared() -> &'static Self {
        static SHARED: OnceCell<PostgresServer> = OnceCell::const_new();
        SHARED
            .get_or_init(|| async {
                match std::env::var(URL_ENV) {
                    Ok(url) if !url.is_empty() => Self {
                        url,
                        ctl: None,
                        _guard: None,
                    },
                    _ => Self::start().await,
                }
            })
            .await
    }

    /// A URL in a schema that only this test process uses, on the shared server. The same
    /// URL every time within a process.
    pub async fn shared_schema_url() -> &'static str {
        static URL: OnceCell<String> = OnceCell::const_new();
        URL.get_or_init(|| async { Self::shared().await.fresh_schema_url().await })
            .await
    }

    /// A new cluster of its own, stopped when dropped.
    ///
    /// # Panics
    ///
    /// If the PostgreSQL binaries are missing or the cluster does not start.
    pub async fn start() -> Self {
        let bin = find_bin_dir();
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let dir = temp_dir("postgres");
            if as_root {
                run(Command::new("chown").arg("postgres:").arg(&dir)).await;
            }
            let data = dir.join("data");
            let mut initdb = pg_command(&bin, as_root, "initdb");
            run(initdb
                .current_dir(&dir)
                .arg("-D")
                .arg(&data)
                .args(["-A", "trust", "-U", "postgres", "--no-sync"])
                .args(["-E", "UTF8", "--locale=C"]))
            .await;
            let port = free_port();
            let stop = format!(
                "{} -D '{}' -m immediate -w stop >/dev/null 2>&1",
                if as_root {
                    format!("runuser -u postgres -- '{}'", bin.join("pg_ctl").display())
                } else {
                    format!("'{}'", bin.join("pg_ctl").display())
                },
                data.display()
            );
            let guard = Watchdog::spawn(&stop, &dir);
            let ctl = Control {
                bin: bin.clone(),
                as_root,
                dir: dir.clone(),
                data: data.clone(),
                options: format!(
                    "-p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off \
                     -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                    dir.display()
                ),
            };
            let out = ctl.start().await;
            if out.status.success() {
                return Self {
                    url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                    ctl: Some(ctl),
                    _guard: Some(guard),
                };
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start after {ATTEMPTS} attempts: {last}");
    }

    /// The server's URL (database `postgres`, user `postgres`, no password).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn ctl(&self) -> &Control {
        self.ctl
            .as_ref()
            .expect("only a server these helpers started can be stopped or frozen")
    }

    /// The postmaster's process id and those of its children (the backends and workers).
    fn pids(&self) -> Vec<String> {
        let pidfile = std::fs::read_to_string(self.ctl().data.join("postmaster.pid"))
            .expect("read postmaster.pid");
        let postmaster = pidfile.lines().next().unwrap_or_default().trim().to_owned();
        let children = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .expect("run pgrep");
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        pids
    }

    /// Freezes the server (`SIGSTOP` to the postmaster, then to its backends): connections
    /// stay open, nothing answers ("hanging").
    ///
    /// # Panics
    ///
    /// On a server named by [`URL_ENV`].
    pub fn pause(&self) {
        signal("-STOP", self.pids());
    }

    /// Thaws a server frozen by [`PostgresServer::pause`] (`SIGCONT`).
    pub fn resume(&self) {
        signal("-CONT", self.pids());
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`, "down"); its data stays, for
    /// [`PostgresServer::start_again`].
    pub async fn stop(&self) {
        let mut stop = self.ctl().pg("pg_ctl");
        stop.arg("-D")
            .arg(&self.ctl().data)
            .args(["-m", "immediate", "-w", "stop"]);
        run(&mut stop).await;
    }

    /// Starts the server again on the same port, after [`PostgresServer::stop`].
    pub async fn start_again(&self) {
        let out = self.ctl().start().await;
        assert!(
            out.status.success(),
            "PostgreSQL did not start again: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.ctl().dir.join("log")).unwrap_or_default()
        );
    }

    /// Creates a new empty schema and returns a URL whose `search_path` is that schema, so
    /// a store opened on it starts from nothing.
    ///
    /// # Panics
    ///
    /// If the server refuses.
    pub async fn fresh_schema_url(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "tessera_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            free_port()
        );
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create a schema");
        drop(client);
        let _ = task.await;
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{schema}", self.url)
    }
}

/// Debian's `/usr/lib/postgresql/<newest>/bin`, or the directory of `initdb` on `PATH`.
fn find_bin_dir() -> PathBuf {
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return bin;
    }
    path_dirs()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL's initdb was not found (in /usr/lib/postgresql/*/bin or on PATH): the \
                 Postgres tests need it. Install the Debian package `postgresql` \
                 (`apt-get install postgresql`; scripts/test does this), or set {URL_ENV} to a \
                 server to test against"
            )
        })
}
