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
            eprintln!("error: {}", e.report());
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
        Command::Verifier => {
            let config = cli::load(cli)?;
            runtime()?.block_on(cli::serve::verifier(&config))
        }
        Command::Serve => {
            let config = cli::load(cli)?;
            runtime()?.block_on(cli::serve::serve(&config))
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
