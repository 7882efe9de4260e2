//! Entry points for fuzz targets and their replay as ordinary tests. Not a stable API.

use std::sync::OnceLock;

use crate::{
    Config, Error, JwsAlgorithm, KeyState, Keyring, PublicKey, RevocationList, RotationPolicy,
    SigningKey, Verified,
};

/// The time every fuzzed token is verified at.
pub const NOW: i64 = 1_800_000_000;

/// The seed of the fixture's active Ed25519 key: RFC 8037 Appendix A.1's private key.
pub const ED25519_SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xae, 0x7f, 0x60, 0x29, 0x60, 0x1c,
];

// RFC 7515 Appendix A.3 (ES256) and A.2 (RS256) public keys, verify-only in the fixture.
const ES256_JWK: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
const RS256_JWK: &str = r#"{"kty":"RSA","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"}"#;

/// The keyring and config every fuzzed token meets: an active Ed25519 key, a `next` key
/// not yet valid, a revoked key, and retired ES256 and RS256 keys; every algorithm allowed.
pub fn fixture() -> &'static (Keyring, Config) {
    static FIXTURE: OnceLock<(Keyring, Config)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut b = Keyring::builder(RotationPolicy::default())
            .key(
                SigningKey::ed25519_from_seed(&ED25519_SEED),
                KeyState::Active,
                NOW - 86_400,
            )
            .key(
                SigningKey::ed25519_from_seed(&[2; 32]),
                KeyState::Next,
                NOW + 86_400,
            )
            .public_key(
                SigningKey::ed25519_from_seed(&[3; 32]).public_key().clone(),
                KeyState::Revoked,
                NOW - 2 * 86_400,
                NOW - 3600,
            );
        for jwk in [ES256_JWK, RS256_JWK] {
            if let Ok(pk) = PublicKey::from_jwk(jwk.as_bytes()) {
                b = b.public_key(pk, KeyState::Retired, NOW - 2 * 86_400, NOW - 60);
            }
        }
        // The fixture's keys are fixed and distinct: building cannot fail.
        #[allow(clippy::expect_used)]
        let ring = b.build().expect("fixture keyring");
        let config = Config::new("https://wiki.example").with_algorithms(JwsAlgorithm::ALL);
        (ring, config)
    })
}

/// Verifies `data` as a token against [`fixture`] (and parses it as a JWK); must never
/// panic, and whatever verifies must survive a sign/verify round trip of its claims.
pub fn verify_bytes(data: &[u8]) {
    let (ring, config) = fixture();
    let _ = PublicKey::from_jwk(data);
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let mut revoked = RevocationList::default();
    revoked.revoke_session("revoked-sid");
    let full = ring.verify_at(config, token, NOW, &revoked);
    // The memo must never change an outcome, on a miss or on a hit.
    let cache = crate::VerifiedCache::new(4);
    for _ in 0..2 {
        let cached = ring.verify_cached_at(config, token, NOW, &revoked, &cache);
        assert_eq!(
            cached
                .as_ref()
                .map_err(Error::outcome)
                .map(Verified::outcome),
            full.as_ref().map_err(Error::outcome).map(Verified::outcome),
            "the verified-token cache changed an outcome"
        );
    }
    match full {
        Ok(v) => {
            let again = ring
                .sign_at(config, &v.claims, NOW)
                .and_then(|t| ring.verify_at(config, &t, NOW, &revoked));
            if let Ok(again) = again {
                assert_eq!(again.claims, v.claims, "claims changed in a round trip");
            }
        }
        Err(e) => {
            let _ = (e.code(), e.outcome(), e.kind(), e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// Every file of `fuzz/corpus/<target>/`, so CI replays what fuzzing found.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = format!("{}/../../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert!(!files.is_empty(), "empty corpus {dir}");
        files
    }

    #[test]
    fn token_verify_corpus_replays() {
        for input in corpus("token_verify") {
            super::verify_bytes(&input);
        }
    }

    proptest! {
        #[test]
        fn verify_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            super::verify_bytes(&data);
        }

        #[test]
        fn verify_never_panics_on_token_shaped_input(
            parts in proptest::collection::vec("[A-Za-z0-9_=+/-]{0,80}", 0..6)
        ) {
            super::verify_bytes(parts.join(".").as_bytes());
        }
    }
}
