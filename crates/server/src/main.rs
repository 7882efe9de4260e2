//! The `tessera` binary: parses the command line and runs the library's pieces.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use serde_json::{Value, json};
use tessera_core::{Clock as _, SystemClock};
use tessera_server::cli::{
    Cli, Command, ConfigCommand, InspectArgs, KeysCommand, MintArgs, TokenCommand,
};
use tessera_server::config::Config;
use tessera_server::keys::{self, KeyDir, RotateOptions};
use tessera_server::startup;
use tessera_token::{KeyState, Rotation};

/// Exit status of `token inspect` for a token that is refused (1 is any other failure, 2
/// a usage error).
const EXIT_REFUSED: u8 = 3;
/// Exit status of a usage error, as clap's own.
const EXIT_USAGE: u8 = 2;
/// The most `token inspect` reads from standard input: a token is at most 4096 bytes.
const MAX_STDIN: u64 = 16 * 1024;

// The service allocates a little on every request (JSON in and out); mimalloc's per-thread
// caches cut the allocator's share of a `resolve` (about 9% of CPU with glibc's malloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // TESSERA_LOG_FORMAT=json for log shippers; human-readable lines otherwise.
    if std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(cli: &Cli) -> anyhow::Result<Config> {
    Ok(Config::load(cli.config.as_deref(), |k| {
        std::env::var(k).ok()
    })?)
}

#[allow(clippy::print_stdout)]
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let c = load(&cli)?;
            println!("configuration is valid");
            println!("  listen:     {}", c.listen);
            println!("  data dir:   {}", c.data_dir.display());
            // Display hides passwords in store URLs.
            println!("  store:      {}", c.store);
            if let Some(a) = &c.anon_store {
                println!("  anon store: {a}");
            }
            println!(
                "  cookie:     {} (secure: {})",
                c.cookie.name(),
                c.cookie.secure()
            );
            println!(
                "  timeouts:   idle {}s, absolute {}s",
                c.session.idle_timeout.as_secs(),
                c.session.absolute_timeout.as_secs()
            );
            let t = &c.tokens;
            if t.enabled {
                println!(
                    "  tokens:     issuer {}, {} keys, typ {}{}{}",
                    t.issuer,
                    t.algorithm.name(),
                    t.typ,
                    t.cookie_name
                        .as_ref()
                        .map(|n| format!(", cookie {n}"))
                        .unwrap_or_default(),
                    t.profile
                        .map(|p| format!(", profile {}", p.name()))
                        .unwrap_or_default(),
                );
            } else {
                println!("  tokens:     off");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => keys_command(&load(&cli)?, command),
        Command::Token {
            command: TokenCommand::Mint(args),
        } => mint(&load(&cli)?, args),
        Command::Token {
            command: TokenCommand::Inspect(args),
        } => inspect(&cli, args),
        Command::Verifier => {
            let config = load(&cli)?;
            let runtime = runtime()?;
            runtime.block_on(async {
                let (state, notes) =
                    tessera_server::edge::prepare_edge(&config, Arc::new(SystemClock)).await?;
                let listener = startup::bind(&config).await?;
                let addr = listener.local_addr()?;
                for note in &notes {
                    println!("{note}");
                }
                println!("Tessera verifier listening on http://{addr}");
                tessera_server::edge::serve_edge(listener, state, shutdown_signal())
                    .await
                    .context("verifier failed")?;
                println!("Tessera verifier stopped");
                anyhow::Ok(ExitCode::SUCCESS)
            })
        }
        Command::Serve => {
            let config = load(&cli)?;
            let runtime = runtime()?;
            runtime.block_on(async {
                let prepared = startup::prepare(&config, Arc::new(SystemClock)).await?;
                let listener = startup::bind(&config).await?;
                let addr = listener.local_addr()?;
                for note in &prepared.notes {
                    println!("{note}");
                }
                println!("Tessera listening on http://{addr}");
                startup::serve(listener, prepared, config.purge_interval, shutdown_signal())
                    .await
                    .context("server failed")?;
                println!("Tessera stopped");
                anyhow::Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// The async runtime of `serve` and `verifier`.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// "Now" for a command: read once, at the edge.
fn now() -> i64 {
    SystemClock.now().unix_secs()
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

fn note_disabled(config: &Config) {
    if !config.tokens.enabled {
        eprintln!("note: [tokens] enabled = false: the service issues and verifies no tokens");
    }
}

const PICKUP: &str =
    "a running `tessera serve` on this data directory picks this up within a minute";

#[allow(clippy::print_stdout)]
fn keys_command(config: &Config, command: &KeysCommand) -> anyhow::Result<ExitCode> {
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
            let signer = ring.signing_key_at(now).ok().map(|k| k.kid().clone());
            let rows: Vec<_> = ring
                .keys()
                .map(|k| {
                    let signing = signer.as_ref() == Some(&k.kid);
                    (k, signing)
                })
                .collect();
            if *json {
                let keys: Vec<Value> = rows.iter().map(|(k, s)| keys::key_json(k, *s)).collect();
                print_json(&json!({ "keys": keys }))?;
            } else {
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
            }
        }
        KeysCommand::Jwks => {
            let jwks = dir.jwks()?;
            let mut out = std::io::stdout().lock();
            // Byte for byte what the service serves, so `> jwks.json` can be deployed as
            // it is (Envoy `local_jwks`); a newline only for a person at a terminal.
            out.write_all(jwks.as_bytes())?;
            if std::io::stdout().is_terminal() {
                writeln!(out)?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
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

#[allow(clippy::print_stdout)]
fn mint(config: &Config, args: &MintArgs) -> anyhow::Result<ExitCode> {
    note_disabled(config);
    let dir = KeyDir::new(config);
    let (ring, _) = dir.load()?;
    let sub = match (&args.sub, &args.user) {
        (Some(s), _) => s.clone(),
        (None, Some(u)) => config.tokens.subject.subject(u),
        (None, None) => anyhow::bail!("--sub or --user is required"),
    };
    let claims = args.claims.iter().cloned().collect();
    let token = keys::mint(&dir, &ring, &sub, claims, args.ttl, now())?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Reads the token from standard input, bounded, without echoing it anywhere.
fn read_token() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("reading a token from standard input (paste it, then Ctrl-D)");
    }
    let mut buf = Vec::new();
    stdin
        .lock()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .context("cannot read standard input")?;
    if buf.len() as u64 > MAX_STDIN {
        anyhow::bail!("standard input holds more than {MAX_STDIN} bytes; a token is at most 4096");
    }
    let text = String::from_utf8(buf).context("standard input is not UTF-8 text")?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!(
            "no token on standard input; pipe it in, e.g. `tessera token inspect < token.txt`"
        );
    }
    Ok(token.to_owned())
}

#[allow(clippy::print_stdout)]
fn inspect(cli: &Cli, args: &InspectArgs) -> anyhow::Result<ExitCode> {
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
    let (ring, _) = dir.load()?;
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
