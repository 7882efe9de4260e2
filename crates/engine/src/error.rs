/// Errors of the session engine.
///
/// Client errors ([`Error::MalformedCookie`], [`Error::SessionNotFound`],
/// [`Error::InvalidInput`], [`Error::DataTooLarge`]) never change any state. [`Error::code`]
/// is stable for logs and API problem types.
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
    /// The engine's configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
    /// The store failed.
    #[error("the session store failed")]
    Store(#[from] tessera_core::Error),
    /// A session token could not be issued (no signing key, bad claims, signing failed).
    #[error("cannot issue a session token")]
    Token(#[source] tessera_token::Error),
    /// A value could not be sealed: no sealing key, or the OS random source failed.
    #[error("cannot seal a value")]
    Seal(#[source] tessera_token::seal::SealError),
}

impl Error {
    /// A stable identifier for logs, metrics and API problem types.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedCookie => "malformed_cookie",
            Self::SessionNotFound => "session_not_found",
            Self::InvalidInput(_) => "invalid_input",
            Self::DataTooLarge { .. } => "data_too_large",
            Self::Contention => "contention",
            Self::Config(_) => "invalid_config",
            Self::Random(_) => "random_failed",
            Self::Token(_) => "token_failed",
            Self::Seal(_) => "seal_failed",
            Self::Store(e) => match e {
                tessera_core::Error::Timeout => "store_timeout",
                _ => "store_failed",
            },
        }
    }
}

/// The result of an engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique() {
        let all = [
            Error::MalformedCookie,
            Error::SessionNotFound,
            Error::InvalidInput(String::new()),
            Error::DataTooLarge { size: 0, limit: 0 },
            Error::Contention,
            Error::Config(String::new()),
            Error::Store(tessera_core::Error::Timeout),
            Error::Store(tessera_core::Error::Conflict),
            Error::Token(tessera_token::Error::BadEncoding),
            Error::Seal(tessera_token::seal::SealError::NoKey),
        ];
        let mut codes: Vec<_> = all.iter().map(Error::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
