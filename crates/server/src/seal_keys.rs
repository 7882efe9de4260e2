//! The sealing keys (anonymous cookies, secrets) in `data_dir/keys`, beside the token keys
//! and under the same directory lock ([`Keyring::lock_dir`]): loaded or generated at start-up
//! by the engine's key files ([`tessera::keys::files`], the code `Engine::builder` uses too),
//! and kept in step by the key schedule task ([`SealSync::tick`], every minute): lock, load
//! from disk, rotate, save, swap in. So a copy of the directory changed by another process
//! reaches the running service, and a removed directory is written back rather than
//! replaced by keys that open nothing.
//!
//! The CSRF keys (`data_dir/keys/csrf.json`) follow the same schedule, in the same tick and
//! under the same lock ([`SealSync::with_csrf`]); the sid key (`data_dir/csrf.key`) never
//! changes.

use std::path::PathBuf;

use tessera::csrf::{CsrfKey, CsrfPolicy, CsrfRotation};
use tessera::keys::files::{self, CSRF_KEYS_FILE};
use tessera::keys::{CsrfKeys, SealKeys};
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
    /// What the schedule changed in the CSRF keys.
    pub(crate) csrf: CsrfRotation,
    /// Whether the CSRF keys on disk differed from those in use and were swapped in.
    pub(crate) csrf_reloaded: bool,
}

/// The CSRF keys a [`SealSync`] keeps in step with `keys/csrf.json`.
#[derive(Debug)]
struct CsrfDir {
    ring: CsrfKeys,
    policy: CsrfPolicy,
    /// `csrf.key`: the one CSRF key of a data directory without `csrf.json` (of before).
    legacy: CsrfKey,
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
    csrf: Option<CsrfDir>,
}

impl SealSync {
    pub(crate) fn new(dir: PathBuf, ring: SealKeys, policy: SealPolicy) -> Self {
        Self {
            dir,
            ring,
            policy,
            rotate: true,
            csrf: None,
        }
    }

    /// Also keeps the CSRF keys `ring` in step with the directory, under `policy`; `legacy`
    /// is `csrf.key`, the one CSRF key while there is no `csrf.json`.
    pub(crate) fn with_csrf(mut self, ring: CsrfKeys, policy: CsrfPolicy, legacy: CsrfKey) -> Self {
        self.csrf = Some(CsrfDir {
            ring,
            policy,
            legacy,
        });
        self
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
        if let Some(c) = &self.csrf {
            self.csrf_tick(c, now, &mut tick)?;
        }
        Ok(tick)
    }

    /// The CSRF keys' part of a tick, under the directory's lock.
    fn csrf_tick(&self, c: &CsrfDir, now: i64, tick: &mut SealTick) -> tessera_token::Result<()> {
        let fail = |e: files::KeyFileError| tessera_token::Error::Io {
            path: self.dir.join(CSRF_KEYS_FILE),
            source: std::io::Error::other(e),
        };
        let kids = |r: &tessera::csrf::CsrfKeyring| {
            r.keys().map(|k| (k.kid, k.created_at)).collect::<Vec<_>>()
        };
        let in_use = kids(&c.ring.read());
        let legacy_only =
            in_use.len() == 1 && in_use.first().is_some_and(|k| k.0 == c.legacy.kid());
        if !self.dir.join(CSRF_KEYS_FILE).exists() && !legacy_only {
            // Written back: without it the directory would read as csrf.key alone, and the
            // tokens of the keys in use would stop verifying.
            files::save_csrf_keys(&self.dir, &c.ring.read()).map_err(fail)?;
            tick.restored = true;
        }
        let mut ring =
            files::load_csrf_keys(&self.dir, c.policy.clone(), c.legacy.clone()).map_err(fail)?;
        tick.csrf_reloaded = kids(&ring) != in_use;
        if self.rotate {
            tick.csrf = ring
                .rotate_at(now)
                .map_err(|_| tessera_token::Error::KeyGeneration {
                    reason: "the OS random source failed",
                })?;
        }
        if tick.csrf.changed() {
            files::save_csrf_keys(&self.dir, &ring).map_err(fail)?;
        }
        if tick.csrf.changed() || tick.csrf_reloaded {
            c.ring.replace(ring);
        }
        Ok(())
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

#[cfg(test)]
mod csrf_tests {
    use std::time::Duration;

    use tessera::SessionConfig;
    use tessera::csrf::CsrfKeyring;
    use tessera::keys::files::{self, load_or_generate_seal_keys, seal_policy};
    use tessera_core::{StoreKey, Timestamp};

    use super::*;

    const T0: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    /// A data directory of before the CSRF keys rotated (`csrf.key`, no `csrf.json`) and its
    /// sync, with or without the schedule.
    fn legacy_dir(rotate: bool) -> (tempfile::TempDir, SealSync, CsrfKeys, CsrfKey) {
        let data = tempfile::tempdir().unwrap();
        let (legacy, _) =
            files::load_or_create_csrf_key(&data.path().join(files::CSRF_KEY_FILE)).unwrap();
        let dir = data.path().join("keys");
        let (seal, _) =
            load_or_generate_seal_keys(&dir, seal_policy(&SessionConfig::default()), T0).unwrap();
        let policy = files::csrf_policy(&SessionConfig::default(), Duration::from_secs(180));
        let (_, ring, created) =
            files::load_or_create_csrf_keys(data.path(), policy.clone(), T0).unwrap();
        assert!(!created);
        let ring = CsrfKeys::new(ring);
        let sync = SealSync::new(
            dir,
            SealKeys::new(seal),
            seal_policy(&SessionConfig::default()),
        )
        .with_csrf(ring.clone(), policy, legacy.clone());
        let sync = if rotate {
            sync
        } else {
            sync.without_rotation()
        };
        (data, sync, ring, legacy)
    }

    fn key() -> StoreKey {
        StoreKey::from_ref(&"A".repeat(43)).unwrap()
    }

    #[test]
    fn the_csrf_keys_rotate_ahead_saved_and_old_tokens_stay_valid() {
        let (data, sync, ring, legacy) = legacy_dir(true);
        let old = legacy.issue("p", &key(), Timestamp::from_unix_secs(T0));
        // The legacy key is as old as can be: the first tick adds a key, three minutes ahead.
        let t = sync.tick(T0 + 10).unwrap();
        let new = t.csrf.generated.unwrap();
        assert_eq!(ring.read().issuing_kid(T0 + 10), Some(legacy.kid()));
        assert_eq!(ring.read().issuing_kid(T0 + 190), Some(new.clone()));
        let age = Duration::from_secs(12 * 3600);
        assert!(
            ring.read()
                .verify(&old, "p", &key(), age, Timestamp::from_unix_secs(T0 + 3600))
        );
        // Saved: a restart reads both keys.
        let policy = files::csrf_policy(&SessionConfig::default(), Duration::from_secs(180));
        let (_, loaded, _) = files::load_or_create_csrf_keys(data.path(), policy, T0).unwrap();
        let kids = |r: &CsrfKeyring| r.keys().map(|k| k.kid).collect::<Vec<_>>();
        assert_eq!(kids(&loaded), kids(&ring.read()));
        // Nothing more until a week on; the legacy key goes 12 h and a minute after it
        // stopped issuing.
        let t = sync.tick(T0 + DAY).unwrap();
        assert_eq!(t.csrf.dropped, vec![legacy.kid()], "{t:?}");
        assert!(t.csrf.generated.is_none());
        assert_eq!(kids(&ring.read()), vec![new]);
    }

    #[test]
    fn without_rotation_the_csrf_keys_only_follow_the_directory() {
        let (data, sync, ring, legacy) = legacy_dir(false);
        let t = sync.tick(T0 + 90 * DAY).unwrap();
        assert!(!t.csrf.changed() && !t.csrf_reloaded, "{t:?}");
        assert_eq!(ring.read().keys().count(), 1);
        // A rotation written by another process (`tessera keys rotate --kind csrf`) reaches it.
        let mut other = CsrfKeyring::new(legacy, 0, CsrfPolicy::default());
        other.publish_next_at(T0).unwrap();
        {
            let _lock = Keyring::lock_dir(&data.path().join("keys")).unwrap();
            files::save_csrf_keys(&data.path().join("keys"), &other).unwrap();
        }
        assert!(sync.tick(T0 + 90 * DAY).unwrap().csrf_reloaded);
        assert_eq!(ring.read().keys().count(), 2);
    }
}
