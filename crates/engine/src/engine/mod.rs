//! The session engine: the [`Engine`] type, its constructors and accessors, and the
//! helpers every flow shares. Each flow lives in a file of its own.

mod client;
mod csrf;
mod login;
mod outcome;
mod request;
mod resolve;
mod secrets;
mod store;
mod tokens;
mod update;
mod users;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tessera_core::{Handle, SessionKind, SessionRecord, StoreKey, Timestamp};
use tessera_token::seal::{SealKey, SealKeyring};

use crate::cookie::{self, CookieConfig, Lookup};
use crate::csrf::CsrfKey;
use crate::metrics::Metrics;
use crate::token::TokenSettings;
use crate::{Error, Result, SessionConfig};
use crate::{anonymous, limits};

pub use outcome::{Outcome, Session, Status, Storage};
pub use request::{Edits, Login};
pub use store::Stores;
use store::{Metered, Write};

/// The session engine: every lifecycle rule of DESIGN §3 over a pair of [`Stores`].
///
/// Every method takes `now`, read once per request by the caller from its
/// [`Clock`](tessera_core::Clock).
#[derive(Debug)]
pub struct Engine {
    store: Metered,
    config: SessionConfig,
    cookie: CookieConfig,
    csrf: CsrfKey,
    metrics: Metrics,
    tokens: Option<TokenSettings>,
    /// The sealed anonymous cookie: the session cookie's attributes, its own name.
    anon_cookie: CookieConfig,
    /// Seals anonymous cookies and secrets; shared so rotation can swap keys under a
    /// running engine.
    seal: Arc<RwLock<SealKeyring>>,
}

impl Engine {
    /// An engine over `stores`.
    ///
    /// Anonymous sessions follow [`SessionConfig::anonymous`] (client-side by default), in
    /// a cookie named [`anonymous::DEFAULT_ANON_COOKIE`] (`<name>-anon` beside a
    /// development cookie) with the attributes of `cookie`. The sealing keys are fresh and
    /// in memory until [`Engine::with_seal_keys`] gives persistent ones.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `config` is inconsistent; [`Error::Random`] if the OS random
    /// source fails.
    pub fn try_new(
        stores: Stores,
        config: SessionConfig,
        cookie: CookieConfig,
        csrf: CsrfKey,
        metrics: Metrics,
    ) -> Result<Self> {
        config.validate()?;
        let anon_name = if cookie.secure() {
            anonymous::DEFAULT_ANON_COOKIE.to_owned()
        } else {
            format!("{}-anon", cookie.name())
        };
        let anon_cookie = cookie
            .with_name(anon_name)
            .map_err(|source| Error::CookieConfig {
                cookie: "anonymous cookie",
                source,
            })?;
        let key = SealKey::generate().map_err(Error::Random)?;
        let engine = Self {
            store: Metered::new(stores, metrics.clone(), config.tombstone_ttl),
            config,
            cookie,
            csrf,
            metrics,
            tokens: None,
            anon_cookie,
            seal: Arc::new(RwLock::new(SealKeyring::new(vec![key]))),
        };
        engine.check_cookie_names()?;
        Ok(engine)
    }

    /// Turns on session tokens (DESIGN §5): authenticated sessions get a token cookie.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the token settings are inconsistent.
    pub fn with_tokens(mut self, tokens: TokenSettings) -> Result<Self> {
        tokens.validate(&self.cookie)?;
        self.tokens = Some(tokens);
        self.check_cookie_names()?;
        Ok(self)
    }

    /// Seals anonymous cookies and secrets with `keys` (the service loads them from its
    /// key directory and rotates them on a schedule through this handle).
    ///
    /// # ⚠️ Warning
    ///
    /// Without this call the keys live in memory only: after a restart every client-side
    /// anonymous session starts afresh and stored secrets no longer open.
    pub fn with_seal_keys(mut self, keys: Arc<RwLock<SealKeyring>>) -> Self {
        self.seal = keys;
        self
    }

    /// Names the anonymous cookie `name` (with the session cookie's attributes).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the name is not valid for these attributes or is the name of
    /// another cookie of the engine.
    pub fn with_anonymous_cookie(mut self, name: impl Into<String>) -> Result<Self> {
        self.anon_cookie = self
            .cookie
            .with_name(name)
            .map_err(|source| Error::CookieConfig {
                cookie: "anonymous cookie",
                source,
            })?;
        self.check_cookie_names()?;
        Ok(self)
    }

    fn check_cookie_names(&self) -> Result<()> {
        let anon = self.anon_cookie.name();
        let token = self.tokens.as_ref().map(|t| t.cookie.name());
        if anon == self.cookie.name() || token == Some(anon) {
            return Err(Error::Config(
                "the anonymous cookie needs its own name".to_owned(),
            ));
        }
        Ok(())
    }

    /// The sealing keys (anonymous cookies and secrets).
    pub fn seal_keys(&self) -> &Arc<RwLock<SealKeyring>> {
        &self.seal
    }

    /// The anonymous cookie's configuration.
    pub fn anonymous_cookie(&self) -> &CookieConfig {
        &self.anon_cookie
    }

    /// The token settings, if tokens are on.
    pub fn tokens(&self) -> Option<&TokenSettings> {
        self.tokens.as_ref()
    }

    /// The session configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The cookie configuration.
    pub fn cookie(&self) -> &CookieConfig {
        &self.cookie
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        self.store.stores()
    }

    // ---- internals -------------------------------------------------------------------

    fn outcome(
        &self,
        session: Option<Session>,
        set_cookie: Vec<String>,
        status: Status,
    ) -> Outcome {
        Outcome {
            session,
            set_cookie,
            status,
            token_status: if self.tokens.is_some() {
                "none"
            } else {
                "disabled"
            },
        }
    }

    fn count(&self, op: &'static str, r: &Result<Outcome>) {
        let outcome = match r {
            Ok(o) => o.status.as_str(),
            Err(e) => e.code(),
        };
        self.metrics.op(op, outcome);
    }

    fn handle_from(&self, cookie: &str) -> Result<Option<Handle>> {
        match cookie::find(cookie, self.cookie.name()) {
            Lookup::Absent | Lookup::Found("") => Ok(None),
            Lookup::Found(v) => match v.parse::<Handle>() {
                Ok(h) => Ok(Some(h)),
                Err(_) => {
                    tracing::warn!(target: "security", "possibly suspicious activity: malformed session cookie");
                    Err(Error::MalformedCookie)
                }
            },
            Lookup::Invalid => {
                tracing::warn!(target: "security", "possibly suspicious activity: oversized or duplicated session cookie");
                Err(Error::MalformedCookie)
            }
        }
    }

    fn renewal_due(&self, record: &SessionRecord, now: Timestamp) -> bool {
        let (idle, _) = self.lifetimes(record);
        now.duration_since(record.renewed_at) >= idle / 2
            && record.idle_expires_at < record.absolute_expires_at
    }

    fn renew(&self, record: &mut SessionRecord, now: Timestamp) {
        let (idle, _) = self.lifetimes(record);
        record.renewed_at = now;
        record.idle_expires_at = now.saturating_add(idle).min(record.absolute_expires_at);
    }

    fn lifetimes(&self, record: &SessionRecord) -> (Duration, Duration) {
        if record.remember {
            (
                self.config.remember_idle_timeout,
                self.config.remember_absolute_timeout,
            )
        } else {
            (self.config.idle_timeout, self.config.absolute_timeout)
        }
    }

    /// The cookie for `handle`: persistent until the session's expiry for remember-me
    /// sessions, a browser-session cookie otherwise (the server enforces both timeouts).
    fn set_cookie(&self, handle: &Handle, record: &SessionRecord, now: Timestamp) -> String {
        let max_age = record
            .remember
            .then(|| record.expires_at().duration_since(now));
        self.cookie.set(handle.expose(), max_age)
    }

    /// Data and (sealed) secrets together stay within `max_data_bytes`.
    fn check_size(
        &self,
        data: &BTreeMap<String, Value>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<()> {
        limits::check_size(data, secrets, self.config.max_data_bytes)
    }

    /// Stores the record `make` builds for a fresh handle's key (secrets are sealed to the
    /// key). A collision of 256-bit random values does not happen, but `create` is unique,
    /// so the loop costs nothing to keep honest.
    async fn create_record_with(
        &self,
        kind: SessionKind,
        reason: Write,
        make: impl Fn(&StoreKey) -> Result<SessionRecord>,
    ) -> Result<(Handle, StoreKey, SessionRecord)> {
        for _ in 0..3 {
            let handle = Handle::generate(kind).map_err(Error::Random)?;
            let key = handle.store_key();
            let record = make(&key)?;
            match self.store.create(kind, &key, &record, reason).await {
                Ok(()) => return Ok((handle, key, record)),
                Err(tessera_core::Error::AlreadyExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Unreachable("three 256-bit random handles collided"))
    }
}

fn stored(key: StoreKey, record: SessionRecord) -> Session {
    Session {
        key,
        record,
        storage: Storage::Store,
    }
}

/// Randomised exponential backoff after a conflict, so writers that collided spread out.
async fn backoff(attempt: u32) {
    let mut b = [0u8; 2];
    let jitter = if getrandom::fill(&mut b).is_ok() {
        u64::from(u16::from_le_bytes(b))
    } else {
        0
    };
    let ceiling_us = 50u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_micros(jitter % ceiling_us.max(1))).await;
}
