//! Where and how to connect: parsed from a URL, printed only with the password hidden.

use std::fmt;
use std::time::Duration;

use redis::IntoConnectionInfo as _;
use tessera_core::redact_url;

use crate::Error;

/// The key prefix used unless [`RedisConfig::with_key_prefix`] says otherwise.
pub const DEFAULT_PREFIX: &str = "tessera:";

/// How long one store operation may take, unless [`RedisConfig::with_timeout`] says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach Redis, parsed from a URL.
///
/// | URL | meaning |
/// |-----|---------|
/// | `redis://[user:password@]host:port[/db]` | one server (database `db`, default 0) |
/// | `rediss://…` | the same over TLS (system roots, or [`RedisConfig::with_root_certificate_pem`]) |
/// | `redis+cluster://[user:password@]host:port,host:port,…` | a Cluster, from any of its nodes |
/// | `rediss+cluster://…` | a Cluster over TLS |
///
/// `Debug` and [`RedisConfig::redacted`] never show the password.
///
/// # Examples
///
/// ```
/// use tessera_store_redis::RedisConfig;
///
/// let c = RedisConfig::from_url("redis+cluster://:hunter2@10.0.0.1:7000,10.0.0.2:7000")?;
/// assert!(c.is_cluster());
/// assert_eq!(c.redacted(), "redis+cluster://:***@10.0.0.1:7000,10.0.0.2:7000");
/// # Ok::<(), tessera_store_redis::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) target: Target,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) root_ca_pem: Option<Vec<u8>>,
    redacted: String,
}

#[derive(Clone)]
pub(crate) enum Target {
    /// One server: its URL.
    Standalone(String),
    /// A Cluster: one URL per seed node, credentials and scheme repeated in each.
    Cluster(Vec<String>),
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("custom_root_ca", &self.root_ca_pem.is_some())
            .finish()
    }
}

impl RedisConfig {
    /// Parses one of the URL forms in the table above.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] if the URL is none of them or redis-rs refuses it.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let redacted = redact_url(url);
        let invalid = |reason: &'static str| Error::InvalidUrl {
            url: redacted.clone(),
            reason,
            source: None,
        };
        let (scheme, rest, cluster) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            ("redis", rest, true)
        } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            ("rediss", rest, true)
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            ("", "", false)
        } else {
            return Err(invalid(
                "expected redis://, rediss://, redis+cluster:// or rediss+cluster://",
            ));
        };
        let target = if cluster {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            match tail {
                "" | "/" | "/0" => {}
                _ => {
                    return Err(invalid(
                        "a Cluster URL takes no database, path or query (Cluster has database 0 only)",
                    ));
                }
            }
            let (userinfo, hosts) = match authority.rfind('@') {
                Some(at) => (authority.get(..=at).unwrap_or(""), &authority[at + 1..]),
                None => ("", authority),
            };
            let nodes: Vec<String> = hosts
                .split(',')
                .map(|h| format!("{scheme}://{userinfo}{h}"))
                .collect();
            if hosts.split(',').any(str::is_empty) {
                return Err(invalid(
                    "a Cluster URL lists host:port pairs separated by commas",
                ));
            }
            Target::Cluster(nodes)
        } else {
            Target::Standalone(url.to_owned())
        };
        // Let redis-rs check every address now, so that a bad URL fails at start-up.
        let urls = match &target {
            Target::Standalone(u) => std::slice::from_ref(u),
            Target::Cluster(nodes) => nodes.as_slice(),
        };
        for u in urls {
            u.as_str()
                .into_connection_info()
                .map_err(|e| Error::InvalidUrl {
                    url: redacted.clone(),
                    reason: "redis-rs could not parse it",
                    source: Some(e),
                })?;
        }
        Ok(Self {
            target,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            root_ca_pem: None,
            redacted,
        })
    }

    /// Puts every key under `prefix` (default [`DEFAULT_PREFIX`]), so several deployments can
    /// share one Redis.
    ///
    /// # Errors
    ///
    /// [`Error::BadPrefix`] if it contains `{` or `}` (it would change the keys' hash tags)
    /// or a control character.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Result<Self, Error> {
        let prefix = prefix.into();
        if prefix.contains(['{', '}']) || prefix.chars().any(char::is_control) {
            return Err(Error::BadPrefix);
        }
        self.prefix = prefix;
        Ok(self)
    }

    /// Bounds every store operation (default [`DEFAULT_TIMEOUT`]); past it the operation fails
    /// with [`tessera_core::Error::Timeout`]. Also used as the connection timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts only this CA (PEM) for `rediss://` instead of the system's roots.
    pub fn with_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca_pem = Some(pem.into());
        self
    }

    /// Whether the URL names a Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// Whether the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        match &self.target {
            Target::Standalone(u) => u.starts_with("rediss://"),
            Target::Cluster(nodes) => nodes.iter().any(|u| u.starts_with("rediss://")),
        }
    }

    /// The URL with its password replaced by `***`, for logs.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        let c = RedisConfig::from_url("redis://127.0.0.1:6379/2").unwrap();
        assert!(!c.is_cluster() && !c.is_tls());
        let c = RedisConfig::from_url("rediss://h:6380").unwrap();
        assert!(c.is_tls());
        let c = RedisConfig::from_url("redis+cluster://a:1,b:2,c:3").unwrap();
        assert!(c.is_cluster());
        match &c.target {
            Target::Cluster(n) => assert_eq!(n, &["redis://a:1", "redis://b:2", "redis://c:3"]),
            Target::Standalone(_) => panic!(),
        }
        let c = RedisConfig::from_url("rediss+cluster://u:p@a:1,b:2/").unwrap();
        assert!(c.is_cluster() && c.is_tls());
        match &c.target {
            Target::Cluster(n) => assert_eq!(n, &["rediss://u:p@a:1", "rediss://u:p@b:2"]),
            Target::Standalone(_) => panic!(),
        }
        for bad in [
            "http://x",
            "redis+cluster://a:1,,b:2",
            "redis+cluster://a:1/3",
            "redis+cluster://",
            "memory:",
        ] {
            assert!(RedisConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_show() {
        for (url, want) in [
            ("redis://:s3cret@h:1/0", "redis://:***@h:1/0"),
            ("redis://user:s3cret@h:1", "redis://user:***@h:1"),
            ("redis://user@h:1", "redis://user@h:1"),
            ("redis://h:1", "redis://h:1"),
            (
                "redis+cluster://u:p%40ss@a:1,b:2",
                "redis+cluster://u:***@a:1,b:2",
            ),
            ("garbage", "***"),
        ] {
            assert_eq!(redact_url(url), want);
        }
        let c = RedisConfig::from_url("redis://:s3cret@127.0.0.1:1").unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        for bad in ["redis+cluster://:s3cret@a:1/9", "redis://:s3cret@h:port/x"] {
            let err = RedisConfig::from_url(bad).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
        }
    }

    #[test]
    fn prefixes_cannot_move_hash_tags() {
        let c = RedisConfig::from_url("redis://h:1").unwrap();
        assert!(c.clone().with_key_prefix("app{1}:").is_err());
        assert!(c.clone().with_key_prefix("a\nb").is_err());
        assert_eq!(c.with_key_prefix("app:").unwrap().key_prefix(), "app:");
    }
}
