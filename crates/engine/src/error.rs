use crate::cookie::CookieConfigError;

/// Errors of the session engine.
///
/// Client errors ([`Error::MalformedCookie`], [`Error::SessionNotFound`],
/// [`Error::InvalidInput`], [`Error::DataTooLarge`]) never change any state.
///
/// [`Error::code`] is stable, for logs, metrics and API problem types: the errors that reach
/// an HTTP client as a problem of their own use its type's slug (`malformed-cookie`,
/// `session-not-found`, `invalid-request`, `data-too-large`, `contention`,
/// `tokens-disabled`, `store-unavailable`); every other error is a server failure, answered
/// as a generic 500 (problem type `internal`) with its code in the log. [`Error::status`]
/// is the one HTTP status of each error, shared by the service and the tower layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session cookie is there but is not a handle Tessera could have issued, or it
    /// appears twice with different values.
    #[error("the session cookie is malformed")]
    MalformedCookie,
    /// The cookie names no live session (it expired, ended, or never existed).
    #[error("the cookie names no live session")]
    SessionNotFound,
    /// A request field is out of bounds; the string says which and why.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The session's data would exceed the configured size.
    #[error("session data would be {size} bytes, over the limit of {limit}")]
    DataTooLarge {
        /// The size the data would have had.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Concurrent writers kept changing the session; the edit was not applied.
    #[error("the session kept changing under concurrent writes")]
    Contention,
    /// A token was asked for, but this engine issues none (no
    /// [`TokenSettings`](crate::token::TokenSettings)).
    #[error("session tokens are disabled")]
    TokensDisabled,
    /// The engine's configuration is inconsistent; the string names the field and the rule.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A cookie the engine would set cannot have this name with these attributes.
    #[error("invalid configuration of the {cookie}")]
    CookieConfig {
        /// Which cookie: `anonymous cookie`, `token cookie`.
        cookie: &'static str,
        /// What is wrong with it.
        #[source]
        source: CookieConfigError,
    },
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
    /// The store failed or did not answer.
    #[error("the session store failed")]
    Store(#[from] tessera_core::Error),
    /// A session token could not be issued (no key can sign now, signing failed).
    #[error("cannot issue a session token")]
    Token(#[source] tessera_token::Error),
    /// The sealing keyring has no key: nothing can be sealed (anonymous cookies, secrets).
    #[error("no sealing key")]
    NoSealingKey,
    /// A value could not be sealed (the OS random source failed).
    #[error("cannot seal a value")]
    Seal(#[source] tessera_token::seal::SealError),
    /// Keys are missing and there is nowhere to keep them: the store has no directory.
    #[error(
        "the store keeps no files, so the engine's keys have nowhere to persist: give the \
         builder a key directory (with_key_dir), the keys (with_csrf_key, with_seal_keys), or \
         ask for ephemeral_keys()"
    )]
    NoKeyDir,
    /// The key files could not be read or created.
    #[error("cannot load or create the engine's keys")]
    KeyFiles(#[source] crate::keys::KeyFileError),
    /// Logic that cannot happen happened; the string says where.
    #[error("internal invariant broken: {0}")]
    Unreachable(&'static str),
}

impl Error {
    /// Every code [`Error::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "malformed-cookie",
        "session-not-found",
        "invalid-request",
        "data-too-large",
        "contention",
        "tokens-disabled",
        "engine-config-invalid",
        "engine-cookie-invalid",
        "engine-random-failed",
        "store-unavailable",
        "token-issue-failed",
        "engine-no-sealing-key",
        "engine-seal-failed",
        "engine-no-key-dir",
        "engine-key-files",
        "engine-unreachable",
    ];

    /// A stable identifier for logs, metrics and API problem types (kebab-case; see the
    /// type's documentation).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedCookie => "malformed-cookie",
            Self::SessionNotFound => "session-not-found",
            Self::InvalidInput(_) => "invalid-request",
            Self::DataTooLarge { .. } => "data-too-large",
            Self::Contention => "contention",
            Self::TokensDisabled => "tokens-disabled",
            Self::Config(_) => "engine-config-invalid",
            Self::CookieConfig { .. } => "engine-cookie-invalid",
            Self::Random(_) => "engine-random-failed",
            Self::Store(_) => "store-unavailable",
            Self::Token(_) => "token-issue-failed",
            Self::NoSealingKey => "engine-no-sealing-key",
            Self::Seal(_) => "engine-seal-failed",
            Self::NoKeyDir => "engine-no-key-dir",
            Self::KeyFiles(_) => "engine-key-files",
            Self::Unreachable(_) => "engine-unreachable",
        }
    }

    /// The HTTP status of this error, the same in the service's problems and in the tower
    /// layer's responses: 400, 404, 422, 413, 409 for client errors, 503 for the store, 500
    /// for everything else.
    pub fn status(&self) -> u16 {
        match self {
            Self::MalformedCookie => 400,
            Self::SessionNotFound | Self::TokensDisabled => 404,
            Self::InvalidInput(_) => 422,
            Self::DataTooLarge { .. } => 413,
            Self::Contention => 409,
            Self::Store(_) => 503,
            _ => 500,
        }
    }

    /// Whether the error is the client's (a 4xx status): such errors never change state.
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }
}

/// The result of an engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<Error> {
        vec![
            Error::MalformedCookie,
            Error::SessionNotFound,
            Error::InvalidInput(String::new()),
            Error::DataTooLarge { size: 0, limit: 0 },
            Error::Contention,
            Error::TokensDisabled,
            Error::Config(String::new()),
            Error::CookieConfig {
                cookie: "token cookie",
                source: CookieConfigError::BadName,
            },
            Error::Store(tessera_core::Error::Timeout),
            Error::Store(tessera_core::Error::Conflict),
            Error::Token(tessera_token::Error::NoSigningKey),
            Error::NoSealingKey,
            Error::Seal(tessera_token::seal::SealError::NoKey),
            Error::NoKeyDir,
            Error::KeyFiles(crate::keys::KeyFileError::Invalid {
                path: std::path::PathBuf::new(),
                message: "",
            }),
            Error::Unreachable(""),
        ]
    }

    #[test]
    fn codes_are_listed_unique_and_kebab_case() {
        for e in every_variant() {
            assert!(Error::CODES.contains(&e.code()), "{e:?}");
        }
        let mut codes = Error::CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Error::CODES.len());
        for c in Error::CODES {
            let kebab = c.split('-').all(|w| {
                !w.is_empty()
                    && w.chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            });
            assert!(kebab, "{c}");
        }
        // Every listed code is returned by some variant (`Random` needs a getrandom error to
        // build, so it is counted by hand).
        let returned: std::collections::BTreeSet<_> =
            every_variant().iter().map(Error::code).collect();
        assert_eq!(returned.len() + 1, Error::CODES.len());
    }

    #[test]
    fn statuses_are_the_service_problems() {
        let status = |e: Error| (e.code(), e.status());
        assert_eq!(status(Error::MalformedCookie), ("malformed-cookie", 400));
        assert_eq!(status(Error::SessionNotFound), ("session-not-found", 404));
        assert_eq!(
            status(Error::InvalidInput(String::new())),
            ("invalid-request", 422)
        );
        assert_eq!(
            status(Error::DataTooLarge { size: 0, limit: 0 }),
            ("data-too-large", 413)
        );
        assert_eq!(status(Error::Contention), ("contention", 409));
        assert_eq!(status(Error::TokensDisabled), ("tokens-disabled", 404));
        assert_eq!(
            status(Error::Store(tessera_core::Error::Timeout)),
            ("store-unavailable", 503)
        );
        assert_eq!(status(Error::NoSealingKey).1, 500);
        assert!(Error::Contention.is_client_error());
        assert!(!Error::Unreachable("").is_client_error());
    }
}
