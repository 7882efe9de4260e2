//! The `tessera` binary: parses the command line, builds the runtime of the commands that
//! serve, and runs the library's commands ([`tessera_server::cli`]).

use std::process::ExitCode;

use clap::Parser as _;
use tessera_server::cli::{self, Cli, Command, ConfigCommand, TokenCommand};

// The service allocates a little on every request (JSON in and out); mimalloc's per-thread
// caches cut the allocator's share of a `resolve` (about 9% of CPU with glibc's malloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logs();
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            // `serve` and `verifier` write JSON lines only, when asked to.
            let serving = matches!(cli.command, Command::Serve | Command::Verifier);
            if serving && tessera_server::logs::json_requested(|k| std::env::var(k).ok()) {
                tracing::error!(target: tessera_server::logs::STARTUP_TARGET, code = e.code(), "{}", e.report());
            } else {
                eprintln!("error[{}]: {}", e.code(), e.report());
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> cli::Result<ExitCode> {
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Check { print },
        } => cli::config::check(&cli::load(cli)?, *print),
        Command::Keys { command } => cli::keys::run(&cli::load(cli)?, command),
        Command::Token {
            command: TokenCommand::Mint(args),
        } => cli::token::mint(&cli::load(cli)?, args),
        Command::Token {
            command: TokenCommand::Inspect(args),
        } => cli::token::inspect(cli, args),
        Command::Backup { path } => {
            let config = cli::load(cli)?;
            runtime()?.block_on(cli::backup::backup(&config, path))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { path } => {
            cli::backup::restore(&cli::load(cli)?, path)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verifier => {
            let config = cli::load(cli)?;
            runtime()?.block_on(cli::serve::verifier(&config))
        }
        Command::Serve => {
            let config = cli::load(cli)?;
            let runtime = runtime()?;
            let code = runtime.block_on(cli::serve::serve(&config));
            // The runtime's end drops the connections cut short by the shutdown grace and
            // with them the last handles on the stores: redb's writer commits what is queued
            // and the file closes, the Redis and Postgres pools close.
            drop(runtime);
            if code.is_ok() {
                tracing::info!(target: tessera_server::logs::STARTUP_TARGET, "Tessera stopped");
            }
            code
        }
    }
}

/// The async runtime of `serve` and `verifier`.
fn runtime() -> cli::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(cli::Error::Runtime)
}
