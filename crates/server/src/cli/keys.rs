//! `tessera keys …` on a key directory: the token keyring, the sealing keys and the CSRF keys
//! in `DATA_DIR/keys` (`stored_keys.rs`: the same on the store).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use serde_json::{Value, json};
use tessera::csrf::CsrfKeyring;
use tessera::keys::files;
use tessera_token::seal::SealKeyring;
use tessera_token::{KeyState, Rotation};

use super::key_changes::{self, Changed, KeySet, Policies};
use super::{KeyKind, KeysCommand, Result, note_disabled, now, print_json};
use crate::config::Config;
use crate::keys::{self, KeyDir, RotateOptions};

const PICKUP: &str =
    "a running `tessera serve` on this data directory picks this up within a minute";

/// Runs a `keys` command.
///
/// # Errors
///
/// The key directory's errors; failures to write standard output.
#[allow(clippy::print_stdout)]
pub fn run(config: &Config, command: &KeysCommand) -> Result<ExitCode> {
    if let KeysCommand::MasterKey { path } = command {
        let (_, created) =
            files::read_or_create_secret(path).map_err(crate::startup::StartupError::from)?;
        let key = tessera::keys::stored::MasterKey::load(path)
            .map_err(crate::startup::StartupError::from)?;
        let verb = if created {
            "created"
        } else {
            "kept the existing"
        };
        println!(
            "{verb} master key {} in {} (mode 0600); give every node of the fleet this file \
             as TESSERA_MASTER_KEY_FILE",
            key.id(),
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if config.keys.storage == crate::config::KeyStorage::Store {
        return super::stored_keys::run(config, command);
    }
    note_disabled(config);
    let dir = KeyDir::new(config);
    let now = now();
    match command {
        KeysCommand::Generate {
            overwrite,
            kind: KeyKind::Signing,
        } => {
            let ring = dir.generate(now, *overwrite)?;
            let key = ring.signing_key_at(now)?;
            println!(
                "generated the keyring in {}: {} ({}), signing from {}",
                dir.path().display(),
                key.kid(),
                key.algorithm().name(),
                keys::utc(now)
            );
            if *overwrite {
                eprintln!(
                    "warning: any previous keys are gone; tokens they signed no longer verify \
                     (publish the new JWKS to your edge: `tessera keys jwks`)"
                );
            }
            println!("{PICKUP}");
        }
        KeysCommand::Rotate {
            force,
            promote,
            kind: KeyKind::Signing,
        } => {
            let options = RotateOptions {
                force: *force,
                promote: *promote,
            };
            let (ring, r) = dir.rotate(now, options)?;
            for line in report_rotation(&ring, &r, options) {
                println!("{line}");
            }
            if *promote {
                eprintln!(
                    "warning: the promoted key signs now; verifiers that fetched the JWKS before \
                     it was published refuse its tokens (unknown_kid) until they fetch it again"
                );
            }
            if r.changed() {
                println!("{PICKUP}");
            }
        }
        KeysCommand::List {
            json,
            kind: KeyKind::Signing,
        } => {
            let (ring, _) = dir.load()?;
            print_list(&ring, now, *json)?;
        }
        KeysCommand::Revoke {
            kid,
            kind: KeyKind::Signing,
        } => {
            // Under the directory's lock, which `dir_edit` holds.
            dir_edit(config, &dir, now, |set, p| {
                let (mut ring, _) = dir.load()?;
                let mut one = KeySet {
                    tokens: Some(&mut ring),
                    seal: &mut *set.seal,
                    csrf: &mut *set.csrf,
                };
                let out = key_changes::revoke(KeyKind::Signing, kid, &mut one, p, now)?;
                if out.changed {
                    ring.save(dir.path())
                        .map_err(|source| keys::KeysError::Token {
                            path: dir.path().to_owned(),
                            source,
                        })?;
                }
                Ok(out)
            })?;
        }
        KeysCommand::Generate { overwrite, kind } => {
            dir_edit(config, &dir, now, |set, p| {
                let exists = match kind {
                    KeyKind::Sealing => dir.path().join(tessera_token::SEAL_MANIFEST).exists(),
                    _ => {
                        dir.path().join(files::CSRF_KEYS_FILE).exists()
                            || config.data_dir.join(files::CSRF_KEY_FILE).exists()
                    }
                };
                if exists && !overwrite {
                    return Err(keys::KeysError::Exists {
                        path: dir.path().to_owned(),
                    }
                    .into());
                }
                key_changes::generate(*kind, set, p, now, dir.path())
            })?;
        }
        KeysCommand::Rotate {
            force,
            promote,
            kind,
        } => {
            let options = RotateOptions {
                force: *force,
                promote: *promote,
            };
            dir_edit(config, &dir, now, |set, p| {
                key_changes::rotate(*kind, options, set, p, now, dir.path())
            })?;
        }
        KeysCommand::Revoke { kid, kind } => {
            dir_edit(config, &dir, now, |set, p| {
                key_changes::revoke(*kind, kid, set, p, now)
            })?;
        }
        KeysCommand::List { json, kind } => {
            dir_edit(config, &dir, now, |set, _| {
                key_changes::list(*kind, set, now, *json)?;
                Ok(Changed::default())
            })?;
        }
        KeysCommand::MasterKey { .. } => {}
        KeysCommand::Jwks => print_jwks(&dir.jwks()?)?,
        KeysCommand::Import => {
            return Err(keys::KeysError::InvalidInput(
                "`tessera keys import` copies DATA_DIR's keys into the store: set \
                 TESSERA_KEYS=store and TESSERA_MASTER_KEY_FILE"
                    .into(),
            )
            .into());
        }
        KeysCommand::Reseal { .. } => return Err(keys::KeysError::StoreOnly("reseal").into()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads the sealing and CSRF keys of the key directory under its lock, runs `f` on them,
/// and saves what it changed (`f` sees no signing keys: `KeyDir` handles those).
fn dir_edit(
    config: &Config,
    dir: &KeyDir,
    now: i64,
    f: impl FnOnce(&mut KeySet<'_>, &mut Policies<'_>) -> Result<Changed>,
) -> Result<bool> {
    let path = dir.path();
    let err = |source| keys::KeysError::Token {
        path: path.to_owned(),
        source,
    };
    let _lock = tessera_token::Keyring::lock_dir(path).map_err(err)?;
    let seal_policy = files::seal_policy(&config.session);
    let csrf_policy = files::csrf_policy(&config.session, crate::startup::dir_csrf_ahead());
    let mut seal = if path.join(tessera_token::SEAL_MANIFEST).exists() {
        SealKeyring::load(path, seal_policy.clone()).map_err(err)?
    } else {
        SealKeyring::with_policy(seal_policy.clone())
    };
    let csrf_file = config.data_dir.join(files::CSRF_KEY_FILE);
    let mut csrf = if csrf_file.exists() {
        let (legacy, _) = files::load_or_create_csrf_key(&csrf_file)
            .map_err(crate::startup::StartupError::from)?;
        files::load_csrf_keys(path, csrf_policy.clone(), legacy)
            .map_err(crate::startup::StartupError::from)?
    } else {
        // Nothing issued CSRF tokens here yet: a placeholder `generate` replaces (the sid
        // key is made by the service's first start).
        CsrfKeyring::generate_at(now, csrf_policy.clone()).map_err(keys::KeysError::Random)?
    };
    let (before_seal, before_csrf) = (kids_seal(&seal), kids_csrf(&csrf));
    let mut source = config.tokens.key_source();
    let mut policies = Policies {
        tokens: config.tokens.rotation_policy(),
        seal: seal_policy,
        csrf: csrf_policy,
        key_source: &mut source,
    };
    let mut set = KeySet {
        tokens: None,
        seal: &mut seal,
        csrf: &mut csrf,
    };
    let out = f(&mut set, &mut policies)?;
    out.print();
    if out.changed && kids_seal(&seal) != before_seal {
        seal.save(path).map_err(err)?;
    }
    if out.changed && kids_csrf(&csrf) != before_csrf {
        files::save_csrf_keys(path, &csrf).map_err(crate::startup::StartupError::from)?;
    }
    if out.changed {
        println!("{PICKUP}");
    }
    Ok(out.changed)
}

fn kids_seal(r: &SealKeyring) -> Vec<(String, i64)> {
    r.keys().map(|k| (k.kid, k.created_at)).collect()
}

fn kids_csrf(r: &CsrfKeyring) -> Vec<(String, i64)> {
    r.keys().map(|k| (k.kid, k.created_at)).collect()
}

/// `keys list`: the keys of `ring` at `now`, as a table or JSON.
#[allow(clippy::print_stdout)]
pub(super) fn print_list(ring: &tessera_token::Keyring, now: i64, json: bool) -> Result<()> {
    let signer = ring.signing_key_at(now).ok().map(|k| k.kid().clone());
    let rows: Vec<_> = ring
        .keys()
        .map(|k| {
            let signing = signer.as_ref() == Some(&k.kid);
            (k, signing)
        })
        .collect();
    if json {
        let keys: Vec<Value> = rows.iter().map(|(k, s)| keys::key_json(k, *s)).collect();
        return print_json(&json!({ "keys": keys }));
    }
    println!(
        "{:<16}  {:<7}  {:<7}  {:<20}  NOTE",
        "KID", "ALG", "STATE", "VALID FROM (UTC)"
    );
    for (k, signing) in rows {
        let note = match (k.state, signing) {
            (_, true) => "signs now".to_owned(),
            (KeyState::Next, _) => "published, not signing yet".to_owned(),
            (KeyState::Retired, _) => k
                .retired_at
                .map(|t| format!("verifies only, since {}", keys::utc(t)))
                .unwrap_or_default(),
            (KeyState::Revoked, _) => k
                .revoked_at
                .map(|t| format!("refused, since {}", keys::utc(t)))
                .unwrap_or_default(),
            _ => String::new(),
        };
        println!(
            "{:<16}  {:<7}  {:<7}  {:<20}  {note}",
            k.kid.as_str(),
            k.algorithm.name(),
            k.state.name(),
            keys::utc(k.valid_from)
        );
    }
    Ok(())
}

/// Writes `jwks` to standard output byte for byte (a newline only at a terminal).
pub(super) fn print_jwks(jwks: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    // Byte for byte what the service serves, so `> jwks.json` can be deployed as it is
    // (Envoy `local_jwks`); a newline only for a person at a terminal.
    out.write_all(jwks.as_bytes())?;
    if std::io::stdout().is_terminal() {
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// What a signing key rotation did, a line each.
pub(super) fn report_rotation(
    ring: &tessera_token::Keyring,
    r: &Rotation,
    options: RotateOptions,
) -> Vec<String> {
    let mut out = Vec::new();
    let info = |kid: &tessera_token::KeyId| ring.keys().find(|k| &k.kid == kid);
    for kid in &r.dropped {
        out.push(format!("dropped {kid} (its retention ended)"));
    }
    for kid in &r.retired {
        out.push(format!(
            "retired {kid}: verifies only, for the longest token lifetime plus skew"
        ));
    }
    if let Some(kid) = &r.generated
        && let Some(k) = info(kid)
    {
        out.push(format!(
            "published {kid} ({}) as {}, signing from {}",
            k.algorithm.name(),
            k.state.name(),
            keys::utc(k.valid_from)
        ));
    }
    if let Some(kid) = &r.promoted {
        out.push(format!("promoted {kid}: it signs from now on"));
    }
    if options.force
        && r.generated.is_none()
        && let Some(k) = ring.keys().find(|k| k.state == KeyState::Next)
    {
        out.push(format!(
            "a next key is already published: {} (signing from {}); `--promote` makes it sign now",
            k.kid,
            keys::utc(k.valid_from)
        ));
    }
    if !r.changed() {
        out.push("nothing to do: no key is due".to_owned());
    }
    out
}
