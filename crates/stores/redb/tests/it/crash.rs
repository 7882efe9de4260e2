//! An acknowledged write survives `kill -9`: a child process writes and reports each
//! acknowledged write, the parent kills it mid-stream and reopens the file.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};

use tessera_core::testing::{T0, fresh_key, record};
use tessera_core::{SessionKind, SessionStore, StoreKey};
use tessera_store_redb::RedbStore;

/// Set only in the child: the store file to write to.
const CHILD_PATH_VAR: &str = "TESSERA_REDB_CRASH_TEST_PATH";
const ACK: &str = "TESSERA-ACK ";
const ACKS_BEFORE_KILL: usize = 100;

/// Kills the child however the test ends, so no writer outlives it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child: writes records until killed, printing one line per acknowledged write.
#[test]
#[ignore = "the child process of acknowledged_writes_survive_kill_9"]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_PATH_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = RedbStore::open(&path).unwrap();
        let mut out = std::io::stdout();
        for i in 0u64.. {
            let key = fresh_key(SessionKind::Anonymous);
            let mut r = record(None, T0);
            r.data.insert("i".into(), serde_json::json!(i));
            store.create(&key, &r).await.unwrap();
            // A closed pipe means the parent is gone: stop rather than write forever.
            if writeln!(out, "{ACK}{} {i}", key.to_ref()).is_err() || out.flush().is_err() {
                break;
            }
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
    let mut acked: Vec<(StoreKey, u64)> = vec![];
    for line in stdout.lines() {
        let line = line.unwrap();
        // The harness may print its own text on the same line before ours.
        let Some(at) = line.find(ACK) else { continue };
        let (key, i) = line[at + ACK.len()..].split_once(' ').unwrap();
        acked.push((StoreKey::from_ref(key).unwrap(), i.parse().unwrap()));
        if acked.len() == ACKS_BEFORE_KILL {
            break;
        }
    }
    // SIGKILL on Unix: no destructor, no clean close of the database.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(acked.len(), ACKS_BEFORE_KILL, "the child stopped early");

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = RedbStore::open(&path).unwrap();
        for (key, i) in acked {
            let r = store.load(&key, T0).await.unwrap();
            let r = r.unwrap_or_else(|| panic!("acknowledged write {i} was lost"));
            assert_eq!(r.data["i"], serde_json::json!(i));
        }
    });
}
