//! Entry points for fuzz targets and their replay as ordinary tests. Not a stable API.

use crate::api::{CsrfCheckRequest, LoginRequest, LogoutRequest, ResolveRequest, UpdateRequest};
use crate::config::Config;

/// Parses arbitrary bytes as every request body; must never panic.
pub fn request_body(data: &[u8]) {
    let _ = serde_json::from_slice::<ResolveRequest>(data);
    let _ = serde_json::from_slice::<UpdateRequest>(data);
    let _ = serde_json::from_slice::<LoginRequest>(data);
    let _ = serde_json::from_slice::<LogoutRequest>(data);
    let _ = serde_json::from_slice::<CsrfCheckRequest>(data);
}

/// Parses arbitrary bytes as a TOML configuration; must never panic.
pub fn config_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text, |_| None);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use tessera_core::fuzzing::corpus;

    #[test]
    fn corpora_replay() {
        for input in corpus(env!("CARGO_MANIFEST_DIR"), "request_body").unwrap() {
            super::request_body(&input);
        }
        for input in corpus(env!("CARGO_MANIFEST_DIR"), "config_toml").unwrap() {
            super::config_toml(&input);
        }
    }

    proptest! {
        #[test]
        fn request_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            super::request_body(&data);
        }

        #[test]
        fn config_never_panics(s in "[ -~\n]{0,200}") {
            super::config_toml(s.as_bytes());
        }
    }
}
