//! [`KeySync`]: a running service's keyring and its directory kept in step (the schedule,
//! changes by other processes, a directory that vanished).

use std::sync::{Mutex, PoisonError};

use tessera::keys::TokenKeys;
use tessera_token::{Keyring, ManifestVersion, Rotation};

use super::{KeyDir, KeysError, accepts};

/// What one [`KeySync::tick`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Tick {
    /// What the schedule changed (empty with `rotate = false`).
    pub rotation: Rotation,
    /// Whether another process had changed the directory and its keys were swapped in.
    pub reloaded: bool,
    /// Whether the directory had vanished and was written back from memory.
    pub restored: bool,
}

/// Keeps a running service's keyring and its directory in step.
#[derive(Debug)]
pub struct KeySync {
    dir: KeyDir,
    ring: TokenKeys,
    codec: tessera_token::Config,
    known: Mutex<ManifestVersion>,
}

impl KeySync {
    /// Syncs `ring` (loaded from `dir` at `version`) for a service whose tokens use `codec`.
    pub fn new(
        dir: KeyDir,
        ring: TokenKeys,
        codec: tessera_token::Config,
        version: ManifestVersion,
    ) -> Self {
        Self {
            dir,
            ring,
            codec,
            known: Mutex::new(version),
        }
    }

    /// One check, run every minute by `serve` (blocking: it reads files and may generate
    /// a key). With `[tokens] rotate` on it takes the directory lock, loads the keys from
    /// disk, applies the schedule at `now`, saves if anything changed, and swaps the result
    /// in; with it off it only re-reads the directory when its manifest changed. Either
    /// way, changes made by `tessera keys …` reach the service here.
    ///
    /// Working on a copy loaded from disk keeps memory equal to a saved state, and key
    /// generation (seconds for RSA) never holds the lock that signing takes.
    ///
    /// # Errors
    ///
    /// Loading, generating or saving failures, and [`KeysError::AlgorithmNotAccepted`]; the
    /// service keeps its current keys and the next tick tries again.
    pub fn tick(&self, now: i64) -> Result<Tick, KeysError> {
        let mut tick = Tick::default();
        let known = *self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let (ring, version) = if self.dir.tokens.rotate {
            let _lock = self.dir.lock()?;
            if !self.dir.exists()? {
                // Someone removed the directory: write back the keys in use rather than
                // let the next start generate new ones that no verifier knows.
                self.ring
                    .read()
                    .save(&self.dir.path)
                    .map_err(|e| self.dir.err(e))?;
                tick.restored = true;
            }
            let (mut ring, version) = self.dir.load()?;
            tick.reloaded = version != known && !tick.restored;
            tick.rotation = ring
                .rotate_at(now, &mut self.dir.tokens.key_source())
                .map_err(|e| self.dir.err(e))?;
            if !tick.rotation.changed() && !tick.reloaded {
                return Ok(tick);
            }
            if tick.rotation.changed() {
                ring.save(&self.dir.path).map_err(|e| self.dir.err(e))?;
            }
            let version = Keyring::manifest_version(&self.dir.path)
                .map_err(|e| self.dir.err(e))?
                .unwrap_or(version);
            (ring, version)
        } else {
            match Keyring::manifest_version(&self.dir.path).map_err(|e| self.dir.err(e))? {
                Some(v) if v != known => {}
                _ => return Ok(tick),
            }
            tick.reloaded = true;
            self.dir.load()?
        };
        if let Some(k) = ring.keys().find(|k| !accepts(&self.codec, k.algorithm)) {
            return Err(KeysError::AlgorithmNotAccepted {
                path: self.dir.path.clone(),
                algorithm: k.algorithm.name(),
            });
        }
        self.ring.replace(ring);
        *self.known.lock().unwrap_or_else(PoisonError::into_inner) = version;
        Ok(tick)
    }
}
