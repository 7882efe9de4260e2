//! Entry points for fuzz targets and their replay as ordinary tests. Not a stable API.

use std::sync::OnceLock;
use std::time::Duration;

use tessera_core::{Handle, SessionKind, Timestamp};
use tessera_token::seal::{SealKey, SealKeyring};

use crate::SessionConfig;
use crate::anonymous::{self, ClientState};
use crate::cookie::{self, Lookup};
use crate::csrf::CsrfKey;

/// The time every fuzzed anonymous cookie is opened at.
pub const ANON_NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);
/// The key of the anonymous-cookie fixture (the corpus' `valid` value is sealed with it).
pub const ANON_KEY: [u8; 32] = [0x5e; 32];

struct AnonFixture {
    ring: SealKeyring,
    config: SessionConfig,
    /// A value the fixture sealed, live at [`ANON_NOW`].
    valid: String,
}

fn anon_fixture() -> &'static AnonFixture {
    static FIXTURE: OnceLock<AnonFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ring = SealKeyring::new(vec![SealKey::from_bytes(ANON_KEY)]);
        let config = SessionConfig::default();
        let valid = ClientState::fresh(&config, ANON_NOW)
            .ok()
            .and_then(|mut s| {
                s.data
                    .insert("form".to_owned(), serde_json::json!({"step": 2}));
                anonymous::seal(
                    &ring,
                    anonymous::DEFAULT_ANON_COOKIE,
                    &s,
                    crate::limits::DEFAULT_COOKIE_BUDGET,
                )
                .ok()
            })
            .unwrap_or_default();
        AnonFixture {
            ring,
            config,
            valid,
        }
    })
}

/// Opens `data` as an anonymous cookie the way the engine does, twice:
///
/// 1. as the cookie's value: must never panic, and whatever opens (only a value sealed with
///    the fixture's key can) must seal and open again to the same state;
/// 2. as edits of a value the fixture sealed (byte pairs: position, new byte; a last odd
///    byte truncates): an altered value must never open, the unaltered one must.
pub fn anon_cookie(data: &[u8]) {
    let f = anon_fixture();
    let name = anonymous::DEFAULT_ANON_COOKIE;
    if let Ok(value) = std::str::from_utf8(data)
        && let Some(state) = anonymous::open(&f.ring, name, value, &f.config, ANON_NOW)
    {
        let again = anonymous::seal(&f.ring, name, &state, crate::limits::MAX_COOKIE_BUDGET)
            .ok()
            .and_then(|v| anonymous::open(&f.ring, name, &v, &f.config, ANON_NOW));
        assert!(
            again.is_some_and(|a| a.data == state.data && a.handle == state.handle),
            "an opened state does not round-trip"
        );
    }
    let mut edited = f.valid.clone().into_bytes();
    let len = edited.len().max(1);
    let mut pairs = data.chunks_exact(2);
    for pair in pairs.by_ref() {
        if let [at, byte] = pair
            && let Some(b) = edited.get_mut(usize::from(*at) * len / 256)
        {
            *b = *byte;
        }
    }
    if let [cut] = pairs.remainder() {
        edited.truncate(usize::from(*cut) * len / 256);
    }
    let Ok(edited) = String::from_utf8(edited) else {
        return;
    };
    let opened = anonymous::open(&f.ring, name, &edited, &f.config, ANON_NOW).is_some();
    if edited == f.valid {
        assert!(opened, "the fixture's own cookie does not open");
    } else {
        assert!(!opened, "an altered sealed cookie opened");
    }
}

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
        let mut opened = 0;
        for input in corpus(env!("CARGO_MANIFEST_DIR"), "anon_cookie").unwrap() {
            super::anon_cookie(&input);
            let f = super::anon_fixture();
            let value = String::from_utf8_lossy(&input);
            let name = crate::anonymous::DEFAULT_ANON_COOKIE;
            opened += usize::from(
                crate::anonymous::open(&f.ring, name, &value, &f.config, super::ANON_NOW).is_some(),
            );
        }
        assert_eq!(
            opened, 1,
            "the corpus holds one valid cookie to mutate from"
        );
    }

    /// Writes the corpus' `valid` value: `cargo test -p tessera --lib
    /// fuzzing::tests::write_anon_corpus -- --ignored` (the fixture seals with a random nonce,
    /// so any run's value is as good as another's).
    #[test]
    #[ignore = "writes a corpus file"]
    fn write_anon_corpus() {
        let path = format!(
            "{}/../../fuzz/corpus/anon_cookie/valid",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::write(path, &super::anon_fixture().valid).unwrap();
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

        #[test]
        fn anon_cookie_never_panics_or_opens_an_altered_value(
            data in proptest::collection::vec(any::<u8>(), 0..64)
        ) {
            super::anon_cookie(&data);
        }

        #[test]
        fn anon_cookie_shaped_input_never_panics(
            parts in proptest::collection::vec("[A-Za-z0-9_-]{0,120}", 0..4)
        ) {
            super::anon_cookie(parts.join(".").as_bytes());
        }
    }
}
