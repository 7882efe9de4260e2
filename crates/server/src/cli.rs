//! The `tessera` command line (definitions only; `main.rs` runs them).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Tessera: sessions for web applications.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
pub struct Cli {
    /// A TOML configuration file. Without one, defaults and TESSERA_… variables apply.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve,
    /// Run the edge verifier alone (`GET /v1/verify`, no store): keys from `[verify] jwks`,
    /// revocations from `[verify] revocations`.
    Verifier,
    /// Work with the configuration.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `tessera config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, print a summary, and exit 0 if it is valid.
    Check,
}
