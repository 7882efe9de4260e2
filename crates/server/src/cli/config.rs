//! `tessera config check`.

use std::process::ExitCode;

use super::Result;
use crate::config::Config;

/// `config check`: a summary of the valid configuration `c` (store passwords hidden).
///
/// # Errors
///
/// None today; the signature is the one every command has.
#[allow(clippy::print_stdout)]
pub fn check(c: &Config) -> Result<ExitCode> {
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
