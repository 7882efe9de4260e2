//! The keys a service starts with: from the key directory or the store (a fleet), PEM keys for
//! `/v1/verify`, and the token settings they sign with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tessera::csrf::{CsrfKeySet, CsrfPolicy};
use tessera::keys::files::{self};
use tessera::keys::stored::{KeyVault, MasterKey, StoredKeys, StoredPolicies};
use tessera::keys::{CsrfKeys, SealKeys, TokenKeys};
use tessera::token::TokenSettings;
use tessera_core::SessionStore;

use super::*;
use crate::config::Config;
use crate::keys::{KeyDir, KeySync};
use crate::seal_keys::SealSync;
use crate::store_keys::{StoreKeySync, StoreRotation};

/// `[verify] public_keys` for `GET /v1/verify`, loaded once now (a failure is a note; the
/// refresh retries while serving).
pub(super) async fn pem_keys(
    config: &Config,
    notes: &mut Vec<String>,
) -> Result<Option<crate::state::VerifyPem>, StartupError> {
    use tessera_token::Algorithm;
    let v = &config.verify;
    if v.public_keys.is_empty() {
        return Ok(None);
    }
    let client =
        crate::verifier::http_client().map_err(|e| StartupError::Verifier(e.to_string()))?;
    let keys = Arc::new(crate::verifier::RemoteKeys::new(
        None,
        v.public_keys.clone(),
        client,
        v.unknown_kid_cooldown,
    ));
    let shown: Vec<String> = v
        .public_keys
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    match keys.refresh().await {
        Ok(()) => notes.push(format!(
            "GET /v1/verify also accepts the public keys in {}",
            shown.join(", ")
        )),
        Err(e) => notes.push(format!(
            "WARNING: cannot load the public keys in {} yet ({e}); retrying every {:?}",
            shown.join(", "),
            v.jwks_refresh
        )),
    }
    Ok(Some(crate::state::VerifyPem {
        keys,
        codec: config
            .tokens
            .codec([Algorithm::Ed25519, Algorithm::Es256, Algorithm::Rs256]),
        cookie_name: config
            .tokens
            .cookie_name
            .clone()
            .unwrap_or_else(|| tessera::token::default_cookie_name(&config.cookie)),
        subject: config.tokens.subject.clone(),
        cache: v.cache,
    }))
}

/// The keys a node starts with, and what keeps them in step while it serves.
pub(super) struct Keys {
    pub(super) csrf: CsrfKeySet,
    pub(super) tokens: Option<TokenSettings>,
    pub(super) seal: SealKeys,
    pub(super) dir_sync: Option<KeySync>,
    pub(super) seal_sync: Option<SealSync>,
    pub(super) store_sync: Option<(Arc<StoreKeySync>, Duration)>,
}

/// How far ahead of its use a new CSRF key is in the keys of every node reading the key
/// directory (it checks every [`super::tasks::KEY_SYNC_INTERVAL`]): two checks and a minute
/// of clock skew.
pub(crate) fn dir_csrf_ahead() -> Duration {
    tasks::KEY_SYNC_INTERVAL * 2 + Duration::from_secs(60)
}

/// The same for nodes reading the store every `[keys] refresh`.
pub(crate) fn store_csrf_ahead(config: &Config) -> Duration {
    config.keys.refresh * 2 + Duration::from_secs(60)
}

/// The policies of the keys in the store under `config`.
pub(crate) fn stored_policies(config: &Config) -> StoredPolicies {
    StoredPolicies {
        tokens: config.tokens.rotation_policy(),
        seal: files::seal_policy(&config.session),
        csrf: files::csrf_policy(&config.session, store_csrf_ahead(config)),
    }
}

/// `[keys] storage = "dir"`: the sid key in `data_dir/csrf.key`, the token, sealing and CSRF
/// keys in `data_dir/keys` (each generated on a first run; a data directory of before the
/// CSRF keys rotated has `csrf.key` as its one CSRF key until the schedule adds another).
pub(super) fn dir_keys(
    config: &Config,
    now: i64,
    notes: &mut Vec<String>,
) -> Result<Keys, StartupError> {
    let csrf_path = config.data_dir.join(files::CSRF_KEY_FILE);
    let csrf_policy: CsrfPolicy = files::csrf_policy(&config.session, dir_csrf_ahead());
    let (sid, csrf_ring, created) =
        files::load_or_create_csrf_keys(&config.data_dir, csrf_policy.clone(), now)?;
    if created {
        notes.push(format!(
            "generated the sid key in {} and the CSRF keys in {}",
            csrf_path.display(),
            config
                .data_dir
                .join(files::KEY_DIR)
                .join(files::CSRF_KEYS_FILE)
                .display()
        ));
    }
    let (legacy, _) = files::load_or_create_csrf_key(&csrf_path)?;
    let csrf_keys = CsrfKeys::new(csrf_ring);
    let (tokens, dir_sync) = if config.tokens.enabled {
        let dir = KeyDir::new(config);
        let (ring, version, created) = dir.load_or_generate(now).map_err(StartupError::Keys)?;
        let verb = if created { "generated" } else { "using" };
        notes.push(format!(
            "{verb} the token signing keys in {}",
            dir.path().display()
        ));
        let codec = dir.codec(&ring);
        let ring = TokenKeys::new(ring);
        let settings = token_settings(config, ring.clone(), codec.clone(), notes)?;
        (
            Some(settings),
            Some(KeySync::new(dir, ring, codec, version)),
        )
    } else {
        notes.push("session tokens are disabled ([tokens] enabled = false)".to_owned());
        (None, None)
    };
    let dir = config.data_dir.join(files::KEY_DIR);
    let policy = files::seal_policy(&config.session);
    let (seal, created) = files::load_or_generate_seal_keys(&dir, policy.clone(), now)?;
    let verb = if created { "generated" } else { "using" };
    notes.push(format!(
        "{verb} the sealing keys (anonymous cookies, secrets) in {}",
        dir.display()
    ));
    let seal = SealKeys::new(seal);
    let sync =
        SealSync::new(dir, seal.clone(), policy).with_csrf(csrf_keys.clone(), csrf_policy, legacy);
    Ok(Keys {
        csrf: CsrfKeySet::new(sid, csrf_keys),
        tokens,
        seal,
        dir_sync,
        seal_sync: Some(if config.tokens.rotate {
            sync
        } else {
            // `[tokens] rotate = false` stops the sealing and CSRF keys' schedule too.
            sync.without_rotation()
        }),
        store_sync: None,
    })
}

/// The fleet's keys in `store` under the master key of `[keys] master_key_file` (and, if
/// set, also opening records sealed under `[keys] other_master_key_file`); and the master
/// key file's path.
///
/// # Errors
///
/// No master key file configured, an unreadable or insecure one, a store without blobs.
pub(crate) fn vault(
    config: &Config,
    store: Arc<dyn SessionStore>,
) -> Result<(KeyVault, &Path), StartupError> {
    let path = config
        .keys
        .master_key_file
        .as_deref()
        .ok_or_else(|| StartupError::BadKeyFile {
            path: PathBuf::new(),
            message: "[keys] storage = \"store\" needs TESSERA_MASTER_KEY_FILE".to_owned(),
        })?;
    let master = MasterKey::load(path)?;
    let mut vault = KeyVault::new(store, master).map_err(StartupError::StoredKeys)?;
    if let Some(other) = &config.keys.other_master_key_file {
        vault = vault.with_other_master(MasterKey::load(other)?);
    }
    Ok((vault, path))
}

/// `[keys] storage = "store"`: every key in the fleet's sealed manifest in `store`, under
/// the master key of `[keys] master_key_file`; created there if the fleet has none yet.
pub(super) async fn store_keys(
    config: &Config,
    store: Arc<dyn SessionStore>,
    now: i64,
    notes: &mut Vec<String>,
) -> Result<Keys, StartupError> {
    let (vault, path) = vault(config, store)?;
    let vault = Arc::new(vault);
    let policies = stored_policies(config);
    let (stored, created) = vault
        .load_or_create(&policies, now, &mut config.tokens.key_source())
        .await
        .map_err(StartupError::StoredKeys)?;
    notes.push(format!(
        "{} the keys in the store (version {}, sealed under master key {} of {})",
        if created { "generated" } else { "using" },
        stored.version,
        vault.master_id(),
        path.display()
    ));
    let StoredKeys {
        tokens: ring,
        seal,
        sid,
        csrf,
        version,
        ..
    } = stored;
    let seal = SealKeys::new(seal);
    let csrf = CsrfKeySet::new(sid, CsrfKeys::new(csrf));
    let (tokens, sync_tokens) = if config.tokens.enabled {
        let codec = config.tokens.codec(ring.keys().map(|k| k.algorithm));
        let ring = TokenKeys::new(ring);
        let settings = token_settings(config, ring.clone(), codec.clone(), notes)?;
        (Some(settings), Some((ring, codec)))
    } else {
        notes.push("session tokens are disabled ([tokens] enabled = false)".to_owned());
        (None, None)
    };
    // `[tokens] rotate = false` stops every scheduled rotation, the sealing and CSRF keys'
    // too.
    let rotation = if config.tokens.rotate {
        Some(StoreRotation {
            holder: random_holder().map_err(StartupError::Random)?,
            // Renewed at every tick that rotates; a dead holder's lapses after three
            // refreshes (at least 30 s, for RSA key generation).
            lease: (config.keys.refresh * 3).max(Duration::from_secs(30)),
            key_source: config.tokens.key_source(),
        })
    } else {
        None
    };
    let sync = StoreKeySync::new(
        vault,
        policies,
        sync_tokens,
        seal.clone(),
        &csrf,
        version,
        rotation,
    )
    .map_err(StartupError::Random)?;
    notes.push(format!(
        "the keys in the store are read again every {}s",
        config.keys.refresh.as_secs()
    ));
    Ok(Keys {
        csrf,
        tokens,
        seal,
        dir_sync: None,
        seal_sync: None,
        store_sync: Some((Arc::new(sync), config.keys.refresh)),
    })
}

/// A node's name in the rotation lease: random, so two processes never share one.
pub(crate) fn random_holder() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b)?;
    Ok(tessera_core::to_hex(&b))
}

/// The token settings of `config` for the keyring `ring`, whose tokens use `codec`.
pub(super) fn token_settings(
    config: &Config,
    ring: TokenKeys,
    codec: tessera_token::Config,
    notes: &mut Vec<String>,
) -> Result<TokenSettings, StartupError> {
    let t = &config.tokens;
    if !t.rotate {
        notes.push(
            "scheduled key rotation is off ([tokens] rotate = false): rotate with \
             `tessera keys rotate`; this service picks changes up within a minute"
                .to_owned(),
        );
    }
    if let Some(p) = t.profile {
        notes.push(format!("token profile {}", p.name()));
    }
    let mut settings = TokenSettings::new(codec, ring, &config.cookie)
        .map_err(StartupError::Engine)?
        .with_subject(t.subject.clone())
        .with_default_claims(t.default_claims.clone())
        .with_lifetime(t.exp)
        .with_soft_lifetime(t.sxp)
        .with_cache(Arc::new(tessera_token::VerifiedCache::new(
            config.verify.cache,
        )));
    if let Some(name) = &t.cookie_name {
        settings = settings
            .with_cookie_name(name.clone(), &config.cookie)
            .map_err(StartupError::Engine)?;
    }
    Ok(settings)
}
