//! An acknowledged write survives `kill -9`: a child process runs [`WRITERS`] concurrent
//! writers (creates and compare-and-set saves, group-committed in shared batches) and reports
//! each acknowledged write; the parent kills it mid-stream and reopens the file.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_core::testing::{T0, fresh_key, record};
use tessera_core::{SessionKind, SessionStore, StoreKey};
use tessera_store_redb::RedbStore;

/// Set only in the child: the store file to write to.
const CHILD_PATH_VAR: &str = "TESSERA_REDB_CRASH_TEST_PATH";
const ACK: &str = "TESSERA-ACK ";
/// Printed once by the child when a commit has held more than one write.
const BATCHED: &str = "TESSERA-BATCHED ";
const ACKS_BEFORE_KILL: usize = 400;
/// Concurrent writers in the child.
const WRITERS: usize = 32;
/// Each key is created, then saved until it reaches this version.
const VERSIONS: u64 = 4;

/// Kills the child however the test ends, so no writer outlives it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child: [`WRITERS`] tasks write until killed, printing one line per acknowledged write.
#[test]
#[ignore = "the child process of acknowledged_writes_survive_kill_9"]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_PATH_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let batched = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (store, batched) = (store.clone(), batched.clone());
                // Writes keys through their versions until stdout closes. A line is printed
                // only after the store acknowledged the write it names; `writeln!` on stdout
                // writes the line whole.
                tokio::spawn(async move {
                    let mut out = std::io::stdout();
                    loop {
                        let key = fresh_key(SessionKind::Anonymous);
                        let mut r = record(None, T0);
                        for version in 1..=VERSIONS {
                            r.version = version;
                            r.data.insert("v".into(), serde_json::json!(version));
                            if version == 1 {
                                store.create(&key, &r).await.unwrap();
                            } else {
                                store.save(&key, version - 1, &r, T0).await.unwrap();
                            }
                            let largest = store.commit_stats().largest_batch;
                            if largest > 1 && !batched.swap(true, Ordering::Relaxed) {
                                let _ = writeln!(out, "{BATCHED}{largest}");
                            }
                            // A closed pipe means the parent is gone: stop rather than write
                            // forever.
                            let line = writeln!(out, "{ACK}{} {version}", key.to_ref());
                            if line.is_err() || out.flush().is_err() {
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.redb");
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::crash_child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_PATH_VAR, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    // The highest acknowledged version of each key.
    let mut acked: HashMap<StoreKey, u64> = HashMap::new();
    let (mut acks, mut batched) = (0usize, false);
    for line in stdout.lines() {
        let line = line.unwrap();
        // The harness may print its own text on the same line before ours.
        if line.contains(BATCHED) {
            batched = true;
        }
        let Some(at) = line.find(ACK) else { continue };
        let (key, version) = line[at + ACK.len()..].split_once(' ').unwrap();
        let (key, version) = (StoreKey::from_ref(key).unwrap(), version.parse().unwrap());
        let seen = acked.entry(key).or_default();
        *seen = (*seen).max(version);
        acks += 1;
        // Kill only once a commit has held several writes, so the kill hits the batched
        // path; give up (and fail below) if none ever does.
        if (acks >= ACKS_BEFORE_KILL && batched) || acks >= 100 * ACKS_BEFORE_KILL {
            break;
        }
    }
    // SIGKILL on Unix: no destructor, no clean close of the database.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(acks >= ACKS_BEFORE_KILL, "the child stopped early");
    assert!(batched, "no commit held more than one write");

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = RedbStore::open(&path).unwrap();
        for (key, version) in acked {
            let r = store.load(&key, T0).await.unwrap();
            let r = r.unwrap_or_else(|| panic!("an acknowledged create was lost"));
            // A later save may have committed without its acknowledgement reaching us.
            assert!(
                r.version >= version,
                "acknowledged version {version} was lost: {} is stored",
                r.version
            );
            assert_eq!(r.data["v"], serde_json::json!(r.version));
        }
    });
}
