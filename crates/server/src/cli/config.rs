//! `tessera config check`.

use std::process::ExitCode;

use super::Result;
use crate::config::{Config, Source};

/// `config check`: a summary of the valid configuration `c` (store passwords hidden); with
/// `print`, every setting in effect with where its value came from.
///
/// # Errors
///
/// None today; the signature is the one every command has.
#[allow(clippy::print_stdout)]
pub fn check(c: &Config, print: bool) -> Result<ExitCode> {
    println!("configuration is valid");
    if print {
        print!("{}", effective_table(c));
        return Ok(ExitCode::SUCCESS);
    }
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

/// `config check --print`: one line per setting, `key  value  source`, secrets hidden.
pub fn effective_table(c: &Config) -> String {
    let rows: Vec<(&str, String, String)> = c
        .effective()
        .into_iter()
        .map(|e| {
            let source = match e.source {
                Source::Environment => format!("environment ({})", e.setting.env),
                other => other.name().to_owned(),
            };
            (e.setting.key, e.value, source)
        })
        .collect();
    let key_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let value_w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = format!("{:key_w$}  {:value_w$}  source\n", "key", "value");
    for (key, value, source) in rows {
        out.push_str(&format!("{key:key_w$}  {value:value_w$}  {source}\n"));
    }
    out
}
