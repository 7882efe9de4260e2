//! Where values come from and how they are read: the environment over the file (`pick`),
//! durations and booleans.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use super::error::{ConfigError, invalid};
use super::settings::Setting;

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Source {
    /// Neither the file nor the environment set it.
    #[default]
    Default,
    /// The configuration file.
    File,
    /// Its `TESSERA_*` variable (which wins over the file).
    Environment,
}

impl Source {
    /// `default`, `file` or `environment`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::File => "file",
            Self::Environment => "environment",
        }
    }
}

/// The environment, looked up only through [`Setting`]s, remembering where each value came
/// from.
pub(super) struct Sources<'a> {
    var: &'a dyn Fn(&str) -> Option<String>,
    seen: RefCell<BTreeMap<&'static str, Source>>,
}

impl<'a> Sources<'a> {
    pub(super) fn new(var: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            var,
            seen: RefCell::new(BTreeMap::new()),
        }
    }

    /// The variable of `s`, if set.
    pub(super) fn var(&self, s: &'static Setting) -> Option<String> {
        let v = (self.var)(s.env);
        if v.is_some() {
            self.note(s, Source::Environment);
        }
        v
    }

    /// `file`, the file's value of `s`, noted as the source when there is one (and the
    /// variable did not win).
    pub(super) fn file<T>(&self, s: &'static Setting, file: Option<T>) -> Option<T> {
        if file.is_some() {
            self.note(s, Source::File);
        }
        file
    }

    fn note(&self, s: &'static Setting, source: Source) {
        let mut seen = self.seen.borrow_mut();
        let e = seen.entry(s.key).or_default();
        if *e != Source::Environment {
            *e = source;
        }
    }

    /// Where every value set came from (absent: the default).
    pub(super) fn into_seen(self) -> BTreeMap<&'static str, Source> {
        self.seen.into_inner()
    }
}

/// How a section looks its variables up.
pub(super) type Env<'a> = &'a Sources<'a>;

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

/// A value from the environment (which wins) or the file, with the name to blame (the
/// variable or the file key).
pub(super) fn pick(
    env: Env<'_>,
    s: &'static Setting,
    file: Option<String>,
) -> Option<(String, String)> {
    env.var(s)
        .map(|v| (s.env.to_owned(), v))
        .or_else(|| env.file(s, file).map(|v| (s.key.to_owned(), v)))
}

/// A duration from the environment (which wins) or the file, else `default`.
pub(super) fn duration(
    env: Env<'_>,
    s: &'static Setting,
    file: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match pick(env, s, file) {
        Some((name, v)) => parse_duration(&v).map_err(|m| invalid(&name, m)),
        None => Ok(default),
    }
}

/// A boolean from the environment (which wins, written as [`parse_bool`] reads it) or the
/// file, else `default`.
pub(super) fn boolean(
    env: Env<'_>,
    s: &'static Setting,
    file: Option<bool>,
    default: bool,
) -> Result<bool, ConfigError> {
    match env.var(s) {
        Some(v) => parse_bool(&v).map_err(|m| invalid(s.env, m)),
        None => Ok(env.file(s, file).unwrap_or(default)),
    }
}

/// A whole number from the environment (which wins) or the file, else `default`.
pub(super) fn number<T: std::str::FromStr>(
    env: Env<'_>,
    s: &'static Setting,
    file: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    match env.var(s) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid(s.env, format!("{v:?} is not a whole number"))),
        None => Ok(env.file(s, file).unwrap_or(default)),
    }
}

/// A list from the environment (items separated by `,`, blanks dropped) or the file.
pub(super) fn list(
    env: Env<'_>,
    s: &'static Setting,
    file: Option<Vec<String>>,
) -> Option<Vec<String>> {
    match env.var(s) {
        Some(v) => Some(
            v.split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        None => env.file(s, file),
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
