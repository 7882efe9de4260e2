//! Keys on disk, in the layout of `tessera serve`'s data directory:
//!
//! ```text
//! <data_dir>/            mode 0700 when created
//!   csrf.key             the CSRF HMAC key: 32 bytes, unpadded base64url, mode 0600
//!   keys/                the sealing keys (and `tessera serve`'s token keys), under one lock
//! ```
//!
//! Files are created on a first start and refused when group or others can read them.
//! [`Engine::builder`](crate::Engine::builder) and `tessera serve` load their keys through
//! these functions, so both read and write the same files the same way.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_token::Keyring;
use tessera_token::seal::{SealKeyring, SealPolicy};
use zeroize::Zeroizing;

use crate::SessionConfig;
use crate::csrf::CsrfKey;

/// The CSRF key's file in a data directory.
pub const CSRF_KEY_FILE: &str = "csrf.key";
/// The key directory in a data directory (sealing keys, and the service's token keys).
pub const KEY_DIR: &str = "keys";

/// Why a key file or the key directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file could not be read or written.
    #[error("key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file's content or permissions are wrong.
    #[error("key file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: &'static str,
    },
    /// The OS random source failed while making a key.
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
    /// The sealing keys could not be loaded or generated.
    #[error("cannot load or generate the sealing keys in {path}")]
    SealKeys {
        /// The key directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: tessera_token::Error,
    },
}

impl KeyFileError {
    /// Every code [`KeyFileError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "key-dir-create-failed",
        "key-file-io",
        "key-file-invalid",
        "key-random-failed",
        "seal-keys-unavailable",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DataDir { .. } => "key-dir-create-failed",
            Self::Io { .. } => "key-file-io",
            Self::Invalid { .. } => "key-file-invalid",
            Self::Random(_) => "key-random-failed",
            Self::SealKeys { .. } => "seal-keys-unavailable",
        }
    }
}

/// Creates `path` (and its parents) with mode 0700 if it does not exist.
///
/// # Errors
///
/// [`KeyFileError::DataDir`].
pub fn create_private_dir(path: &Path) -> Result<(), KeyFileError> {
    let err = |source| KeyFileError::DataDir {
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        fs::create_dir_all(path).map_err(err)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Reads a secret file, or creates it with 32 fresh random bytes in unpadded base64url and a
/// newline (mode 0600). Returns the text and whether it was created.
///
/// # Errors
///
/// [`KeyFileError::Invalid`] for a file that group or others can read;
/// [`KeyFileError::Io`]; [`KeyFileError::Random`].
pub fn read_or_create_secret(path: &Path) -> Result<(Zeroizing<String>, bool), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    match read_secret(path) {
        Ok(text) => Ok((text, false)),
        Err(KeyFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = Zeroizing::new([0u8; 32]);
            getrandom::fill(raw.as_mut()).map_err(KeyFileError::Random)?;
            let text = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok((text, true))
        }
        Err(e) => Err(e),
    }
}

/// Reads a secret file that must exist: refused when group or others can read it (the rule
/// of every key file of the data directory, and of the fleet's master key file).
///
/// # Errors
///
/// [`KeyFileError::Invalid`] for a file that group or others can read; [`KeyFileError::Io`]
/// (a missing file included: `NotFound`).
pub fn read_secret(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(KeyFileError::Invalid {
            path: path.to_owned(),
            message: "group or others can read it; run `chmod 600` on it",
        });
    }
    Ok(Zeroizing::new(fs::read_to_string(path).map_err(io)?))
}

/// 32 key bytes from a key file's text (unpadded base64url; surrounding whitespace ignored).
///
/// # Errors
///
/// [`KeyFileError::Invalid`] with `message` otherwise.
pub(crate) fn decode_key32(
    text: &str,
    path: &Path,
    message: &'static str,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let mut key = Zeroizing::new([0u8; 32]);
    let n = URL_SAFE_NO_PAD
        .decode_slice(text.trim(), key.as_mut())
        .ok()
        .filter(|n| *n == 32);
    if n.is_none() {
        return Err(KeyFileError::Invalid {
            path: path.to_owned(),
            message,
        });
    }
    Ok(key)
}

/// The CSRF key in `path` (a data directory's [`CSRF_KEY_FILE`]), created on a first run.
/// Returns the key and whether it was created.
///
/// # Errors
///
/// As [`read_or_create_secret`], and [`KeyFileError::Invalid`] if the file does not hold
/// 32 bytes in unpadded base64url.
pub fn load_or_create_csrf_key(path: &Path) -> Result<(CsrfKey, bool), KeyFileError> {
    let (text, created) = read_or_create_secret(path)?;
    let key = decode_key32(
        &text,
        path,
        "must hold 32 bytes in unpadded base64url (delete it to generate a new one)",
    )?;
    Ok((CsrfKey::from_bytes(*key), created))
}

/// How long a sealing key must keep opening after it stopped sealing: the longest life of
/// anything it sealed (an anonymous cookie lives at most `absolute_timeout`; a secret as long
/// as its session, up to `remember_absolute_timeout`), plus clock skew.
pub fn seal_policy(session: &SessionConfig) -> SealPolicy {
    let longest = session
        .absolute_timeout
        .max(session.remember_absolute_timeout);
    SealPolicy::default().with_retention(longest + Duration::from_secs(60))
}

/// The sealing keys in `dir` (a data directory's [`KEY_DIR`]), generated and saved if there
/// are none, under the directory's lock ([`Keyring::lock_dir`]); the flag says whether they
/// were generated.
///
/// # Errors
///
/// [`KeyFileError::SealKeys`]: the lock, unreadable or insecure files, a bad manifest.
pub fn load_or_generate_seal_keys(
    dir: &Path,
    policy: SealPolicy,
    now: i64,
) -> Result<(SealKeyring, bool), KeyFileError> {
    let fail = |source| KeyFileError::SealKeys {
        path: dir.to_owned(),
        source,
    };
    let _lock = Keyring::lock_dir(dir).map_err(fail)?;
    SealKeyring::load_or_generate_at(dir, policy, now).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        create_private_dir(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = path.join(CSRF_KEY_FILE);
        let (first, created) = load_or_create_csrf_key(&file).unwrap();
        assert!(created);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, created) = load_or_create_csrf_key(&file).unwrap();
        assert!(!created);
        let key = tessera_core::StoreKey::from_ref(&"A".repeat(43)).unwrap();
        assert_eq!(first.sid(&key), again.sid(&key));

        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_csrf_key(&file).unwrap_err();
        assert_eq!(err.code(), "key-file-invalid");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&file, "short\n").unwrap();
        let err = load_or_create_csrf_key(&file).unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }

    #[test]
    fn seal_keys_are_generated_once_and_kept_for_the_longest_session() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join(KEY_DIR);
        let policy = seal_policy(&SessionConfig::default());
        assert_eq!(policy.retention(), Duration::from_secs(30 * 86_400 + 60));
        let (ring, created) = load_or_generate_seal_keys(&keys, policy.clone(), 1).unwrap();
        assert!(created);
        let (again, created) = load_or_generate_seal_keys(&keys, policy, 2).unwrap();
        assert!(!created);
        assert_eq!(ring.sealing_kid(), again.sealing_kid());
    }

    #[test]
    fn codes_are_listed_and_unique() {
        let io = || std::io::Error::other("x");
        let all = [
            KeyFileError::DataDir {
                path: PathBuf::new(),
                source: io(),
            },
            KeyFileError::Io {
                path: PathBuf::new(),
                source: io(),
            },
            KeyFileError::Invalid {
                path: PathBuf::new(),
                message: "",
            },
            KeyFileError::SealKeys {
                path: PathBuf::new(),
                source: tessera_token::Error::NoSigningKey,
            },
        ];
        for e in &all {
            assert!(KeyFileError::CODES.contains(&e.code()), "{e:?}");
        }
        let mut codes = KeyFileError::CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), KeyFileError::CODES.len());
    }
}
