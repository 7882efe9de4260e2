//! The `[server]` section: how the running service logs its requests and how it stops.

use std::time::Duration;

use super::error::{ConfigError, invalid};
use super::file::FileServer;
use super::settings::{SERVER_ACCESS_LOG, SERVER_SHUTDOWN_GRACE};
use super::source::{Env, boolean, duration};

/// The default of `[server] shutdown_grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `[server]`, after the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// One access line per request on `tessera::access` at info (`access_log`,
    /// `TESSERA_ACCESS_LOG`; default on).
    pub access_log: bool,
    /// How long in-flight requests may take to finish after SIGTERM or SIGINT before their
    /// connections are closed (`shutdown_grace`, `TESSERA_SHUTDOWN_GRACE`; default 10 s, at
    /// most 1 h).
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            access_log: true,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// `[server]`.
pub(super) fn build(f: FileServer, env: Env<'_>) -> Result<ServerConfig, ConfigError> {
    let access_log = boolean(env, &SERVER_ACCESS_LOG, f.access_log, true)?;
    let shutdown_grace = duration(
        env,
        &SERVER_SHUTDOWN_GRACE,
        f.shutdown_grace,
        DEFAULT_SHUTDOWN_GRACE,
    )?;
    if shutdown_grace > Duration::from_secs(3600) {
        return Err(invalid(SERVER_SHUTDOWN_GRACE.key, "must be at most 1h"));
    }
    Ok(ServerConfig {
        access_log,
        shutdown_grace,
    })
}
