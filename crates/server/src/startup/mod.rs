//! From a [`Config`] to a running service: the data directory, generated secrets, the
//! stores, the background purge, and the listener.
//!
//! Secrets generated on a first run live in the data directory with mode 0600:
//! `csrf.key` (the CSRF HMAC key), when no API key is configured `api-key` (one key a line),
//! and in `keys/` the token signing keys and the sealing keys of anonymous cookies and secrets. A key file
//! that others can read is refused at start-up. The CSRF key, the sealing keys and the
//! secret files are read and written by the engine's [`tessera::keys::files`], the code
//! `Engine::builder` uses beside a redb store. Both keyrings follow their schedule and the
//! directory while the service runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tessera::Stores;
use tessera::bounded::Bounded;
use tessera::keys::files::{self, KeyFileError};
use tessera_core::{Clock, SessionStore};
use tessera_store_memory::MemoryStore;
use tessera_store_postgres::PostgresStore;
use tessera_store_redb::RedbStore;
use tessera_store_redis::RedisStore;
use zeroize::Zeroizing;

use crate::config::{Config, KeyStorage, StoreUrl, check_api_key};
use crate::keys::{KeySync, KeysError};
use crate::seal_keys::SealSync;
use crate::store_keys::StoreKeySync;
use crate::{ApiKeys, AppState, Settings};

mod keys;
mod serve;
mod tasks;

use keys::{Keys, dir_keys, pem_keys, store_keys};
pub(crate) use keys::{dir_csrf_ahead, random_holder, stored_policies, vault};
pub(crate) use serve::serve_router;
pub use serve::{bind, serve, serve_with_grace};
pub(crate) use tasks::{spawn_key_refresh, spawn_revocation_refresh};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file could not be read or written.
    #[error("key file {path}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file's content or permissions are wrong.
    #[error("key file {path}: {message}")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The store could not be opened (or, for Postgres, migrated).
    #[error("cannot open the {what} store {url}")]
    Store {
        /// Which store.
        what: &'static str,
        /// Its URL, password hidden.
        url: String,
        /// Why: the store crate's error.
        #[source]
        source: tessera_core::BoxError,
    },
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
    /// The engine refused the configuration.
    #[error("invalid session configuration")]
    Engine(#[source] tessera::Error),
    /// The token keyring could not be loaded or generated.
    #[error("cannot load or generate the token keys")]
    Keys(#[source] KeysError),
    /// The sealing keys (anonymous cookies, secrets) could not be loaded or generated.
    #[error("cannot load or generate the sealing keys in {path}")]
    SealKeys {
        /// The key directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: tessera_token::Error,
    },
    /// The keys in the store (`[keys] storage = "store"`) could not be used.
    #[error("cannot use the keys in the store")]
    StoredKeys(#[source] tessera::keys::stored::StoredKeysError),
    /// The listener could not bind.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A verifier-only deployment cannot start (`tessera verifier`).
    #[error("verifier: {0}")]
    Verifier(String),
}

impl StartupError {
    /// Every code [`StartupError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "startup-data-dir",
        "startup-key-file",
        "startup-bad-key-file",
        "startup-store",
        "startup-random-failed",
        "startup-engine",
        "startup-keys",
        "startup-seal-keys",
        "startup-stored-keys",
        "startup-bind",
        "startup-verifier",
    ];

    /// A stable identifier for logs and runbooks. The cause, with its own code, is the
    /// [`source`](std::error::Error::source).
    pub fn code(&self) -> &'static str {
        match self {
            Self::DataDir { .. } => "startup-data-dir",
            Self::KeyFile { .. } => "startup-key-file",
            Self::BadKeyFile { .. } => "startup-bad-key-file",
            Self::Store { .. } => "startup-store",
            Self::Random(_) => "startup-random-failed",
            Self::Engine(_) => "startup-engine",
            Self::Keys(_) => "startup-keys",
            Self::SealKeys { .. } => "startup-seal-keys",
            Self::StoredKeys(_) => "startup-stored-keys",
            Self::Bind { .. } => "startup-bind",
            Self::Verifier(_) => "startup-verifier",
        }
    }
}

/// A service ready to serve: its state, the stores to purge, and what to tell the operator.
#[derive(Debug)]
pub struct Prepared {
    /// The application state.
    pub state: AppState,
    /// Lines for the operator (where data lives, where the API key is).
    pub notes: Vec<String>,
    stores: Vec<Arc<dyn SessionStore>>,
    /// The token keyring and its directory, kept in step while serving.
    keys: Option<Arc<KeySync>>,
    /// The sealing keys and their directory, kept in step while serving (`dir` keys).
    seal_keys: Option<Arc<SealSync>>,
    /// The keys in the store and their refresh (`[keys] storage = "store"`).
    store_keys: Option<(Arc<StoreKeySync>, Duration)>,
    /// `[verify] public_keys`, read again every `[verify] jwks_refresh`.
    pem_keys: Option<(Arc<crate::verifier::RemoteKeys>, Duration)>,
}

/// What the operator is told about a store. Passwords are hidden.
fn describe(url: &StoreUrl) -> String {
    match url {
        StoreUrl::Memory => "memory (nothing survives a restart)".to_owned(),
        StoreUrl::Redb(p) => format!("redb {}", p.display()),
        StoreUrl::Redis(u) => {
            format!("redis {u} (sessions are as durable as this Redis' persistence settings)")
        }
        StoreUrl::Postgres(u) => format!("postgres {u}"),
    }
}

/// Opens (connects to) a store, with a deadline on every operation: a hanging store costs a
/// bounded wait and a 503. Networked stores are reached, and Postgres migrated, before the
/// service starts, so a wrong URL or password fails at start-up. A redb store is also put in
/// `redb`, labelled `label`, for its metrics.
pub(crate) async fn open_store(
    url: &StoreUrl,
    what: &'static str,
    timeout: Duration,
    label: &'static str,
    redb: &mut Vec<(&'static str, Arc<RedbStore>)>,
) -> Result<Arc<dyn SessionStore>, StartupError> {
    let fail = |source: tessera_core::BoxError| StartupError::Store {
        what,
        url: url.to_string(),
        source,
    };
    let store: Arc<dyn SessionStore> = match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Redb(p) => {
            let store = Arc::new(RedbStore::open(p).map_err(|e| fail(Box::new(e)))?);
            // Open, so locked: no other process can be making a copy now.
            crate::backup::remove_stale_copies(p);
            redb.push((label, store.clone()));
            store
        }
        StoreUrl::Redis(u) => Arc::new(
            RedisStore::open(u.expose())
                .await
                .map_err(|e| fail(Box::new(e)))?,
        ),
        StoreUrl::Postgres(u) => Arc::new(
            PostgresStore::open(u.expose())
                .await
                .map_err(|e| fail(Box::new(e)))?,
        ),
    };
    Ok(Arc::new(Bounded::new(store, timeout)))
}

/// Prepares the data directory, secrets and stores for `config`. Async because opening a
/// Redis or Postgres store connects to it.
///
/// # Errors
///
/// [`StartupError`] naming the file or store at fault.
pub async fn prepare(config: &Config, clock: Arc<dyn Clock>) -> Result<Prepared, StartupError> {
    let mut notes = vec![];
    files::create_private_dir(&config.data_dir)?;

    let mut keys: Vec<Zeroizing<String>> = config
        .api_keys
        .iter()
        .map(|k| Zeroizing::new(k.clone()))
        .collect();
    if let Some(f) = &config.api_key_file {
        keys.extend(read_key_lines(f)?);
    }
    if keys.is_empty() {
        let path = config.data_dir.join("api-key");
        // One key a line, like `api_key_file`: a second line is how the key rotates
        // (docs/operations.md, "Key rotation").
        let created = if path.exists() {
            let found = read_key_lines(&path)?;
            if found.is_empty() {
                return Err(StartupError::BadKeyFile {
                    path,
                    message: "it holds no key; remove it to have one generated".to_owned(),
                });
            }
            keys.extend(found);
            false
        } else {
            let (k, _) = files::read_or_create_secret(&path)?;
            keys.push(Zeroizing::new(k.trim().to_owned()));
            true
        };
        let verb = if created { "generated" } else { "using" };
        notes.push(format!(
            "{verb} the management API key in {} (mode 0600); send it as \
             `Authorization: Bearer $(head -n 1 {})`, or set TESSERA_API_KEY",
            path.display(),
            path.display()
        ));
    }
    let api_keys = ApiKeys::new(keys.iter().map(|k| k.as_str()));

    let mut redb_stores = vec![];
    let main = open_store(
        &config.store,
        "session",
        config.store_timeout,
        "session",
        &mut redb_stores,
    )
    .await?;
    notes.push(format!("session store: {}", describe(&config.store)));
    // A fleet's keys live with its authenticated sessions, in this store.
    let key_store = main.clone();
    // The Kask API keeps its values with the authenticated sessions, in this store.
    notes.push(config.kask.startup_note(main.as_kv().is_some()));
    let mut stores_to_purge = vec![main.clone()];
    let stores = match &config.anon_store {
        Some(url) => {
            let anon = open_store(
                url,
                "anonymous session",
                config.store_timeout,
                "anonymous",
                &mut redb_stores,
            )
            .await?;
            notes.push(format!("anonymous session store: {}", describe(url)));
            stores_to_purge.push(anon.clone());
            Stores::split(main, anon)
        }
        None => Stores::single(main),
    };
    if !config.cookie.secure() {
        notes.push(format!(
            "WARNING: development cookies ({}, not Secure): only for plain http://localhost",
            config.cookie.name()
        ));
    }
    let now = clock.now().unix_secs();
    let keys = match config.keys.storage {
        KeyStorage::Store => store_keys(config, key_store, now, &mut notes).await?,
        _ => dir_keys(config, now, &mut notes)?,
    };
    let Keys {
        csrf,
        tokens,
        seal,
        dir_sync,
        seal_sync,
        store_sync,
    } = keys;
    notes.push(match config.session.anonymous {
        tessera::AnonymousMode::Server => {
            "anonymous sessions: server-side (session.anonymous = \"server\")".to_owned()
        }
        _ => format!(
            "anonymous sessions: client-side, in a sealed cookie of at most {} bytes \
             (session.anonymous = \"client\")",
            config.session.anonymous_cookie_bytes
        ),
    });
    let verify_pem = pem_keys(config, &mut notes).await?;
    let settings = Settings {
        session: config.session.clone(),
        cookie: config.cookie.clone(),
        limits: config.limits,
        kask: config.kask,
        kv: config.kv,
        revocation_keep: config.revocation_keep,
        tokens,
        verify_required: config.verify_required,
        verify_refresh: config.verify_refresh,
        verify_claims: config.verify.claims.clone(),
        verify_claim_set: crate::edge::verify_claim_set(config),
        verify_pem: verify_pem.clone(),
        seal_keys: Some(seal.clone()),
        redb_stores,
        access_log: config.server.access_log,
        token_rotation: config.tokens.enabled && config.tokens.rotate,
    };
    let state =
        AppState::new(stores, settings, csrf, api_keys, clock).map_err(StartupError::Engine)?;
    Ok(Prepared {
        state,
        notes,
        stores: stores_to_purge,
        keys: dir_sync.map(Arc::new),
        seal_keys: seal_sync.map(Arc::new),
        store_keys: store_sync,
        pem_keys: verify_pem.map(|p| (p.keys, config.verify.jwks_refresh)),
    })
}

/// The engine's key-file errors as start-up errors, with the messages operators know.
impl From<KeyFileError> for StartupError {
    fn from(e: KeyFileError) -> Self {
        match e {
            KeyFileError::DataDir { path, source } => Self::DataDir { path, source },
            KeyFileError::Io { path, source } => Self::KeyFile { path, source },
            KeyFileError::Invalid { path, message } => Self::BadKeyFile {
                path,
                message: message.to_owned(),
            },
            KeyFileError::Random(e) => Self::Random(e),
            KeyFileError::SealKeys { path, source } => Self::SealKeys { path, source },
            e => Self::Engine(tessera::Error::KeyFiles(e)),
        }
    }
}

fn read_key_lines(path: &Path) -> Result<Vec<Zeroizing<String>>, StartupError> {
    let (text, _) = match fs::metadata(path) {
        Ok(_) => files::read_or_create_secret(path)?,
        Err(source) => {
            return Err(StartupError::KeyFile {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut keys = vec![];
    for (i, line) in text.lines().map(str::trim).enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        check_api_key(line).map_err(|m| StartupError::BadKeyFile {
            path: path.to_owned(),
            message: format!("line {}: {m}", i + 1),
        })?;
        keys.push(Zeroizing::new(line.to_owned()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera::keys::TokenKeys;

    use crate::keys::{KeyDir, RotateOptions};

    const T0: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn key_sync(data: &Path, extra: &str) -> (KeyDir, TokenKeys, KeySync) {
        let toml = format!(
            "data_dir = {:?}\n[tokens]\n{extra}",
            data.display().to_string()
        );
        let config = Config::from_toml(&toml, |_| None).unwrap();
        let dir = KeyDir::new(&config);
        let (ring, version, created) = dir.load_or_generate(T0).unwrap();
        assert!(created);
        let codec = dir.codec(&ring);
        let ring = TokenKeys::new(ring);
        let sync = KeySync::new(dir.clone(), ring.clone(), codec, version);
        (dir, ring, sync)
    }

    fn signer(ring: &TokenKeys, now: i64) -> tessera_token::KeyId {
        ring.read().signing_key_at(now).unwrap().kid().clone()
    }

    #[test]
    fn error_codes_are_listed_and_unique() {
        let io = || std::io::Error::other("test");
        let all = [
            StartupError::DataDir {
                path: PathBuf::new(),
                source: io(),
            },
            StartupError::KeyFile {
                path: PathBuf::new(),
                source: io(),
            },
            StartupError::BadKeyFile {
                path: PathBuf::new(),
                message: String::new(),
            },
            StartupError::Store {
                what: "session",
                url: String::new(),
                source: Box::new(io()),
            },
            StartupError::Random(getrandom::Error::UNSUPPORTED),
            StartupError::Engine(tessera::Error::Contention),
            StartupError::Keys(KeysError::NoNextKey),
            StartupError::SealKeys {
                path: PathBuf::new(),
                source: tessera_token::Error::NoSigningKey,
            },
            StartupError::StoredKeys(tessera::keys::stored::StoredKeysError::Unsupported {
                backend: "x",
            }),
            StartupError::Bind {
                addr: ([127, 0, 0, 1], 0).into(),
                source: io(),
            },
            StartupError::Verifier(String::new()),
        ];
        crate::codes::check(StartupError::CODES, all.iter().map(StartupError::code));
    }

    #[test]
    fn scheduled_rotation_publishes_signs_and_saves() {
        let data = tempfile::tempdir().unwrap();
        let (dir, ring, sync) = key_sync(data.path(), "");
        let first = signer(&ring, T0);
        let t = sync.tick(T0 + 60).unwrap();
        assert!(!t.rotation.changed() && !t.reloaded, "{t:?}");
        // A day before the 30-day rotation a next key is published; at 30 days it signs.
        let t = sync.tick(T0 + 29 * DAY + 60).unwrap();
        assert!(t.rotation.generated.is_some() && !t.reloaded, "{t:?}");
        sync.tick(T0 + 30 * DAY + 60).unwrap();
        let now = T0 + 30 * DAY + 120;
        let second = signer(&ring, now);
        assert_ne!(first, second);
        // Saved: a restart loads the rotated keys.
        let (loaded, _) = dir.load().unwrap();
        assert_eq!(loaded.signing_key_at(now).unwrap().kid(), &second);
    }

    #[test]
    fn changes_made_by_the_cli_reach_the_running_service() {
        let data = tempfile::tempdir().unwrap();
        let (dir, ring, sync) = key_sync(data.path(), "");
        let first = signer(&ring, T0);
        // `tessera keys rotate --force --promote` in another process.
        let (_, r) = dir
            .rotate(
                T0 + 10,
                RotateOptions {
                    force: true,
                    promote: true,
                },
            )
            .unwrap();
        let second = r.promoted.unwrap();
        assert_eq!(signer(&ring, T0 + 20), first, "not before the next tick");
        let t = sync.tick(T0 + 20).unwrap();
        assert!(t.reloaded, "{t:?}");
        assert_eq!(signer(&ring, T0 + 20), second);
        let t = sync.tick(T0 + 80).unwrap();
        assert!(!t.reloaded && !t.rotation.changed(), "{t:?}");

        // `tessera keys generate --overwrite`: the old keys are gone after the next tick.
        let ring3 = dir.generate(T0 + 100, true).unwrap();
        let third = ring3.signing_key_at(T0 + 100).unwrap().kid().clone();
        assert!(sync.tick(T0 + 120).unwrap().reloaded);
        assert_eq!(signer(&ring, T0 + 120), third);
        assert!(ring.read().public_key(&first).is_none());

        // A removed directory is written back from memory, not regenerated.
        fs::remove_dir_all(dir.path()).unwrap();
        let t = sync.tick(T0 + 180).unwrap();
        assert!(t.restored && !t.reloaded, "{t:?}");
        assert_eq!(
            dir.load()
                .unwrap()
                .0
                .signing_key_at(T0 + 180)
                .unwrap()
                .kid(),
            &third
        );
    }

    #[test]
    fn without_scheduled_rotation_the_service_only_follows_the_directory() {
        let data = tempfile::tempdir().unwrap();
        let (dir, ring, sync) = key_sync(data.path(), "rotate = false\n");
        let first = signer(&ring, T0);
        // Far past the schedule: nothing happens by itself.
        let t = sync.tick(T0 + 90 * DAY).unwrap();
        assert!(!t.rotation.changed() && !t.reloaded, "{t:?}");
        assert_eq!(signer(&ring, T0 + 90 * DAY), first);
        assert_eq!(dir.load().unwrap().0.keys().count(), 1);
        // `tessera keys rotate` (from cron, say) does the schedule's work; the service
        // follows.
        let (_, r) = dir.rotate(T0 + 90 * DAY, RotateOptions::default()).unwrap();
        assert!(r.generated.is_some());
        let t = sync.tick(T0 + 90 * DAY + 60).unwrap();
        assert!(t.reloaded && !t.rotation.changed(), "{t:?}");
        assert_eq!(ring.read().keys().count(), 2);
    }

    #[test]
    fn keys_of_an_algorithm_the_service_does_not_accept_are_not_swapped_in() {
        let data = tempfile::tempdir().unwrap();
        let (_, ring, sync) = key_sync(data.path(), "");
        let first = signer(&ring, T0);
        // Another configuration (ES256) overwrites the directory: this service, whose
        // allow-list was fixed at start-up for Ed25519, keeps its keys and says why.
        let toml = format!(
            "data_dir = {:?}\n[tokens]\nalgorithm = \"ES256\"\n",
            data.path().display().to_string()
        );
        let es = KeyDir::new(&Config::from_toml(&toml, |_| None).unwrap());
        es.generate(T0 + 10, true).unwrap();
        let err = sync.tick(T0 + 20).unwrap_err();
        assert_eq!(err.code(), "keys-algorithm-not-accepted", "{err}");
        assert!(err.to_string().contains("ES256"), "{err}");
        assert_eq!(signer(&ring, T0 + 20), first);
    }
}
