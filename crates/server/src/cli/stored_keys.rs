//! `tessera keys …` with `[keys] storage = "store"`: the same commands as on a directory, on
//! the fleet's sealed key record. `list` and `jwks` read it; `generate`, `rotate` and
//! `revoke` take the rotation lease the nodes take (compare-and-set, so a command never
//! races a node's schedule), read the record, change a copy and write it by compare-and-set
//! at the version read (read again on a conflict); every node uses the result within
//! `[keys] refresh`. `import` copies a key directory in, once; `reseal` moves the record to a
//! new master key.

use std::process::ExitCode;
use std::time::Duration;

use tessera::keys::files;
use tessera::keys::stored::{KeyVault, MasterKey, StoredKeys, StoredKeysError, StoredPolicies};
use tessera_core::{Handle, SessionKind};
use tessera_token::seal::SealKeyring;

use super::key_changes::{self, Changed, KeySet, Policies};
use super::{Error, KeyKind, KeysCommand, Result, now};
use crate::config::Config;
use crate::keys::{KeyDir, KeysError, RotateOptions};
use crate::startup::StartupError;

fn stored(e: StoredKeysError) -> Error {
    StartupError::StoredKeys(e).into()
}

/// Where errors about the stored keys say they are.
const PLACE: &str = "store:tessera/keys";

/// Runs a `keys` command on the store.
///
/// # Errors
///
/// The store's, the master key's and the key directory's errors.
#[allow(clippy::print_stdout)]
pub(super) fn run(config: &Config, command: &KeysCommand) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let vault = open_vault(config).await?;
        let policies = crate::startup::stored_policies(config);
        let place = std::path::Path::new(PLACE);
        match command {
            KeysCommand::Import => import(config, &vault, &policies).await,
            KeysCommand::List { json, kind } => {
                let mut keys = vault
                    .load(&policies)
                    .await
                    .map_err(stored)?
                    .ok_or_else(none)?;
                let set = KeySet {
                    tokens: Some(&mut keys.tokens),
                    seal: &mut keys.seal,
                    csrf: &mut keys.csrf,
                };
                key_changes::list(*kind, &set, now(), *json)?;
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Jwks => {
                let keys = vault
                    .load(&policies)
                    .await
                    .map_err(stored)?
                    .ok_or_else(none)?;
                let codec = config.tokens.codec(keys.tokens.keys().map(|k| k.algorithm));
                super::keys::print_jwks(&keys.tokens.jwks(&codec))?;
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Generate { overwrite, kind } => {
                if !overwrite {
                    return Err(KeysError::InvalidInput(format!(
                        "the store holds the fleet's {} keys already: `--overwrite` replaces \
                         them (what they made stops verifying on every node)",
                        kind.name()
                    ))
                    .into());
                }
                edit(config, &vault, &policies, |set, p, now| {
                    key_changes::generate(*kind, set, p, now, place)
                })
                .await
            }
            KeysCommand::Rotate {
                force,
                promote,
                kind,
            } => {
                if *promote && *kind == KeyKind::Signing {
                    return publish_then_promote(config, &vault, &policies, *force).await;
                }
                let options = RotateOptions {
                    force: *force,
                    promote: *promote,
                };
                edit(config, &vault, &policies, |set, p, now| {
                    key_changes::rotate(*kind, options, set, p, now, place)
                })
                .await
            }
            KeysCommand::Revoke { kid, kind } => {
                edit(config, &vault, &policies, |set, p, now| {
                    key_changes::revoke(*kind, kid, set, p, now)
                })
                .await
            }
            KeysCommand::Reseal { to } => reseal(config, &vault, to).await,
            KeysCommand::MasterKey { .. } => Ok(ExitCode::SUCCESS),
        }
    })
}

/// A current-thread runtime for one command.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

/// The fleet's key record on the configured session store.
async fn open_vault(config: &Config) -> Result<KeyVault> {
    let store = crate::startup::open_store(
        &config.store,
        "session",
        config.store_timeout,
        "session",
        &mut Vec::new(),
    )
    .await?;
    let (vault, _) = crate::startup::vault(config, store)?;
    Ok(vault)
}

/// The fleet's token signing keys, read from the store (`tessera token mint | inspect`).
///
/// # Errors
///
/// The store's and the master key's errors; a store without keys.
pub(super) fn signing_keys(config: &Config) -> Result<tessera_token::Keyring> {
    runtime()?.block_on(async {
        let vault = open_vault(config).await?;
        let keys = vault
            .load(&crate::startup::stored_policies(config))
            .await
            .map_err(stored)?
            .ok_or_else(none)?;
        Ok(keys.tokens)
    })
}

/// How long the lease of a command lasts: as long as a node's.
fn lease_ttl(config: &Config) -> Duration {
    (config.keys.refresh * 3).max(Duration::from_secs(30))
}

/// Takes the rotation lease for `holder`, waiting while a node holds it (a node's lease
/// lapses within [`lease_ttl`]).
async fn take_lease(config: &Config, vault: &KeyVault, holder: &str) -> Result<()> {
    let ttl = lease_ttl(config);
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(500);
    loop {
        if vault.take_lease(holder, now(), ttl).await.map_err(stored)? {
            return Ok(());
        }
        if waited.is_zero() {
            eprintln!("waiting for the rotation lease (a node is rotating the keys)");
        }
        if waited > ttl + Duration::from_secs(5) {
            return Err(KeysError::Contended.into());
        }
        tokio::time::sleep(step).await;
        waited += step;
    }
}

/// Under the rotation lease: reads the keys, runs `f` on a copy at "now", and writes the
/// copy by compare-and-set at the version read when `f` changed it; on a conflict (a node
/// whose lease had lapsed, another command) reads again and runs `f` again.
#[allow(clippy::print_stdout)]
async fn edit(
    config: &Config,
    vault: &KeyVault,
    policies: &StoredPolicies,
    mut f: impl FnMut(&mut KeySet<'_>, &mut Policies<'_>, i64) -> Result<Changed>,
) -> Result<ExitCode> {
    let holder = format!(
        "tessera-keys-{}",
        crate::startup::random_holder().map_err(KeysError::Random)?
    );
    take_lease(config, vault, &holder).await?;
    let done = edit_leased(config, vault, policies, &mut f).await;
    // Given back either way, so the nodes' schedule does not wait for it to lapse.
    let released = vault.release_lease(&holder).await.map_err(stored);
    let (out, version) = done?;
    released?;
    out.print();
    match version {
        Some(v) => println!(
            "written to the store as version {v}; every node uses it within [keys] refresh ({}s)",
            config.keys.refresh.as_secs()
        ),
        None => println!("the store is unchanged"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `keys rotate --promote` of the signing keys on the store, in two writes under one lease:
/// the new key is published, and promoted only once every node has read it (two
/// `[keys] refresh` periods and a second later). Promoted in one write, a node that had read
/// it would sign with a key that a node still on the older record does not hold, and that
/// node would refuse the token (`unknown_kid`) until its next refresh.
#[allow(clippy::print_stdout)]
async fn publish_then_promote(
    config: &Config,
    vault: &KeyVault,
    policies: &StoredPolicies,
    force: bool,
) -> Result<ExitCode> {
    let place = std::path::Path::new(PLACE);
    let holder = format!(
        "tessera-keys-{}",
        crate::startup::random_holder().map_err(KeysError::Random)?
    );
    take_lease(config, vault, &holder).await?;
    let done = async {
        let publish = RotateOptions {
            force,
            promote: false,
        };
        let (published, version) = edit_leased(config, vault, policies, &mut |set, p, now| {
            key_changes::rotate(KeyKind::Signing, publish, set, p, now, place)
        })
        .await?;
        published.print();
        let wait = config.keys.refresh * 2 + Duration::from_secs(1);
        if let Some(v) = version {
            println!(
                "written to the store as version {v}; promoting in {}s, once every node holds                  the new key (twice [keys] refresh, {}s, and a second)",
                wait.as_secs(),
                config.keys.refresh.as_secs()
            );
            tokio::time::sleep(wait).await;
            // The same holder takes it again: renewed for the second write.
            take_lease(config, vault, &holder).await?;
        }
        let promote = RotateOptions {
            force: false,
            promote: true,
        };
        edit_leased(config, vault, policies, &mut |set, p, now| {
            key_changes::rotate(KeyKind::Signing, promote, set, p, now, place)
        })
        .await
    }
    .await;
    let released = vault.release_lease(&holder).await.map_err(stored);
    let (promoted, version) = done?;
    released?;
    promoted.print();
    match version {
        Some(v) => println!(
            "written to the store as version {v}; every node signs with the new key within              [keys] refresh ({}s)",
            config.keys.refresh.as_secs()
        ),
        None => println!("the store is unchanged"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn edit_leased(
    config: &Config,
    vault: &KeyVault,
    policies: &StoredPolicies,
    f: &mut impl FnMut(&mut KeySet<'_>, &mut Policies<'_>, i64) -> Result<Changed>,
) -> Result<(Changed, Option<u64>)> {
    for _ in 0..5 {
        let (plain, version) = vault.read().await.map_err(stored)?.ok_or_else(none)?;
        let mut keys = KeyVault::decode(&plain, version, policies).map_err(stored)?;
        let mut source = config.tokens.key_source();
        let mut p = Policies {
            tokens: policies.tokens.clone(),
            seal: policies.seal.clone(),
            csrf: policies.csrf.clone(),
            key_source: &mut source,
        };
        let mut set = KeySet {
            tokens: Some(&mut keys.tokens),
            seal: &mut keys.seal,
            csrf: &mut keys.csrf,
        };
        let out = f(&mut set, &mut p, now())?;
        if !out.changed {
            return Ok((out, None));
        }
        match vault.write(version, &keys).await {
            Ok(v) => return Ok((out, Some(v))),
            Err(StoredKeysError::Store(tessera_core::Error::Conflict)) => {}
            Err(e) => return Err(stored(e)),
        }
    }
    Err(KeysError::Contended.into())
}

/// `keys reseal FILE`: the record sealed again under FILE's master key, under the lease.
#[allow(clippy::print_stdout)]
async fn reseal(config: &Config, vault: &KeyVault, to: &std::path::Path) -> Result<ExitCode> {
    let new = MasterKey::load(to).map_err(StartupError::from)?;
    if new.id() == vault.master_id() {
        return Err(KeysError::InvalidInput(format!(
            "{} holds the master key the record is sealed under already ({})",
            to.display(),
            new.id()
        ))
        .into());
    }
    let holder = format!(
        "tessera-keys-{}",
        crate::startup::random_holder().map_err(KeysError::Random)?
    );
    take_lease(config, vault, &holder).await?;
    let done = vault.reseal(&new).await;
    let released = vault.release_lease(&holder).await.map_err(stored);
    let version = match done {
        Ok(v) => v,
        Err(StoredKeysError::Store(tessera_core::Error::Conflict)) => {
            return Err(KeysError::InvalidInput(
                "the keys changed while resealing (a node rotated): nothing was written; run it \
                 again"
                    .into(),
            )
            .into());
        }
        Err(e) => return Err(stored(e)),
    };
    released?;
    println!(
        "sealed the keys under master key {} of {} (version {version}); nodes open it only with \
         that key as TESSERA_MASTER_KEY_FILE or TESSERA_OTHER_MASTER_KEY_FILE",
        new.id(),
        to.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn none() -> Error {
    KeysError::InvalidInput(
        "the store holds no keys yet: start `tessera serve` once, or copy a key directory in \
         with `tessera keys import`"
            .into(),
    )
    .into()
}

/// `keys import`: `DATA_DIR/keys` and `DATA_DIR/csrf.key` into the store, if it has no keys
/// yet; with the same keys already there, nothing to do.
#[allow(clippy::print_stdout)]
async fn import(config: &Config, vault: &KeyVault, policies: &StoredPolicies) -> Result<ExitCode> {
    let dir = KeyDir::new(config);
    let (tokens, _) = dir.load()?;
    let seal = SealKeyring::load(dir.path(), policies.seal.clone()).map_err(|source| {
        KeysError::Token {
            path: dir.path().to_owned(),
            source,
        }
    })?;
    let csrf_path = config.data_dir.join(files::CSRF_KEY_FILE);
    if !csrf_path.exists() {
        return Err(KeysError::InvalidInput(format!(
            "no CSRF key in {}: nothing to import (a fleet without one gets a new one)",
            csrf_path.display()
        ))
        .into());
    }
    let (legacy, _) = files::load_or_create_csrf_key(&csrf_path).map_err(StartupError::from)?;
    let sid = legacy.to_sid_key();
    let csrf = files::load_csrf_keys(dir.path(), policies.csrf.clone(), legacy)
        .map_err(StartupError::from)?;
    let kids = |r: &tessera_token::Keyring| r.keys().map(|k| k.kid).collect::<Vec<_>>();
    let seal_kids = |r: &SealKeyring| r.keys().map(|k| k.kid).collect::<Vec<_>>();
    let csrf_kids = |r: &tessera::csrf::CsrfKeyring| r.keys().map(|k| k.kid).collect::<Vec<_>>();
    let probe = Handle::generate(SessionKind::Anonymous)
        .map_err(KeysError::Random)?
        .store_key();
    if let Some(there) = vault.load(policies).await.map_err(stored)? {
        let same = kids(&there.tokens) == kids(&tokens)
            && seal_kids(&there.seal) == seal_kids(&seal)
            && csrf_kids(&there.csrf) == csrf_kids(&csrf)
            && there.sid.sid(&probe) == sid.sid(&probe);
        if same {
            println!(
                "the store already holds these keys (version {}); nothing changed",
                there.version
            );
            return Ok(ExitCode::SUCCESS);
        }
        return Err(KeysError::InvalidInput(format!(
            "the store already holds other keys (version {}): importing would replace the \
             fleet's keys, and every token and cookie they made would stop verifying; nothing \
             was written",
            there.version
        ))
        .into());
    }
    let (n_tokens, n_seal, n_csrf) = (
        tokens.keys().count(),
        seal.keys().count(),
        csrf.keys().count(),
    );
    match vault
        .write(0, &StoredKeys::new(tokens, seal, sid, csrf))
        .await
    {
        Ok(version) => {
            println!(
                "imported {n_tokens} token keys, {n_seal} sealing keys, {n_csrf} CSRF keys and \
                 the sid key of {} into the store (version {version}, sealed under master key {})",
                config.data_dir.display(),
                vault.master_id()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(StoredKeysError::Store(tessera_core::Error::Conflict)) => Err(KeysError::InvalidInput(
            "a node created the fleet's keys meanwhile: nothing was written; see them with \
             `tessera keys list`"
                .into(),
        )
        .into()),
        Err(e) => Err(stored(e)),
    }
}
