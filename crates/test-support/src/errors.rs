//! Checks of error types: their codes, and what their messages show.

use std::collections::BTreeSet;

/// Checks an error type's codes (the convention of every Tessera error type): `codes` (its
/// `CODES`) has no duplicate, every code is kebab-case (`[a-z0-9]+(-[a-z0-9]+)*`), and the
/// codes `returned` by one value of each variant are exactly `codes`.
///
/// # Panics
///
/// On the first rule broken, naming the code.
pub fn assert_error_codes<'a>(codes: &[&str], returned: impl IntoIterator<Item = &'a str>) {
    let listed: BTreeSet<&str> = codes.iter().copied().collect();
    assert_eq!(
        listed.len(),
        codes.len(),
        "CODES has a duplicate: {codes:?}"
    );
    for code in codes {
        let kebab = !code.is_empty()
            && code.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        assert!(kebab, "{code:?} is not kebab-case");
    }
    let returned: BTreeSet<&str> = returned.into_iter().collect();
    for code in &returned {
        assert!(
            listed.contains(code),
            "{code:?} is returned but not in CODES"
        );
    }
    for code in &listed {
        assert!(
            returned.contains(code),
            "{code:?} is in CODES but no variant listed returns it"
        );
    }
}

/// `err` and every error in its source chain, each as `Display` then `Debug`: what a log
/// line could show of it.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut shown = String::new();
    let mut next = Some(err);
    while let Some(e) = next {
        if !shown.is_empty() {
            shown.push(' ');
        }
        shown.push_str(&format!("{e} {e:?}"));
        next = e.source();
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_codes_pass() {
        assert_error_codes(&["store-conflict", "a1-b2"], ["a1-b2", "store-conflict"]);
    }

    #[test]
    #[should_panic(expected = "duplicate")]
    fn duplicates_fail() {
        assert_error_codes(&["a", "a"], ["a"]);
    }

    #[test]
    #[should_panic(expected = "kebab")]
    fn other_spellings_fail() {
        assert_error_codes(&["store.conflict"], ["store.conflict"]);
    }

    #[test]
    #[should_panic(expected = "not in CODES")]
    fn unlisted_codes_fail() {
        assert_error_codes(&["a"], ["a", "b"]);
    }

    #[test]
    #[should_panic(expected = "no variant")]
    fn stale_codes_fail() {
        assert_error_codes(&["a", "b"], ["a"]);
    }

    #[test]
    fn the_chain_shows_every_source() {
        let io = std::io::Error::other("inner cause");
        let outer = std::io::Error::new(std::io::ErrorKind::NotFound, io);
        let shown = error_chain(&outer);
        assert!(shown.contains("inner cause"), "{shown}");
    }
}
