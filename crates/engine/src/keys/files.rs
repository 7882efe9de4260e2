//! Keys on disk, in the layout of `tessera serve`'s data directory:
//!
//! ```text
//! <data_dir>/            mode 0700 when created
//!   csrf.key             the sid key (and the first CSRF key of a data directory made before
//!                        the CSRF keys rotated): 32 bytes, unpadded base64url, mode 0600
//!   keys/                the sealing keys (and `tessera serve`'s token keys), under one lock
//!     csrf.json          the CSRF keys, mode 0600 (absent in a data directory of before: its
//!                        one CSRF key is csrf.key)
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
use crate::csrf::{CsrfKey, CsrfKeyring, CsrfPolicy, SidKey};

/// The CSRF key's file in a data directory.
pub const CSRF_KEY_FILE: &str = "csrf.key";
/// The key directory in a data directory (sealing keys, and the service's token keys).
pub const KEY_DIR: &str = "keys";
/// The CSRF keys' file in the key directory.
pub const CSRF_KEYS_FILE: &str = "csrf.json";

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
    /// The CSRF keys' file does not hold valid keys.
    #[error("CSRF key file {path}: {reason}")]
    CsrfKeys {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
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
        "csrf-keys-invalid",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DataDir { .. } => "key-dir-create-failed",
            Self::Io { .. } => "key-file-io",
            Self::Invalid { .. } => "key-file-invalid",
            Self::Random(_) => "key-random-failed",
            Self::SealKeys { .. } => "seal-keys-unavailable",
            Self::CsrfKeys { .. } => "csrf-keys-invalid",
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

/// The CSRF policy of `session` (`csrf_rotate_every`, `csrf_max_age`), each new key
/// published `ahead` of its use.
pub fn csrf_policy(session: &SessionConfig, ahead: Duration) -> CsrfPolicy {
    CsrfPolicy::new(session.csrf_rotate_every, session.csrf_max_age, ahead)
}

/// The sid key and the CSRF keys of the data directory `data_dir`: `csrf.key` is the sid key
/// (created on a first run); the CSRF keys are in `keys/csrf.json`, or, in a data directory
/// of before the CSRF keys rotated (no such file), `csrf.key` is the one CSRF key too, as
/// old as can be (the schedule's first run adds a new one), so its tokens and sids stay
/// valid. On a first run a CSRF key of its own is made and saved, under the key
/// directory's lock. The flag says whether `csrf.key` was created.
///
/// # Errors
///
/// As [`load_or_create_csrf_key`] and [`load_csrf_keys`]; saving failures.
pub fn load_or_create_csrf_keys(
    data_dir: &Path,
    policy: CsrfPolicy,
    now: i64,
) -> Result<(SidKey, CsrfKeyring, bool), KeyFileError> {
    let (legacy, created) = load_or_create_csrf_key(&data_dir.join(CSRF_KEY_FILE))?;
    let sid = legacy.to_sid_key();
    let dir = data_dir.join(KEY_DIR);
    if created {
        let _lock = lock(&dir)?;
        if !dir.join(CSRF_KEYS_FILE).exists() {
            let ring = CsrfKeyring::generate_at(now, policy).map_err(KeyFileError::Random)?;
            save_csrf_keys(&dir, &ring)?;
            return Ok((sid, ring, created));
        }
    }
    let ring = load_csrf_keys(&dir, policy, legacy)?;
    Ok((sid, ring, created))
}

fn lock(dir: &Path) -> Result<tessera_token::KeyringLock, KeyFileError> {
    Keyring::lock_dir(dir).map_err(|source| KeyFileError::SealKeys {
        path: dir.to_owned(),
        source,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CsrfFile {
    format: u32,
    keys: Vec<CsrfFileKey>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CsrfFileKey {
    kid: String,
    created_at: i64,
    key: super::Secret,
}

/// The CSRF keys in the key directory `dir` ([`CSRF_KEYS_FILE`], mode 0600), or a ring of
/// `legacy` alone if there is no such file (a data directory of before).
///
/// # Errors
///
/// [`KeyFileError::Invalid`] for a file others can read; [`KeyFileError::Io`];
/// [`KeyFileError::CsrfKeys`] for a file that does not hold valid keys.
pub fn load_csrf_keys(
    dir: &Path,
    policy: CsrfPolicy,
    legacy: CsrfKey,
) -> Result<CsrfKeyring, KeyFileError> {
    let path = dir.join(CSRF_KEYS_FILE);
    let text = match read_secret(&path) {
        Ok(t) => t,
        Err(KeyFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CsrfKeyring::new(legacy, 0, policy));
        }
        Err(e) => return Err(e),
    };
    let bad = |reason: String| KeyFileError::CsrfKeys {
        path: path.clone(),
        reason,
    };
    let file: CsrfFile =
        serde_json::from_str(&text).map_err(|e| bad(format!("unexpected shape: {e}")))?;
    if file.format != 1 {
        return Err(bad(format!("unknown format {}", file.format)));
    }
    let mut ring: Option<CsrfKeyring> = None;
    for k in file.keys {
        let bytes = decode_key32(
            k.key.text(),
            &path,
            "a CSRF key is not 32 bytes of base64url",
        )?;
        let key = CsrfKey::from_bytes(*bytes);
        if key.kid() != k.kid {
            return Err(bad(format!("key {} is another key", k.kid)));
        }
        ring = Some(match ring {
            None => CsrfKeyring::new(key, k.created_at, policy.clone()),
            Some(r) => r.with_key(key, k.created_at),
        });
    }
    ring.ok_or_else(|| bad("lists no key".to_owned()))
}

/// Saves the CSRF keys to the key directory `dir` ([`CSRF_KEYS_FILE`], mode 0600,
/// atomically). Call it under the directory's lock ([`Keyring::lock_dir`]).
///
/// # Errors
///
/// [`KeyFileError::Io`]; [`KeyFileError::DataDir`] if `dir` cannot be created.
pub fn save_csrf_keys(dir: &Path, ring: &CsrfKeyring) -> Result<(), KeyFileError> {
    create_private_dir(dir)?;
    let file = CsrfFile {
        format: 1,
        keys: ring
            .secret_keys()
            .map(|(k, created_at)| CsrfFileKey {
                kid: k.kid(),
                created_at,
                key: super::Secret::of(k.expose_bytes()),
            })
            .collect(),
    };
    let path = dir.join(CSRF_KEYS_FILE);
    let io = |source| KeyFileError::Io {
        path: path.clone(),
        source,
    };
    let mut text =
        Zeroizing::new(
            serde_json::to_vec_pretty(&file).map_err(|e| KeyFileError::CsrfKeys {
                path: path.clone(),
                reason: format!("cannot encode: {e}"),
            })?,
        );
    text.push(b'\n');
    // `.tmp`: the name the key directory's other writers clean up after a crash.
    let tmp = dir.join("csrf.json.tmp");
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&text).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io)?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
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
        assert_eq!(first.to_sid_key().sid(&key), again.to_sid_key().sid(&key));

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
    fn a_first_run_makes_a_sid_key_and_a_csrf_key_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        create_private_dir(&data).unwrap();
        let policy = csrf_policy(&SessionConfig::default(), Duration::from_secs(180));
        let (sid, ring, created) = load_or_create_csrf_keys(&data, policy.clone(), 10).unwrap();
        assert!(created);
        let file = data.join(KEY_DIR).join(CSRF_KEYS_FILE);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (legacy, _) = load_or_create_csrf_key(&data.join(CSRF_KEY_FILE)).unwrap();
        assert_ne!(ring.issuing_kid(10), Some(legacy.kid()));
        let key = tessera_core::StoreKey::from_ref(&"A".repeat(43)).unwrap();
        assert_eq!(sid.sid(&key), legacy.to_sid_key().sid(&key));
        // Read back as saved, a rotation saved and read back too.
        let (_, again, created) = load_or_create_csrf_keys(&data, policy.clone(), 20).unwrap();
        assert!(!created);
        assert_eq!(
            again.keys().collect::<Vec<_>>(),
            ring.keys().collect::<Vec<_>>()
        );
        let mut rotated = again;
        rotated.publish_next_at(30).unwrap().unwrap();
        save_csrf_keys(&data.join(KEY_DIR), &rotated).unwrap();
        let (_, loaded, _) = load_or_create_csrf_keys(&data, policy, 40).unwrap();
        assert_eq!(loaded.keys().count(), 2);
        assert_eq!(
            loaded.keys().collect::<Vec<_>>(),
            rotated.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_data_dir_of_before_keeps_csrf_key_as_its_one_csrf_key() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        create_private_dir(&data).unwrap();
        let (legacy, _) = load_or_create_csrf_key(&data.join(CSRF_KEY_FILE)).unwrap();
        let policy = csrf_policy(&SessionConfig::default(), Duration::from_secs(180));
        let (sid, ring, created) = load_or_create_csrf_keys(&data, policy, 10).unwrap();
        assert!(!created);
        assert!(!data.join(KEY_DIR).join(CSRF_KEYS_FILE).exists());
        let keys: Vec<_> = ring.keys().collect();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, legacy.kid());
        let s = tessera_core::StoreKey::from_ref(&"A".repeat(43)).unwrap();
        let t = legacy.issue("p", &s, tessera_core::Timestamp::from_unix_secs(100));
        assert!(ring.verify(
            &t,
            "p",
            &s,
            Duration::from_secs(60),
            tessera_core::Timestamp::from_unix_secs(120)
        ));
        assert_eq!(sid.sid(&s), legacy.to_sid_key().sid(&s));
        // A file others can read is refused.
        save_csrf_keys(&data.join(KEY_DIR), &ring).unwrap();
        let file = data.join(KEY_DIR).join(CSRF_KEYS_FILE);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let policy = csrf_policy(&SessionConfig::default(), Duration::from_secs(180));
        assert_eq!(
            load_or_create_csrf_keys(&data, policy, 10)
                .unwrap_err()
                .code(),
            "key-file-invalid"
        );
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
            KeyFileError::CsrfKeys {
                path: PathBuf::new(),
                reason: String::new(),
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
