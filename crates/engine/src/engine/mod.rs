//! The session engine: the [`Engine`] type, its accessors, and the helpers every flow
//! shares. Construction is in `builder`; each flow lives in a file of its own.

mod builder;
mod client;
mod csrf;
mod login;
mod outcome;
pub(crate) mod request;
mod resolve;
mod rotate;
mod secrets;
mod store;
mod tokens;
mod update;
mod users;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tessera_core::{Clock, Expiry, Handle, SessionKind, SessionRecord, StoreKey, Timestamp};

use crate::cookie::{self, CookieConfig, Lookup};
use crate::csrf::SidKey;
use crate::keys::{CsrfKeys, SealKeys};
use crate::metrics::Metrics;
use crate::token::TokenSettings;
use crate::{Error, Result, SessionConfig};

pub use builder::EngineBuilder;
pub use outcome::{LiveSession, Outcome, Status, Storage, TokenStatus};
pub use request::{Edits, IfMissing, Lifetime, Login, Renewal};
pub use store::Stores;
use store::{Metered, Write};

/// The session engine: every lifecycle rule of DESIGN §3 over a pair of [`Stores`].
///
/// Built with [`Engine::builder`]. Every operation takes `now`, read once per request by
/// the caller from the engine's [`Clock`] ([`Engine::now`]; the tower layer does it).
pub struct Engine {
    store: Metered,
    config: SessionConfig,
    cookie: CookieConfig,
    /// The key of session `sid`s: never rotated.
    sid: SidKey,
    /// The CSRF keys; shared so a schedule can rotate them under a running engine.
    csrf: CsrfKeys,
    metrics: Metrics,
    /// The registry the builder registered the metrics in, when the caller gave none.
    registry: Option<Registry>,
    clock: Arc<dyn Clock>,
    tokens: Option<TokenSettings>,
    /// The sealed anonymous cookie: the session cookie's attributes, its own name.
    anon_cookie: CookieConfig,
    /// Seals anonymous cookies and secrets; shared so rotation can swap keys under a
    /// running engine.
    seal: SealKeys,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("config", &self.config)
            .field("cookie", &self.cookie)
            .field("tokens", &self.tokens)
            .field("anon_cookie", &self.anon_cookie)
            .field("seal", &self.seal)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The clock the engine's users read "now" from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// "Now", from the engine's clock: read it once per request and pass it to every
    /// operation of that request.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The Prometheus registry the builder made for the engine's metrics, to serve at a
    /// `/metrics` endpoint; `None` when the builder was given metrics registered elsewhere
    /// ([`EngineBuilder::with_metrics`]).
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// The sealing keys (anonymous cookies and secrets).
    pub fn seal_keys(&self) -> &SealKeys {
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
        session: Option<LiveSession>,
        set_cookie: Vec<String>,
        status: Status,
    ) -> Outcome {
        Outcome {
            session,
            set_cookie,
            status,
            token_status: if self.tokens.is_some() {
                TokenStatus::None
            } else {
                TokenStatus::Disabled
            },
            sid: None,
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
        // A fixed end is not pushed by activity.
        if record.expiry.at().is_some() {
            return false;
        }
        let (idle, _) = self.lifetimes(record);
        now.duration_since(record.renewed_at) >= idle / 2
            && record.idle_expires_at < record.absolute_expires_at
    }

    fn renew(&self, record: &mut SessionRecord, now: Timestamp) {
        let (idle, _) = self.lifetimes(record);
        record.renewed_at = now;
        // A fixed end takes the place of the idle timeout; both stay within the absolute
        // expiry.
        let end = record.expiry.at().unwrap_or(now.saturating_add(idle));
        record.idle_expires_at = end.min(record.absolute_expires_at);
    }

    /// Gives `record` its own expiry `expiry` at `now`: the idle expiry is recomputed from
    /// it (as a renewal would), within the absolute expiry. Returns whether the session is
    /// dead at `now` by it (an end in the past).
    fn set_expiry(&self, record: &mut SessionRecord, expiry: Expiry, now: Timestamp) -> bool {
        record.expiry = expiry;
        self.renew(record, now);
        record.is_expired(now)
    }

    /// The idle and absolute lifetimes of `record`: remember-me's or the standard ones, the
    /// idle one replaced by the session's own ([`Expiry::Idle`]).
    fn lifetimes(&self, record: &SessionRecord) -> (Duration, Duration) {
        let (idle, absolute) = if record.remember {
            (
                self.config.remember_idle_timeout,
                self.config.remember_absolute_timeout,
            )
        } else {
            (self.config.idle_timeout, self.config.absolute_timeout)
        };
        match record.expiry {
            Expiry::Idle(secs) => (Duration::from_secs(secs), absolute),
            _ => (idle, absolute),
        }
    }

    /// The cookie for `handle`: persistent until the session's expiry for remember-me
    /// sessions and for sessions with their own end or idle timeout, a browser-session
    /// cookie otherwise (the server enforces both timeouts) and for [`Expiry::Browser`].
    fn set_cookie(&self, handle: &Handle, record: &SessionRecord, now: Timestamp) -> String {
        let persistent = match record.expiry {
            Expiry::At(_) | Expiry::Idle(_) => true,
            Expiry::Browser => false,
            _ => record.remember,
        };
        let max_age = persistent.then(|| record.expires_at().duration_since(now));
        self.cookie.set(handle.expose(), max_age)
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

fn stored(key: StoreKey, record: SessionRecord) -> LiveSession {
    LiveSession {
        key,
        record,
        storage: Storage::Store,
    }
}

/// Randomised exponential backoff after a conflict, so writers that collided spread out: up
/// to 100 µs after the first, doubling to at most 51 ms from the tenth on.
///
/// The ceiling must outgrow a commit. A store answers a conflict within about one commit (the
/// redb store's group commit answers every write of a batch together), and only one writer of
/// a record can win per commit: with a ceiling near one commit, every writer of a hot record
/// retries in every round, and the last of N needs about N attempts, which ran 200 concurrent
/// edits of one session past
/// [`SessionConfig::max_conflict_retries`](crate::SessionConfig::max_conflict_retries).
/// The longer waits only begin after several conflicts in a row.
async fn backoff(attempt: u32) {
    let mut b = [0u8; 2];
    let jitter = if getrandom::fill(&mut b).is_ok() {
        u64::from(u16::from_le_bytes(b))
    } else {
        0
    };
    let ceiling_us = 50u64 << attempt.min(10);
    tokio::time::sleep(Duration::from_micros(jitter % ceiling_us.max(1))).await;
}
