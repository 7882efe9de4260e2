//! Where values come from and how they are read: the environment over the file (`pick`),
//! durations and booleans.

use std::time::Duration;

use super::error::{ConfigError, invalid};

/// How a section looks a variable up (`|k| std::env::var(k).ok()` in production).
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses a duration like `500ms`, `90s`, `30m`, `12h`, `7d` (one integer and one unit).
///
/// # Errors
///
/// A message with the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit; use ms, s, m, h or d, e.g. 30m"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} must start with a whole number, e.g. 30m"))?;
    if unit == "ms" {
        return Ok(Duration::from_millis(n));
    }
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "{s:?} has unknown unit {unit:?}; use ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// A value from the environment (which wins) or the file, with the name to blame.
pub(super) fn pick(
    env: Env<'_>,
    env_name: &str,
    field: &str,
    file: Option<String>,
) -> Option<(String, String)> {
    env(env_name)
        .map(|v| (env_name.to_owned(), v))
        .or_else(|| file.map(|v| (field.to_owned(), v)))
}

/// A duration from the environment (which wins) or the file, else `default`.
pub(super) fn duration(
    env: Env<'_>,
    env_name: &str,
    field: &str,
    file: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match pick(env, env_name, field, file) {
        Some((name, v)) => parse_duration(&v).map_err(|m| invalid(&name, m)),
        None => Ok(default),
    }
}

/// A boolean from the environment (which wins, written as [`parse_bool`] reads it) or the
/// file, else `default`.
pub(super) fn boolean(
    env: Env<'_>,
    env_name: &str,
    file: Option<bool>,
    default: bool,
) -> Result<bool, ConfigError> {
    match env(env_name) {
        Some(v) => parse_bool(&v).map_err(|m| invalid(env_name, m)),
        None => Ok(file.unwrap_or(default)),
    }
}

/// A whole number from the environment (which wins) or the file, else `default`.
pub(super) fn number<T: std::str::FromStr>(
    env: Env<'_>,
    env_name: &str,
    file: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    match env(env_name) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid(env_name, format!("{v:?} is not a whole number"))),
        None => Ok(file.unwrap_or(default)),
    }
}

/// A boolean as the environment writes it (`1`/`0`, `true`/`false`, `yes`/`no`).
pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean; use true or false")),
    }
}
