//! From a [`Config`] to a running service: the data directory, generated secrets, the
//! stores, the background purge, and the listener.
//!
//! Secrets generated on a first run live in the data directory with mode 0600:
//! `csrf.key` (the CSRF HMAC key), when no API key is configured `api-key`, and in `keys/`
//! the token signing keys and the sealing keys of anonymous cookies and secrets. A key file
//! that others can read is refused at start-up. Both keyrings rotate on their schedule
//! while the service runs.

use std::fs::{self, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera::Stores;
use tessera::bounded::Bounded;
use tessera::csrf::CsrfKey;
use tessera::token::TokenSettings;
use tessera_core::{Clock, SessionStore};
use tessera_store_memory::MemoryStore;
use tessera_store_postgres::PostgresStore;
use tessera_store_redb::RedbStore;
use tessera_store_redis::RedisStore;
use tessera_token::seal::{SealKeyring, SealPolicy, SealRotation};
use tessera_token::{Keyring, OsKeySource, RotationPolicy};
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::config::{Config, StoreUrl, check_api_key};
use crate::{ApiKeys, AppState, Settings, app};

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
    #[error("cannot load or generate the token keys in {path}")]
    Keys {
        /// The key directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: tessera_token::Error,
    },
    /// The sealing keys (anonymous cookies, secrets) could not be loaded or generated.
    #[error("cannot load or generate the sealing keys in {path}")]
    SealKeys {
        /// The key directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: tessera_token::Error,
    },
    /// The listener could not bind.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A service ready to serve: its state, the stores to purge, and what to tell the operator.
#[derive(Debug)]
pub struct Prepared {
    /// The application state.
    pub state: AppState,
    /// Lines for the operator (where data lives, where the API key is).
    pub notes: Vec<String>,
    stores: Vec<Arc<dyn SessionStore>>,
    /// The token keyring and its directory, rotated on a schedule while serving.
    keys: Option<(Arc<RwLock<Keyring>>, PathBuf)>,
    /// The sealing keys and their directory, rotated on a schedule while serving.
    seal_keys: (Arc<RwLock<SealKeyring>>, PathBuf),
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
/// service starts, so a wrong URL or password fails at start-up.
async fn open_store(
    url: &StoreUrl,
    what: &'static str,
    timeout: Duration,
) -> Result<Arc<dyn SessionStore>, StartupError> {
    let fail = |source: tessera_core::BoxError| StartupError::Store {
        what,
        url: url.to_string(),
        source,
    };
    let store: Arc<dyn SessionStore> = match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Redb(p) => Arc::new(RedbStore::open(p).map_err(|e| fail(Box::new(e)))?),
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
    create_private_dir(&config.data_dir)?;
    let csrf_path = config.data_dir.join("csrf.key");
    let (csrf_bytes, created) = secret_file(&csrf_path)?;
    if created {
        notes.push(format!("generated the CSRF key in {}", csrf_path.display()));
    }
    let mut csrf = [0u8; 32];
    let n = URL_SAFE_NO_PAD
        .decode_slice(csrf_bytes.trim(), &mut csrf)
        .ok()
        .filter(|n| *n == 32);
    if n.is_none() {
        return Err(StartupError::BadKeyFile {
            path: csrf_path,
            message: "must hold 32 bytes in unpadded base64url (delete it to generate a new one)"
                .into(),
        });
    }
    let csrf = CsrfKey::from_bytes(csrf);

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
        let (k, created) = secret_file(&path)?;
        let verb = if created { "generated" } else { "using" };
        notes.push(format!(
            "{verb} the management API key in {} (mode 0600); send it as \
             `Authorization: Bearer $(cat {})`, or set TESSERA_API_KEY",
            path.display(),
            path.display()
        ));
        keys.push(Zeroizing::new(k.trim().to_owned()));
    }
    let api_keys = ApiKeys::new(keys.iter().map(|k| k.as_str()));

    let main = open_store(&config.store, "session", config.store_timeout).await?;
    notes.push(format!("session store: {}", describe(&config.store)));
    let mut stores_to_purge = vec![main.clone()];
    let stores = match &config.anon_store {
        Some(url) => {
            let anon = open_store(url, "anonymous session", config.store_timeout).await?;
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
    let tokens = if config.tokens.enabled {
        Some(token_settings(config, clock.as_ref(), &mut notes)?)
    } else {
        notes.push("session tokens are disabled ([tokens] enabled = false)".to_owned());
        None
    };
    let seal_keys = seal_keyring(config, clock.as_ref(), &mut notes)?;
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
    let settings = Settings {
        session: config.session.clone(),
        cookie: config.cookie.clone(),
        limits: config.limits,
        kask: config.kask,
        revocation_keep: config.revocation_keep,
        tokens,
        verify_required: config.verify_required,
        verify_refresh: config.verify_refresh,
        seal_keys: Some(seal_keys.clone()),
    };
    let state =
        AppState::new(stores, settings, csrf, api_keys, clock).map_err(StartupError::Engine)?;
    let keys = state
        .engine()
        .tokens()
        .map(|t| (t.keyring.clone(), config.data_dir.join("keys")));
    Ok(Prepared {
        state,
        notes,
        stores: stores_to_purge,
        keys,
        seal_keys: (seal_keys, config.data_dir.join("keys")),
    })
}

/// How long a sealing key must keep opening after it stopped sealing: the longest life of
/// anything it sealed (an anonymous cookie lives at most `absolute_timeout`; a secret as long
/// as its session, up to `remember_absolute_timeout`), plus clock skew.
pub(crate) fn seal_policy(session: &tessera::SessionConfig) -> SealPolicy {
    let longest = session
        .absolute_timeout
        .max(session.remember_absolute_timeout);
    SealPolicy::default().with_retention(longest + Duration::from_secs(60))
}

/// The sealing keys in `data_dir/keys`, beside the token keys (generated on a first run).
fn seal_keyring(
    config: &Config,
    clock: &dyn Clock,
    notes: &mut Vec<String>,
) -> Result<Arc<RwLock<SealKeyring>>, StartupError> {
    let dir = config.data_dir.join("keys");
    let (ring, created) = SealKeyring::load_or_generate_at(
        &dir,
        seal_policy(&config.session),
        clock.now().unix_secs(),
    )
    .map_err(|source| StartupError::SealKeys {
        path: dir.clone(),
        source,
    })?;
    let verb = if created { "generated" } else { "using" };
    notes.push(format!(
        "{verb} the sealing keys (anonymous cookies, secrets) in {}",
        dir.display()
    ));
    Ok(Arc::new(RwLock::new(ring)))
}

/// The keyring in `data_dir/keys` (generated on a first run) and the token settings.
fn token_settings(
    config: &Config,
    clock: &dyn Clock,
    notes: &mut Vec<String>,
) -> Result<TokenSettings, StartupError> {
    let t = &config.tokens;
    let dir = config.data_dir.join("keys");
    let keys_err = |source| StartupError::Keys {
        path: dir.clone(),
        source,
    };
    let policy = RotationPolicy::default().with_max_token_lifetime(t.exp);
    let (ring, created) = Keyring::load_or_generate_at(
        &dir,
        policy,
        clock.now().unix_secs(),
        &mut OsKeySource::default(),
    )
    .map_err(keys_err)?;
    let verb = if created { "generated" } else { "using" };
    notes.push(format!(
        "{verb} the token signing keys in {}",
        dir.display()
    ));
    let codec = tessera_token::Config::new(t.issuer.clone()).with_max_lifetime(t.exp);
    let mut settings = TokenSettings::new(codec, Arc::new(RwLock::new(ring)), &config.cookie)
        .map_err(StartupError::Engine)?;
    if let Some(name) = &t.cookie_name {
        settings.cookie = config.cookie.with_name(name.clone()).map_err(|e| {
            StartupError::Engine(tessera::Error::Config(format!("tokens.cookie_name: {e}")))
        })?;
    }
    settings.lifetime = t.exp;
    settings.soft_lifetime = t.sxp;
    Ok(settings)
}

/// Serves `prepared` on `listener` until `shutdown` completes, purging expired sessions
/// every `purge_interval` in the background.
///
/// # Errors
///
/// An I/O error from the listener.
pub async fn serve(
    listener: TcpListener,
    prepared: Prepared,
    purge_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Prepared {
        state,
        stores,
        keys,
        seal_keys,
        ..
    } = prepared;
    let mut purgers: Vec<_> = stores
        .into_iter()
        .map(|store| spawn_purge(store, state.clone(), purge_interval))
        .collect();
    purgers.push(spawn_rotation(keys, seal_keys, state.clone()));
    let result = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    for p in purgers {
        p.abort();
    }
    result
}

/// Binds `config.listen`.
///
/// # Errors
///
/// [`StartupError::Bind`].
pub async fn bind(config: &Config) -> Result<TcpListener, StartupError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })
}

/// How often the keyring's schedule is checked (rotation itself follows its policy: a new
/// key is published a day before it signs).
const ROTATION_CHECK: Duration = Duration::from_secs(60);

/// One schedule for both keyrings: the token keys (when tokens are on) and the sealing keys.
fn spawn_rotation(
    keys: Option<(Arc<RwLock<Keyring>>, PathBuf)>,
    seal_keys: (Arc<RwLock<SealKeyring>>, PathBuf),
    state: AppState,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ROTATION_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = state.clock().now().unix_secs();
            let (seal, seal_dir) = seal_keys.clone();
            match tokio::task::spawn_blocking(move || rotate_seal_keys(&seal, &seal_dir, now)).await
            {
                Ok(Ok(r)) if r.changed() => {
                    tracing::info!(generated = ?r.generated, dropped = ?r.dropped, "rotated the sealing keys");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(code = e.code(), error = %e, "sealing key rotation failed")
                }
                Err(e) => tracing::warn!(error = %e, "sealing key rotation task failed"),
            }
            let Some((ring, dir)) = keys.clone() else {
                continue;
            };
            // Key generation and the files are blocking work (RSA keys take a while).
            match tokio::task::spawn_blocking(move || rotate_keys(&ring, &dir, now)).await {
                Ok(Ok(r)) if r.changed() => {
                    tracing::info!(promoted = ?r.promoted.as_ref().map(ToString::to_string), generated = ?r.generated.as_ref().map(ToString::to_string), "rotated the token keys");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(code = e.code(), error = %e, "token key rotation failed")
                }
                Err(e) => tracing::warn!(error = %e, "token key rotation task failed"),
            }
        }
    })
}

/// Applies the keyring's rotation schedule at `now` and saves the keys when they changed.
pub(crate) fn rotate_keys(
    ring: &RwLock<Keyring>,
    dir: &Path,
    now: i64,
) -> Result<tessera_token::Rotation, tessera_token::Error> {
    let mut ring = ring
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let rotation = ring.rotate_at(now, &mut OsKeySource::default())?;
    if rotation.changed() {
        ring.save(dir)?;
    }
    Ok(rotation)
}

/// Applies the sealing keys' rotation schedule at `now` and saves them when they changed.
pub(crate) fn rotate_seal_keys(
    ring: &RwLock<SealKeyring>,
    dir: &Path,
    now: i64,
) -> Result<SealRotation, tessera_token::Error> {
    let mut ring = ring
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let rotation = ring.rotate_at(now)?;
    if rotation.changed() {
        ring.save(dir)?;
    }
    Ok(rotation)
}

fn spawn_purge(
    store: Arc<dyn SessionStore>,
    state: AppState,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = state.clock().now();
            if let Some(kv) = store.as_kv() {
                match kv.kv_purge_expired(now).await {
                    Ok(0) => {}
                    Ok(n) => state.http().purged(store.backend(), n),
                    Err(e) => {
                        tracing::warn!(backend = store.backend(), code = e.code(), error = ?e, "key-value purge failed")
                    }
                }
            }
            if let Some(log) = store.as_revocation_log() {
                let before = now.saturating_sub(state.revocation_keep());
                if let Err(e) = log.purge_revocations(before).await {
                    tracing::warn!(backend = store.backend(), code = e.code(), error = ?e, "revocation log purge failed");
                }
            }
            match store.purge_expired(now).await {
                Ok(0) => {}
                Ok(n) => {
                    state.http().purged(store.backend(), n);
                    tracing::debug!(
                        backend = store.backend(),
                        purged = n,
                        "purged expired sessions"
                    );
                }
                Err(e) => {
                    tracing::warn!(backend = store.backend(), code = e.code(), error = ?e, "purge failed")
                }
            }
        }
    })
}

fn create_private_dir(path: &Path) -> Result<(), StartupError> {
    let err = |source| StartupError::DataDir {
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        fs::create_dir_all(path).map_err(err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Reads a secret file, or creates it with a fresh random value (mode 0600). Returns the
/// text and whether it was created. A file that group or others can read is refused.
fn secret_file(path: &Path) -> Result<(Zeroizing<String>, bool), StartupError> {
    let io = |source| StartupError::KeyFile {
        path: path.to_owned(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(StartupError::BadKeyFile {
                    path: path.to_owned(),
                    message: "group or others can read it; run `chmod 600` on it".into(),
                });
            }
            let text = Zeroizing::new(fs::read_to_string(path).map_err(io)?);
            Ok((text, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = Zeroizing::new([0u8; 32]);
            getrandom::fill(raw.as_mut()).map_err(StartupError::Random)?;
            let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok((text, true))
        }
        Err(e) => Err(io(e)),
    }
}

fn read_key_lines(path: &Path) -> Result<Vec<Zeroizing<String>>, StartupError> {
    let (text, _) = match fs::metadata(path) {
        Ok(_) => secret_file(path)?,
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

    #[test]
    fn scheduled_rotation_publishes_signs_and_saves() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let t0 = 1_800_000_000;
        let (ring, created) = Keyring::load_or_generate_at(
            &keys,
            RotationPolicy::default(),
            t0,
            &mut OsKeySource::default(),
        )
        .unwrap();
        assert!(created);
        let first = ring.signing_key_at(t0).unwrap().kid().clone();
        let ring = RwLock::new(ring);
        assert!(!rotate_keys(&ring, &keys, t0 + 60).unwrap().changed());
        // A day before the 30-day rotation a next key is published; at 30 days it signs.
        let r = rotate_keys(&ring, &keys, t0 + 29 * 86_400 + 60).unwrap();
        assert!(r.generated.is_some(), "{r:?}");
        rotate_keys(&ring, &keys, t0 + 30 * 86_400 + 60).unwrap();
        let now = t0 + 30 * 86_400 + 120;
        let second = ring
            .read()
            .unwrap()
            .signing_key_at(now)
            .unwrap()
            .kid()
            .clone();
        assert_ne!(first, second);
        // Saved: a restart loads the rotated keys.
        let loaded = Keyring::load(&keys, RotationPolicy::default()).unwrap();
        assert_eq!(loaded.signing_key_at(now).unwrap().kid(), &second);
    }

    #[test]
    fn scheduled_seal_rotation_keeps_old_values_open_for_the_longest_session() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let t0 = 1_800_000_000;
        let policy = seal_policy(&tessera::SessionConfig::default());
        assert_eq!(policy.retention(), Duration::from_secs(30 * 86_400 + 60));
        let (ring, created) = SealKeyring::load_or_generate_at(&keys, policy.clone(), t0).unwrap();
        assert!(created);
        let first = ring.sealing_kid().unwrap().to_owned();
        let old = ring.seal("n", "p", b"x", t0 + 40 * 86_400).unwrap();
        let ring = RwLock::new(ring);
        assert!(!rotate_seal_keys(&ring, &keys, t0 + 60).unwrap().changed());
        let r = rotate_seal_keys(&ring, &keys, t0 + 30 * 86_400).unwrap();
        let second = r.generated.unwrap();
        // Saved: a restart seals with the new key and opens the old value.
        let loaded = SealKeyring::load(&keys, policy.clone()).unwrap();
        assert_eq!(loaded.sealing_kid(), Some(second.as_str()));
        assert_eq!(loaded.open("n", "p", &old, t0 + 31 * 86_400).unwrap(), b"x");
        // Thirty days and a minute after it stopped sealing, the old key goes.
        let r = rotate_seal_keys(&ring, &keys, t0 + 60 * 86_400 + 60).unwrap();
        assert!(r.dropped.contains(&first), "{r:?}");
        assert!(
            SealKeyring::load(&keys, policy)
                .unwrap()
                .keys()
                .all(|k| k.kid != first)
        );
    }
}
