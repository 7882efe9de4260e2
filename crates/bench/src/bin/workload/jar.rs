//! The browser's cookie jar: every cookie a `Set-Cookie` value sets is kept and sent back,
//! a removed one is dropped (RFC 6265 §5.3, as far as one host and one path need it).

use std::fmt;

/// A `Set-Cookie` value the jar cannot apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JarError {
    /// No `name=value` pair before the first `;`, or an empty name.
    NoPair,
    /// `Max-Age` is not an integer.
    BadMaxAge,
    /// `Expires` without `Max-Age`: Tessera always sends `Max-Age` with it, and guessing
    /// whether a date is past would need a clock, so the run stops instead.
    ExpiresOnly,
}

impl fmt::Display for JarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoPair => "Set-Cookie without a name=value pair",
            Self::BadMaxAge => "Set-Cookie with a Max-Age that is not an integer",
            Self::ExpiresOnly => "Set-Cookie with Expires but no Max-Age",
        })
    }
}

impl std::error::Error for JarError {}

/// What a `Set-Cookie` value did to the jar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The cookie is now in the jar (new or replaced).
    Set,
    /// The cookie was removed (or was absent and stays absent).
    Removed,
}

/// Cookies in creation order (a replaced cookie keeps its place, RFC 6265 §5.3 step 11.3),
/// which is the order a browser sends cookies of equal path length in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    /// Applies one `Set-Cookie` value: `Max-Age` of zero or less removes the cookie (it wins
    /// over `Expires`, RFC 6265 §5.3 step 3); otherwise the cookie is set, empty value
    /// included, as a browser does.
    pub(crate) fn apply(&mut self, set_cookie: &str) -> Result<(String, Applied), JarError> {
        let mut parts = set_cookie.split(';');
        let pair = parts.next().unwrap_or_default();
        let (name, value) = pair.split_once('=').ok_or(JarError::NoPair)?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err(JarError::NoPair);
        }
        let mut max_age = None;
        let mut expires = false;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            let k = k.trim();
            if k.eq_ignore_ascii_case("max-age") {
                max_age = Some(v.trim().parse::<i64>().map_err(|_| JarError::BadMaxAge)?);
            } else if k.eq_ignore_ascii_case("expires") {
                expires = true;
            }
        }
        let removed = match max_age {
            Some(age) => age <= 0,
            None if expires => return Err(JarError::ExpiresOnly),
            None => false,
        };
        let at = self.cookies.iter().position(|(n, _)| n == name);
        if removed {
            if let Some(i) = at {
                self.cookies.remove(i);
            }
            return Ok((name.to_owned(), Applied::Removed));
        }
        match at.and_then(|i| self.cookies.get_mut(i)) {
            Some(slot) => value.clone_into(&mut slot.1),
            None => self.cookies.push((name.to_owned(), value.to_owned())),
        }
        Ok((name.to_owned(), Applied::Set))
    }

    /// The `Cookie` header the browser sends: `a=1; b=2` (empty when the jar is).
    pub(crate) fn header(&self) -> String {
        let mut s = String::new();
        for (n, v) in &self.cookies {
            if !s.is_empty() {
                s.push_str("; ");
            }
            s.push_str(n);
            s.push('=');
            s.push_str(v);
        }
        s
    }

    /// The value of cookie `name`, if the jar holds it.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// How many cookies the jar holds.
    pub(crate) fn len(&self) -> usize {
        self.cookies.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RM: &str = "; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly";

    #[test]
    fn keeps_every_cookie_and_sends_them_back_in_creation_order() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header(), "");
        jar.apply("__Host-tessera=uAAA; Path=/; Secure; HttpOnly; SameSite=Lax")
            .unwrap();
        jar.apply("__Host-tessera-token=eyJ.x.y; Path=/; Secure; HttpOnly")
            .unwrap();
        assert_eq!(
            jar.header(),
            "__Host-tessera=uAAA; __Host-tessera-token=eyJ.x.y"
        );
        // A refreshed token replaces the old one in place.
        let r = jar.apply("__Host-tessera-token=eyJ.new.z; Path=/").unwrap();
        assert_eq!(r, ("__Host-tessera-token".to_owned(), Applied::Set));
        assert_eq!(
            jar.header(),
            "__Host-tessera=uAAA; __Host-tessera-token=eyJ.new.z"
        );
        assert_eq!(jar.get("__Host-tessera-token"), Some("eyJ.new.z"));
        assert_eq!(jar.len(), 2);
    }

    #[test]
    fn a_removal_drops_the_cookie_and_max_age_wins_over_expires() {
        let mut jar = CookieJar::default();
        jar.apply("__Host-tessera-anon=1.k.sealed; Path=/").unwrap();
        jar.apply("__Host-tessera=aBBB; Path=/").unwrap();
        let r = jar.apply(&format!("__Host-tessera-anon={RM}")).unwrap();
        assert_eq!(r.1, Applied::Removed);
        assert_eq!(jar.header(), "__Host-tessera=aBBB");
        // Negative Max-Age removes too, attribute names are case-insensitive, and removing
        // what is not there is no error.
        assert_eq!(
            jar.apply("__Host-tessera=x; max-age=-1").unwrap().1,
            Applied::Removed
        );
        assert_eq!(jar.apply("gone=; MAX-AGE=0").unwrap().1, Applied::Removed);
        assert_eq!(jar.len(), 0);
        // A positive Max-Age (remember-me) keeps the cookie.
        assert_eq!(jar.apply("k=v; Max-Age=600").unwrap().1, Applied::Set);
        assert_eq!(jar.header(), "k=v");
    }

    #[test]
    fn values_it_cannot_judge_are_errors_not_guesses() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.apply("no-pair; Path=/"), Err(JarError::NoPair));
        assert_eq!(jar.apply("=v"), Err(JarError::NoPair));
        assert_eq!(jar.apply("a=b; Max-Age=soon"), Err(JarError::BadMaxAge));
        assert_eq!(
            jar.apply("a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
            Err(JarError::ExpiresOnly)
        );
        assert_eq!(jar.len(), 0);
    }
}
