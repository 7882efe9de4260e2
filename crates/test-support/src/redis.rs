//! Throwaway Redis servers and Clusters for tests.
//!
//! Each one runs `redis-server` from `PATH` on free loopback ports, with no persistence, in a
//! temporary directory. [`RedisServer::shared`] and [`RedisCluster::shared`] start one per
//! test process, on first use, for every test of the process to share (the conformance suite
//! uses random keys, so tests do not see each other).
//!
//! Every server has a [`Watchdog`]: no `redis-server` outlives the test process, however it
//! ends, and a server that is not shared is stopped when dropped.
//!
//! If `redis-server` or `redis-cli` is missing, the helpers panic with a message saying which
//! Debian package to install (`redis-server`), rather than letting a test pass untested.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::process::{
    Watchdog, find_binary, free_ports, poll_until, signal, spawn_server, temp_dir,
};

/// How long a server gets to start answering before it counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts at starting, each on fresh ports (another process may take a free port first).
const ATTEMPTS: usize = 5;

fn redis_binary(name: &str) -> PathBuf {
    find_binary(name, "redis-server")
}

/// A `redis-server` on a free loopback port, without persistence.
pub struct RedisServer {
    port: u16,
    pid: AtomicU32,
    dir: PathBuf,
    _guard: Watchdog,
    /// Watchdogs of the processes started again by [`RedisServer::restart`].
    restarted: std::sync::Mutex<Vec<Watchdog>>,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// The server this test process shares, started on first use.
    pub async fn shared() -> &'static Self {
        static SHARED: OnceCell<RedisServer> = OnceCell::const_new();
        SHARED.get_or_init(Self::start).await
    }

    /// A new server of its own, stopped when dropped.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not installed or does not start.
    pub async fn start() -> Self {
        Self::start_inner(false).await.0
    }

    /// A new server that speaks only TLS, with a certificate for `127.0.0.1` signed by a
    /// fresh CA; returns the server and the CA certificate (PEM) to trust. Its URL is
    /// [`RedisServer::tls_url`].
    ///
    /// # Panics
    ///
    /// If `redis-server` (built with TLS, as Debian's is) or `openssl` is missing, or the
    /// server does not start.
    pub async fn start_tls() -> (Self, Vec<u8>) {
        let (server, ca) = Self::start_inner(true).await;
        (server, ca.unwrap_or_default())
    }

    async fn start_inner(tls: bool) -> (Self, Option<Vec<u8>>) {
        let bin = redis_binary("redis-server");
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let dir = temp_dir("redis");
            let [port] = free_ports::<1>();
            let mut cmd = Command::new(&bin);
            let mut ca = None;
            if tls {
                ca = Some(make_certificates(&dir).await);
                cmd.args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-auth-clients", "no"])
                    .arg("--tls-cert-file")
                    .arg(dir.join("server.crt"))
                    .arg("--tls-key-file")
                    .arg(dir.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(dir.join("ca.crt"));
            } else {
                cmd.args(["--port", &port.to_string()]);
            }
            cmd.args(base_args(&dir));
            let child = spawn_server(cmd, &dir);
            let pid = child.id();
            let guard = Watchdog::kill(&[pid], &dir);
            match wait_until_up(child, port, &dir, tls).await {
                Ok(()) => {
                    let server = Self {
                        port,
                        pid: AtomicU32::new(pid),
                        dir,
                        _guard: guard,
                        restarted: std::sync::Mutex::new(vec![]),
                    };
                    return (server, ca);
                }
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start after {ATTEMPTS} attempts: {last}");
    }

    /// The process id of the running `redis-server`.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// Freezes the server (`SIGSTOP`): connections stay open, nothing answers ("hanging").
    pub fn pause(&self) {
        signal("-STOP", [self.pid()]);
    }

    /// Thaws a server frozen by [`RedisServer::pause`] (`SIGCONT`).
    pub fn resume(&self) {
        signal("-CONT", [self.pid()]);
    }

    /// Kills the server (`SIGKILL`, "down"): connections are refused until
    /// [`RedisServer::restart`]. With no persistence, everything it held is gone.
    pub fn kill(&self) {
        signal("-KILL", [self.pid()]);
    }

    /// Starts a new, empty `redis-server` on the same port, after [`RedisServer::kill`].
    ///
    /// # Panics
    ///
    /// If it does not start (for instance, another process took the port meanwhile), or on
    /// a TLS server (not supported).
    pub async fn restart(&self) {
        let bin = redis_binary("redis-server");
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let mut cmd = Command::new(&bin);
            cmd.args(["--port", &self.port.to_string()])
                .args(base_args(&self.dir));
            let child = spawn_server(cmd, &self.dir);
            let pid = child.id();
            // Kept until the end even if this attempt fails: dropping a watchdog removes
            // the directory, which the server still uses.
            self.restarted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Watchdog::kill(&[pid], &self.dir));
            match wait_until_up(child, self.port, &self.dir, false).await {
                Ok(()) => {
                    self.pid.store(pid, Ordering::SeqCst);
                    return;
                }
                Err(why) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "redis-server did not start again: {why}"
                    );
                    // The killed server's socket may linger a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// `rediss://127.0.0.1:<port>`, for a server from [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A Redis Cluster of three masters on free loopback ports, without replicas
/// ([`RedisCluster::start`]) or with one replica each ([`RedisCluster::start_with_replicas`]).
pub struct RedisCluster {
    /// Every node's client port, in the order given to `redis-cli --cluster create` (the
    /// three masters it made first).
    ports: Vec<u16>,
    /// Each node's process id, by the same index.
    pids: Vec<u32>,
    _guard: Watchdog,
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl RedisCluster {
    /// The Cluster this test process shares, started on first use.
    pub async fn shared() -> &'static Self {
        static SHARED: OnceCell<RedisCluster> = OnceCell::const_new();
        SHARED.get_or_init(Self::start).await
    }

    /// A new Cluster of its own, stopped when dropped: three `redis-server --cluster-enabled
    /// yes`, joined by `redis-cli --cluster create`, ready once every node says
    /// `cluster_state:ok`.
    ///
    /// # Panics
    ///
    /// If `redis-server` or `redis-cli` is not installed, or the Cluster does not form.
    pub async fn start() -> Self {
        Self::start_inner(0, 5000).await
    }

    /// A new Cluster of its own with one replica per master (six nodes), stopped when
    /// dropped: ready once every node says `cluster_state:ok` and every replica has synced
    /// with its master. Its `cluster-node-timeout` is 1 s, so a killed master's replica is
    /// promoted within a few seconds ([`RedisCluster::kill_node`],
    /// [`RedisCluster::wait_for_failover`]). Replication is Redis's own: asynchronous.
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start`].
    pub async fn start_with_replicas() -> Self {
        Self::start_inner(1, 1000).await
    }

    async fn start_inner(replicas: usize, node_timeout_ms: u32) -> Self {
        let bin = redis_binary("redis-server");
        let cli = redis_binary("redis-cli");
        let nodes = 3 * (1 + replicas);
        let mut last = String::new();
        'attempt: for _ in 0..ATTEMPTS {
            let dir = temp_dir("redis-cluster");
            // Client ports and bus ports: the default bus port (port + 10000) can fall
            // outside the port range, so each is given explicitly.
            let all = free_ports::<12>();
            let ports: Vec<u16> = all[..nodes].to_vec();
            let mut children = vec![];
            for (i, port) in ports.iter().enumerate() {
                let node_dir = dir.join(format!("n{i}"));
                std::fs::create_dir_all(&node_dir).expect("create a node directory");
                let mut cmd = Command::new(&bin);
                cmd.args(["--port", &port.to_string()])
                    .args(base_args(&node_dir))
                    .args(["--cluster-enabled", "yes"])
                    .args(["--cluster-port", &all[i + 6].to_string()])
                    .args(["--cluster-config-file"])
                    .arg(node_dir.join("nodes.conf"))
                    .args(["--cluster-node-timeout", &node_timeout_ms.to_string()]);
                children.push(spawn_server(cmd, &node_dir));
            }
            let pids: Vec<u32> = children.iter().map(Child::id).collect();
            let guard = Watchdog::kill(&pids, &dir);
            for ((child, port), i) in children.into_iter().zip(ports.iter().copied()).zip(0..) {
                if let Err(why) =
                    wait_until_up(child, port, &dir.join(format!("n{i}")), false).await
                {
                    last = why;
                    continue 'attempt;
                }
            }
            let mut create = tokio::process::Command::new(&cli);
            create
                .arg("--cluster")
                .arg("create")
                .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
                .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
                .stdin(Stdio::null())
                .kill_on_drop(true);
            let out = tokio::time::timeout(Duration::from_secs(60), create.output())
                .await
                .expect("redis-cli --cluster create did not finish in 60s")
                .expect("run redis-cli");
            if !out.status.success() {
                last = format!(
                    "redis-cli --cluster create failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                continue;
            }
            match wait_for_cluster(&ports, replicas > 0).await {
                Ok(()) => {
                    return Self {
                        ports,
                        pids,
                        _guard: guard,
                    };
                }
                Err(why) => last = why,
            }
        }
        panic!("the Redis Cluster did not form after {ATTEMPTS} attempts: {last}");
    }

    /// The ports on 127.0.0.1 of the three masters the Cluster was created with (on a
    /// Cluster with replicas, a failover may since have made others masters: see
    /// [`RedisCluster::masters`]).
    pub fn ports(&self) -> [u16; 3] {
        [self.ports[0], self.ports[1], self.ports[2]]
    }

    /// Every node's port, masters and replicas.
    pub fn all_ports(&self) -> &[u16] {
        &self.ports
    }

    /// The nodes that answer `ROLE` as masters now, by port.
    pub async fn masters(&self) -> Vec<u16> {
        let mut out = vec![];
        for port in &self.ports {
            if role(*port).await.as_deref() == Some("master") {
                out.push(*port);
            }
        }
        out
    }

    /// The port of the node replicating the master on `master`, if one does (by `ROLE` on
    /// every node).
    pub async fn replica_of(&self, master: u16) -> Option<u16> {
        for port in &self.ports {
            let Ok(reply) = query(*port, &mut redis::cmd("ROLE")).await else {
                continue;
            };
            let Ok((kind, _host, of)) =
                redis::from_redis_value::<(String, String, u16)>(first_three(reply))
            else {
                continue;
            };
            if kind == "slave" && of == master {
                return Some(*port);
            }
        }
        None
    }

    /// The slot ranges (inclusive) the master on `master` serves, by `CLUSTER SLOTS` asked of
    /// that node.
    ///
    /// # Panics
    ///
    /// If the node does not answer or the reply is not `CLUSTER SLOTS`'s shape.
    pub async fn slots_of(&self, master: u16) -> Vec<std::ops::RangeInclusive<u16>> {
        let reply = query(master, redis::cmd("CLUSTER").arg("SLOTS"))
            .await
            .expect("CLUSTER SLOTS");
        let redis::Value::Array(ranges) = reply else {
            panic!("CLUSTER SLOTS did not answer an array");
        };
        let mut out = vec![];
        for range in ranges {
            let redis::Value::Array(items) = range else {
                panic!("a CLUSTER SLOTS entry is not an array");
            };
            let mut items = items.into_iter();
            let (Some(start), Some(end), Some(node)) = (items.next(), items.next(), items.next())
            else {
                panic!("a CLUSTER SLOTS entry is too short");
            };
            let start: u16 = redis::from_redis_value(start).expect("a slot number");
            let end: u16 = redis::from_redis_value(end).expect("a slot number");
            let node = first_three(node);
            let (_host, port, _id): (String, u16, String) =
                redis::from_redis_value(node).expect("a CLUSTER SLOTS node");
            if port == master {
                out.push(start..=end);
            }
        }
        out
    }

    /// Kills the node on `port` (`SIGKILL`): it loses what it held, and the Cluster sees it
    /// fail after its node timeout.
    ///
    /// # Panics
    ///
    /// If `port` is not one of this Cluster's nodes.
    pub fn kill_node(&self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .unwrap_or_else(|| panic!("port {port} is not a node of this Cluster"));
        signal("-KILL", [self.pids[i]]);
    }

    /// Waits (at most `timeout`) until `replica` answers `ROLE` as a master and every live
    /// node but `dead` says `cluster_state:ok`: the failover is done. `true` if it happened
    /// in time.
    pub async fn wait_for_failover(&self, dead: u16, replica: u16, timeout: Duration) -> bool {
        let live: Vec<u16> = self.ports.iter().copied().filter(|p| *p != dead).collect();
        poll_until(timeout, Duration::from_millis(50), async || {
            if role(replica).await.as_deref() != Some("master") {
                return None;
            }
            for port in &live {
                let info = cluster_info(*port).await;
                if !info.contains("cluster_state:ok") {
                    return None;
                }
            }
            Some(())
        })
        .await
        .is_some()
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,…`, every node listed (so a client can
    /// start from any that is up).
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}

/// The node's role from `ROLE` (`master`, `slave`), `None` if it does not answer.
async fn role(port: u16) -> Option<String> {
    let reply = query(port, &mut redis::cmd("ROLE")).await.ok()?;
    match reply {
        redis::Value::Array(items) => redis::from_redis_value(items.into_iter().next()?).ok(),
        _ => None,
    }
}

/// The first three items of an array reply (`ROLE` of a replica: kind, master host, port).
fn first_three(v: redis::Value) -> redis::Value {
    match v {
        redis::Value::Array(items) => redis::Value::Array(items.into_iter().take(3).collect()),
        v => v,
    }
}

async fn cluster_info(port: u16) -> String {
    query(port, redis::cmd("CLUSTER").arg("INFO"))
        .await
        .ok()
        .and_then(|v| redis::from_redis_value::<String>(v).ok())
        .unwrap_or_default()
}

/// A CA and a server certificate for 127.0.0.1 (P-256 keys) in `dir`; returns the CA's PEM.
async fn make_certificates(dir: &Path) -> Vec<u8> {
    let openssl = find_binary("openssl", "openssl");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&openssl);
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<&str>> = vec![
        [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
    ];
    let subjects = ["/CN=tessera test CA", "/CN=127.0.0.1"];
    for (step, subject) in steps.iter().zip(subjects) {
        let out = run(step)
            .args(["-subj", subject, "-days", "2"])
            .output()
            .await
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write san.ext");
    let out = run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])
    .output()
    .await
    .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("ca.crt")).expect("read ca.crt")
}

/// Settings common to every test server: loopback only, no persistence, logs in `dir`.
fn base_args(dir: &Path) -> Vec<String> {
    vec![
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--daemonize".into(),
        "no".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--logfile".into(),
        dir.join("redis.log").display().to_string(),
    ]
}

/// Waits until the server on `port` answers and is the one running in `dir` (not another
/// process that took the port first).
async fn wait_until_up(mut child: Child, port: u16, dir: &Path, tls: bool) -> Result<(), String> {
    let log = || std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let up = poll_until(START_TIMEOUT, Duration::from_millis(20), async || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(format!("redis-server exited ({status}): {}", log())));
        }
        if tls {
            // The TLS handshake needs the test's CA; a listening socket is enough here.
            let listening = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok();
            return listening.then_some(Ok(()));
        }
        let reply = query(port, redis::cmd("CONFIG").arg("GET").arg("dir"))
            .await
            .ok()?;
        let reply: Vec<String> = redis::from_redis_value(reply).unwrap_or_default();
        let ours = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        Some(if reply.get(1).map(PathBuf::from) == Some(ours) {
            Ok(())
        } else {
            Err(format!("port {port} is served by another Redis"))
        })
    })
    .await;
    up.unwrap_or_else(|| Err(format!("no answer on port {port}: {}", log())))
}

async fn wait_for_cluster(ports: &[u16], replicas: bool) -> Result<(), String> {
    let formed = poll_until(START_TIMEOUT, Duration::from_millis(50), async || {
        for port in ports {
            let info = cluster_info(*port).await;
            let ok = info.contains("cluster_state:ok")
                && info.contains("cluster_slots_assigned:16384")
                && info.contains(&format!("cluster_known_nodes:{}", ports.len()));
            if !ok {
                return None;
            }
            if replicas {
                // A replica counts once its first sync is done.
                let repl = query(*port, redis::cmd("INFO").arg("replication"))
                    .await
                    .ok()
                    .and_then(|v| redis::from_redis_value::<String>(v).ok())
                    .unwrap_or_default();
                if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                    return None;
                }
            }
        }
        Some(())
    });
    formed.await.ok_or_else(|| {
        "the Cluster never reported cluster_state:ok (and synced replicas) on every node".into()
    })
}

/// One command on a fresh connection to 127.0.0.1:`port`.
async fn query(port: u16, cmd: &mut redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    cmd.query_async(&mut conn).await
}
