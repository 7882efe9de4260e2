//! `tessera serve` and `tessera verifier`: run until SIGINT or SIGTERM.
//!
//! Every line they write goes to the log ([`crate::logs`]), start-up notes included, on the
//! target [`STARTUP_TARGET`]. On the first SIGTERM or SIGINT the listener closes (new
//! connections are refused), in-flight requests get `[server] shutdown_grace` to finish,
//! then the stores are flushed and closed and the command exits 0. A second signal exits at
//! once with status 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::SystemClock;

use super::{Error, Result};
use crate::config::Config;
use crate::logs::STARTUP_TARGET;
use crate::startup;

/// `serve`: prepares the service for `config`, logs the notes and the address, and serves
/// until a shutdown signal.
///
/// # Errors
///
/// Start-up failures (files, keys, stores, the listener) and listener errors.
pub async fn serve(config: &Config) -> Result<ExitCode> {
    let prepared = startup::prepare(config, Arc::new(SystemClock)).await?;
    let listener = startup::bind(config).await?;
    let addr = listener.local_addr()?;
    for note in &prepared.notes {
        tracing::info!(target: STARTUP_TARGET, "{note}");
    }
    access_note(config);
    tracing::info!(target: STARTUP_TARGET, "Tessera listening on http://{addr}");
    let grace = config.server.shutdown_grace;
    startup::serve_with_grace(
        listener,
        prepared,
        config.purge_interval,
        shutdown_signal(grace),
        grace,
    )
    .await
    .map_err(Error::Serve)?;
    Ok(ExitCode::SUCCESS)
}

/// `verifier`: the edge verifier alone, until a shutdown signal.
///
/// # Errors
///
/// Start-up failures (the `[verify]` settings, the listener) and listener errors.
pub async fn verifier(config: &Config) -> Result<ExitCode> {
    let (state, notes) = crate::edge::prepare_edge(config, Arc::new(SystemClock)).await?;
    let listener = startup::bind(config).await?;
    let addr = listener.local_addr()?;
    for note in &notes {
        tracing::info!(target: STARTUP_TARGET, "{note}");
    }
    tracing::info!(target: STARTUP_TARGET, "Tessera verifier listening on http://{addr}");
    let grace = config.server.shutdown_grace;
    crate::edge::serve_edge_with_grace(listener, state, shutdown_signal(grace), grace)
        .await
        .map_err(Error::Verifier)?;
    tracing::info!(target: STARTUP_TARGET, "Tessera verifier stopped");
    Ok(ExitCode::SUCCESS)
}

fn access_note(config: &Config) {
    if config.server.access_log {
        tracing::info!(
            target: STARTUP_TARGET,
            "access log on: one line per request on tessera::access (server.access_log)"
        );
    } else {
        tracing::info!(
            target: STARTUP_TARGET,
            "access log off (server.access_log = false)"
        );
    }
}

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM, saying so in the log; from then on a
/// second one exits the process at once with status 128 + its number.
pub async fn shutdown_signal(grace: Duration) {
    let mut signals = Signals::new();
    let first = signals.next().await;
    tracing::info!(
        target: STARTUP_TARGET,
        signal = first.name(),
        "shutting down: no new connections, in-flight requests have {}s to finish \
         (server.shutdown_grace); a second signal exits at once",
        grace.as_secs_f64()
    );
    tokio::spawn(async move {
        let second = signals.next().await;
        tracing::warn!(
            target: STARTUP_TARGET,
            signal = second.name(),
            "second signal: exiting at once, without waiting for in-flight requests"
        );
        // Acknowledged writes are already committed (redb commits before answering);
        // what was in flight is not.
        std::process::exit(128 + second.number());
    });
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    fn number(self) -> i32 {
        match self {
            Self::Interrupt => 2,
            Self::Terminate => 15,
        }
    }
}

/// The process' SIGINT and SIGTERM, registered once so none is missed between two waits.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        if s.recv().await.is_none() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.int) => Signal::Interrupt,
                () = recv(&mut self.term) => Signal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}
