//! The token keyring in `data_dir/keys`, shared by `tessera serve` (which rotates it on its
//! schedule and re-reads it when it changes) and the `tessera keys …` and `tessera token …`
//! commands.
//!
//! Every change is "lock, load, change, save" under the directory's lock
//! ([`Keyring::lock_dir`]), so the service and a command never overwrite each other's keys.
//! A running service checks the directory every minute ([`KeySync::tick`]): when the
//! manifest changed it loads the keys and swaps them in, so `tessera keys rotate` and
//! `tessera keys generate --overwrite` reach it without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_token::{
    Algorithm, Claims, JwsAlgorithm, KeyInfo, Keyring, KeyringLock, ManifestVersion, Rotation,
    Verified,
};

use tessera::keys::TokenKeys;

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
    /// The keys live in the store (`[keys] storage = "store"`), which these commands do not
    /// manage yet.
    #[error(
        "the keys are in the store ([keys] storage = \"store\"): `tessera keys` and `tessera token` work on key \
         directories only for now; a running fleet rotates its stored keys on schedule (docs/fleet.md)"
    )]
    InStore,
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
        "keys-in-store",
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
            Self::InStore => "keys-in-store",
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
        let mut out = Rotation::default();
        if options.force {
            merge(
                &mut out,
                ring.publish_next_at(now, &mut keys)
                    .map_err(|e| self.err(e))?,
            );
        }
        merge(
            &mut out,
            ring.rotate_at(now, &mut keys).map_err(|e| self.err(e))?,
        );
        // A due next key the schedule just promoted is the promotion asked for: promoting
        // yet another one would retire a key that has not signed anything.
        if options.promote && out.promoted.is_none() {
            let promoted = ring.promote_next_at(now);
            if promoted.promoted.is_none() {
                return Err(KeysError::NoNextKey);
            }
            merge(&mut out, promoted);
        }
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

// === impl KeySync ===

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

// === token mint and inspect ===

/// A UTC time as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339), for people reading `keys list` and
/// `token inspect`.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What `keys list` shows of one key.
pub fn key_json(k: &KeyInfo, signing: bool) -> Value {
    serde_json::json!({
        "kid": k.kid.as_str(),
        "algorithm": k.algorithm.name(),
        "state": k.state.name(),
        "valid_from": k.valid_from,
        "valid_from_utc": utc(k.valid_from),
        "retired_at": k.retired_at,
        "revoked_at": k.revoked_at,
        "has_private_key": k.has_private_key,
        "signing": signing,
    })
}

fn random_id() -> Result<String, KeysError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(KeysError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// `token mint`: a token for `sub` with the default claims of `[tokens]` and `claims` on
/// top, signed at `now` with the active key, valid for `ttl` (default and maximum
/// `tokens.exp`; the soft expiry is `tokens.sxp` or `ttl` if shorter), bound to a random
/// `sid` like `POST /v1/tokens`.
///
/// # Errors
///
/// [`KeysError::InvalidInput`] for a bad `sub` or claims (the rules of the API's mint:
/// [`tessera_token::validate_custom_claims`]) or a `ttl` out of range; [`KeysError::Token`] if nothing can sign.
pub fn mint(
    dir: &KeyDir,
    ring: &Keyring,
    sub: &str,
    claims: BTreeMap<String, Value>,
    ttl: Option<Duration>,
    now: i64,
) -> Result<String, KeysError> {
    let t = dir.tokens();
    // The rules of `POST /v1/tokens`, from the one place they live.
    tessera_token::validate_subject(sub)
        .and_then(|()| tessera_token::validate_custom_claims(&claims))
        .map_err(|e| KeysError::InvalidInput(e.to_string()))?;
    let ttl = ttl.unwrap_or(t.exp);
    if ttl < Duration::from_secs(1) || ttl > t.exp {
        return Err(KeysError::InvalidInput(format!(
            "--ttl must be between 1s and tokens.exp ({}s)",
            t.exp.as_secs()
        )));
    }
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let exp = now.saturating_add(secs(ttl));
    let sxp = now.saturating_add(secs(t.sxp)).min(exp);
    let mut c = Claims::new(
        t.issuer.clone(),
        sub,
        random_id()?,
        random_id()?,
        now,
        sxp,
        exp,
    );
    c.custom.extend(t.default_claims.clone());
    c.custom.extend(claims);
    ring.sign_at(&dir.codec(ring), &c, now)
        .map_err(|e| dir.err(e))
}

/// What `token inspect` found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// The header, decoded for display. **Unverified** unless `result` is `Ok`.
    pub header: Option<Value>,
    /// The claims, decoded for display. **Unverified** unless `result` is `Ok`.
    pub claims: Option<Value>,
    /// The verification at `now` with the keyring (revocations are not checked: they live
    /// in the store).
    pub result: Result<Verified, tessera_token::Error>,
}

/// `token inspect`: verifies `token` at `now` and decodes its header and claims for
/// display whatever the outcome.
///
/// # Security
///
/// The decoding is for an operator's eyes only and never feeds a decision: every
/// decision uses `result`, from the strict codec.
pub fn inspect(dir: &KeyDir, ring: &Keyring, token: &str, now: i64) -> Inspection {
    let result = ring.verify_at(&dir.codec(ring), token, now, &tessera_token::NoRevocations);
    let mut parts = token.split('.');
    let mut decode = || {
        parts
            .next()
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let header = decode();
    let claims = decode();
    Inspection {
        header,
        claims,
        result,
    }
}

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
            KeysError::InStore,
        ];
        crate::codes::check(KeysError::CODES, all.iter().map(KeysError::code));
    }
}
