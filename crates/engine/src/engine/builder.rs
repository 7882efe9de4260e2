//! Building an [`Engine`]: working defaults, every one replaceable.

use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tessera_core::{Clock, SessionStore, SystemClock};
use tessera_token::seal::{SealKey, SealKeyring};

use super::store::Metered;
use super::{Engine, Stores};
use crate::cookie::CookieConfig;
use crate::csrf::{CsrfKey, CsrfKeySet};
use crate::keys::{CsrfKeys, SealKeys, files};
use crate::metrics::Metrics;
use crate::token::TokenSettings;
use crate::{Error, Result, SessionConfig, anonymous};

/// Where the builder finds the keys it was not given.
#[derive(Debug, Clone)]
enum KeyPlace {
    /// Beside the store: its [`SessionStore::directory`].
    Store,
    /// In this data directory.
    Dir(PathBuf),
    /// Fresh in memory, lost at restart.
    Ephemeral,
}

/// Builds an [`Engine`]; made by [`Engine::builder`].
///
/// The defaults work as they are:
///
/// | what | default | replace with |
/// |------|---------|--------------|
/// | sessions | [`SessionConfig::default`] | [`with_config`](Self::with_config) |
/// | session cookie | `__Host-tessera`, `Secure`, `HttpOnly`, `SameSite=Lax` | [`with_cookie`](Self::with_cookie) |
/// | clock | [`SystemClock`] | [`with_clock`](Self::with_clock) |
/// | metrics | registered in a fresh registry, [`Engine::registry`] | [`with_metrics`](Self::with_metrics) |
/// | CSRF and sealing keys | files beside the store, as `tessera serve` keeps them | [`with_key_dir`](Self::with_key_dir), [`with_csrf_key`](Self::with_csrf_key), [`with_seal_keys`](Self::with_seal_keys), [`ephemeral_keys`](Self::ephemeral_keys) |
/// | tokens | off | [`with_tokens`](Self::with_tokens) |
///
/// Keys not given are loaded from (or, on a first start, created in) a data directory with
/// the layout of `tessera serve` ([`crate::keys::files`]): `csrf.key` and `keys/`. The
/// directory is the one given with [`with_key_dir`](Self::with_key_dir), else the store's own
/// ([`SessionStore::directory`]: a redb store's directory). A store without one (memory,
/// Redis, PostgreSQL) needs a key directory, the keys themselves, or an explicit
/// [`ephemeral_keys`](Self::ephemeral_keys); otherwise [`build`](Self::build) fails.
#[must_use = "an engine builder does nothing until `build`"]
pub struct EngineBuilder {
    stores: Stores,
    config: SessionConfig,
    cookie: CookieConfig,
    anon_cookie: Option<String>,
    tokens: Option<TokenSettings>,
    csrf: Option<CsrfKeySet>,
    seal: Option<SealKeys>,
    metrics: Option<Metrics>,
    clock: Arc<dyn Clock>,
    keys: KeyPlace,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("stores", &self.stores)
            .field("config", &self.config)
            .field("cookie", &self.cookie)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder of an engine over `stores`: one store (any [`SessionStore`]), or
    /// [`Stores::split`] for anonymous sessions in a store of their own.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("sessions.redb");
    /// use tessera::Engine;
    /// use tessera_store_redb::RedbStore;
    ///
    /// // Keys are created beside the store file on a first start and loaded after that.
    /// let engine = Engine::builder(RedbStore::open(&path)?).build()?;
    /// assert!(path.with_file_name("csrf.key").exists());
    ///
    /// // In memory there is nowhere to keep them: say so, or give them.
    /// let memory = tessera_store_memory::MemoryStore::new();
    /// let engine = Engine::builder(memory).ephemeral_keys().build()?;
    /// assert!(engine.registry().is_some());
    /// # Ok(()) }
    /// # demo().unwrap();
    /// ```
    pub fn builder(stores: impl Into<Stores>) -> EngineBuilder {
        EngineBuilder {
            stores: stores.into(),
            config: SessionConfig::default(),
            cookie: CookieConfig::default(),
            anon_cookie: None,
            tokens: None,
            csrf: None,
            seal: None,
            metrics: None,
            clock: Arc::new(SystemClock),
            keys: KeyPlace::Store,
        }
    }
}

impl EngineBuilder {
    /// Session lifetimes and limits (validated at [`build`](Self::build)).
    pub fn with_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// The session cookie ([`CookieConfig::development`] for plain `http://localhost`).
    /// The anonymous and token cookies take its attributes.
    pub fn with_cookie(mut self, cookie: CookieConfig) -> Self {
        self.cookie = cookie;
        self
    }

    /// Names the anonymous cookie `name` (default [`anonymous::DEFAULT_ANON_COOKIE`], or
    /// `<name>-anon` beside a development cookie), with the session cookie's attributes.
    pub fn with_anonymous_cookie(mut self, name: impl Into<String>) -> Self {
        self.anon_cookie = Some(name.into());
        self
    }

    /// Turns on session tokens (DESIGN §5): authenticated sessions get a token cookie.
    pub fn with_tokens(mut self, tokens: TokenSettings) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The CSRF key (instead of the keys in the key directory): one key, both the CSRF key
    /// and the key of session `sid`s, never rotated. For keys that rotate, use
    /// [`with_csrf_keys`](Self::with_csrf_keys).
    pub fn with_csrf_key(mut self, key: CsrfKey) -> Self {
        self.csrf = Some(key.into());
        self
    }

    /// The sid key and the CSRF keys (instead of those in the key directory): a handle the
    /// caller keeps to rotate the CSRF keys, as `tessera serve` does.
    pub fn with_csrf_keys(mut self, keys: CsrfKeySet) -> Self {
        self.csrf = Some(keys);
        self
    }

    /// The sealing keys of anonymous cookies and secrets (instead of those in the key
    /// directory): a handle the caller keeps to rotate them, as `tessera serve` does.
    pub fn with_seal_keys(mut self, keys: SealKeys) -> Self {
        self.seal = Some(keys);
        self
    }

    /// Counts into `metrics`, registered by the caller ([`Metrics::register`]) in its own
    /// registry; [`Engine::registry`] is then `None`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The clock "now" is read from (default [`SystemClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps the keys not given in `data_dir` (`csrf.key`, `keys/`), created on a first
    /// start; for a store without a directory of its own, or to share `tessera serve`'s data
    /// directory.
    pub fn with_key_dir(mut self, data_dir: impl Into<PathBuf>) -> Self {
        self.keys = KeyPlace::Dir(data_dir.into());
        self
    }

    /// Makes the keys not given fresh, in memory.
    ///
    /// # ⚠️ Warning
    ///
    /// They are lost when the process ends: after a restart every CSRF token stops
    /// verifying, every client-side anonymous session starts afresh and stored secrets no
    /// longer open. For tests and demonstrations; [`build`](Self::build) logs a warning.
    pub fn ephemeral_keys(mut self) -> Self {
        self.keys = KeyPlace::Ephemeral;
        self
    }

    /// The engine.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] or [`Error::CookieConfig`] if the configuration is inconsistent;
    /// [`Error::NoKeyDir`] if keys are missing and the store has no directory to keep them
    /// in; [`Error::KeyFiles`] if the key files cannot be read or created;
    /// [`Error::Random`] if the OS random source fails.
    pub fn build(self) -> Result<Engine> {
        let Self {
            stores,
            config,
            cookie,
            anon_cookie,
            tokens,
            csrf,
            seal,
            metrics,
            clock,
            keys,
        } = self;
        config.validate()?;
        let anon_name = anon_cookie.unwrap_or_else(|| {
            if cookie.secure() {
                anonymous::DEFAULT_ANON_COOKIE.to_owned()
            } else {
                format!("{}-anon", cookie.name())
            }
        });
        let anon_cookie = cookie
            .with_name(anon_name)
            .map_err(|source| Error::CookieConfig {
                cookie: "anonymous cookie",
                source,
            })?;
        if let Some(t) = &tokens {
            t.validate(&cookie)?;
        }
        let token_name = tokens.as_ref().map(|t| t.cookie.name());
        if anon_cookie.name() == cookie.name() || token_name == Some(anon_cookie.name()) {
            return Err(Error::Config(
                "the anonymous cookie needs its own name".to_owned(),
            ));
        }
        let (csrf, seal) = match (csrf, seal) {
            (Some(csrf), Some(seal)) => (csrf, seal),
            (csrf, seal) => {
                let dir = match keys {
                    KeyPlace::Dir(dir) => Some(dir),
                    KeyPlace::Store => Some(
                        stores
                            .for_kind(tessera_core::SessionKind::Authenticated)
                            .directory()
                            .ok_or(Error::NoKeyDir)?
                            .to_owned(),
                    ),
                    KeyPlace::Ephemeral => None,
                };
                let now = clock.now().unix_secs();
                missing_keys(dir, &config, now, csrf, seal)?
            }
        };
        let (metrics, registry) = match metrics {
            Some(m) => (m, None),
            None => {
                let mut registry = Registry::default();
                (Metrics::register(&mut registry), Some(registry))
            }
        };
        Ok(Engine {
            store: Metered::new(stores, metrics.clone(), config.tombstone_ttl),
            config,
            cookie,
            sid: csrf.sid,
            csrf: csrf.keys,
            metrics,
            registry,
            clock,
            tokens,
            anon_cookie,
            seal,
        })
    }
}

/// The keys the builder was not given: from `dir`'s files, or fresh with a warning.
fn missing_keys(
    dir: Option<PathBuf>,
    config: &SessionConfig,
    now: i64,
    csrf: Option<CsrfKeySet>,
    seal: Option<SealKeys>,
) -> Result<(CsrfKeySet, SealKeys)> {
    let Some(dir) = dir else {
        tracing::warn!(
            "tessera: ephemeral keys: CSRF tokens, anonymous cookies and secrets stop working at restart"
        );
        let csrf = match csrf {
            Some(k) => k,
            None => CsrfKey::generate().map_err(Error::Random)?.into(),
        };
        let seal = match seal {
            Some(k) => k,
            None => SealKeys::new(SealKeyring::new(vec![
                SealKey::generate().map_err(Error::Random)?,
            ])),
        };
        return Ok((csrf, seal));
    };
    files::create_private_dir(&dir).map_err(Error::KeyFiles)?;
    let csrf = match csrf {
        Some(k) => k,
        None => {
            // No schedule runs in a bare engine: the keys are read as `tessera serve` left
            // them (its schedule publishes minutes ahead).
            let policy = files::csrf_policy(config, std::time::Duration::from_secs(180));
            let (sid, ring, created) =
                files::load_or_create_csrf_keys(&dir, policy, now).map_err(Error::KeyFiles)?;
            if created {
                tracing::info!(path = %dir.display(), "generated the sid and CSRF keys");
            }
            CsrfKeySet::new(sid, CsrfKeys::new(ring))
        }
    };
    let seal = match seal {
        Some(k) => k,
        None => {
            let path = dir.join(files::KEY_DIR);
            let (ring, created) =
                files::load_or_generate_seal_keys(&path, files::seal_policy(config), now)
                    .map_err(Error::KeyFiles)?;
            if created {
                tracing::info!(path = %path.display(), "generated the sealing keys");
            }
            SealKeys::new(ring)
        }
    };
    Ok((csrf, seal))
}

impl<S: SessionStore> From<S> for Stores {
    /// One store for every session.
    fn from(store: S) -> Self {
        Self::single(Arc::new(store))
    }
}
