//! `tessera token mint` and `tessera token inspect`.

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;

use serde_json::{Value, json};

use super::error::MAX_STDIN;
use super::{Cli, Error, InspectArgs, MintArgs, Result, load, note_disabled, now, print_json};
use crate::config::Config;
use crate::keys::{self, KeyDir};

/// Exit status of `token inspect` for a token that is refused (1 is any other failure, 2
/// a usage error).
const EXIT_REFUSED: u8 = 3;
/// Exit status of a usage error, as clap's own.
const EXIT_USAGE: u8 = 2;

/// `token mint`: prints a token signed with the active key.
///
/// # Errors
///
/// No keyring; a bad subject, claim or lifetime; signing failures.
#[allow(clippy::print_stdout)]
pub fn mint(config: &Config, args: &MintArgs) -> Result<ExitCode> {
    note_disabled(config);
    let dir = KeyDir::new(config);
    let ring = signing_keys(config, &dir)?;
    let sub = match (&args.sub, &args.user) {
        (Some(s), _) => s.clone(),
        (None, Some(u)) => config.tokens.subject.subject(u),
        (None, None) => return Err(Error::NoSubject),
    };
    let claims = args.claims.iter().cloned().collect();
    let token = keys::mint(&dir, &ring, &sub, claims, args.ttl, now())?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// The signing keys of `config`: in the key directory, or in the store.
fn signing_keys(config: &Config, dir: &KeyDir) -> Result<tessera_token::Keyring> {
    if config.keys.storage == crate::config::KeyStorage::Store {
        return super::stored_keys::signing_keys(config);
    }
    Ok(dir.load()?.0)
}

/// Reads the token from standard input, bounded, without echoing it anywhere.
///
/// One line ending after the token (`\n` or `\r\n`, what `echo`, editors and `> file`
/// leave) is the line's, not the token's, and is dropped; any other whitespace, and quotes
/// around the token, stay, so `inspect` refuses them (`bad_encoding`) as `GET /v1/verify`
/// does.
fn read_token() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading a token from standard input (paste it, then Ctrl-D)");
    }
    let mut buf = Vec::new();
    stdin
        .lock()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .map_err(Error::Stdin)?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(Error::StdinTooLarge);
    }
    let text = String::from_utf8(buf).map_err(Error::StdinNotText)?;
    let token = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    if token.trim().is_empty() {
        return Err(Error::NoToken);
    }
    Ok(token.to_owned())
}

/// `token inspect`: verifies the token on standard input and prints what it holds. Exit
/// status 0 if it is valid, 3 if it is refused, 2 for a token given as an argument.
///
/// # Errors
///
/// The configuration's or the key directory's errors; unreadable standard input.
#[allow(clippy::print_stdout)]
pub fn inspect(cli: &Cli, args: &InspectArgs) -> Result<ExitCode> {
    // `-` is the usual name of standard input; anything else is the token itself.
    if args.token.as_deref().is_some_and(|t| t != "-") {
        // Never echo it: it is a bearer secret, already in shell history and `ps` now.
        eprintln!(
            "error: a token is not accepted as an argument (it would end up in shell history \
             and ps output); pass it on standard input: `tessera token inspect < token.txt`"
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let config = load(cli)?;
    note_disabled(&config);
    let dir = KeyDir::new(&config);
    let ring = signing_keys(&config, &dir)?;
    let token = read_token()?;
    let now = now();
    let found = keys::inspect(&dir, &ring, &token, now);
    let (valid, code, message) = match &found.result {
        Ok(v) => (true, v.outcome(), None),
        Err(e) => (false, e.outcome(), Some(e.to_string())),
    };
    if args.json {
        let kid = found.result.as_ref().ok().map(|v| v.kid.to_string());
        print_json(&json!({
            "valid": valid,
            "outcome": code,
            "message": message,
            "kid": kid,
            "header": found.header,
            "claims": found.claims,
            "revocations_checked": false,
        }))?;
    } else {
        match &found.result {
            Ok(v) => println!(
                "valid: {code} (signed by {}, {})",
                v.kid,
                v.algorithm.name()
            ),
            Err(e) => println!("REFUSED: {code} ({e})"),
        }
        let label = if valid {
            ""
        } else {
            " (UNVERIFIED: do not trust)"
        };
        let show = |name: &str, v: &Option<Value>| match v {
            Some(v) => println!(
                "{name}{label}:\n{}",
                serde_json::to_string_pretty(v).unwrap_or_default()
            ),
            None => println!("{name}: not decodable"),
        };
        show("header", &found.header);
        show("claims", &found.claims);
        if let Some(claims) = &found.claims {
            for name in ["iat", "nbf", "sxp", "exp"] {
                if let Some(t) = claims.get(name).and_then(Value::as_i64) {
                    println!("{name}: {}{label}", keys::utc(t));
                }
            }
        }
        println!(
            "now: {} (revocations are not checked here: they live in the store)",
            keys::utc(now)
        );
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_REFUSED)
    })
}
