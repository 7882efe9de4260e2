//! The background tasks of a running service: key directory and store syncs, verifier key
//! sets and revocation copies refreshed on their schedules.

use std::sync::Arc;
use std::time::Duration;

use crate::AppState;
use crate::keys::KeySync;
use crate::seal_keys::SealSync;
use crate::store_keys::StoreKeySync;

/// How often the key directory is checked: the rotation schedule (a new key is published a
/// day before it signs) and changes made by `tessera keys …`, which a running service thus
/// picks up within this interval.
pub(super) const KEY_SYNC_INTERVAL: Duration = Duration::from_secs(60);

/// Reads a verifier's key set again every `every` (a failure keeps the last good copy and is
/// logged by `refresh`).
pub(crate) fn spawn_key_refresh(
    keys: Arc<crate::verifier::RemoteKeys>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let _ = keys.refresh().await;
        }
    })
}

/// Keeps the verifier's copy of the revocations fresh in the background, so no request
/// waits for the log or the feed. Nothing to do when the interval is zero (every request
/// reads the new entries itself).
pub(crate) fn spawn_revocation_refresh(
    verifier: Arc<crate::verifier::Verifier>,
    now: impl Fn() -> i64 + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = verifier.refresh_interval();
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = verifier.refresh_revocations(now()).await {
                tracing::warn!(error = %e, "cannot read new revocations; verifying against the last copy");
            }
        }
    }))
}

/// Runs `tick` on the key directory every [`KEY_SYNC_INTERVAL`] on the blocking pool (files,
/// the directory lock and key generation block; RSA takes a while), reporting what it did with
/// `report` and failures as warnings naming `what`; the current keys stay in use on failure.
/// `tick` fails with the error's stable code and its message.
pub(super) fn spawn_dir_sync<T: Send + 'static>(
    what: &'static str,
    state: AppState,
    tick: impl Fn(i64) -> Result<T, (&'static str, String)> + Send + Sync + 'static,
    report: impl Fn(&T) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let tick = Arc::new(tick);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(KEY_SYNC_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now = state.clock().now().unix_secs();
            let t = tick.clone();
            match tokio::task::spawn_blocking(move || t(now)).await {
                Ok(Ok(done)) => report(&done),
                Ok(Err((code, error))) => {
                    tracing::warn!(code, error, "{what} sync failed; keeping the current keys")
                }
                Err(e) => tracing::warn!(error = %e, "{what} sync task failed"),
            }
        }
    })
}

pub(super) fn spawn_key_sync(sync: Arc<KeySync>, state: AppState) -> tokio::task::JoinHandle<()> {
    spawn_dir_sync(
        "token key",
        state,
        move |now| sync.tick(now).map_err(|e| (e.code(), e.to_string())),
        |t| {
            let r = &t.rotation;
            if r.changed() {
                tracing::info!(promoted = ?r.promoted.as_ref().map(ToString::to_string), generated = ?r.generated.as_ref().map(ToString::to_string), "rotated the token keys");
            }
            if t.reloaded {
                tracing::info!("the token keys changed on disk; now using them");
            }
            if t.restored {
                tracing::warn!("the token key directory was missing; wrote the keys in use back");
            }
        },
    )
}

/// The sealing keys' schedule, on the token keys' interval and under the same directory
/// lock; it runs whether or not tokens are on.
pub(super) fn spawn_seal_sync(sync: Arc<SealSync>, state: AppState) -> tokio::task::JoinHandle<()> {
    spawn_dir_sync(
        "sealing key",
        state,
        move |now| sync.tick(now).map_err(|e| (e.code(), e.to_string())),
        |t| {
            let r = &t.rotation;
            if r.changed() {
                tracing::info!(generated = ?r.generated, dropped = ?r.dropped, "rotated the sealing keys");
            }
            if t.csrf.changed() {
                tracing::info!(generated = ?t.csrf.generated, dropped = ?t.csrf.dropped, "rotated the CSRF keys");
            }
            if t.csrf_reloaded {
                tracing::info!("the CSRF keys changed on disk; now using them");
            }
            if t.reloaded {
                tracing::info!("the sealing keys changed on disk; now using them");
            }
            if t.restored {
                tracing::warn!("the sealing keys were missing; wrote the keys in use back");
            }
        },
    )
}

/// Reads the key manifest from the store every `every` ([`StoreKeySync::tick`]); a failure
/// keeps the keys in use and is a warning.
pub(super) fn spawn_store_key_sync(
    sync: Arc<StoreKeySync>,
    every: Duration,
    state: AppState,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            match sync.tick(state.clock().now().unix_secs()).await {
                Ok(t) => {
                    if let Some(r) = &t.rotation {
                        tracing::info!(
                            version = t.version,
                            promoted = ?r.tokens.promoted.as_ref().map(ToString::to_string),
                            generated = ?r.tokens.generated.as_ref().map(ToString::to_string),
                            sealing_generated = ?r.seal.generated,
                            csrf_generated = ?r.csrf.generated,
                            "rotated the keys in the store"
                        );
                    }
                    if t.reloaded {
                        tracing::info!(
                            version = t.version,
                            "the keys in the store changed; now using them"
                        );
                    }
                    if t.sid_changed {
                        tracing::error!(
                            code = "keys-sid-changed",
                            "the sid key in the store changed; this node keeps its own until \
                             a restart, so the sids of its tokens differ from the fleet's"
                        );
                    }
                }
                Err(e) => tracing::warn!(
                    code = e.code(),
                    error = %e,
                    "reading the keys from the store failed; keeping the current keys"
                ),
            }
        }
    })
}
