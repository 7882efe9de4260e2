//! The keyring on disk: a directory with `manifest.json` and one PKCS#8 file per private key,
//! and beside them the sealing keys, `seal.json` and one file per key.
//!
//! ```text
//! keys/                 mode 0700
//!   manifest.json       {"format":1,"keys":[{"kid","alg","state","valid_from",
//!                         "retired_at"?,"revoked_at"?,"jwk"}]}   public facts only
//!   <kid>.pk8           DER PKCS#8 private key, mode 0600, for next and active keys only
//!   .lock               empty, mode 0600: the advisory lock of processes that change the keys
//!   seal.json           {"format":1,"keys":[{"kid","created_at"}]}   no key material
//!   <kid>.seal          32-byte XChaCha20-Poly1305 key, mode 0600
//! ```
//!
//! The key files load in OpenSSL and pyca/cryptography as they are (`openssl pkey -inform
//! DER -in <kid>.pk8`): Ed25519 keys are written in the version 1 form of RFC 8410 §7.//!
//! | module | what |
//! |---|---|
//! | `mod.rs` | the file names, and the careful file handling both use (size cap, modes, atomic writes, syncs, manifest parsing) |
//! | `signing.rs` | the signing keys: [`Keyring::load`](crate::Keyring::load), [`Keyring::save`](crate::Keyring::save), [`Keyring::lock_dir`](crate::Keyring::lock_dir), [`ManifestVersion`] |
//! | `seal.rs` | the sealing keys: [`SealKeyring::load`](crate::seal::SealKeyring::load), [`SealKeyring::save`](crate::seal::SealKeyring::save) |

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::Path;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::json;

mod seal;
mod signing;

pub use self::seal::SEAL_MANIFEST;
pub use self::signing::{KeyringLock, ManifestVersion};

/// The manifest's file name inside the keyring directory.
pub const MANIFEST: &str = "manifest.json";
/// The lock file's name inside the keyring directory ([`Keyring::lock_dir`](crate::Keyring::lock_dir)).
pub const LOCK_FILE: &str = ".lock";
const FORMAT: u32 = 1;
/// Manifests and key files larger than this are refused before they are parsed.
const MAX_FILE_BYTES: u64 = 1 << 20;

fn manifest_error(
    path: &Path,
    reason: impl Into<String>,
    source: Option<serde_json::Error>,
) -> Error {
    Error::Manifest {
        path: path.to_owned(),
        reason: reason.into(),
        source,
    }
}

/// Reads a whole file through one open handle, after checking its size (and, for private
/// keys, its mode) on that same handle, so the checked file is the file read.
fn read_file(path: &Path, private: bool) -> Result<Zeroizing<Vec<u8>>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a regular file of sane size",
            ),
        ));
    }
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::InsecureKeyFile {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut buf = Zeroizing::new(Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0)));
    file.read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

/// Writes `bytes` to `path` atomically: a fresh temporary file (mode 0600 for private keys),
/// fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    // A temporary file left by a crash is ours to replace.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&tmp, e)),
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = opts.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn create_dir(dir: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| Error::io(dir, e))
}

/// A manifest's JSON: one object without duplicate members, of the expected shape.
fn parse_manifest<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    let map = json::parse_object(bytes).ok_or_else(|| {
        manifest_error(path, "not one JSON object without duplicate members", None)
    })?;
    serde_json::from_value(Value::Object(map))
        .map_err(|e| manifest_error(path, "unexpected shape", Some(e)))
}

/// Refuses a manifest of a format this build does not know.
fn check_format(path: &Path, format: u32) -> Result<()> {
    if format == FORMAT {
        Ok(())
    } else {
        Err(manifest_error(
            path,
            format!("unknown format {format}"),
            None,
        ))
    }
}
