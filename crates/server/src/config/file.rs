//! The file schema: the TOML structs as written, every key optional, unknown keys refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use tessera::cookie::SameSite;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) api_keys: Vec<String>,
    pub(super) api_key_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) store: FileStore,
    #[serde(default)]
    pub(super) session: FileSession,
    #[serde(default)]
    pub(super) cookie: FileCookie,
    #[serde(default)]
    pub(super) limits: FileLimits,
    #[serde(default)]
    pub(super) kask: FileKask,
    #[serde(default)]
    pub(super) kv: FileKv,
    #[serde(default)]
    pub(super) revocations: FileRevocations,
    #[serde(default)]
    pub(super) tokens: FileTokens,
    #[serde(default)]
    pub(super) verify: FileVerify,
    #[serde(default)]
    pub(super) server: FileServer,
    #[serde(default)]
    pub(super) keys: FileKeys,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKeys {
    pub(super) storage: Option<String>,
    pub(super) master_key_file: Option<PathBuf>,
    pub(super) other_master_key_file: Option<PathBuf>,
    pub(super) refresh: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServer {
    pub(super) access_log: Option<bool>,
    pub(super) shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileVerify {
    pub(super) mode: Option<String>,
    pub(super) refresh: Option<String>,
    pub(super) claims: Option<Vec<String>>,
    pub(super) cache: Option<usize>,
    pub(super) jwks: Option<String>,
    pub(super) public_keys: Option<Vec<String>>,
    pub(super) revocations: Option<String>,
    pub(super) jwks_refresh: Option<String>,
    pub(super) unknown_kid_cooldown: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRevocations {
    pub(super) keep: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKask {
    pub(super) ttl: Option<String>,
    pub(super) max_value_bytes: Option<usize>,
    pub(super) require_api_key: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKv {
    pub(super) max_value_bytes: Option<usize>,
    pub(super) max_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStore {
    pub(super) url: Option<String>,
    pub(super) timeout: Option<String>,
    #[serde(default)]
    pub(super) anonymous: Option<FileAnonStore>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAnonStore {
    pub(super) url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSession {
    pub(super) idle_timeout: Option<String>,
    pub(super) absolute_timeout: Option<String>,
    pub(super) remember_idle_timeout: Option<String>,
    pub(super) remember_absolute_timeout: Option<String>,
    pub(super) tombstone_ttl: Option<String>,
    pub(super) csrf_max_age: Option<String>,
    pub(super) csrf_rotate_every: Option<String>,
    pub(super) max_data_bytes: Option<usize>,
    pub(super) purge_interval: Option<String>,
    pub(super) anonymous: Option<String>,
    pub(super) anonymous_cookie_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCookie {
    pub(super) name: Option<String>,
    pub(super) secure: Option<bool>,
    pub(super) same_site: Option<SameSite>,
    pub(super) development: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) max_body_bytes: Option<usize>,
    pub(super) max_header_bytes: Option<usize>,
}

/// `[tokens]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTokens {
    pub(super) enabled: Option<bool>,
    pub(super) issuer: Option<String>,
    pub(super) exp: Option<String>,
    pub(super) sxp: Option<String>,
    pub(super) cookie_name: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) algorithm: Option<String>,
    pub(super) rsa_bits: Option<u32>,
    pub(super) ed25519_alg: Option<String>,
    pub(super) typ: Option<String>,
    pub(super) subject_prefix: Option<String>,
    pub(super) mediawiki_scope: Option<String>,
    pub(super) default_claims: Option<BTreeMap<String, toml::Value>>,
    pub(super) rotate: Option<bool>,
    pub(super) rotate_every: Option<String>,
    pub(super) publish_ahead: Option<String>,
}
