//! The `tessera` command line: its definitions ([`Cli`]) and what each command prints. The
//! binary (`main.rs`) parses the arguments, builds the runtime, and calls these.
//!
//! | module | commands |
//! |---|---|
//! | `args.rs` | the clap definitions of every command |
//! | [`serve`] | `tessera serve`, `tessera verifier` |
//! | [`keys`] | `tessera keys generate / rotate / revoke / list / jwks / import / master-key / reseal` (`stored_keys.rs`: on the store; `key_changes.rs`: what each does to each kind of key) |
//! | [`token`] | `tessera token mint / inspect` |
//! | [`config`] | `tessera config check` |
//! | [`backup`] | `tessera backup`, `tessera restore` |
//! | `error.rs` | [`Error`]: why a command failed |

use std::io::Write as _;

use serde_json::Value;
use tessera_core::{Clock as _, SystemClock};

use crate::config::Config;

mod args;
pub mod backup;
pub mod config;
mod error;
mod key_changes;
pub mod keys;
pub mod serve;
mod stored_keys;
pub mod token;

pub use args::{
    Cli, Command, ConfigCommand, InspectArgs, KeyKind, KeysCommand, MintArgs, TokenCommand,
    VERSION, parse_claim,
};
pub use error::{Error, Result};

/// Sets up the log ([`crate::logs::init`]) from the environment.
pub fn init_logs() {
    crate::logs::init(|k| std::env::var(k).ok());
}

/// The configuration named by `--config` (or `TESSERA_CONFIG`) and the environment.
///
/// # Errors
///
/// The configuration's error.
pub fn load(cli: &Cli) -> Result<Config> {
    Ok(Config::load(cli.config.as_deref(), |k| {
        std::env::var(k).ok()
    })?)
}

/// "Now" for a command: read once, at the edge.
pub(crate) fn now() -> i64 {
    SystemClock.now().unix_secs()
}

pub(crate) fn print_json(v: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) fn note_disabled(config: &Config) {
    if !config.tokens.enabled {
        eprintln!("note: [tokens] enabled = false: the service issues and verifies no tokens");
    }
}
