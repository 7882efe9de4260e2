//! `tessera keys …` with `[keys] storage = "store"`: `list` and `jwks` read the fleet's key
//! manifest from the store; `import` copies a key directory into it, once. The other
//! commands refuse (`keys-in-store`): a running fleet rotates on its schedule.

use std::process::ExitCode;

use tessera::keys::files;
use tessera::keys::stored::{KeyVault, MasterKey, StoredKeysError, StoredPolicies};
use tessera_core::{Handle, SessionKind};
use tessera_token::seal::SealKeyring;

use super::{Error, KeysCommand, Result, now};
use crate::config::Config;
use crate::keys::{KeyDir, KeysError};
use crate::startup::StartupError;

fn stored(e: StoredKeysError) -> Error {
    StartupError::StoredKeys(e).into()
}

/// Runs a `keys` command on the store.
///
/// # Errors
///
/// The store's, the master key's and the key directory's errors; [`KeysError::InStore`]
/// for the commands that do not work on the store.
#[allow(clippy::print_stdout)]
pub(super) fn run(config: &Config, command: &KeysCommand) -> Result<ExitCode> {
    if !matches!(
        command,
        KeysCommand::List { .. } | KeysCommand::Jwks | KeysCommand::Import
    ) {
        return Err(KeysError::InStore.into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    rt.block_on(async {
        let path = config.keys.master_key_file.as_deref().ok_or_else(|| {
            KeysError::InvalidInput(
                "[keys] storage = \"store\" needs TESSERA_MASTER_KEY_FILE".into(),
            )
        })?;
        let master = MasterKey::load(path).map_err(StartupError::from)?;
        let store = crate::startup::open_store(
            &config.store,
            "session",
            config.store_timeout,
            "session",
            &mut Vec::new(),
        )
        .await?;
        let vault = KeyVault::new(store, master).map_err(stored)?;
        let policies = StoredPolicies {
            tokens: config.tokens.rotation_policy(),
            seal: files::seal_policy(&config.session),
        };
        match command {
            KeysCommand::Import => import(config, &vault, &policies).await,
            KeysCommand::List { json } => {
                let keys = vault
                    .load(&policies)
                    .await
                    .map_err(stored)?
                    .ok_or_else(none)?;
                super::keys::print_list(&keys.tokens, now(), *json)?;
                Ok(ExitCode::SUCCESS)
            }
            _ => {
                let keys = vault
                    .load(&policies)
                    .await
                    .map_err(stored)?
                    .ok_or_else(none)?;
                let codec = config.tokens.codec(keys.tokens.keys().map(|k| k.algorithm));
                super::keys::print_jwks(&keys.tokens.jwks(&codec))?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
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
    let (csrf, _) = files::load_or_create_csrf_key(&csrf_path).map_err(StartupError::from)?;
    let kids = |r: &tessera_token::Keyring| r.keys().map(|k| k.kid).collect::<Vec<_>>();
    let seal_kids = |r: &SealKeyring| r.keys().map(|k| k.kid).collect::<Vec<_>>();
    let probe = Handle::generate(SessionKind::Anonymous)
        .map_err(KeysError::Random)?
        .store_key();
    if let Some(there) = vault.load(policies).await.map_err(stored)? {
        let same = kids(&there.tokens) == kids(&tokens)
            && seal_kids(&there.seal) == seal_kids(&seal)
            && there.csrf.sid(&probe) == csrf.sid(&probe);
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
    match vault.write(0, &tokens, &seal, &csrf).await {
        Ok(version) => {
            println!(
                "imported {} token keys, {} sealing keys and the CSRF key of {} into the store \
                 (version {version}, sealed under master key {})",
                tokens.keys().count(),
                seal.keys().count(),
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
