//! The service configuration: a TOML file, then `TESSERA_…` environment overrides, validated
//! completely at start-up with errors that name the field.
//!
//! Every field has a default, so no file at all is a valid configuration: the embedded redb
//! store in `./tessera-data`, on `127.0.0.1:7300`.
//!
//! One file per section; `Config::build` calls their builders in turn:
//!
//! | file | what |
//! |---|---|
//! | `file.rs` | the file schema: the TOML structs, as written |
//! | `settings.rs` | the table of every setting: file key, variable, type, default |
//! | `source.rs` | the environment over the file (`pick`), where each value came from |
//! | `service.rs` | `listen`, `data_dir`, API keys, `[limits]`, `[revocations]` |
//! | `store.rs` | `[store]`: the store URLs ([`StoreUrl`]) and the store timeout |
//! | `session.rs` | `[session]` and `[cookie]` |
//! | `tokens.rs` | `[tokens]`: session tokens, their keys, the MediaWiki profile |
//! | `verify.rs` | `[verify]`: the edge verifier |
//! | `kask.rs` | `[kask]`: the Kask-compatible API (`TESSERA_KASK_*`) |
//! | `kv.rs` | `[kv]`: the keyed store on `/v1/kv` (`TESSERA_KV_*`) |
//! | `server.rs` | `[server]`: the access log, the shutdown grace |
//! | `keys.rs` | `[keys]`: keys in `data_dir` or in the store (a fleet) |
//! | `error.rs` | [`ConfigError`] |

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tessera::SessionConfig;
use tessera::cookie::CookieConfig;

mod error;
mod file;
mod kask;
mod keys;
mod kv;
mod server;
mod service;
mod session;
pub mod settings;
mod source;
mod store;
mod tokens;
mod verify;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use keys::{DEFAULT_KEYS_REFRESH, KeyStorage, KeysConfig};
pub use server::{DEFAULT_SHUTDOWN_GRACE, ServerConfig};
pub use service::Limits;
pub(crate) use service::check_api_key;
pub use settings::{Effective, Kind, SETTINGS, Setting};
pub use source::{Source, parse_duration};
pub use store::{RemoteUrl, StoreUrl};
pub use tokens::{
    DEFAULT_ISSUER, MEDIAWIKI_COOKIE, MEDIAWIKI_RLC, MEDIAWIKI_SCOPE, TokenProfile, TokensConfig,
};
pub use verify::VerifyConfig;

use file::File;
use source::Sources;

/// The whole configuration, after defaults, file and environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where generated keys and the default redb file live.
    pub data_dir: PathBuf,
    /// The store for authenticated sessions (and anonymous ones unless `anon_store` is set).
    pub store: StoreUrl,
    /// A separate store for anonymous sessions.
    pub anon_store: Option<StoreUrl>,
    /// The deadline of every store operation (default 1 s): past it the request answers 503.
    pub store_timeout: Duration,
    /// Management API keys given in the file or `TESSERA_API_KEY`.
    pub api_keys: Vec<String>,
    /// A file holding one API key per line.
    pub api_key_file: Option<PathBuf>,
    /// Session lifetimes and limits.
    pub session: SessionConfig,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// Whether `cookie` is the development preset (`[cookie] development = true`).
    pub cookie_development: bool,
    /// How often expired sessions are purged.
    pub purge_interval: Duration,
    /// Request limits.
    pub limits: Limits,
    /// The Kask-compatible API on `/sessions/v1/`.
    pub kask: crate::kask::KaskSettings,
    /// The keyed store on `/v1/kv`.
    pub kv: crate::kv::KvSettings,
    /// How long revocations stay in the feed (default 4 h 5 min).
    pub revocation_keep: Duration,
    /// Session tokens (`[tokens]`).
    pub tokens: TokensConfig,
    /// `[verify] mode = "required"`: `GET /v1/verify` answers 401 without a valid token
    /// (default `optional`: 200 with `X-Tessera-Subject: anon`).
    pub verify_required: bool,
    /// `[verify] refresh`: how long the verifier reuses its copy of the revocation log
    /// (default 2 s, at most 1 min; `0s` reads new entries on every request).
    pub verify_refresh: Duration,
    /// The rest of `[verify]`: claim headers, the verified-token cache, and where a
    /// verifier-only deployment (`tessera verifier`) gets its keys and revocations.
    pub verify: VerifyConfig,
    /// `[server]`: the access log and the shutdown grace.
    pub server: ServerConfig,
    /// `[keys]`: where the keys live.
    pub keys: KeysConfig,
    /// Where each setting's value came from (absent: the default).
    sources: std::collections::BTreeMap<&'static str, Source>,
}

impl Config {
    /// The configuration from an optional file and the environment (`env` looks a variable
    /// up; pass `|k| std::env::var(k).ok()` in production).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first problem found.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::parse_file(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => File::default(),
        };
        Self::build(parsed, env)
    }

    /// The configuration from TOML text and the environment.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first problem found.
    pub fn from_toml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let parsed = Self::parse_file(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            source,
        })?;
        Self::build(parsed, env)
    }

    fn parse_file(text: &str) -> Result<File, toml::de::Error> {
        toml::from_str(text)
    }

    /// Builds each section in turn. The order is the order errors are found in: the first
    /// problem is the one reported.
    fn build(f: File, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let sources = Sources::new(&env);
        let env = &sources;
        let (listen, data_dir) = service::address(f.listen, f.data_dir, env)?;
        let (store, anon_store) = store::urls(f.store.url, f.store.anonymous, &data_dir, env)?;
        let (api_keys, api_key_file) = service::api_keys(f.api_keys, f.api_key_file, env)?;
        let (session, purge_interval) = session::session(f.session, env)?;
        let (cookie, cookie_development) = session::cookie(f.cookie, env)?;
        let limits = service::limits(&f.limits, env)?;
        let store_timeout = store::timeout(f.store.timeout, env)?;
        let revocation_keep = service::revocation_keep(f.revocations.keep, env)?;
        let kask = kask::build(f.kask, env)?;
        let kv = kv::build(f.kv, env)?;
        let tokens = tokens::build(f.tokens, env, &cookie, revocation_keep)?;
        let (verify_required, verify_refresh, verify) = verify::build(f.verify, env, &tokens)?;
        let server = server::build(f.server, env)?;
        let keys = keys::build(f.keys, env, &tokens, &verify)?;
        Ok(Self {
            listen,
            data_dir,
            store,
            anon_store,
            store_timeout,
            api_keys,
            api_key_file,
            session,
            cookie,
            purge_interval,
            limits,
            kask,
            kv,
            revocation_keep,
            tokens,
            verify_required,
            verify_refresh,
            verify,
            server,
            keys,
            cookie_development,
            sources: sources.into_seen(),
        })
    }

    /// Every setting with its value in effect and where it came from, in [`SETTINGS`] order:
    /// what `tessera config check --print` shows. API keys are never shown, and URLs have
    /// their passwords replaced by `***`.
    pub fn effective(&self) -> Vec<Effective> {
        settings::values(self)
            .into_iter()
            .map(|(setting, value)| Effective {
                setting,
                value,
                source: self.sources.get(setting.key).copied().unwrap_or_default(),
            })
            .collect()
    }
}
