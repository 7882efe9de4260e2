//! Why a command failed.

use crate::config::ConfigError;
use crate::keys::KeysError;
use crate::startup::StartupError;

/// The most `token inspect` reads from standard input: a token is at most 4096 bytes.
pub(super) const MAX_STDIN: u64 = 16 * 1024;

/// Why a `tessera` command failed. The binary prints [`Error::report`] after `error: `.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key directory failed.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The service or the verifier could not start.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// `backup` or `restore` failed.
    #[error(transparent)]
    Backup(#[from] super::backup::BackupError),
    /// The keyring has no key to sign with.
    #[error(transparent)]
    Token(#[from] tessera_token::Error),
    /// Writing to standard output failed, or the listener has no address.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON output could not be written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// `serve` stopped on a listener error.
    #[error("server failed")]
    Serve(#[source] std::io::Error),
    /// `verifier` stopped on a listener error.
    #[error("verifier failed")]
    Verifier(#[source] std::io::Error),
    /// `token mint` without `--sub` or `--user`.
    #[error("--sub or --user is required")]
    NoSubject,
    /// Standard input could not be read.
    #[error("cannot read standard input")]
    Stdin(#[source] std::io::Error),
    /// Standard input holds more than a token can be.
    #[error("standard input holds more than {MAX_STDIN} bytes; a token is at most 4096")]
    StdinTooLarge,
    /// Standard input is not text.
    #[error("standard input is not UTF-8 text")]
    StdinNotText(#[source] std::string::FromUtf8Error),
    /// Standard input is empty.
    #[error("no token on standard input; pipe it in, e.g. `tessera token inspect < token.txt`")]
    NoToken,
}

impl Error {
    /// Every code [`Error::code`] returns for its own variants; the wrapped errors
    /// ([`ConfigError`], [`KeysError`], [`StartupError`], [`super::backup::BackupError`],
    /// [`tessera_token::Error`]) return
    /// their own codes.
    pub const CODES: &'static [&'static str] = &[
        "cli-io",
        "cli-json",
        "cli-runtime",
        "cli-serve-failed",
        "cli-verifier-failed",
        "cli-no-subject",
        "cli-stdin",
        "cli-stdin-too-large",
        "cli-stdin-not-text",
        "cli-no-token",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(e) => e.code(),
            Self::Keys(e) => e.code(),
            Self::Startup(e) => e.code(),
            Self::Backup(e) => e.code(),
            Self::Token(e) => e.code(),
            Self::Io(_) => "cli-io",
            Self::Json(_) => "cli-json",
            Self::Runtime(_) => "cli-runtime",
            Self::Serve(_) => "cli-serve-failed",
            Self::Verifier(_) => "cli-verifier-failed",
            Self::NoSubject => "cli-no-subject",
            Self::Stdin(_) => "cli-stdin",
            Self::StdinTooLarge => "cli-stdin-too-large",
            Self::StdinNotText(_) => "cli-stdin-not-text",
            Self::NoToken => "cli-no-token",
        }
    }

    /// The message and each of its causes, joined by `: ` (`cannot read config file x.toml:
    /// No such file or directory (os error 2)`).
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}

/// What a command returns.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_and_unique() {
        let io = || std::io::Error::other("test");
        let all = [
            Error::Io(io()),
            Error::Json(serde_json::from_str::<serde_json::Value>("{").unwrap_err()),
            Error::Runtime(io()),
            Error::Serve(io()),
            Error::Verifier(io()),
            Error::NoSubject,
            Error::Stdin(io()),
            Error::StdinTooLarge,
            Error::StdinNotText(String::from_utf8(vec![0xff]).unwrap_err()),
            Error::NoToken,
        ];
        crate::codes::check(Error::CODES, all.iter().map(Error::code));
        assert_eq!(
            Error::from(KeysError::NoNextKey).code(),
            KeysError::NoNextKey.code()
        );
    }

    #[test]
    fn the_report_lists_every_cause() {
        let e = Error::Config(ConfigError::Read {
            path: "x.toml".into(),
            source: std::io::Error::other("gone"),
        });
        assert_eq!(e.report(), "cannot read config file x.toml: gone");
        assert_eq!(
            Error::Serve(std::io::Error::other("reset")).report(),
            "server failed: reset"
        );
        assert_eq!(Error::NoToken.report(), Error::NoToken.to_string());
    }
}
