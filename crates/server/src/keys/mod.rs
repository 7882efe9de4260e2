//! The token keyring in `data_dir/keys`, shared by `tessera serve` (which rotates it on its
//! schedule and re-reads it when it changes) and the `tessera keys …` and `tessera token …`
//! commands.
//!
//! Every change is "lock, load, change, save" under the directory's lock
//! ([`Keyring::lock_dir`]), so the service and a command never overwrite each other's keys.
//! A running service checks the directory every minute ([`KeySync::tick`]): when the
//! manifest changed it loads the keys and swaps them in, so `tessera keys rotate` and
//! `tessera keys generate --overwrite` reach it without a restart.
//!
//! | module | what |
//! |---|---|
//! | `mod.rs` | [`KeyDir`]: the directory's keyring, changed under its lock; [`KeysError`] |
//! | `sync.rs` | [`KeySync`]: a running service's keyring kept in step with the directory |
//! | `tokens.rs` | `tessera token mint` and `inspect`, and how keys and times are printed |

use std::path::{Path, PathBuf};

use tessera_token::{Algorithm, JwsAlgorithm, Keyring, KeyringLock, ManifestVersion, Rotation};

use crate::config::{Config, TokensConfig};

/// Why a key-directory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// There is no keyring in the directory.
    #[error(
        "no keyring in {path}; create one with `tessera keys generate` (or start `tessera serve` once)"
    )]
    Missing {
        /// The key directory.
        path: PathBuf,
    },
    /// `keys generate` found a keyring and was not told to replace it.
    #[error(
        "a keyring already exists in {path}; `tessera keys generate --overwrite` replaces it, \
         and every token its keys signed stops verifying"
    )]
    Exists {
        /// The key directory.
        path: PathBuf,
    },
    /// Loading, changing or saving the keyring failed.
    #[error("key directory {path}")]
    Token {
        /// The key directory.
        path: PathBuf,
        /// The keyring's error.
        #[source]
        source: tessera_token::Error,
    },
    /// The directory now holds keys of an algorithm the running service does not accept
    /// (its allow-list is fixed at start-up).
    #[error(
        "the keys in {path} include {algorithm} keys, which this service accepts only after a restart"
    )]
    AlgorithmNotAccepted {
        /// The key directory.
        path: PathBuf,
        /// The key algorithm.
        algorithm: &'static str,
    },
    /// `keys rotate --promote` found no `next` key.
    #[error(
        "no next key to promote; publish one with `tessera keys rotate --force`, wait until \
         every verifier has fetched the JWKS, then promote it (or let the schedule do it)"
    )]
    NoNextKey,
    /// A `token mint` input is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
    /// A command that works only on the store (`[keys] storage = "store"`).
    #[error(
        "`tessera keys {0}` works on keys in the store: set TESSERA_KEYS=store and \
         TESSERA_MASTER_KEY_FILE"
    )]
    StoreOnly(&'static str),
    /// `keys revoke` found no key of that id.
    #[error("no {kind} key {kid}; `tessera keys list` with the same --kind shows them")]
    UnknownKey {
        /// Which keys.
        kind: &'static str,
        /// The id asked for.
        kid: String,
    },
    /// The rotation lease stayed taken, or another writer changed the keys in the store at
    /// every attempt.
    #[error(
        "the rotation lease stayed taken, or the keys in the store changed at every attempt \
         (nodes rotating?); nothing was written: run it again"
    )]
    Contended,
}

impl KeysError {
    /// Every code [`KeysError::code`] returns for its own variants; [`KeysError::Token`]
    /// returns the keyring error's code ([`tessera_token::Error::code`]).
    pub const CODES: &'static [&'static str] = &[
        "keys-missing",
        "keys-exists",
        "keys-algorithm-not-accepted",
        "keys-no-next-key",
        "keys-invalid-input",
        "keys-random-failed",
        "keys-store-only",
        "keys-unknown-key",
        "keys-store-contended",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "keys-missing",
            Self::Exists { .. } => "keys-exists",
            Self::Token { source, .. } => source.code(),
            Self::AlgorithmNotAccepted { .. } => "keys-algorithm-not-accepted",
            Self::NoNextKey => "keys-no-next-key",
            Self::InvalidInput(_) => "keys-invalid-input",
            Self::Random(_) => "keys-random-failed",
            Self::StoreOnly(_) => "keys-store-only",
            Self::UnknownKey { .. } => "keys-unknown-key",
            Self::Contended => "keys-store-contended",
        }
    }
}

/// What `keys rotate` is asked to do beyond the schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotateOptions {
    /// Publish a new `next` key now (valid from now plus `publish_ahead`) unless one is
    /// pending.
    pub force: bool,
    /// Make the pending `next` key sign now, retiring the active key.
    pub promote: bool,
}

/// The keyring directory of a configuration, with the `[tokens]` settings that govern it.
#[derive(Debug, Clone)]
pub struct KeyDir {
    path: PathBuf,
    tokens: TokensConfig,
}

impl KeyDir {
    /// `data_dir/keys` of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            path: config.data_dir.join("keys"),
            tokens: config.tokens.clone(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `[tokens]` settings.
    pub fn tokens(&self) -> &TokensConfig {
        &self.tokens
    }

    fn err(&self, source: tessera_token::Error) -> KeysError {
        KeysError::Token {
            path: self.path.clone(),
            source,
        }
    }

    fn lock(&self) -> Result<KeyringLock, KeysError> {
        Keyring::lock_dir(&self.path).map_err(|e| self.err(e))
    }

    fn exists(&self) -> Result<bool, KeysError> {
        Keyring::manifest_version(&self.path)
            .map(|v| v.is_some())
            .map_err(|e| self.err(e))
    }

    /// The keyring and the version of its manifest.
    ///
    /// # Errors
    ///
    /// [`KeysError::Missing`] without a manifest; [`KeysError::Token`] if it does not load
    /// (unreadable or insecure files, a tampered manifest).
    pub fn load(&self) -> Result<(Keyring, ManifestVersion), KeysError> {
        if !self.exists()? {
            return Err(KeysError::Missing {
                path: self.path.clone(),
            });
        }
        Keyring::load_versioned(&self.path, self.tokens.rotation_policy()).map_err(|e| self.err(e))
    }

    /// The keyring, generated (one active key of the configured algorithm, valid from
    /// `now`) and saved if the directory has none; the flag says whether it was generated.
    ///
    /// # Errors
    ///
    /// As [`KeyDir::load`], and key generation or saving failures.
    pub fn load_or_generate(
        &self,
        now: i64,
    ) -> Result<(Keyring, ManifestVersion, bool), KeysError> {
        let _lock = self.lock()?;
        if self.exists()? {
            let (ring, version) = self.load()?;
            return Ok((ring, version, false));
        }
        let ring = self.generate_locked(now)?;
        let (_, version) = self.load()?;
        Ok((ring, version, true))
    }

    /// `keys generate`: a new keyring with one active key valid from `now`. An existing
    /// keyring is refused unless `overwrite`; overwriting discards its keys (their private
    /// files are deleted), so every token they signed stops verifying.
    ///
    /// # Errors
    ///
    /// [`KeysError::Exists`]; key generation or saving failures.
    pub fn generate(&self, now: i64, overwrite: bool) -> Result<Keyring, KeysError> {
        let _lock = self.lock()?;
        if !overwrite && self.exists()? {
            return Err(KeysError::Exists {
                path: self.path.clone(),
            });
        }
        self.generate_locked(now)
    }

    fn generate_locked(&self, now: i64) -> Result<Keyring, KeysError> {
        let ring = Keyring::generate_at(
            now,
            self.tokens.rotation_policy(),
            &mut self.tokens.key_source(),
        )
        .map_err(|e| self.err(e))?;
        ring.save(&self.path).map_err(|e| self.err(e))?;
        Ok(ring)
    }

    /// `keys rotate`: the rotation schedule at `now` (drop expired keys, promote a due
    /// `next` key, publish a new one when the active key is due), with
    /// [`RotateOptions::force`] first publishing a `next` key now, and
    /// [`RotateOptions::promote`] then making the pending `next` key sign now. Saved when
    /// anything changed.
    ///
    /// # Errors
    ///
    /// [`KeysError::Missing`]; [`KeysError::NoNextKey`] when asked to promote without a
    /// `next` key (nothing is saved then); generation or saving failures (the directory is
    /// unchanged).
    pub fn rotate(
        &self,
        now: i64,
        options: RotateOptions,
    ) -> Result<(Keyring, Rotation), KeysError> {
        let _lock = self.lock()?;
        let (mut ring, _) = self.load()?;
        let mut keys = self.tokens.key_source();
        let out = rotate_ring(&mut ring, now, options, &mut keys, &self.path)?;
        if out.changed() {
            ring.save(&self.path).map_err(|e| self.err(e))?;
        }
        Ok((ring, out))
    }

    /// The codec configuration for `ring`: the configured one, accepting also the
    /// algorithms of the keys in `ring`.
    pub fn codec(&self, ring: &Keyring) -> tessera_token::Config {
        self.tokens.codec(ring.keys().map(|k| k.algorithm))
    }

    /// `keys jwks`: the JWKS exactly as `GET /.well-known/jwks.json` serves it for these
    /// keys and this configuration.
    ///
    /// # Errors
    ///
    /// As [`KeyDir::load`].
    pub fn jwks(&self) -> Result<String, KeysError> {
        let (ring, _) = self.load()?;
        Ok(ring.jwks(&self.codec(&ring)))
    }
}

/// `keys rotate` on `ring` in memory (in a directory or the store, `place` for errors):
/// [`RotateOptions::force`] first publishes a `next` key now, then the schedule runs at
/// `now`, then [`RotateOptions::promote`] makes the pending `next` key sign now.
///
/// # Errors
///
/// [`KeysError::NoNextKey`] when asked to promote without a `next` key; key generation
/// failures ([`KeysError::Token`]). The caller saves `ring` only on success.
pub fn rotate_ring(
    ring: &mut Keyring,
    now: i64,
    options: RotateOptions,
    keys: &mut dyn tessera_token::KeySource,
    place: &Path,
) -> Result<Rotation, KeysError> {
    let err = |source| KeysError::Token {
        path: place.to_owned(),
        source,
    };
    let mut out = Rotation::default();
    if options.force {
        merge(&mut out, ring.publish_next_at(now, keys).map_err(err)?);
    }
    merge(&mut out, ring.rotate_at(now, keys).map_err(err)?);
    // A due next key the schedule just promoted is the promotion asked for: promoting
    // yet another one would retire a key that has not signed anything.
    if options.promote && out.promoted.is_none() {
        let promoted = ring.promote_next_at(now);
        if promoted.promoted.is_none() {
            return Err(KeysError::NoNextKey);
        }
        merge(&mut out, promoted);
    }
    Ok(out)
}

fn merge(into: &mut Rotation, r: Rotation) {
    into.promoted = r.promoted.or(into.promoted.take());
    into.revoked = r.revoked.or(into.revoked.take());
    into.generated = r.generated.or(into.generated.take());
    into.retired.extend(r.retired);
    into.dropped.extend(r.dropped);
}

/// Whether `codec` accepts tokens of keys of `alg`.
pub(crate) fn accepts(codec: &tessera_token::Config, alg: Algorithm) -> bool {
    match alg {
        Algorithm::Ed25519 => {
            codec.allows(JwsAlgorithm::EdDsa) || codec.allows(JwsAlgorithm::Ed25519)
        }
        Algorithm::Es256 => codec.allows(JwsAlgorithm::Es256),
        Algorithm::Rs256 => codec.allows(JwsAlgorithm::Rs256),
        _ => false,
    }
}

mod sync;
mod tokens;

pub use self::sync::{KeySync, Tick};
pub use self::tokens::{Inspection, inspect, key_json, mint, utc};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_780_272_000), "2026-06-01T00:00:00Z");
        assert_eq!(utc(951_825_599), "2000-02-29T11:59:59Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(utc(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn promote_after_the_schedule_promoted_promotes_nothing_more() {
        use tessera_token::{KeyState, RotationPolicy, SigningKey};
        let data = tempfile::tempdir().unwrap();
        let toml = format!("data_dir = {:?}", data.path().display().to_string());
        let dir = KeyDir::new(&Config::from_toml(&toml, |_| None).unwrap());
        let t0 = 1_800_000_000;
        let keys = [1u8, 2, 3].map(|b| SigningKey::ed25519_from_seed(&[b; 32]));
        let kids = keys.each_ref().map(|k| k.kid().clone());
        let [a, b, c] = keys;
        Keyring::builder(RotationPolicy::default())
            .key(a, KeyState::Active, t0 - 86_400)
            .key(b, KeyState::Next, t0 - 10)
            .key(c, KeyState::Next, t0 + 20 * 86_400)
            .build()
            .unwrap()
            .save(dir.path())
            .unwrap();
        let options = RotateOptions {
            force: false,
            promote: true,
        };
        let (ring, r) = dir.rotate(t0, options).unwrap();
        assert_eq!(r.promoted.as_ref(), Some(&kids[1]));
        assert_eq!(ring.signing_key_at(t0).unwrap().kid(), &kids[1]);
        let later = ring.keys().find(|k| k.kid == kids[2]).unwrap();
        assert_eq!(later.state, KeyState::Next);
    }

    #[test]
    fn error_codes_are_listed_and_unique() {
        let all = [
            KeysError::Missing {
                path: PathBuf::new(),
            },
            KeysError::Exists {
                path: PathBuf::new(),
            },
            KeysError::AlgorithmNotAccepted {
                path: PathBuf::new(),
                algorithm: "",
            },
            KeysError::NoNextKey,
            KeysError::InvalidInput(String::new()),
            KeysError::Random(getrandom::Error::UNSUPPORTED),
            KeysError::StoreOnly("reseal"),
            KeysError::UnknownKey {
                kind: "CSRF",
                kid: String::new(),
            },
            KeysError::Contended,
        ];
        crate::codes::check(KeysError::CODES, all.iter().map(KeysError::code));
    }
}
