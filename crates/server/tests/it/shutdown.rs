//! Shutdown of the real binary (docs/operations.md, "Shutdown"): on SIGTERM the listener
//! closes, a request in flight finishes, the redb store is flushed and the process exits 0;
//! past `[server] shutdown_grace` the connections are cut; a second signal exits at once.
//!
//! The timings each test sees are printed (`cargo nextest run … --no-capture`).

use std::time::Duration;

use tessera_core::{Clock as _, KvStore as _, SystemClock};
use tessera_store_redb::RedbStore;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::mediawiki_kask::Tessera;

const VALUE: &str = "a value sent slowly, in two halves";

/// A Kask `POST` of [`VALUE`] whose headers and first half are sent now; the caller sends
/// the rest with [`finish`].
async fn start_slow_post(tessera: &Tessera, key: &str) -> TcpStream {
    let mut s = TcpStream::connect(&tessera.addr).await.unwrap();
    let head = format!(
        "POST /sessions/v1/{key} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {}\r\n\r\n",
        tessera.api_key,
        VALUE.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&VALUE.as_bytes()[..10]).await.unwrap();
    s.flush().await.unwrap();
    s
}

/// Sends the rest of the body and reads the whole answer (the server closes the
/// connection after it, as it is shutting down): the status line.
async fn finish(mut s: TcpStream) -> String {
    s.write_all(&VALUE.as_bytes()[10..]).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer)).await;
    answer.lines().next().unwrap_or_default().to_owned()
}

/// Whether a new connection is refused within `within`.
async fn refused_within(addr: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_refuses_new_ones_and_keeps_every_write() {
    let mut tessera = Tessera::start("", &[("TESSERA_SHUTDOWN_GRACE", "5s")]).await;
    // Acknowledged writes before the signal.
    for i in 0..20 {
        let r = tessera
            .client
            .post(format!("{}/sessions/v1/before{i}", tessera.base))
            .bearer_auth(&tessera.api_key)
            .body(format!("value {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let slow = start_slow_post(&tessera, "slow").await;
    // Let the server read the headers: the request is in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    tessera.signal("TERM");
    assert!(
        refused_within(&tessera.addr, Duration::from_secs(2)).await,
        "new connections are still accepted after SIGTERM"
    );
    let refused_after = signalled.elapsed();
    // The client keeps sending slowly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = finish(slow).await;
    let answered_after = signalled.elapsed();
    assert!(status.starts_with("HTTP/1.1 201"), "{status:?}");
    let exit = tessera
        .exit_within(Duration::from_secs(10))
        .await
        .expect("tessera still runs 10 s after SIGTERM");
    let exited_after = signalled.elapsed();
    assert_eq!(exit.code(), Some(0), "{exit}\n{}", tessera.logs());
    assert!(
        exited_after < Duration::from_secs(5),
        "exited after {exited_after:?}, past the 5 s grace though nothing was in flight"
    );
    println!(
        "shutdown timings: new connections refused {refused_after:?} after SIGTERM, \
         the slow request answered after {answered_after:?}, exit 0 after {exited_after:?}"
    );
    let log = tessera.logs();
    for line in [
        "shutting down: no new connections",
        "stopped serving; flushing and closing the stores",
        "Tessera stopped",
    ] {
        assert!(log.contains(line), "{line:?} not in the log:\n{log}");
    }

    // Every acknowledged write is in the file the process left.
    let store = RedbStore::open(tessera.data_dir().join("sessions.redb")).unwrap();
    let now = SystemClock.now();
    for i in 0..20 {
        let v = store
            .kv_get(format!("before{i}").as_bytes(), now)
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(format!("value {i}").as_bytes()));
    }
    let v = store.kv_get(b"slow", now).await.unwrap();
    assert_eq!(v.as_deref(), Some(VALUE.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_grace_the_connections_are_cut_and_the_exit_is_still_clean() {
    let mut tessera = Tessera::start("", &[("TESSERA_SHUTDOWN_GRACE", "1s")]).await;
    let stuck = start_slow_post(&tessera, "stuck").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    tessera.signal("INT");
    let exit = tessera
        .exit_within(Duration::from_secs(10))
        .await
        .expect("tessera still runs 10 s after SIGINT");
    let exited_after = signalled.elapsed();
    assert_eq!(exit.code(), Some(0), "{exit}\n{}", tessera.logs());
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(4)).contains(&exited_after),
        "exited after {exited_after:?} with a 1 s grace"
    );
    println!("shutdown timings: a request stuck past the 1 s grace, exit 0 after {exited_after:?}");
    let log = tessera.logs();
    assert!(log.contains("the shutdown grace (1s) is over"), "{log}");
    drop(stuck);
    let store = RedbStore::open(tessera.data_dir().join("sessions.redb")).unwrap();
    assert_eq!(
        store.kv_get(b"stuck", SystemClock.now()).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_with_128_plus_its_number() {
    let mut tessera = Tessera::start("", &[("TESSERA_SHUTDOWN_GRACE", "30s")]).await;
    let _stuck = start_slow_post(&tessera, "stuck").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tessera.signal("TERM");
    assert!(refused_within(&tessera.addr, Duration::from_secs(2)).await);
    assert!(
        tessera
            .exit_within(Duration::from_millis(300))
            .await
            .is_none(),
        "the first signal waits for the request in flight"
    );
    let second = Instant::now();
    tessera.signal("TERM");
    let exit = tessera
        .exit_within(Duration::from_secs(5))
        .await
        .expect("tessera still runs after a second SIGTERM");
    let exited_after = second.elapsed();
    assert_eq!(exit.code(), Some(143), "{exit}\n{}", tessera.logs());
    assert!(exited_after < Duration::from_secs(2), "{exited_after:?}");
    println!("shutdown timings: second SIGTERM, exit 143 after {exited_after:?}");
    assert!(tessera.logs().contains("second signal: exiting at once"));
}
