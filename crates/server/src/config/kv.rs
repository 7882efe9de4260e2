//! The `[kv]` section: the keyed store on `/v1/kv` (its settings type is
//! [`crate::kv::KvSettings`]).

use std::time::Duration;

use crate::kv::KvSettings;

use super::error::{ConfigError, invalid};
use super::file::FileKv;
use super::settings::{KV_MAX_TTL, KV_MAX_VALUE_BYTES};
use super::source::{Env, duration, number};

/// `[kv]`.
pub(super) fn build(f: FileKv, env: Env<'_>) -> Result<KvSettings, ConfigError> {
    let dk = KvSettings::default();
    let kv = KvSettings {
        max_value_bytes: number(
            env,
            &KV_MAX_VALUE_BYTES,
            f.max_value_bytes,
            dk.max_value_bytes,
        )?,
        max_ttl: duration(env, &KV_MAX_TTL, f.max_ttl, dk.max_ttl)?,
    };
    if kv.max_ttl < Duration::from_secs(1) {
        return Err(invalid(KV_MAX_TTL.key, "must be at least 1s"));
    }
    if !(1..=64 * 1024 * 1024).contains(&kv.max_value_bytes) {
        return Err(invalid(
            KV_MAX_VALUE_BYTES.key,
            "must be between 1 byte and 64 MiB",
        ));
    }
    Ok(kv)
}
