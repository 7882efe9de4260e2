//! The `[keys]` section: where the token, sealing and CSRF keys live. A directory on the node
//! (`data_dir`, the default), or the store, sealed under a master key, for a fleet of nodes
//! with no shared disk (docs/fleet.md).

use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, invalid};
use super::file::FileKeys;
use super::settings::{
    KEYS_MASTER_KEY_FILE, KEYS_OTHER_MASTER_KEY_FILE, KEYS_REFRESH, KEYS_STORAGE,
};
use super::source::{Env, duration, pick};
use super::{TokensConfig, VerifyConfig};

/// The default of `[keys] refresh`.
pub const DEFAULT_KEYS_REFRESH: Duration = Duration::from_secs(10);

/// Where the keys live (`[keys] storage`, `TESSERA_KEYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyStorage {
    /// Files in `data_dir` (`keys/`, `csrf.key`): one node, or nodes sharing one directory.
    #[default]
    Dir,
    /// One sealed record in the session store, shared by every node on that store.
    Store,
}

impl KeyStorage {
    /// The word in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dir => "dir",
            Self::Store => "store",
        }
    }
}

/// `[keys]`, after the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysConfig {
    /// Where the keys live.
    pub storage: KeyStorage,
    /// The master key file (`TESSERA_MASTER_KEY_FILE`), required with [`KeyStorage::Store`].
    pub master_key_file: Option<PathBuf>,
    /// Another master key file (`TESSERA_OTHER_MASTER_KEY_FILE`) the node opens the key
    /// record with but never seals with: set while a fleet moves to a new master key.
    pub other_master_key_file: Option<PathBuf>,
    /// How often a node reads the key manifest from the store (and rotates, when it holds
    /// the rotation lease). Default 10 s; 1 s to 10 min.
    pub refresh: Duration,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            storage: KeyStorage::Dir,
            master_key_file: None,
            other_master_key_file: None,
            refresh: DEFAULT_KEYS_REFRESH,
        }
    }
}

/// `[keys]`, checked against `[tokens] publish_ahead`: a key published ahead must reach
/// every node (within `refresh`) and every verifier's JWKS copy (within `[verify]
/// jwks_refresh`) before it signs, with a margin of twice that.
pub(super) fn build(
    f: FileKeys,
    env: Env<'_>,
    tokens: &TokensConfig,
    verify: &VerifyConfig,
) -> Result<KeysConfig, ConfigError> {
    let storage = match pick(env, &KEYS_STORAGE, f.storage) {
        None => KeyStorage::Dir,
        Some((_, v)) if v == "dir" => KeyStorage::Dir,
        Some((_, v)) if v == "store" => KeyStorage::Store,
        Some((name, v)) => {
            return Err(invalid(&name, format!("{v:?} is not dir or store")));
        }
    };
    let master_key_file = env
        .var(&KEYS_MASTER_KEY_FILE)
        .map(PathBuf::from)
        .or_else(|| env.file(&KEYS_MASTER_KEY_FILE, f.master_key_file));
    let other_master_key_file = env
        .var(&KEYS_OTHER_MASTER_KEY_FILE)
        .map(PathBuf::from)
        .or_else(|| env.file(&KEYS_OTHER_MASTER_KEY_FILE, f.other_master_key_file));
    let refresh = duration(env, &KEYS_REFRESH, f.refresh, DEFAULT_KEYS_REFRESH)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&refresh) {
        return Err(invalid(KEYS_REFRESH.key, "must be between 1s and 10m"));
    }
    if storage == KeyStorage::Store {
        if master_key_file.is_none() {
            return Err(invalid(
                KEYS_MASTER_KEY_FILE.key,
                "is required with keys.storage = \"store\": set TESSERA_MASTER_KEY_FILE to the \
                 fleet's master key file (`tessera keys master-key` makes one)",
            ));
        }
        let visible = (refresh + verify.jwks_refresh) * 2;
        if tokens.publish_ahead < visible {
            return Err(invalid(
                "tokens.publish_ahead",
                format!(
                    "must be at least twice keys.refresh plus verify.jwks_refresh ({}s) with \
                     keys.storage = \"store\", so that a published key reaches every node and \
                     every verifier before it signs",
                    visible.as_secs()
                ),
            ));
        }
    }
    Ok(KeysConfig {
        storage,
        master_key_file,
        other_master_key_file,
        refresh,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn dir_is_the_default_and_store_needs_a_master_key_file() {
        let c = Config::from_toml("", |_| None).unwrap();
        assert_eq!(c.keys, KeysConfig::default());
        let err = Config::from_toml("", env(&[("TESSERA_KEYS", "store")])).unwrap_err();
        assert!(err.to_string().contains("keys.master_key_file"), "{err}");
        let c = Config::from_toml(
            "",
            env(&[
                ("TESSERA_KEYS", "store"),
                ("TESSERA_MASTER_KEY_FILE", "/run/secrets/master.key"),
                ("TESSERA_KEYS_REFRESH", "2s"),
            ]),
        )
        .unwrap();
        assert_eq!(c.keys.storage, KeyStorage::Store);
        assert_eq!(
            c.keys.master_key_file.as_deref(),
            Some(std::path::Path::new("/run/secrets/master.key"))
        );
        assert_eq!(c.keys.refresh, Duration::from_secs(2));
        let c = Config::from_toml(
            "[keys]\nstorage = \"store\"\nmaster_key_file = \"m.key\"\nrefresh = \"30s\"",
            |_| None,
        )
        .unwrap();
        assert_eq!(c.keys.storage, KeyStorage::Store);
        assert_eq!(c.keys.refresh, Duration::from_secs(30));
        let err = Config::from_toml("[keys]\nstorage = \"disk\"", |_| None).unwrap_err();
        assert!(err.to_string().contains("not dir or store"), "{err}");
        let err = Config::from_toml("[keys]\nrefresh = \"0s\"", |_| None).unwrap_err();
        assert!(err.to_string().contains("between 1s and 10m"), "{err}");
    }

    #[test]
    fn publish_ahead_must_outlast_the_key_refresh_and_the_verifiers_jwks_refresh() {
        let store = "[keys]\nstorage = \"store\"\nmaster_key_file = \"m.key\"\n";
        // 2 × (10 s + 5 min) = 620 s > 10 min.
        let err = Config::from_toml(&format!("{store}[tokens]\npublish_ahead = \"10m\""), |_| {
            None
        })
        .unwrap_err();
        assert!(err.to_string().contains("tokens.publish_ahead"), "{err}");
        assert!(err.to_string().contains("620s"), "{err}");
        Config::from_toml(&format!("{store}[tokens]\npublish_ahead = \"11m\""), |_| {
            None
        })
        .unwrap();
        // A directory's keys are not refreshed from a store: the old rule alone.
        Config::from_toml("[tokens]\npublish_ahead = \"10m\"", |_| None).unwrap();
    }
}
