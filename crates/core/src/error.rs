use std::error::Error as StdError;

/// A boxed error from a backend library, kept as the source of [`Error::Backend`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Errors a [`SessionStore`](crate::SessionStore) reports.
///
/// Callers branch on the typed variants; [`Error::code`] is stable for logs and runbooks
/// (every code is in [`Error::CODES`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `create` found a record (live, expired-but-unpurged, or a tombstone) under the key.
    #[error("a record already exists under this key")]
    AlreadyExists,
    /// `save` found a different version than the one the caller loaded.
    #[error("the record changed since it was loaded")]
    Conflict,
    /// `save` found no live record: it expired, was deleted (tombstone) or never existed.
    #[error("no live record under this key")]
    NotFound,
    /// A record could not be encoded for the backend.
    #[error("could not encode a record")]
    Encode(#[source] BoxError),
    /// Bytes read from the backend are not a valid record.
    #[error("could not decode a stored record")]
    Decode(#[source] BoxError),
    /// The backend did not answer in time.
    #[error("the store did not answer in time")]
    Timeout,
    /// The backend failed (I/O, connection, protocol).
    #[error("the store backend failed")]
    Backend(#[source] BoxError),
    /// Logic that cannot happen happened; the string says where.
    #[error("internal invariant broken: {0}")]
    Unreachable(&'static str),
}

impl Error {
    /// Every code [`Error::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "store-already-exists",
        "store-conflict",
        "store-not-found",
        "store-encode",
        "store-decode",
        "store-timeout",
        "store-backend",
        "store-unreachable",
    ];

    /// A stable identifier for this error, for logs, metrics and runbooks: kebab-case,
    /// prefixed `store-`, unique across Tessera.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyExists => "store-already-exists",
            Self::Conflict => "store-conflict",
            Self::NotFound => "store-not-found",
            Self::Encode(_) => "store-encode",
            Self::Decode(_) => "store-decode",
            Self::Timeout => "store-timeout",
            Self::Backend(_) => "store-backend",
            Self::Unreachable(_) => "store-unreachable",
        }
    }

    /// Wraps any backend error.
    pub fn backend(err: impl StdError + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(err))
    }
}

/// The result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_unique_and_kebab_case() {
        let io = || Box::new(std::io::Error::other("x")) as BoxError;
        let all = [
            Error::AlreadyExists,
            Error::Conflict,
            Error::NotFound,
            Error::Encode(io()),
            Error::Decode(io()),
            Error::Timeout,
            Error::Backend(io()),
            Error::Unreachable("x"),
        ];
        tessera_test_support::assert_error_codes(Error::CODES, all.iter().map(Error::code));
    }
}
