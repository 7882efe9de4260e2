//! The signing keys on disk: `manifest.json` (public facts only) and one PKCS#8 file per
//! private key; loading checks every key against its listing, saving is atomic, and
//! [`Keyring::lock_dir`] serializes the processes that change them.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::{
    FORMAT, LOCK_FILE, MANIFEST, check_format, create_dir, manifest_error, parse_manifest,
    read_file, sync_dir, write_atomic,
};
use crate::error::{Error, Result};
use crate::key::{Algorithm, JwsAlgorithm, PublicKey, SigningKey};
use crate::keyring::{Entry, KeySource, KeyState, Keyring, RotationPolicy};

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
