//! Tessera's session store on Redis: one server, or a Redis Cluster, behind one type.
//!
//! ```no_run
//! use tessera_core::SessionStore;
//! use tessera_store_redis::RedisStore;
//!
//! # async fn run() -> Result<(), tessera_store_redis::Error> {
//! let store = RedisStore::open("redis+cluster://10.0.0.1:7000,10.0.0.2:7000").await?;
//! assert_eq!(store.backend(), "redis");
//! # Ok(())
//! # }
//! ```
//!
//! [`RedisConfig`] lists the URL forms (`redis://`, `rediss://`, `redis+cluster://`,
//! `rediss+cluster://`) and the options (key prefix, timeout, a private CA for TLS).
//!
//! # Key layout
//!
//! | key | type | holds | slot |
//! |-----|------|-------|------|
//! | `<prefix>s:{<store key, hex>}` | hash | a record (`r` JSON, `v` version, `e` expiry, `c` created, `u` user) or a tombstone (`t` until) | the session's own |
//! | `<prefix>u:{<user id>}:i` | sorted set | the user's store keys (hex), scored by expiry (ms) | the user's |
//! | `<prefix>u:{<user id>}:r` | string | the user's revocation time (ms) | the user's |
//! | `<prefix>k:{<key, hex>}` | hash | a key-value entry (`v` value, `e` expiry) | the entry's own |
//! | `<prefix>n:{<namespace>}:g` | string | a keyed-store namespace's generation (`/v1/kv`) | the namespace's |
//! | `<prefix>n:{<namespace>}:i` | sorted set | the namespace's keys (SHA-256, hex) of the current generation, scored by expiry (ms) | the namespace's |
//! | `<prefix>n:{<namespace>}:v:<key, hex>` | hash | a keyed-store value (`v` value, `e` expiry, `g` generation) | the namespace's |
//! | `<prefix>nl:{namespaces}` | set | the namespaces with an index, for the purge | `{namespaces}` |
//! | `<prefix>rv:{revocations}:n` | string | the revocation log's last sequence number | `{revocations}` |
//! | `<prefix>rv:{revocations}:l` | sorted set | the revocation log: `<seq>:<JSON>` scored by sequence number | `{revocations}` |
//! | `<prefix>rv:{revocations}:t` | sorted set | sequence numbers scored by revocation time (ms) | `{revocations}` |
//! | `<prefix>b:{<name, hex>}` | hash | a versioned blob (`v` value, `n` version; compare-and-set, no TTL) | the blob's own |
//!
//! The prefix defaults to `tessera:`. The braces are Redis Cluster *hash tags*: only the part
//! between them picks the slot. A user's two keys share the tag `{<user id>}`, so they live on
//! one shard and one script updates both atomically. A session's key is tagged with its own
//! store key, because a lookup starts from the handle alone: the store key names the record
//! without knowing whose it is, so the record cannot sit in its user's slot (that would need a
//! second lookup, user by store key, on every request).
//!
//! # Atomicity, and why it holds on a Cluster
//!
//! Every step is one Lua script (`EVALSHA`, loaded again on `NOSCRIPT`), one command or one
//! `MULTI`/`EXEC` of commands on one key (a Kask write: the entry and its TTL), and
//! each touches the keys of **one** slot, so it is atomic on a shard and needs nothing from
//! the others. What lives in one slot is decided atomically there:
//!
//! - **The record is the authority** on its session. `create` is "write unless the key holds
//!   anything" (a record, an expired but unpurged record, or a tombstone); `save` compares the
//!   version and refuses a missing, tombstoned or expired record; `delete` replaces the record
//!   with a tombstone in one script. These are the promises that need atomicity, and each is
//!   about one key.
//! - **The user index is a hint that may hold too much, never too little.** On a Cluster,
//!   `create` and `save` index the session (in the user's slot) *before* they write the
//!   record, and `delete` un-indexes it *after* the tombstone is written (on a standalone
//!   server each is one script, so the record and the index change together). So at every moment every live
//!   session is in its user's index; an entry may outlive its session (a crash between the
//!   two steps, a failed create) but `list_user_sessions` reads each listed record and keeps
//!   only live records of that user, dropping the dead entries it finds. An entry's score is
//!   never below its session's expiry (it only rises), so `purge_expired` may drop entries by
//!   score.
//! - **Revocation is checked when a record is read**, not written into records: `load`,
//!   `save` and `list_user_sessions` read the user's revocation time and refuse sessions
//!   created at or before it. A revocation that lands between the two reads of a `load` is
//!   ordered after that load, which is what a linearizable store would also allow. Because
//!   nothing is copied into records, "log out everywhere" is one write, however many sessions
//!   the user has, and no session can escape it by being created concurrently.
//!
//! **The keyed store** (`ns_*`, `/v1/kv`) keeps all of a namespace's keys under the tag
//! `{<namespace>}` (namespace names have no braces), so every step is one script on one
//! shard, and neither `count` nor `clear` scans: the count is `ZCOUNT` of the namespace's index
//! over the expiries after `now` (exact on the engine's clock), and a clear moves the
//! generation on and `UNLINK`s the index in one script; the values of older generations are
//! never read again and Redis drops them at their TTLs. The purge reads the registry of
//! namespaces and each index by score, not the keyspace.
//!
//! # Round trips
//!
//! On a standalone server every `load`, `create`, `save` and `delete` is **one** round trip:
//! one script (`EVALSHA`; on `NOSCRIPT`, after a restart or `SCRIPT FLUSH`, the script is
//! loaded and the call sent again) reads the record and its user's revocation time, and writes
//! the record and its user's index together. Such a script names the user's keys only once
//! it has read the record (the user is in the record), which a standalone server allows and a
//! Cluster does not. All operations share one multiplexed connection, so concurrent requests
//! are pipelined on it, never queued behind each other's answers.
//!
//! On a Cluster, anonymous sessions take one round trip too. An authenticated `load` takes
//! two (record, then revocation time), as do `create`, `save` and `delete` (user slot, then
//! session slot, in that order: the index is written before the record, as above). The two
//! cannot share a slot: a session's key must be found from its store key alone (the handle
//! names no user), so it is tagged with the store key, while all of a user's sessions must see
//! one revocation time, which lives once in the user's slot; tagging the session key with its
//! user would need a lookup of the user before every read, and copying the revocation time
//! into every session would make "log out everywhere" a write per session. Listing a user's
//! sessions reads their records concurrently over the multiplexed connection (a Cluster
//! pipeline must stay in one slot, so independent commands are sent together instead).
//!
//! # Expiry and TTLs
//!
//! Records and tombstones carry native Redis TTLs, so Redis deletes them itself. The store
//! also never trusts a TTL: every read checks the record's expiry against the `now` the engine
//! passes in, so an expired record never loads even before Redis removes it.
//!
//! The engine's clock and Redis's clock need not agree (tests run the engine on a fixed
//! clock in the past; in production the two hosts' clocks drift). So a TTL is always relative:
//! `PEXPIRE expiry - now`, where `now` is the engine's time of the write (`save`'s `now`, a new
//! record's creation time), never `PEXPIREAT expiry`, which would delete at once a record whose
//! expiry is in Redis's past. Redis therefore keeps a record at least as long as the engine
//! considers it alive (plus the network delay). A tombstone's TTL is measured the same way
//! from the record it replaces.
//!
//! [`SessionStore::purge_expired`](tessera_core::SessionStore::purge_expired) removes what is due on the engine's clock: it `SCAN`s the
//! session keys of every master and deletes due ones with a script that checks again, then
//! trims the user indexes. With native TTLs there is rarely anything left to remove, but the
//! scan reads every session key: on a large store, run it rarely (the service's
//! `session.purge_interval`).
//!
//! # Durability
//!
//! A session is exactly as durable as the Redis it is written to. **A Redis without
//! persistence loses every session when it restarts** (everyone is logged out, and revocation
//! times are forgotten, though the sessions they killed are gone too). With RDB snapshots, the
//! writes since the last snapshot are lost; with `appendonly yes` and `appendfsync everysec`,
//! up to a second of writes. Replication is asynchronous: a failover can lose the last writes,
//! including a logout's tombstone. Where that matters, use `appendfsync always`, the `WAIT`
//! command's guarantees, or the Postgres store.
//!
//! # Security
//!
//! Redis holds store keys (SHA-256 digests of handles), never a handle, so a dump of it
//! hijacks no session; it does hold user ids and session data in clear. Passwords in URLs are
//! never printed: `Debug` and [`RedisConfig::redacted`] replace them with `***`. Use TLS
//! (`rediss://`) across untrusted networks.
//!
//! # Requirements
//!
//! Redis 6.2 or later (`ZADD GT`); tested with 7.0. On a Cluster, `SCRIPT LOAD` and `SCAN`
//! are sent to every master.
//!
//! This crate has no features. Its tests run on throwaway servers from
//! `tessera-test-support` (`crates/test-support`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod blobs;
mod config;
mod keys;
mod kv;
mod revocations;
mod scripts;
mod session;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, RedisError, RedisResult, ScriptInvocation, Value};
use tessera_core::{SessionRecord, Timestamp};

use config::Target;
pub use config::{DEFAULT_PREFIX, DEFAULT_TIMEOUT, RedisConfig};
use keys::Keys;
pub use keys::hash_slot;
/// Store URLs are shown through the one redaction of `tessera-core`.
pub use tessera_core::redact_url;

/// The shortest TTL given to a key: a record that is already dead when written still lives a
/// second in Redis (it never loads: reads check expiry).
const MIN_TTL_MS: i64 = 1_000;
/// The longest TTL given to a key (ten years); Redis refuses expiries past its range.
const MAX_TTL_MS: i64 = 10 * 365 * 86_400_000;
/// Keys asked for per `SCAN` call during a purge.
const SCAN_COUNT: usize = 1_000;
/// Values of the keyed store removed per script during a purge.
const NS_PURGE_BATCH: usize = 500;

/// Errors connecting to Redis. Errors of the store's operations are [`tessera_core::Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not one of the accepted forms. `url` has its password hidden.
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        reason: &'static str,
        /// redis-rs' error, when it refused the URL.
        #[source]
        source: Option<RedisError>,
    },
    /// The key prefix contains `{`, `}` or a control character.
    #[error("the key prefix must not contain braces or control characters")]
    BadPrefix,
    /// Connecting or loading the scripts failed.
    #[error("cannot connect to Redis at {url}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// Why.
        #[source]
        source: RedisError,
    },
    /// Connecting took longer than the configured timeout (three times over).
    #[error("Redis at {url} did not answer in time")]
    ConnectTimeout {
        /// The URL, password hidden.
        url: String,
    },
}

impl Error {
    /// Every code [`Error::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "redis-invalid-url",
        "redis-bad-prefix",
        "redis-connect",
        "redis-connect-timeout",
    ];

    /// A stable identifier for this error, for logs, metrics and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => "redis-invalid-url",
            Self::BadPrefix => "redis-bad-prefix",
            Self::Connect { .. } => "redis-connect",
            Self::ConnectTimeout { .. } => "redis-connect-timeout",
        }
    }
}

type StoreResult<T> = tessera_core::Result<T>;

/// One multiplexed connection: to a server (reconnecting by itself), or to a Cluster
/// (following `MOVED`/`ASK` and topology changes). Cheap to clone.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// A [`SessionStore`](tessera_core::SessionStore) on Redis or a Redis Cluster. Cheap to share: hold it in an `Arc`.
///
/// See the [crate documentation](crate) for the key layout, atomicity and TTLs.
///
/// # Errors
///
/// Its [`SessionStore`](tessera_core::SessionStore) operations report Redis failures as
/// [`tessera_core::Error::Backend`] with the redis-rs error as the source, an operation slower
/// than the configured timeout as [`tessera_core::Error::Timeout`], and stored bytes that are
/// not a record as [`tessera_core::Error::Decode`], besides the typed outcomes of the trait.
pub struct RedisStore {
    conn: Conn,
    keys: Keys,
    timeout: Duration,
    redacted: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.redacted)
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects with the defaults to the server or Cluster named by `url` (see
    /// [`RedisConfig`]).
    ///
    /// # Errors
    ///
    /// As [`RedisConfig::from_url`] and [`RedisStore::connect`].
    pub async fn open(url: &str) -> Result<Self, Error> {
        Self::connect(RedisConfig::from_url(url)?).await
    }

    /// Connects, and loads the scripts into the server (every master of a Cluster).
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] if the server cannot be reached, refuses the credentials or the
    /// scripts; [`Error::ConnectTimeout`] if that takes more than three times the configured
    /// timeout.
    pub async fn connect(config: RedisConfig) -> Result<Self, Error> {
        let url = config.redacted().to_owned();
        let timeout = config.timeout;
        let fail = |source| Error::Connect {
            url: url.clone(),
            source,
        };
        let connecting = async {
            if config.is_tls() {
                // redis-rs builds its TLS configuration on the process-wide rustls provider;
                // install ring's unless the application already chose one.
                let _ = rustls::crypto::ring::default_provider().install_default();
            }
            let tls = config
                .root_ca_pem
                .clone()
                .map(|pem| redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                });
            let mut conn = match &config.target {
                Target::Standalone(u) => {
                    let client = match tls {
                        Some(certs) => redis::Client::build_with_tls(u.as_str(), certs),
                        None => redis::Client::open(u.as_str()),
                    }
                    .map_err(fail)?;
                    let settings = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout));
                    Conn::Single(
                        client
                            .get_connection_manager_with_config(settings)
                            .await
                            .map_err(fail)?,
                    )
                }
                Target::Cluster(nodes) => {
                    let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                        .connection_timeout(timeout)
                        .response_timeout(timeout);
                    if let Some(certs) = tls {
                        builder = builder.certs(certs);
                    }
                    let client = builder.build().map_err(fail)?;
                    Conn::Cluster(client.get_async_connection().await.map_err(fail)?)
                }
            };
            for script in scripts::all() {
                script
                    .prepare_invoke()
                    .load_async(&mut conn)
                    .await
                    .map_err(fail)?;
            }
            Ok(conn)
        };
        let conn = tokio::time::timeout(timeout.saturating_mul(3), connecting)
            .await
            .map_err(|_| Error::ConnectTimeout { url: url.clone() })??;
        Ok(Self {
            conn,
            keys: Keys::new(config.prefix.clone()),
            timeout,
            redacted: url,
        })
    }

    /// Whether this store talks to a Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// Runs one Redis exchange within the timeout.
    async fn bounded<T>(&self, op: impl Future<Output = RedisResult<T>>) -> StoreResult<T> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r.map_err(redis_error),
            Err(_) => Err(tessera_core::Error::Timeout),
        }
    }

    async fn invoke<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        self.bounded(inv.invoke_async(&mut conn)).await
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        self.bounded(cmd.query_async(&mut conn)).await
    }

    async fn pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        self.bounded(pipe.query_async(&mut conn)).await
    }

    /// Indexes `hex` under `user` with `score` (its expiry) and returns the user's revocation
    /// time.
    async fn touch_user(
        &self,
        user: &str,
        hex: &str,
        expires: Timestamp,
        ttl: i64,
    ) -> StoreResult<Option<Timestamp>> {
        let revoked: Option<i64> = self
            .invoke(
                scripts::TOUCH_USER
                    .key(self.keys.user_index(user))
                    .key(self.keys.user_revoked(user))
                    .arg(hex)
                    .arg(expires.unix_millis())
                    .arg(ttl),
            )
            .await?;
        Ok(revoked.map(Timestamp::from_unix_millis))
    }

    async fn unindex(&self, user: &str, hexes: &[&str]) -> StoreResult<()> {
        if hexes.is_empty() {
            return Ok(());
        }
        self.query::<()>(
            redis::cmd("ZREM")
                .arg(self.keys.user_index(user))
                .arg(hexes),
        )
        .await
    }

    /// The masters to scan: `None` for the one server.
    async fn scan_targets(&self) -> StoreResult<Vec<Option<(String, u16)>>> {
        let Conn::Cluster(c) = &self.conn else {
            return Ok(vec![None]);
        };
        let mut c = c.clone();
        let replies = self
            .bounded(c.route_command(
                redis::cmd("PING"),
                RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
            ))
            .await?;
        let Value::Map(pairs) = replies else {
            return Err(tessera_core::Error::Unreachable(
                "a command to every master did not answer with a map",
            ));
        };
        let mut out = vec![];
        for (addr, _) in pairs {
            let addr: String = redis::from_redis_value(addr).map_err(|e| redis_error(e.into()))?;
            let parsed = addr
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)));
            match parsed {
                Some(node) => out.push(Some(node)),
                None => {
                    return Err(tessera_core::Error::Unreachable(
                        "a Cluster node address is not host:port",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// One `SCAN` step on one master.
    async fn scan_step(
        &self,
        node: &Option<(String, u16)>,
        cursor: u64,
        pattern: &str,
    ) -> StoreResult<(u64, Vec<String>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        match (&self.conn, node) {
            (Conn::Cluster(c), Some((host, port))) => {
                let mut c = c.clone();
                let v = self
                    .bounded(c.route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    ))
                    .await?;
                redis::from_redis_value(v).map_err(|e| redis_error(e.into()))
            }
            _ => self.query(&cmd).await,
        }
    }

    /// Deletes the due session keys among `names`; returns how many went, and un-indexes them.
    async fn purge_sessions(&self, names: &[String], now: Timestamp) -> StoreResult<u64> {
        let now_ms = now.unix_millis();
        // Read the deadlines first: most keys are not due, and a read is cheaper than a script.
        let deadlines = try_join_all(names.iter().map(|n| {
            let cmd = std::mem::take(redis::cmd("HMGET").arg(n).arg("e").arg("t"));
            async move { self.query::<(Option<i64>, Option<i64>)>(&cmd).await }
        }))
        .await?;
        let due: Vec<&String> = names
            .iter()
            .zip(deadlines)
            .filter(|(_, (e, t))| e.or(*t).is_some_and(|d| d <= now_ms))
            .map(|(n, _)| n)
            .collect();
        let removed = try_join_all(due.iter().map(|n| async move {
            let user: Option<String> = self
                .invoke(scripts::PURGE_ONE.key(n.as_str()).arg(now_ms))
                .await?;
            Ok::<_, tessera_core::Error>(user.map(|u| (n.as_str(), u)))
        }))
        .await?;
        let mut purged = 0;
        let mut by_user: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (name, user) in removed.iter().flatten() {
            purged += 1;
            if let (false, Some(hex)) = (user.is_empty(), self.keys.hex_of_session(name)) {
                by_user.entry(user.as_str()).or_default().push(hex);
            }
        }
        try_join_all(by_user.iter().map(|(u, hexes)| self.unindex(u, hexes))).await?;
        Ok(purged)
    }

    /// Drops index entries scored at or before `now` from the indexes among `names`.
    async fn trim_indexes(&self, names: &[String], now: Timestamp) -> StoreResult<()> {
        try_join_all(names.iter().map(|n| {
            let cmd = std::mem::take(
                redis::cmd("ZREMRANGEBYSCORE")
                    .arg(n)
                    .arg("-inf")
                    .arg(now.unix_millis()),
            );
            async move { self.query::<()>(&cmd).await }
        }))
        .await?;
        Ok(())
    }
}

/// A Redis error as a store error: timeouts are [`tessera_core::Error::Timeout`].
fn redis_error(e: RedisError) -> tessera_core::Error {
    if e.is_timeout() {
        tessera_core::Error::Timeout
    } else {
        tessera_core::Error::backend(e)
    }
}

fn encode(record: &SessionRecord) -> StoreResult<String> {
    serde_json::to_string(record).map_err(|e| tessera_core::Error::Encode(Box::new(e)))
}

fn decode(bytes: &[u8]) -> StoreResult<SessionRecord> {
    serde_json::from_slice(bytes).map_err(|e| tessera_core::Error::Decode(Box::new(e)))
}

/// The TTL for a key that must live until `until`, written at `now` (both on the engine's
/// clock).
fn ttl_ms(until: Timestamp, now: Timestamp) -> i64 {
    until
        .unix_millis()
        .saturating_sub(now.unix_millis())
        .clamp(MIN_TTL_MS, MAX_TTL_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_listed_unique_and_kebab_case() {
        let all = [
            Error::InvalidUrl {
                url: String::new(),
                reason: "",
                source: None,
            },
            Error::BadPrefix,
            Error::Connect {
                url: String::new(),
                source: RedisError::from(std::io::Error::other("x")),
            },
            Error::ConnectTimeout { url: String::new() },
        ];
        tessera_test_support::assert_error_codes(Error::CODES, all.iter().map(Error::code));
    }
}
