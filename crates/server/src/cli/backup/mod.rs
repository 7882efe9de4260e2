//! `tessera backup` and `tessera restore` (docs/operations.md, "Backups").
//!
//! A backup is a directory (mode 0700, files 0600):
//!
//! ```text
//! backup.json       what it holds: version, time, counts, every file's size and SHA-256
//! sessions.redb     the session store: one read transaction's snapshot (redb)
//! anonymous.redb    the anonymous store, when `[store] anonymous` is redb too
//! keys/             the token signing keys and the sealing keys, as in DATA_DIR/keys
//! csrf.key          the CSRF key
//! api-key           the generated management API key, when there is one
//! ```
//!
//! The store and the keys belong together: sealed secrets and anonymous cookies open only
//! with their sealing keys, tokens verify only with their signing keys. The keys are copied
//! under the key directory's lock, held until the store's snapshot is taken, so no rotation
//! falls between the two: the copy is the state of one moment.
//!
//! The store's copy comes from the running service (`GET /v1/admin/backup` at `listen`, with
//! the management API key): redb locks its file, so only the service can read it, and a
//! copy of the bytes taken while it commits could be torn. With no service running and the
//! file free, the copy is made from the file, the same way.
//!
//! `restore` puts a backup into the configured data directory, which must be empty or
//! absent: it never overwrites, and it refuses a store file held by a running service.
//!
//! | module | what a reader finds there |
//! |---|---|
//! | `mod.rs` | the file names, [`BackupError`], and which store files the configuration names |
//! | `take.rs` | [`backup`]: the keys under their lock, the store copies (from the service or the file) |
//! | `restore.rs` | [`restore`]: checking the target, placing keys and stores, undoing a failed restore |
//! | `manifest.rs` | `backup.json`: what it holds, writing it, reading and checking a backup by it |
//! | `files.rs` | private files and directories (0600/0700), copies, syncs, the store check |

use std::path::{Path, PathBuf};

use crate::config::{Config, StoreUrl};

mod files;
mod manifest;
mod restore;
mod take;

pub use self::restore::restore;
pub use self::take::backup;

/// The manifest's file name in a backup.
pub const MANIFEST_FILE: &str = "backup.json";
/// The session store's file name in a backup.
pub const SESSION_FILE: &str = "sessions.redb";
/// The anonymous store's file name in a backup.
pub const ANONYMOUS_FILE: &str = "anonymous.redb";
/// The generated API key's file name, in the data directory and in a backup.
pub const API_KEY_FILE: &str = "api-key";

/// Why `backup` or `restore` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The store is not an embedded (redb) store.
    #[error(
        "the {store} store is {url}, not an embedded redb store: back it up with its own tools \
         (docs/operations.md)"
    )]
    NotRedb {
        /// `session` or `anonymous`.
        store: &'static str,
        /// The store's URL (passwords hidden).
        url: String,
    },
    /// The backup's directory, or the data directory of a restore, exists already.
    #[error("{} exists already: {hint}", path.display())]
    TargetExists {
        /// The path.
        path: PathBuf,
        /// What to do.
        hint: &'static str,
    },
    /// Writing or reading a file failed.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The service could not be asked.
    #[error("cannot reach the service at {url}")]
    Request {
        /// The backup URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with a problem.
    #[error("the service refused the backup ({status}): {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
    },
    /// No service answers at `listen`, and the store file cannot be copied directly.
    #[error("no service answers at {url}, and {}: {why}", path.display())]
    NoService {
        /// The service's address.
        url: String,
        /// The store file.
        path: PathBuf,
        /// Why no direct copy.
        why: &'static str,
    },
    /// Copying the store file directly failed.
    #[error("copying {} failed", path.display())]
    Copy {
        /// The store file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tessera_core::Error,
    },
    /// A copy does not open as a Tessera store.
    #[error("{} is not a usable Tessera store", path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Option<tessera_store_redb::Error>,
    },
    /// The restore's store file is open in a running service.
    #[error(
        "{} is in use (is `tessera serve` running?): stop the service, move the data directory \
         aside, then restore",
        path.display()
    )]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// The path is not a backup made by `tessera backup`.
    #[error("{} is not a backup made by `tessera backup`: {why}", path.display())]
    NotABackup {
        /// The path.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A file of the backup is not what its manifest says.
    #[error(
        "{} does not match the backup's manifest (size or SHA-256): the backup is damaged",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
    },
    /// The key directory's lock could not be taken.
    #[error("cannot lock the key directory")]
    KeysLock(#[source] tessera_token::Error),
}

impl BackupError {
    /// Every code [`BackupError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "backup-not-redb",
        "backup-target-exists",
        "backup-io",
        "backup-request",
        "backup-refused",
        "backup-no-service",
        "backup-copy",
        "backup-not-a-store",
        "backup-in-use",
        "backup-not-a-backup",
        "backup-damaged",
        "backup-keys-lock",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotRedb { .. } => "backup-not-redb",
            Self::TargetExists { .. } => "backup-target-exists",
            Self::Io { .. } => "backup-io",
            Self::Request { .. } => "backup-request",
            Self::Refused { .. } => "backup-refused",
            Self::NoService { .. } => "backup-no-service",
            Self::Copy { .. } => "backup-copy",
            Self::NotAStore { .. } => "backup-not-a-store",
            Self::InUse { .. } => "backup-in-use",
            Self::NotABackup { .. } => "backup-not-a-backup",
            Self::Damaged { .. } => "backup-damaged",
            Self::KeysLock(_) => "backup-keys-lock",
        }
    }
}

type BResult<T> = Result<T, BackupError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The redb file of a store URL.
fn redb_file(url: &StoreUrl, store: &'static str) -> BResult<PathBuf> {
    match url {
        StoreUrl::Redb(p) => Ok(p.clone()),
        other => Err(BackupError::NotRedb {
            store,
            url: other.to_string(),
        }),
    }
}

/// The anonymous store's redb file, if it is configured apart and on redb.
fn anonymous_file(config: &Config) -> Option<PathBuf> {
    match &config.anon_store {
        Some(StoreUrl::Redb(p)) => Some(p.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_listed_and_unique() {
        let p = PathBuf::new;
        let io = || std::io::Error::other("x");
        let all = [
            BackupError::NotRedb {
                store: "session",
                url: String::new(),
            },
            BackupError::TargetExists {
                path: p(),
                hint: "",
            },
            BackupError::Io {
                path: p(),
                source: io(),
            },
            BackupError::Refused {
                status: 501,
                detail: String::new(),
            },
            BackupError::NoService {
                url: String::new(),
                path: p(),
                why: "",
            },
            BackupError::Copy {
                path: p(),
                source: tessera_core::Error::backend(io()),
            },
            BackupError::NotAStore {
                path: p(),
                source: None,
            },
            BackupError::InUse { path: p() },
            BackupError::NotABackup {
                path: p(),
                why: String::new(),
            },
            BackupError::Damaged { path: p() },
            BackupError::KeysLock(
                tessera_token::Keyring::lock_dir(Path::new("/dev/null/keys")).unwrap_err(),
            ),
        ];
        let mut codes: Vec<_> = all.iter().map(BackupError::code).collect();
        // A reqwest error comes only from a request.
        codes.push("backup-request");
        crate::codes::check(BackupError::CODES, codes);
    }
}
