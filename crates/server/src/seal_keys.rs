//! The sealing keys (anonymous cookies, secrets) in `data_dir/keys`, beside the token keys
//! and under the same directory lock ([`Keyring::lock_dir`]): loaded or generated at start-up
//! by the engine's key files ([`tessera::keys::files`], the code `Engine::builder` uses too),
//! and kept in step by the key schedule task ([`SealSync::tick`], every minute): lock, load
//! from disk, rotate, save, swap in. So a copy of the directory changed by another process
//! reaches the running service, and a removed directory is written back rather than
//! replaced by keys that open nothing.

use std::path::PathBuf;

use tessera::keys::SealKeys;
use tessera_token::seal::{SealKeyring, SealPolicy, SealRotation};
use tessera_token::{Keyring, SEAL_MANIFEST};

/// What one [`SealSync::tick`] did.
#[derive(Debug, Default)]
pub(crate) struct SealTick {
    /// What the schedule changed.
    pub(crate) rotation: SealRotation,
    /// Whether the keys on disk differed from those in use and were swapped in.
    pub(crate) reloaded: bool,
    /// Whether the sealing keys had vanished from disk and were written back from memory.
    pub(crate) restored: bool,
}

/// Keeps a running service's sealing keys and their directory in step.
#[derive(Debug)]
pub(crate) struct SealSync {
    dir: PathBuf,
    ring: SealKeys,
    policy: SealPolicy,
    /// `[tokens] rotate`: off, the schedule stops for the sealing keys too, and the service
    /// only follows the directory.
    rotate: bool,
}

impl SealSync {
    pub(crate) fn new(dir: PathBuf, ring: SealKeys, policy: SealPolicy) -> Self {
        Self {
            dir,
            ring,
            policy,
            rotate: true,
        }
    }

    /// Without the rotation schedule (`[tokens] rotate = false`).
    pub(crate) fn without_rotation(mut self) -> Self {
        self.rotate = false;
        self
    }

    /// One check (blocking: files, the lock). Working on a copy loaded from disk keeps
    /// memory equal to a saved state.
    ///
    /// # Errors
    ///
    /// Locking, loading, generating or saving failures: the service keeps its current keys
    /// and the next tick tries again.
    pub(crate) fn tick(&self, now: i64) -> tessera_token::Result<SealTick> {
        let mut tick = SealTick::default();
        let _lock = Keyring::lock_dir(&self.dir)?;
        if !self.dir.join(SEAL_MANIFEST).exists() {
            // New keys would open no cookie and no stored secret: write back the ones in use.
            self.ring.read().save(&self.dir)?;
            tick.restored = true;
        }
        let mut ring = SealKeyring::load(&self.dir, self.policy.clone())?;
        let kids = |r: &SealKeyring| r.keys().map(|k| (k.kid, k.created_at)).collect::<Vec<_>>();
        tick.reloaded = kids(&ring) != kids(&self.ring.read());
        if self.rotate {
            tick.rotation = ring.rotate_at(now)?;
        }
        if tick.rotation.changed() {
            ring.save(&self.dir)?;
        }
        if tick.rotation.changed() || tick.reloaded {
            self.ring.replace(ring);
        }
        Ok(tick)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tessera::SessionConfig;
    use tessera::keys::files::{
        load_or_generate_seal_keys as load_or_generate, seal_policy as policy,
    };

    use super::*;

    const T0: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    #[test]
    fn the_schedule_keeps_old_values_open_for_the_longest_session_and_saves() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("keys");
        let policy = policy(&SessionConfig::default());
        assert_eq!(
            policy.retention(),
            Duration::from_secs(30 * DAY as u64 + 60)
        );
        let (ring, created) = load_or_generate(&dir, policy.clone(), T0).unwrap();
        assert!(created);
        let first = ring.sealing_kid().unwrap().to_owned();
        let old = ring.seal("n", "p", b"x", T0 + 40 * DAY).unwrap();
        let ring = SealKeys::new(ring);
        let sync = SealSync::new(dir.clone(), ring.clone(), policy.clone());
        let t = sync.tick(T0 + 60).unwrap();
        assert!(!t.rotation.changed() && !t.reloaded && !t.restored, "{t:?}");
        let t = sync.tick(T0 + 30 * DAY).unwrap();
        let second = t.rotation.generated.unwrap();
        assert_eq!(ring.read().sealing_kid(), Some(second.as_str()));
        // Saved: a restart seals with the new key and opens the old value.
        let (loaded, created) = load_or_generate(&dir, policy, T0).unwrap();
        assert!(!created);
        assert_eq!(loaded.sealing_kid(), Some(second.as_str()));
        assert_eq!(loaded.open("n", "p", &old, T0 + 31 * DAY).unwrap(), b"x");
        // Thirty days and a minute after it stopped sealing, the old key goes.
        let t = sync.tick(T0 + 60 * DAY + 60).unwrap();
        assert!(t.rotation.dropped.contains(&first), "{t:?}");
        assert!(ring.read().keys().all(|k| k.kid != first));
    }

    #[test]
    fn without_rotation_the_sealing_keys_only_follow_the_directory() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("keys");
        let policy = policy(&SessionConfig::default());
        let (ring, _) = load_or_generate(&dir, policy.clone(), T0).unwrap();
        let first = ring.sealing_kid().unwrap().to_owned();
        let ring = SealKeys::new(ring);
        let sync = SealSync::new(dir.clone(), ring.clone(), policy.clone()).without_rotation();
        // Long past the schedule: nothing rotates.
        let t = sync.tick(T0 + 90 * DAY).unwrap();
        assert!(!t.rotation.changed(), "{t:?}");
        assert_eq!(ring.read().sealing_kid(), Some(first.as_str()));
        // A change on disk is still followed.
        let other = SealKeyring::generate_at(T0 + 5, policy).unwrap();
        {
            let _lock = Keyring::lock_dir(&dir).unwrap();
            other.save(&dir).unwrap();
        }
        assert!(sync.tick(T0 + 90 * DAY).unwrap().reloaded);
        assert_eq!(ring.read().sealing_kid(), other.sealing_kid());
    }

    #[test]
    fn changes_on_disk_are_picked_up_and_a_removed_directory_is_written_back() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("keys");
        let policy = policy(&SessionConfig::default());
        let (ring, _) = load_or_generate(&dir, policy.clone(), T0).unwrap();
        let first = ring.sealing_kid().unwrap().to_owned();
        let ring = SealKeys::new(ring);
        let sync = SealSync::new(dir.clone(), ring.clone(), policy.clone());
        // Another process (a copy of the directory from another instance) changes the keys.
        let other = SealKeyring::generate_at(T0 + 5, policy.clone()).unwrap();
        {
            let _lock = Keyring::lock_dir(&dir).unwrap();
            other.save(&dir).unwrap();
        }
        let t = sync.tick(T0 + 10).unwrap();
        assert!(t.reloaded, "{t:?}");
        assert_eq!(ring.read().sealing_kid(), other.sealing_kid());
        // Removed: written back from memory, not regenerated.
        std::fs::remove_dir_all(&dir).unwrap();
        let t = sync.tick(T0 + 20).unwrap();
        assert!(t.restored && !t.reloaded, "{t:?}");
        let (back, created) = load_or_generate(&dir, policy, T0 + 30).unwrap();
        assert!(!created);
        assert_eq!(back.sealing_kid(), other.sealing_kid());
        assert_ne!(back.sealing_kid(), Some(first.as_str()));
    }
}
