//! `tessera serve` and `tessera verifier`: run until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use tessera_core::SystemClock;

use super::{Error, Result};
use crate::config::Config;
use crate::startup;

/// `serve`: prepares the service for `config`, prints the notes and the address, and serves
/// until a shutdown signal.
///
/// # Errors
///
/// Start-up failures (files, keys, stores, the listener) and listener errors.
#[allow(clippy::print_stdout)]
pub async fn serve(config: &Config) -> Result<ExitCode> {
    let prepared = startup::prepare(config, Arc::new(SystemClock)).await?;
    let listener = startup::bind(config).await?;
    let addr = listener.local_addr()?;
    for note in &prepared.notes {
        println!("{note}");
    }
    println!("Tessera listening on http://{addr}");
    startup::serve(listener, prepared, config.purge_interval, shutdown_signal())
        .await
        .map_err(Error::Serve)?;
    println!("Tessera stopped");
    Ok(ExitCode::SUCCESS)
}

/// `verifier`: the edge verifier alone, until a shutdown signal.
///
/// # Errors
///
/// Start-up failures (the `[verify]` settings, the listener) and listener errors.
#[allow(clippy::print_stdout)]
pub async fn verifier(config: &Config) -> Result<ExitCode> {
    let (state, notes) = crate::edge::prepare_edge(config, Arc::new(SystemClock)).await?;
    let listener = startup::bind(config).await?;
    let addr = listener.local_addr()?;
    for note in &notes {
        println!("{note}");
    }
    println!("Tessera verifier listening on http://{addr}");
    crate::edge::serve_edge(listener, state, shutdown_signal())
        .await
        .map_err(Error::Verifier)?;
    println!("Tessera verifier stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
