//! The `[kask]` section: the Kask-compatible key-value API on `/sessions/v1/` (its settings
//! type is [`crate::kask::KaskSettings`]).

use std::time::Duration;

use crate::kask::KaskSettings;

use super::error::{ConfigError, invalid};
use super::file::FileKask;
use super::settings::{KASK_MAX_VALUE_BYTES, KASK_REQUIRE_API_KEY, KASK_TTL};
use super::source::{Env, boolean, duration, number};

/// `[kask]`.
pub(super) fn build(f: FileKask, env: Env<'_>) -> Result<KaskSettings, ConfigError> {
    let dk = KaskSettings::default();
    let kask = KaskSettings {
        ttl: duration(env, &KASK_TTL, f.ttl, dk.ttl)?,
        max_value_bytes: number(
            env,
            &KASK_MAX_VALUE_BYTES,
            f.max_value_bytes,
            dk.max_value_bytes,
        )?,
        require_api_key: boolean(
            env,
            &KASK_REQUIRE_API_KEY,
            f.require_api_key,
            dk.require_api_key,
        )?,
    };
    if kask.ttl < Duration::from_secs(1) {
        return Err(invalid(KASK_TTL.key, "must be at least 1s"));
    }
    if !(1..=64 * 1024 * 1024).contains(&kask.max_value_bytes) {
        return Err(invalid(
            KASK_MAX_VALUE_BYTES.key,
            "must be between 1 byte and 64 MiB",
        ));
    }
    Ok(kask)
}
