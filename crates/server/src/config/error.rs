//! The configuration error.

use std::path::PathBuf;

/// A configuration error, naming where it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown keys are errors too).
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as `section.key` or the environment variable.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Every code [`ConfigError::code`] returns.
    pub const CODES: &'static [&'static str] = &["config-read", "config-parse", "config-invalid"];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Read { .. } => "config-read",
            Self::Parse { .. } => "config-parse",
            Self::Invalid { .. } => "config-invalid",
        }
    }
}

pub(super) fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_listed_and_unique() {
        let all = [
            ConfigError::Read {
                path: PathBuf::new(),
                source: std::io::Error::other("test"),
            },
            ConfigError::Parse {
                path: PathBuf::new(),
                source: toml::from_str::<toml::Table>("=").unwrap_err(),
            },
            invalid("field", "message"),
        ];
        crate::codes::check(ConfigError::CODES, all.iter().map(ConfigError::code));
    }
}
