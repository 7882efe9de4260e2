//! `tessera keys …`: the token keyring in `DATA_DIR/keys`.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use serde_json::{Value, json};
use tessera_token::{KeyState, Rotation};

use super::{KeysCommand, Result, note_disabled, now, print_json};
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
        let (_, created) = tessera::keys::files::read_or_create_secret(path)
            .map_err(crate::startup::StartupError::from)?;
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
        KeysCommand::Generate { overwrite } => {
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
        KeysCommand::Rotate { force, promote } => {
            let options = RotateOptions {
                force: *force,
                promote: *promote,
            };
            let (ring, r) = dir.rotate(now, options)?;
            report_rotation(&ring, &r, options);
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
        KeysCommand::List { json } => {
            let (ring, _) = dir.load()?;
            print_list(&ring, now, *json)?;
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
    }
    Ok(ExitCode::SUCCESS)
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

#[allow(clippy::print_stdout)]
fn report_rotation(ring: &tessera_token::Keyring, r: &Rotation, options: RotateOptions) {
    let info = |kid: &tessera_token::KeyId| ring.keys().find(|k| &k.kid == kid);
    for kid in &r.dropped {
        println!("dropped {kid} (its retention ended)");
    }
    for kid in &r.retired {
        println!("retired {kid}: verifies only, for the longest token lifetime plus skew");
    }
    if let Some(kid) = &r.generated
        && let Some(k) = info(kid)
    {
        println!(
            "published {kid} ({}) as {}, signing from {}",
            k.algorithm.name(),
            k.state.name(),
            keys::utc(k.valid_from)
        );
    }
    if let Some(kid) = &r.promoted {
        println!("promoted {kid}: it signs from now on");
    }
    if options.force
        && r.generated.is_none()
        && let Some(k) = ring.keys().find(|k| k.state == KeyState::Next)
    {
        println!(
            "a next key is already published: {} (signing from {}); `--promote` makes it sign now",
            k.kid,
            keys::utc(k.valid_from)
        );
    }
    if !r.changed() {
        println!("nothing to do: no key is due");
    }
}
