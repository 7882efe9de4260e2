//! Serving: the listener, the router with its background tasks, and the graceful shutdown.

use std::future::Future;
use std::time::Duration;

use tessera_core::purge::Purge;
use tokio::net::TcpListener;

use super::tasks::{spawn_key_sync, spawn_seal_sync, spawn_store_key_sync};
use super::*;
use crate::app;
use crate::config::Config;

/// Serves `prepared` on `listener` until `shutdown` completes, purging expired sessions
/// every `purge_interval` in the background; in-flight requests get the default
/// [`DEFAULT_SHUTDOWN_GRACE`](crate::config::DEFAULT_SHUTDOWN_GRACE) ([`serve_with_grace`]).
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
    serve_with_grace(
        listener,
        prepared,
        purge_interval,
        shutdown,
        crate::config::DEFAULT_SHUTDOWN_GRACE,
    )
    .await
}

/// [`serve`], with `grace` for the requests in flight when `shutdown` completes: the
/// listener closes at once (new connections are refused), idle connections are closed,
/// requests in flight may finish for `grace`, then the connections still open are closed.
/// When this returns the background tasks are stopped; the stores are flushed and closed when
/// the last handle on them goes (the runtime's end drops those of connections cut short).
///
/// # Errors
///
/// An I/O error from the listener.
pub async fn serve_with_grace(
    listener: TcpListener,
    prepared: Prepared,
    purge_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let Prepared {
        state,
        stores,
        keys,
        seal_keys,
        store_keys,
        pem_keys,
        ..
    } = prepared;
    let http = state.http().clone();
    // Each store's purge counter exists from the start (at 0), so `rate()` sees the first
    // purge and the series is there to alert on.
    for s in &stores {
        http.purged(s.backend(), 0);
    }
    let purge = Purge::new()
        .with_revocations_kept(state.revocation_keep())
        .with_on_purged(move |backend, n| http.purged(backend, n));
    let mut purgers: Vec<_> = stores
        .into_iter()
        .map(|store| {
            purge
                .clone()
                .spawn(store, state.shared_clock(), purge_interval)
        })
        .collect();
    if let Some(sync) = keys {
        purgers.push(spawn_key_sync(sync, state.clone()));
    }
    if let Some(v) = state.verifier() {
        let s = state.clone();
        purgers.extend(spawn_revocation_refresh(v.clone(), move || {
            s.clock().now().unix_secs()
        }));
    }
    if let Some(sync) = seal_keys {
        purgers.push(spawn_seal_sync(sync, state.clone()));
    }
    if let Some((sync, every)) = store_keys {
        purgers.push(spawn_store_key_sync(sync, every, state.clone()));
    }
    if let Some((keys, every)) = pem_keys {
        purgers.push(spawn_key_refresh(keys, every));
    }
    let result = serve_router(listener, app(state), shutdown, grace).await;
    for p in purgers {
        p.abort();
        // Wait for the task to be gone, so its handles on the stores are dropped.
        let _ = p.await;
    }
    result
}

/// Serves `router` until `shutdown`, then lets the requests in flight finish for `grace`
/// (module docs of [`crate::cli::serve`]).
pub(crate) async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    use crate::logs::STARTUP_TARGET;
    let (fired, on_fire) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
    let signal = async move {
        shutdown.await;
        let _ = fired.send(tokio::time::Instant::now());
    };
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .into_future();
    tokio::pin!(server);
    let deadline = async move {
        match on_fire.await {
            Ok(at) => {
                tokio::time::sleep_until(at + grace).await;
                at
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut cut_short = false;
    let result = tokio::select! {
        r = &mut server => r,
        _ = &mut deadline => {
            cut_short = true;
            tracing::warn!(
                target: STARTUP_TARGET,
                "the shutdown grace ({}s) is over: closing the connections still open",
                grace.as_secs_f64()
            );
            Ok(())
        }
    };
    tracing::info!(
        target: STARTUP_TARGET,
        cut_short,
        "stopped serving; flushing and closing the stores"
    );
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
