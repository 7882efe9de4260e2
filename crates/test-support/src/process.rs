//! Processes for tests: cleaning up after them, ports, directories, binaries, readiness.

use std::fmt::Display;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Runs a clean-up when the test process ends, however it ends, or when dropped.
///
/// A shared server lives in a `static`, and Rust never drops statics, so clean-up cannot rest
/// on `Drop`. A watchdog is a small `sh` process in its own process group that blocks reading
/// a pipe whose only writer is the test process. When the test process ends (success, panic,
/// `SIGKILL`, a runner's timeout), the kernel closes the pipe, the watchdog wakes up, runs the
/// clean-up command and removes the directory. Dropping it does the same at once, and waits
/// for it.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Runs the shell command `cleanup`, then removes `dir`.
    ///
    /// # Panics
    ///
    /// If `sh` cannot be started.
    pub fn spawn(cleanup: &str, dir: &Path) -> Self {
        let script = format!("trap '' INT TERM HUP; read -r _; {cleanup}; rm -rf \"$0\"");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn the watchdog shell");
        Self { child }
    }

    /// Kills `pids` (`SIGKILL`), then removes `dir`.
    ///
    /// # Panics
    ///
    /// If `sh` cannot be started.
    pub fn kill(pids: &[u32], dir: &Path) -> Self {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        Self::spawn(&format!("kill -9 {} 2>/dev/null", pids.join(" ")), dir)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing the pipe is the signal; wait so the clean-up is done when drop returns.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
///
/// Another process may take it before the test binds it: retry on fresh ports.
///
/// # Panics
///
/// If no port can be bound.
pub fn free_port() -> u16 {
    let [port] = free_ports::<1>();
    port
}

/// `N` distinct loopback ports that were free a moment ago (held together while chosen, so
/// they differ).
///
/// # Panics
///
/// If no port can be bound.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let mut out = [0; N];
    for (slot, l) in out.iter_mut().zip(&listeners) {
        *slot = l.local_addr().expect("a bound address").port();
    }
    out
}

/// A fresh directory `tessera-<what>-…` under the system's temporary directory, unique to
/// this call. Nothing removes it: give it to a [`Watchdog`].
///
/// # Panics
///
/// If it cannot be created.
pub fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "tessera-{what}-{}-{n}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// The directories of `PATH`, in order.
pub fn path_dirs() -> impl Iterator<Item = PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
}

/// The path of `name` on `PATH`.
///
/// # Panics
///
/// If it is not there, naming the Debian `package` to install.
pub fn find_binary(name: &str, package: &str) -> PathBuf {
    path_dirs()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: the tests need it. Install the Debian package \
                 `{package}` (`apt-get install {package}`; scripts/test does this)"
            )
        })
}

/// Starts a server from `cmd` in `dir`, with no standard streams, in a process group of its
/// own: a Ctrl-C at the terminal goes to the test process, whose exit the [`Watchdog`] sees.
///
/// # Panics
///
/// If it cannot be started.
pub fn spawn_server(mut cmd: Command, dir: &Path) -> Child {
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()))
}

/// Sends `sig` (as `kill` spells it: `-STOP`, `-KILL` …) to `pids`, processes the test
/// started.
///
/// # Panics
///
/// If `kill` fails.
pub fn signal<P: Display>(sig: &str, pids: impl IntoIterator<Item = P>) {
    let pids: Vec<String> = pids.into_iter().map(|p| p.to_string()).collect();
    let status = Command::new("kill")
        .arg(sig)
        .args(&pids)
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {} failed", pids.join(" "));
}

/// Runs `cmd` to its end (standard input closed).
///
/// # Panics
///
/// If it cannot run or does not succeed, with its output.
pub async fn run(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null());
    let out = tokio::process::Command::from(std::mem::replace(cmd, Command::new("true")))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Calls `probe` every `every` until it gives `Some`, for at most `timeout` (on Tokio's
/// clock); `None` when the time is up. A probe that can fail for good returns
/// `Some(Err(..))`.
pub async fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(out) = probe().await {
            return Some(out);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_differ_and_directories_are_fresh() {
        let [a, b, c] = free_ports::<3>();
        assert!(a != b && b != c && a != c);
        let (d1, d2) = (temp_dir("t"), temp_dir("t"));
        assert_ne!(d1, d2);
        assert!(d1.is_dir() && d2.is_dir());
        drop(Watchdog::kill(&[], &d1));
        drop(Watchdog::spawn("true", &d2));
        assert!(!d1.exists() && !d2.exists());
    }

    #[tokio::test]
    async fn polling_stops_at_the_first_answer_or_the_timeout() {
        let mut n = 0;
        let got = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            async || {
                n += 1;
                (n == 3).then_some(n)
            },
        )
        .await;
        assert_eq!(got, Some(3));
        let never: Option<()> = poll_until(
            Duration::from_millis(20),
            Duration::from_millis(5),
            async || None,
        )
        .await;
        assert_eq!(never, None);
    }
}
