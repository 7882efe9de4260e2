//! The sealing keys on disk, beside the signing keys:
//!
//! ```text
//! keys/
//!   seal.json            {"format":1,"keys":[{"kid","created_at"}]}   newest first, no key material
//!   <kid>.seal           the 32 key bytes, mode 0600
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    FORMAT, check_format, create_dir, manifest_error, parse_manifest, read_file, sync_dir,
    write_atomic,
};
use crate::error::{Error, Result};
use crate::seal::{SealEntry, SealKey, SealKeyring, SealPolicy};

/// The sealing keys' manifest, beside [`MANIFEST`](super::MANIFEST) in the keyring directory.
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
    /// keyring's files ([`Keyring::save`](crate::Keyring::save)) in the same directory are left alone.
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
