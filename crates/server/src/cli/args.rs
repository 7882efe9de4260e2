//! The clap definitions of every `tessera` command.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `tessera --version`: the crate's version and the commit it was built from (`unknown`
/// outside a git checkout; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TESSERA_COMMIT"),
    ")"
);

/// Tessera: sessions for web applications.
#[derive(Debug, Parser)]
#[command(name = "tessera", version = VERSION, about)]
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
    /// Manage the token signing keys, the sealing keys and the CSRF keys: in DATA_DIR/keys
    /// (a running `serve` picks changes up within a minute), or with `[keys] storage =
    /// "store"` in the store (every node picks them up within `[keys] refresh`).
    Keys {
        /// What to do with them.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Mint or inspect session tokens with the keys in DATA_DIR/keys (or in the store).
    Token {
        /// What to do.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Write a consistent copy of the data directory to the new directory PATH while the
    /// service runs: the redb store (copied by the running service from one read
    /// transaction, or from the file when no service runs), the keys and the CSRF key.
    Backup {
        /// The backup's directory; it must not exist (a backup never overwrites).
        path: PathBuf,
    },
    /// Put a backup made by `tessera backup` (or a bare store file) into the configured data
    /// directory, which must be empty or absent; then start the service.
    Restore {
        /// The backup's directory, or a store file.
        path: PathBuf,
    },
}

/// Which keys a `tessera keys` command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum KeyKind {
    /// The token signing keys (published in the JWKS).
    #[default]
    Signing,
    /// The sealing keys of anonymous cookies and stored secrets.
    Sealing,
    /// The CSRF keys (the sid key, `csrf.key`, never changes).
    Csrf,
}

impl KeyKind {
    /// The name the command line and the output use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Sealing => "sealing",
            Self::Csrf => "CSRF",
        }
    }
}

/// `tessera keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the keys: for signing keys a keyring with one active key of
    /// `[tokens] algorithm`, signing from now; for sealing and CSRF keys one key, used from
    /// now.
    Generate {
        /// Replace the existing keys. They are discarded: every token (or cookie, secret, CSRF
        /// token) they made stops verifying, here and at every edge.
        #[arg(long)]
        overwrite: bool,
        /// Which keys.
        #[arg(long, value_enum, default_value_t)]
        kind: KeyKind,
    },
    /// Run the rotation schedule now: drop expired keys, promote a due next key, publish a
    /// new next key when the active one is due.
    Rotate {
        /// Start a rotation now: publish a new next key (valid from now plus
        /// `[tokens] publish_ahead`, so verifiers see it first) unless one is pending. The
        /// schedule promotes it when it is due. CSRF keys: a new key that issues a few
        /// minutes from now; sealing keys: a new key that seals at once.
        #[arg(long)]
        force: bool,
        /// Make the pending next key sign now and retire the active one. Verifiers that
        /// fetched the JWKS before the key was published refuse its tokens until they
        /// fetch it again. CSRF keys: the pending key issues now.
        #[arg(long)]
        promote: bool,
        /// Which keys.
        #[arg(long, value_enum, default_value_t)]
        kind: KeyKind,
    },
    /// Revoke a key now: a signing key's tokens fail with `revoked` (it stays listed); a
    /// sealing or CSRF key is removed (what it made no longer opens or verifies). A key that
    /// was in use is replaced first.
    Revoke {
        /// The key's id (`tessera keys list`). Key ids are base64url and may begin with `-`:
        /// taken as the id, not as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Which keys.
        #[arg(long, value_enum, default_value_t)]
        kind: KeyKind,
    },
    /// List the keys: id, algorithm, state, valid from.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Which keys.
        #[arg(long, value_enum, default_value_t)]
        kind: KeyKind,
    },
    /// Print the JWKS exactly as `GET /.well-known/jwks.json` serves it.
    Jwks,
    /// With `[keys] storage = "store"`: copy this node's key directory (`DATA_DIR/keys`,
    /// `DATA_DIR/csrf.key`) into the store, so a fleet starts with the keys it already
    /// published. Once: done again with the same keys it changes nothing; refused when the
    /// store holds other keys.
    Import,
    /// Create a fleet's master key file (`[keys] storage = "store"`): 32 random bytes,
    /// unpadded base64url, mode 0600. An existing file is kept, never replaced. Give every
    /// node the same file (`TESSERA_MASTER_KEY_FILE`).
    MasterKey {
        /// The file to create.
        path: PathBuf,
    },
    /// With `[keys] storage = "store"`: seal the fleet's key record again under the master
    /// key in FILE (the same keys; docs/fleet.md, "rotating the master key"). Nodes that
    /// know neither FILE's key as their master key nor as `[keys] other_master_key_file`
    /// refuse the record from then on.
    Reseal {
        /// The new master key file (`tessera keys master-key FILE` makes one).
        to: PathBuf,
    },
}

/// `tessera token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a token signed with the active key (like `POST /v1/tokens`: no session is
    /// stored).
    Mint(MintArgs),
    /// Read a token from standard input, verify it with the keys now, and print its
    /// header, claims and outcome code. Exit status 0 if it is valid, 3 if it is refused.
    Inspect(InspectArgs),
}

/// `tessera token mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// The subject (`sub`), exactly as given.
    #[arg(long, required_unless_present = "user", conflicts_with = "user")]
    pub sub: Option<String>,
    /// A user id, written as the subject the way session tokens write it
    /// (`[tokens] subject_prefix`, e.g. `mw:CentralAuth::123` for `--user 123`).
    #[arg(long)]
    pub user: Option<String>,
    /// A custom claim: `NAME=TEXT` for a string, `NAME:=JSON` for any JSON value
    /// (`level:=3`, `beta:=true`). Repeatable; overrides `[tokens] default_claims`.
    #[arg(long = "claim", value_name = "NAME=TEXT|NAME:=JSON", value_parser = parse_claim)]
    pub claims: Vec<(String, serde_json::Value)>,
    /// The lifetime (`exp - iat`), e.g. `30m` (default and maximum `[tokens] exp`).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub ttl: Option<Duration>,
}

/// `tessera token inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only `-` (standard input). A token itself is refused: it is a bearer secret, and
    /// arguments end up in shell history and `ps` output.
    #[arg(hide = true)]
    pub token: Option<String>,
}

/// Parses `NAME=TEXT` or `NAME:=JSON`.
///
/// # Errors
///
/// A message saying which form is expected.
pub fn parse_claim(s: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or("expected NAME=TEXT or NAME:=JSON")?;
    let (name, value) = match name.strip_suffix(':') {
        Some(name) => (
            name,
            serde_json::from_str(value).map_err(|e| format!("{value:?} is not JSON: {e}"))?,
        ),
        None => (name, serde_json::Value::String(value.to_owned())),
    };
    if name.is_empty() {
        return Err("the claim name is empty".to_owned());
    }
    Ok((name.to_owned(), value))
}

/// `tessera config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, print a summary, and exit 0 if it is valid.
    Check {
        /// Print every setting in effect and where its value came from (default, file,
        /// environment), secrets hidden.
        #[arg(long)]
        print: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn a_key_id_that_begins_with_a_dash_is_the_id() {
        // Key ids are base64url: one in 64 begins with `-` (this one failed a CI run).
        let cli =
            Cli::try_parse_from(["tessera", "keys", "revoke", "--kind", "csrf", "-vAbc"]).unwrap();
        let Command::Keys {
            command: KeysCommand::Revoke { kid, kind },
            ..
        } = cli.command
        else {
            panic!("not keys revoke: {cli:?}");
        };
        assert_eq!((kid.as_str(), kind), ("-vAbc", KeyKind::Csrf));
    }
}
