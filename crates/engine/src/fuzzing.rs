//! Entry points for fuzz targets and their replay as ordinary tests. Not a stable API.

use std::time::Duration;

use tessera_core::{Handle, SessionKind, Timestamp};

use crate::cookie::{self, Lookup};
use crate::csrf::CsrfKey;

/// Reads a `Cookie` header the way the engine does; must never panic, and a found value must
/// be a substring of the header.
pub fn cookie_header(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["__Host-tessera", "tessera", "a", ""] {
        if let Lookup::Found(v) = cookie::find(header, name) {
            assert!(header.contains(v), "found value is not from the header");
            let _ = v.parse::<Handle>();
        }
    }
}

/// Checks an arbitrary CSRF token; must never panic, and never accept a token it did not issue.
pub fn csrf_token(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let key = CsrfKey::from_bytes([7; 32]);
    let Ok(h) = Handle::generate(SessionKind::Anonymous) else {
        return;
    };
    let now = Timestamp::from_unix_secs(1_800_000_000);
    let ok = key.verify(
        token,
        "default",
        &h.store_key(),
        Duration::from_secs(3600),
        now,
    );
    assert!(!ok, "accepted a forged CSRF token");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use tessera_core::fuzzing::corpus;

    #[test]
    fn corpora_replay() {
        for input in corpus(env!("CARGO_MANIFEST_DIR"), "cookie_header").unwrap() {
            super::cookie_header(&input);
        }
        for input in corpus(env!("CARGO_MANIFEST_DIR"), "csrf_token").unwrap() {
            super::csrf_token(&input);
        }
    }

    proptest! {
        #[test]
        fn cookie_header_never_panics(s in "[ -~]{0,200}") {
            super::cookie_header(s.as_bytes());
        }

        #[test]
        fn csrf_token_never_panics_or_accepts(s in "[A-Za-z0-9_=+/-]{0,80}") {
            super::csrf_token(s.as_bytes());
        }
    }
}
