//! Reading the session cookie from a `Cookie` header and writing `Set-Cookie` values.
//!
//! Cookie policy (see `docs/cookies.md`): the name carries the `__Host-` prefix, so a browser
//! accepts it only with `Secure`, `Path=/` and no `Domain`; `HttpOnly`; `SameSite=Lax` so a
//! top-level navigation from another site (a link in an email) still arrives logged in while
//! cross-site subrequests and form posts do not carry it. The removal cookie repeats every
//! attribute of the original, or the browser keeps the original.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest `Cookie` header accepted, in bytes. Browsers cap a cookie at 4096 bytes and
/// send a few dozen at most; anything longer is not from a browser.
pub const MAX_COOKIE_HEADER: usize = 8192;

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Sent on same-site requests only.
    Strict,
    /// Also sent on top-level cross-site navigations (the default).
    #[default]
    Lax,
    /// Sent on every request; requires `Secure`.
    None,
}

impl SameSite {
    /// The attribute value: `Strict`, `Lax` or `None`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// How the session cookie is named and what attributes it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    name: String,
    secure: bool,
    same_site: SameSite,
}

/// Why a cookie configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieConfigError {
    /// The name is empty, too long, or has characters outside an RFC 6265 token.
    #[error("cookie name must be 1 to 64 characters of letters, digits and !#$%&'*+-.^_`|~")]
    BadName,
    /// A `__Host-` or `__Secure-` name without `Secure`: browsers would drop the cookie.
    #[error("a cookie named __Host-… or __Secure-… must be Secure")]
    PrefixNeedsSecure,
    /// `SameSite=None` without `Secure`: browsers would drop the cookie.
    #[error("SameSite=None requires Secure")]
    SameSiteNoneNeedsSecure,
}

impl CookieConfigError {
    /// Every code [`CookieConfigError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "cookie-name-invalid",
        "cookie-prefix-needs-secure",
        "cookie-same-site-none-needs-secure",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadName => "cookie-name-invalid",
            Self::PrefixNeedsSecure => "cookie-prefix-needs-secure",
            Self::SameSiteNoneNeedsSecure => "cookie-same-site-none-needs-secure",
        }
    }
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "__Host-tessera".to_owned(),
            secure: true,
            same_site: SameSite::Lax,
        }
    }
}

impl CookieConfig {
    /// A validated cookie configuration.
    ///
    /// # Errors
    ///
    /// [`CookieConfigError`] if browsers would reject or mishandle such a cookie.
    pub fn try_new(
        name: impl Into<String>,
        secure: bool,
        same_site: SameSite,
    ) -> Result<Self, CookieConfigError> {
        let name = name.into();
        let token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || name.len() > 64 || !name.chars().all(token_char) {
            return Err(CookieConfigError::BadName);
        }
        let lower = name.to_ascii_lowercase();
        if !secure && (lower.starts_with("__host-") || lower.starts_with("__secure-")) {
            return Err(CookieConfigError::PrefixNeedsSecure);
        }
        if !secure && same_site == SameSite::None {
            return Err(CookieConfigError::SameSiteNoneNeedsSecure);
        }
        Ok(Self {
            name,
            secure,
            same_site,
        })
    }

    /// The development preset, for an application served on plain `http://localhost`:
    /// the cookie is named `tessera` and is not `Secure` (browsers refuse `Secure` cookies and
    /// `__Host-` names over plain HTTP).
    ///
    /// # ⚠️ Warning
    ///
    /// Over plain HTTP anyone on the path can read the cookie. Never use this in production.
    pub fn development() -> Self {
        Self {
            name: "tessera".to_owned(),
            secure: false,
            same_site: SameSite::Lax,
        }
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the cookie is `Secure`.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The cookie's `SameSite` attribute.
    pub fn same_site(&self) -> SameSite {
        self.same_site
    }

    /// The same attributes under another name (e.g. the token cookie beside the session
    /// cookie).
    ///
    /// # Errors
    ///
    /// [`CookieConfigError`] if the name is not valid for these attributes.
    pub fn with_name(&self, name: impl Into<String>) -> Result<Self, CookieConfigError> {
        Self::try_new(name, self.secure, self.same_site)
    }

    /// A `Set-Cookie` value that stores `value`; with `max_age` the cookie is persistent,
    /// without it it lasts until the browser closes.
    pub fn set(&self, value: &str, max_age: Option<Duration>) -> String {
        let mut s = format!("{}={}; Path=/", self.name, value);
        if let Some(age) = max_age {
            let _ = write!(s, "; Max-Age={}", age.as_secs());
        }
        self.attributes(&mut s);
        s
    }

    /// A `Set-Cookie` value that removes the cookie: the same name, path and attributes, an
    /// empty value, `Max-Age=0` and an `Expires` in the past for old browsers.
    pub fn remove(&self) -> String {
        let mut s = format!(
            "{}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            self.name
        );
        self.attributes(&mut s);
        s
    }

    fn attributes(&self, s: &mut String) {
        if self.secure {
            s.push_str("; Secure");
        }
        s.push_str("; HttpOnly; SameSite=");
        s.push_str(self.same_site.as_str());
    }
}

/// What a `Cookie` header says about one cookie name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The cookie is not there.
    Absent,
    /// One value (or the same value repeated).
    Found(&'a str),
    /// The header is over [`MAX_COOKIE_HEADER`], or the name appears with different values
    /// (an injected duplicate): refused rather than guessed.
    Invalid,
}

/// Finds the cookie called `name` (exact, case-sensitive) in a `Cookie` header.
///
/// Several `Cookie` header lines (HTTP/2) may be joined with `; ` before the call.
///
/// The value is returned exactly as sent between `=` and the next `;`: whitespace around
/// it and DQUOTEs wrapping it (RFC 6265 §4.1.1 allows a quoted cookie-value) are **not**
/// trimmed away, so a handle or a token with them is refused by its own parser rather
/// than accepted under a second spelling. Tessera never writes either.
pub fn find<'a>(header: &'a str, name: &str) -> Lookup<'a> {
    if header.len() > MAX_COOKIE_HEADER {
        return Lookup::Invalid;
    }
    let mut found: Option<&str> = None;
    for pair in header.split(';') {
        let Some((n, v)) = pair.split_once('=') else {
            continue;
        };
        if n.trim() != name {
            continue;
        }
        match found {
            Some(prev) if prev != v => return Lookup::Invalid,
            _ => found = Some(v),
        }
    }
    found.map_or(Lookup::Absent, Lookup::Found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_defaults() {
        let c = CookieConfig::default();
        let s = c.set("v", None);
        assert_eq!(
            s,
            "__Host-tessera=v; Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        assert!(!s.contains("Domain"));
    }

    #[test]
    fn removal_copies_every_attribute() {
        let c = CookieConfig::default();
        let set = c.set("v", Some(Duration::from_secs(60)));
        let rm = c.remove();
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(set.contains(attr) && rm.contains(attr), "{attr}");
        }
        assert!(rm.starts_with("__Host-tessera=;"));
        assert!(rm.contains("Max-Age=0"));
        let dev = CookieConfig::development();
        assert_eq!(
            dev.remove(),
            "tessera=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn config_refuses_what_browsers_drop() {
        assert_eq!(
            CookieConfig::try_new("__Host-x", false, SameSite::Lax),
            Err(CookieConfigError::PrefixNeedsSecure)
        );
        assert_eq!(
            CookieConfig::try_new("__secure-x", false, SameSite::Lax),
            Err(CookieConfigError::PrefixNeedsSecure)
        );
        assert_eq!(
            CookieConfig::try_new("x", false, SameSite::None),
            Err(CookieConfigError::SameSiteNoneNeedsSecure)
        );
        for bad in ["", "a b", "a;b", "a=b", "é", &"x".repeat(65)] {
            assert_eq!(
                CookieConfig::try_new(bad, true, SameSite::Lax),
                Err(CookieConfigError::BadName),
                "{bad:?}"
            );
        }
        assert!(CookieConfig::try_new("sid", false, SameSite::Strict).is_ok());
    }

    #[test]
    fn config_error_codes_are_listed_and_unique() {
        let all = [
            CookieConfigError::BadName,
            CookieConfigError::PrefixNeedsSecure,
            CookieConfigError::SameSiteNoneNeedsSecure,
        ];
        for e in &all {
            assert!(CookieConfigError::CODES.contains(&e.code()), "{e:?}");
        }
        let mut codes = CookieConfigError::CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn find_is_exact_and_refuses_ambiguity() {
        assert_eq!(find("", "a"), Lookup::Absent);
        assert_eq!(find("b=1; a=2", "a"), Lookup::Found("2"));
        // Quotes and surrounding whitespace stay: the value's parser refuses them.
        assert_eq!(find("a=\"2\"", "a"), Lookup::Found("\"2\""));
        assert_eq!(find("a= 2", "a"), Lookup::Found(" 2"));
        assert_eq!(find("a=2 ; b=3", "a"), Lookup::Found("2 "));
        assert_eq!(find("a=2;a=\"2\"", "a"), Lookup::Invalid);
        assert_eq!(find("A=2; aa=3; a =4", "a"), Lookup::Found("4"));
        assert_eq!(find("a=1;a=1", "a"), Lookup::Found("1"));
        assert_eq!(find("a=1; a=2", "a"), Lookup::Invalid);
        assert_eq!(find("junk; ;=;a=x=y", "a"), Lookup::Found("x=y"));
        assert_eq!(find("__host-tessera=1", "__Host-tessera"), Lookup::Absent);
        let huge = format!("a={}", "x".repeat(MAX_COOKIE_HEADER));
        assert_eq!(find(&huge, "a"), Lookup::Invalid);
    }
}
