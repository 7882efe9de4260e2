//! The `tessera` binary: parses the command line and runs the library's pieces.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use tessera_core::SystemClock;
use tessera_server::cli::{Cli, Command, ConfigCommand};
use tessera_server::config::Config;
use tessera_server::startup;

// The service allocates a little on every request (JSON in and out); mimalloc's per-thread
// caches cut the allocator's share of a `resolve` (about 9% of CPU with glibc's malloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // TESSERA_LOG_FORMAT=json for log shippers; human-readable lines otherwise.
    if std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(cli.config.as_deref(), |k| {
        std::env::var(k).ok()
    })?)
}

#[allow(clippy::print_stdout)]
fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let c = load(&cli)?;
            println!("configuration is valid");
            println!("  listen:     {}", c.listen);
            println!("  data dir:   {}", c.data_dir.display());
            // Display hides passwords in store URLs.
            println!("  store:      {}", c.store);
            if let Some(a) = &c.anon_store {
                println!("  anon store: {a}");
            }
            println!(
                "  cookie:     {} (secure: {})",
                c.cookie.name(),
                c.cookie.secure()
            );
            println!(
                "  timeouts:   idle {}s, absolute {}s",
                c.session.idle_timeout.as_secs(),
                c.session.absolute_timeout.as_secs()
            );
            Ok(())
        }
        Command::Verifier => {
            let config = load(&cli)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async {
                let (state, notes) =
                    tessera_server::edge::prepare_edge(&config, Arc::new(SystemClock)).await?;
                let listener = startup::bind(&config).await?;
                let addr = listener.local_addr()?;
                for note in &notes {
                    println!("{note}");
                }
                println!("Tessera verifier listening on http://{addr}");
                tessera_server::edge::serve_edge(listener, state, shutdown_signal())
                    .await
                    .context("verifier failed")?;
                println!("Tessera verifier stopped");
                anyhow::Ok(())
            })
        }
        Command::Serve => {
            let config = load(&cli)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async {
                let prepared = startup::prepare(&config, Arc::new(SystemClock)).await?;
                let listener = startup::bind(&config).await?;
                let addr = listener.local_addr()?;
                for note in &prepared.notes {
                    println!("{note}");
                }
                println!("Tessera listening on http://{addr}");
                startup::serve(listener, prepared, config.purge_interval, shutdown_signal())
                    .await
                    .context("server failed")?;
                println!("Tessera stopped");
                anyhow::Ok(())
            })
        }
    }
}

async fn shutdown_signal() {
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
