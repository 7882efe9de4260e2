//! The service itself: where it listens, its data directory, the management API keys, request
//! limits, and how long the revocation feed keeps its entries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, invalid};
use super::file::FileLimits;
use super::settings::{
    API_KEY_FILE, API_KEYS, DATA_DIR, LIMITS_MAX_BODY_BYTES, LIMITS_MAX_HEADER_BYTES, LISTEN,
    REVOCATIONS_KEEP,
};
use super::source::{Env, duration, number, pick};

/// Bounds on what a request may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes (default 64 KiB).
    pub max_body_bytes: usize,
    /// The largest total of request header names and values, in bytes (default 16 KiB).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// `listen` (`TESSERA_LISTEN`) and `data_dir` (`TESSERA_DATA_DIR`).
pub(super) fn address(
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    env: Env<'_>,
) -> Result<(SocketAddr, PathBuf), ConfigError> {
    let listen_s =
        pick(env, &LISTEN, listen).unwrap_or((LISTEN.key.to_owned(), "127.0.0.1:7300".to_owned()));
    let listen: SocketAddr = listen_s.1.parse().map_err(|_| {
        invalid(
            &listen_s.0,
            format!(
                "{:?} is not an address:port such as 127.0.0.1:7300",
                listen_s.1
            ),
        )
    })?;
    let data_dir = env
        .var(&DATA_DIR)
        .map(PathBuf::from)
        .or_else(|| env.file(&DATA_DIR, data_dir))
        .unwrap_or_else(|| PathBuf::from("./tessera-data"));
    Ok((listen, data_dir))
}

/// `api_keys` plus `TESSERA_API_KEY`, each checked, and `api_key_file`
/// (`TESSERA_API_KEY_FILE`), read at start-up.
pub(super) fn api_keys(
    mut api_keys: Vec<String>,
    api_key_file: Option<PathBuf>,
    env: Env<'_>,
) -> Result<(Vec<String>, Option<PathBuf>), ConfigError> {
    if !api_keys.is_empty() {
        env.file(&API_KEYS, Some(()));
    }
    // The variable adds a key to the file's.
    if let Some(k) = env.var(&API_KEYS) {
        api_keys.push(k);
    }
    for (i, k) in api_keys.iter().enumerate() {
        check_api_key(k).map_err(|m| invalid(&format!("api_keys[{i}]"), m))?;
    }
    let api_key_file = env
        .var(&API_KEY_FILE)
        .map(PathBuf::from)
        .or_else(|| env.file(&API_KEY_FILE, api_key_file));
    Ok((api_keys, api_key_file))
}

/// API keys must be long enough to resist guessing and printable so they survive headers.
pub(crate) fn check_api_key(k: &str) -> Result<(), String> {
    if k.len() < 32 {
        return Err("an API key must be at least 32 characters".into());
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an API key must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// `[limits]`.
pub(super) fn limits(f: &FileLimits, env: Env<'_>) -> Result<Limits, ConfigError> {
    let dl = Limits::default();
    let limits = Limits {
        max_body_bytes: number(
            env,
            &LIMITS_MAX_BODY_BYTES,
            f.max_body_bytes,
            dl.max_body_bytes,
        )?,
        max_header_bytes: number(
            env,
            &LIMITS_MAX_HEADER_BYTES,
            f.max_header_bytes,
            dl.max_header_bytes,
        )?,
    };
    if !(1024..=16 * 1024 * 1024).contains(&limits.max_body_bytes) {
        return Err(invalid(
            "limits.max_body_bytes",
            "must be between 1 KiB and 16 MiB",
        ));
    }
    if !(1024..=1024 * 1024).contains(&limits.max_header_bytes) {
        return Err(invalid(
            "limits.max_header_bytes",
            "must be between 1 KiB and 1 MiB",
        ));
    }
    Ok(limits)
}

/// `[revocations] keep` (`TESSERA_REVOCATIONS_KEEP`).
pub(super) fn revocation_keep(keep: Option<String>, env: Env<'_>) -> Result<Duration, ConfigError> {
    let revocation_keep = duration(
        env,
        &REVOCATIONS_KEEP,
        keep,
        crate::revocations::DEFAULT_KEEP,
    )?;
    if revocation_keep < Duration::from_secs(60) {
        return Err(invalid(
            "revocations.keep",
            "must be at least 1m (the longest token lifetime plus skew)",
        ));
    }
    Ok(revocation_keep)
}
