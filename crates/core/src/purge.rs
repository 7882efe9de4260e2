//! The background purge (feature `purge`): one loop for every store, run by `tessera serve`
//! and by applications that hold a store themselves.
//!
//! `load` never returns an expired record, so purging is housekeeping, not security: it
//! frees the space of expired sessions, tombstones and key-value entries, and of revocation
//! log entries older than the window verifiers need.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Clock, SessionStore, Timestamp};

/// Called with the store's backend and how many records a part of a pass removed.
type OnPurged = Arc<dyn Fn(&'static str, u64) + Send + Sync>;

/// What a purge pass removes besides expired sessions and key-value entries, and whom it
/// tells what it removed.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use tessera_core::purge::Purge;
/// use tessera_core::{SessionStore, SystemClock};
///
/// /// Purges every five minutes, keeping four hours of revocations for the verifiers.
/// fn start_purge(store: Arc<dyn SessionStore>) -> tokio::task::JoinHandle<()> {
///     Purge::new()
///         .with_revocations_kept(Duration::from_secs(4 * 3600))
///         .spawn(store, Arc::new(SystemClock), Duration::from_secs(300))
/// }
/// ```
#[derive(Clone, Default)]
pub struct Purge {
    revocations_kept: Option<Duration>,
    on_purged: Option<OnPurged>,
}

impl fmt::Debug for Purge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Purge")
            .field("revocations_kept", &self.revocations_kept)
            .field("on_purged", &self.on_purged.is_some())
            .finish()
    }
}

impl Purge {
    /// Expired sessions, tombstones and key-value entries; the revocation log is kept whole.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also drops revocation log entries older than `keep` (the longest token lifetime plus
    /// skew: verifiers must still see the revocation of any token that may be live).
    pub fn with_revocations_kept(mut self, keep: Duration) -> Self {
        self.revocations_kept = Some(keep);
        self
    }

    /// Calls `f(backend, n)` when a pass removed `n > 0` expired sessions, and again for
    /// expired key-value entries (for a metric).
    pub fn with_on_purged(mut self, f: impl Fn(&'static str, u64) + Send + Sync + 'static) -> Self {
        self.on_purged = Some(Arc::new(f));
        self
    }

    /// One pass at `now`: expired key-value entries, old revocations (if asked), then
    /// expired sessions. A part that fails is logged with `tracing::warn!` and the pass goes
    /// on with the next.
    pub async fn run_at(&self, store: &dyn SessionStore, now: Timestamp) {
        let backend = store.backend();
        if let Some(kv) = store.as_kv() {
            match kv.kv_purge_expired(now).await {
                Ok(0) => {}
                Ok(n) => self.purged(backend, n),
                Err(e) => {
                    tracing::warn!(backend, code = e.code(), error = ?e, "key-value purge failed")
                }
            }
        }
        if let (Some(keep), Some(log)) = (self.revocations_kept, store.as_revocation_log()) {
            let before = now.saturating_sub(keep);
            if let Err(e) = log.purge_revocations(before).await {
                tracing::warn!(backend, code = e.code(), error = ?e, "revocation log purge failed");
            }
        }
        match store.purge_expired(now).await {
            Ok(0) => {}
            Ok(n) => {
                self.purged(backend, n);
                tracing::debug!(backend, purged = n, "purged expired sessions");
            }
            Err(e) => tracing::warn!(backend, code = e.code(), error = ?e, "purge failed"),
        }
    }

    fn purged(&self, backend: &'static str, n: u64) {
        if let Some(f) = &self.on_purged {
            f(backend, n);
        }
    }

    /// Runs a pass every `every` (the first at once), reading "now" from `clock`. A pass that
    /// overruns delays the next one rather than piling up; intervals shorter than a
    /// millisecond are raised to one. Abort the returned handle to stop.
    ///
    /// # Panics
    ///
    /// Like [`tokio::spawn`], if called outside a Tokio runtime.
    pub fn spawn(
        self,
        store: Arc<dyn SessionStore>,
        clock: Arc<dyn Clock>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let every = every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.run_at(store.as_ref(), clock.now()).await;
            }
        })
    }
}

/// Purges `store` in the background every `every` (and once at once), reading "now" from
/// `clock`: [`Purge::new`] then [`Purge::spawn`].
///
/// # Panics
///
/// Like [`tokio::spawn`], if called outside a Tokio runtime.
pub fn spawn_purge(
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    Purge::new().spawn(store, clock, every)
}
