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
//! DER -in <kid>.pk8`): Ed25519 keys are written in the version 1 form of RFC 8410 §7.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::json;
use crate::key::{Algorithm, JwsAlgorithm, PublicKey, SigningKey};
use crate::keyring::{Entry, KeySource, KeyState, Keyring, RotationPolicy};
use crate::seal::{SealEntry, SealKey, SealKeyring, SealPolicy};

/// The manifest's file name inside the keyring directory.
pub const MANIFEST: &str = "manifest.json";
/// The lock file's name inside the keyring directory ([`Keyring::lock_dir`]).
pub const LOCK_FILE: &str = ".lock";
const FORMAT: u32 = 1;
/// Manifests and key files larger than this are refused before they are parsed.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    keys: Vec<ManifestKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestKey {
    kid: String,
    alg: Algorithm,
    state: KeyState,
    valid_from: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<i64>,
    jwk: Value,
}

/// One version of a keyring manifest: the SHA-256 of the file's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ManifestVersion([u8; 32]);

impl ManifestVersion {
    fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Debug for ManifestVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManifestVersion(")?;
        for b in self.0.iter().take(6) {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// The exclusive lock on a keyring directory taken by [`Keyring::lock_dir`]; dropping it
/// releases the lock.
#[derive(Debug)]
#[must_use = "the lock is released as soon as this guard is dropped"]
pub struct KeyringLock {
    _file: File,
}

fn key_file(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pk8"))
}

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

impl Keyring {
    /// Loads the keyring saved in `dir` by [`Keyring::save`].
    ///
    /// Every public key is validated as on JWKS import ([`PublicKey::from_jwk`]: weak
    /// Ed25519 keys refused) and must match its `kid` and `alg`; every `next` and `active`
    /// key must have its private-key file, whose key must match too.
    ///
    /// # Errors
    ///
    /// - [`Error::InsecureKeyFile`] for a private-key file readable by group or others;
    /// - [`Error::Io`] for unreadable files (a missing private key included);
    /// - [`Error::Manifest`] for a manifest that is not valid or does not match the keys;
    /// - [`Error::InvalidKey`] / [`Error::WeakKey`] for bad key material.
    pub fn load(dir: &Path, policy: RotationPolicy) -> Result<Self> {
        Self::load_versioned(dir, policy).map(|(ring, _)| ring)
    }

    /// [`Keyring::load`], and the version of the manifest it read: compare it with
    /// [`Keyring::manifest_version`] later to tell whether another process changed the keys.
    ///
    /// # Errors
    ///
    /// As [`Keyring::load`].
    pub fn load_versioned(dir: &Path, policy: RotationPolicy) -> Result<(Self, ManifestVersion)> {
        let path = dir.join(MANIFEST);
        let bytes = read_file(&path, false)?;
        let version = ManifestVersion::of(&bytes);
        let ring = Self::from_manifest_json(&bytes, &path, policy, &mut |kid| {
            read_file(&key_file(dir, kid), true)
        })?;
        Ok((ring, version))
    }

    /// A keyring from a manifest in the format of [`MANIFEST`] and the PKCS#8 DER private
    /// keys that `secret` gives by kid (asked for every `next` and `active` key), with the
    /// checks of [`Keyring::load`]. `origin` names where the manifest came from, in errors.
    /// [`Keyring::load`] reads a directory through it; a fleet's store (the engine's
    /// `keys::stored`) reads its sealed record through it.
    ///
    /// # Errors
    ///
    /// As [`Keyring::load`], and whatever `secret` returns.
    pub fn from_manifest_json(
        bytes: &[u8],
        origin: &Path,
        policy: RotationPolicy,
        secret: &mut dyn FnMut(&str) -> Result<Zeroizing<Vec<u8>>>,
    ) -> Result<Self> {
        let path = origin;
        let manifest: Manifest = parse_manifest(path, bytes)?;
        check_format(path, manifest.format)?;
        let mut entries = Vec::with_capacity(manifest.keys.len());
        for k in manifest.keys {
            let Value::Object(jwk) = &k.jwk else {
                return Err(manifest_error(path, "jwk is not an object", None));
            };
            let public = PublicKey::from_jwk_map(jwk)?;
            if public.kid().as_str() != k.kid || public.algorithm() != k.alg {
                return Err(manifest_error(
                    path,
                    format!("key {} does not match its jwk", k.kid),
                    None,
                ));
            }
            let secret = match k.state {
                KeyState::Next | KeyState::Active => {
                    let der = secret(&k.kid)?;
                    let sk = SigningKey::from_pkcs8_der(k.alg, &der)?;
                    if sk.kid() != public.kid() {
                        return Err(manifest_error(
                            path,
                            format!("private key file of {} holds another key", k.kid),
                            None,
                        ));
                    }
                    Some(sk)
                }
                KeyState::Retired | KeyState::Revoked => None,
            };
            entries.push(Entry {
                public,
                secret,
                state: k.state,
                valid_from: k.valid_from,
                retired_at: k.retired_at,
                revoked_at: k.revoked_at,
            });
        }
        Self::from_entries(entries, policy)
    }

    /// The manifest of this keyring in the format of [`MANIFEST`]: public facts only (kids,
    /// algorithms, states, times, public JWKs), what [`Keyring::save`] writes and
    /// [`Keyring::from_manifest_json`] reads back with the private keys.
    ///
    /// # Errors
    ///
    /// [`Error::Manifest`] if it cannot be encoded (`origin` names it).
    pub fn manifest_json(&self, origin: &Path) -> Result<Vec<u8>> {
        let manifest = Manifest {
            format: FORMAT,
            keys: self
                .entries()
                .iter()
                .map(|e| ManifestKey {
                    kid: e.public.kid().to_string(),
                    alg: e.public.algorithm(),
                    state: e.state,
                    valid_from: e.valid_from,
                    retired_at: e.retired_at,
                    revoked_at: e.revoked_at,
                    jwk: serde_json::to_value(e.public.jwk(JwsAlgorithm::EdDsa))
                        .unwrap_or(Value::Null),
                })
                .collect(),
        };
        let mut text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| manifest_error(origin, "cannot encode", Some(e)))?;
        text.push(b'\n');
        Ok(text)
    }

    /// The private halves of the `next` and `active` keys, newest first.
    ///
    /// # Security
    ///
    /// For code that stores the keyring elsewhere than [`Keyring::save`]'s directory (a
    /// fleet's store seals them under its master key before they leave the process);
    /// never log or send them.
    pub fn secret_keys(&self) -> impl Iterator<Item = &SigningKey> + '_ {
        self.entries().iter().filter_map(|e| e.secret.as_ref())
    }

    /// The version of the manifest in `dir` now, or `None` if there is none. Cheap: one
    /// small file is read and hashed.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the manifest exists but cannot be read.
    pub fn manifest_version(dir: &Path) -> Result<Option<ManifestVersion>> {
        let path = dir.join(MANIFEST);
        match read_file(&path, false) {
            Ok(bytes) => Ok(Some(ManifestVersion::of(&bytes))),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the exclusive lock of the keyring directory `dir`, waiting while another
    /// process holds it, and creates the directory (mode 0700) and its [`LOCK_FILE`] (mode
    /// 0600) if they are missing. Held until the returned guard is dropped.
    ///
    /// Every process that changes a shared directory (`tessera serve` rotating on its
    /// schedule, the `tessera keys` commands) takes it around "load, change, save", so no
    /// change overwrites another. Readers need no lock: [`Keyring::save`] keeps the
    /// directory loadable at every step, and a load that overlaps a save at worst fails
    /// (a key file it expected was just discarded) and can be retried. The lock is
    /// advisory (`flock`): it binds only processes that take it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory or the lock file cannot be created or locked.
    pub fn lock_dir(dir: &Path) -> Result<KeyringLock> {
        create_dir(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(KeyringLock { _file: file })
    }

    /// Saves the keyring to `dir` (created with mode 0700 if missing): new private keys
    /// first (mode 0600), then the manifest, atomically, then the private-key files of keys
    /// that are no longer `next` or `active` are deleted. A crash at any point leaves a
    /// directory that loads.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, dir: &Path) -> Result<()> {
        create_dir(dir)?;
        let mut keep = Vec::new();
        for e in self.entries() {
            if let Some(sk) = &e.secret {
                let file = key_file(dir, sk.kid().as_str());
                keep.push(file.clone());
                // The file name is the key id, derived from the key: an existing file
                // either holds this key or fails `load`'s match check.
                if !file.exists() {
                    write_atomic(&file, &sk.to_pkcs8_der()?, true)?;
                }
            }
        }
        let text = self.manifest_json(&dir.join(MANIFEST))?;
        write_atomic(&dir.join(MANIFEST), &text, false)?;
        sync_dir(dir)?;
        // Discard private halves that are no longer needed.
        let listing = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for item in listing {
            let path = item.map_err(|e| Error::io(dir, e))?.path();
            let stale_key = path.extension().is_some_and(|x| x == "pk8") && !keep.contains(&path);
            let stale_tmp = path.extension().is_some_and(|x| x == "tmp");
            if stale_key || stale_tmp {
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        sync_dir(dir)
    }

    /// Loads the keyring in `dir`, or, if `dir` has no manifest, generates one with
    /// [`Keyring::generate_at`] and saves it. The flag says whether it was generated.
    ///
    /// # Errors
    ///
    /// As [`Keyring::load`], [`Keyring::generate_at`] and [`Keyring::save`].
    pub fn load_or_generate_at(
        dir: &Path,
        policy: RotationPolicy,
        now: i64,
        keys: &mut dyn KeySource,
    ) -> Result<(Self, bool)> {
        if dir.join(MANIFEST).exists() {
            return Ok((Self::load(dir, policy)?, false));
        }
        let ring = Self::generate_at(now, policy, keys)?;
        ring.save(dir)?;
        Ok((ring, true))
    }
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

// === the sealing keys ===
//
// ```text
// keys/
//   seal.json            {"format":1,"keys":[{"kid","created_at"}]}   newest first, no key material
//   <kid>.seal           the 32 key bytes, mode 0600
// ```

/// The sealing keys' manifest, beside [`MANIFEST`] in the keyring directory.
pub const SEAL_MANIFEST: &str = "seal.json";
const SEAL_KEY_LEN: usize = 32;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealManifest {
    format: u32,
    keys: Vec<SealManifestKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SealManifestKey {
    kid: String,
    created_at: i64,
}

fn seal_key_file(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.seal"))
}

impl SealKeyring {
    /// Loads the sealing keys saved in `dir` by [`SealKeyring::save`]: every key file must
    /// be mode 0600 (or stricter), hold exactly 32 bytes, and derive the `kid` it is listed
    /// under.
    ///
    /// # Errors
    ///
    /// - [`Error::InsecureKeyFile`] for a key file readable by group or others;
    /// - [`Error::Io`] for unreadable files (a missing key file included);
    /// - [`Error::Manifest`] for a manifest that is not valid or does not match the keys.
    pub fn load(dir: &Path, policy: SealPolicy) -> Result<Self> {
        let path = dir.join(SEAL_MANIFEST);
        let bytes = read_file(&path, false)?;
        let manifest: SealManifest = parse_manifest(&path, &bytes)?;
        check_format(&path, manifest.format)?;
        if manifest.keys.is_empty() {
            return Err(manifest_error(&path, "lists no key", None));
        }
        let mut entries = Vec::with_capacity(manifest.keys.len());
        for k in manifest.keys {
            if entries.iter().any(|e: &SealEntry| e.key.kid() == k.kid) {
                return Err(manifest_error(
                    &path,
                    format!("key {} is listed twice", k.kid),
                    None,
                ));
            }
            // The kid becomes a file name: only what a derived kid can be.
            if k.kid.is_empty()
                || !k
                    .kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(manifest_error(&path, "a kid is not base64url", None));
            }
            let file = seal_key_file(dir, &k.kid);
            let raw = read_file(&file, true)?;
            let bytes: [u8; SEAL_KEY_LEN] = raw.as_slice().try_into().map_err(|_| {
                manifest_error(
                    &path,
                    format!("key file of {} does not hold 32 bytes", k.kid),
                    None,
                )
            })?;
            let key = SealKey::from_bytes(bytes);
            if key.kid() != k.kid {
                return Err(manifest_error(
                    &path,
                    format!("key file of {} holds another key", k.kid),
                    None,
                ));
            }
            entries.push(SealEntry {
                key,
                created_at: k.created_at,
            });
        }
        Ok(Self::from_entries(entries, policy))
    }

    /// Saves the sealing keys to `dir` (created with mode 0700 if missing): new key files
    /// first (mode 0600), then the manifest, atomically, then the files of keys no longer
    /// listed are deleted. A crash at any point leaves a directory that loads. The signing
    /// keyring's files ([`Keyring::save`]) in the same directory are left alone.
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, dir: &Path) -> Result<()> {
        create_dir(dir)?;
        let mut keep = Vec::new();
        for e in self.entries() {
            let file = seal_key_file(dir, e.key.kid());
            keep.push(file.clone());
            // The file name is the key id, derived from the key: an existing file either
            // holds this key or fails `load`'s match check.
            if !file.exists() {
                write_atomic(&file, e.key.expose_bytes(), true)?;
            }
        }
        let manifest = SealManifest {
            format: FORMAT,
            keys: self
                .entries()
                .iter()
                .map(|e| SealManifestKey {
                    kid: e.key.kid().to_owned(),
                    created_at: e.created_at,
                })
                .collect(),
        };
        let path = dir.join(SEAL_MANIFEST);
        let mut text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| manifest_error(&path, "cannot encode", Some(e)))?;
        text.push(b'\n');
        write_atomic(&path, &text, false)?;
        sync_dir(dir)?;
        // Keys that left the keyring are discarded, as retired signing keys are.
        let listing = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for item in listing {
            let path = item.map_err(|e| Error::io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "seal") && !keep.contains(&path) {
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        sync_dir(dir)
    }

    /// Loads the sealing keys in `dir`, or, if `dir` has no [`SEAL_MANIFEST`], generates a
    /// keyring with one key sealing from `now` and saves it. The flag says whether it was
    /// generated.
    ///
    /// # Errors
    ///
    /// As [`SealKeyring::load`], [`SealKeyring::generate_at`] and [`SealKeyring::save`].
    pub fn load_or_generate_at(dir: &Path, policy: SealPolicy, now: i64) -> Result<(Self, bool)> {
        if dir.join(SEAL_MANIFEST).exists() {
            return Ok((Self::load(dir, policy)?, false));
        }
        let ring = Self::generate_at(now, policy)?;
        ring.save(dir)?;
        Ok((ring, true))
    }
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
