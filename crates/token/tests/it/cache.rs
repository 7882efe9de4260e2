//! `verify_cached_at`: a hit skips only the signature check; every other check runs again.

use std::time::Duration;

use proptest::prelude::*;
use tessera_token::{
    Config, JwsAlgorithm, KeyState, Keyring, NoRevocations, OsKeySource, RevocationList,
    RotationPolicy, SigningKey, VerifiedCache,
};

use crate::common::{ISS, NOW, active_key, claims, config, ring};

fn code<T>(r: &tessera_token::Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    }
}

#[test]
fn a_hit_gives_what_a_full_verification_gives() {
    let ring = ring();
    let token = ring.sign_at(&config(), &claims(), NOW).unwrap();
    let cache = VerifiedCache::new(100);
    let full = ring
        .verify_at(&config(), &token, NOW + 5, &NoRevocations)
        .unwrap();
    let miss = ring
        .verify_cached_at(&config(), &token, NOW + 5, &NoRevocations, &cache)
        .unwrap();
    let hit = ring
        .verify_cached_at(&config(), &token, NOW + 5, &NoRevocations, &cache)
        .unwrap();
    assert_eq!(full, miss);
    assert_eq!(full, hit);
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));
    // Soft expiry is a function of `now`, not of the memo.
    let later = ring
        .verify_cached_at(&config(), &token, NOW + 3600, &NoRevocations, &cache)
        .unwrap();
    assert_eq!(later.outcome(), "soft_expired");
}

#[test]
fn checks_after_the_signature_run_on_every_hit() {
    let mut ring = ring();
    let token = ring.sign_at(&config(), &claims(), NOW).unwrap();
    let cache = VerifiedCache::new(100);
    ring.verify_cached_at(&config(), &token, NOW, &NoRevocations, &cache)
        .unwrap();
    let hit = |ring: &Keyring, config: &Config, now: i64, rev: &RevocationList| {
        code(&ring.verify_cached_at(config, &token, now, rev, &cache))
    };
    let none = RevocationList::default();

    assert_eq!(hit(&ring, &config(), NOW + 4 * 3600 + 60, &none), "expired");
    assert_eq!(hit(&ring, &config(), NOW - 61, &none), "not_yet_valid");
    assert_eq!(
        hit(&ring, &Config::new("https://other.example"), NOW, &none),
        "wrong_issuer"
    );
    assert_eq!(
        hit(&ring, &config().with_audience("wiki"), NOW, &none),
        "wrong_audience"
    );
    assert_eq!(
        hit(&ring, &config().with_typ("JWT"), NOW, &none),
        "wrong_type"
    );
    assert_eq!(
        hit(
            &ring,
            &config().with_algorithms([JwsAlgorithm::Es256]),
            NOW,
            &none
        ),
        "alg_not_allowed"
    );
    assert_eq!(
        hit(
            &ring,
            &config().with_max_lifetime(Duration::from_secs(60)),
            NOW + 600,
            &none
        ),
        "expired"
    );

    let mut by_session = RevocationList::default();
    by_session.revoke_session_at(claims().sid, NOW);
    assert_eq!(hit(&ring, &config(), NOW, &by_session), "revoked");
    let mut by_user = RevocationList::default();
    by_user.revoke_user_before(claims().sub, NOW + 1);
    assert_eq!(hit(&ring, &config(), NOW, &by_user), "revoked");

    // Another keyring without the key: the memo does not vouch for a key it cannot see.
    let other = Keyring::builder(RotationPolicy::default())
        .key(
            SigningKey::ed25519_from_seed(&[9; 32]),
            KeyState::Active,
            NOW - 10,
        )
        .build()
        .unwrap();
    assert_eq!(hit(&other, &config(), NOW, &none), "unknown_kid");
    // Only the key's public half, in a later state: still the same key, still verifies.
    let public = Keyring::builder(RotationPolicy::default())
        .public_key(
            active_key().public_key().clone(),
            KeyState::Retired,
            NOW - 86_400,
            NOW,
        )
        .build()
        .unwrap();
    assert_eq!(hit(&public, &config(), NOW, &none), "ok");

    // The key revoked after the token was memoised.
    ring.revoke_at(active_key().kid(), NOW, &mut OsKeySource::default())
        .unwrap();
    assert_eq!(hit(&ring, &config(), NOW, &none), "key_revoked");

    // Nothing above was a signature check: one miss (the first call), every other a hit.
    let s = cache.stats();
    assert_eq!(s.misses, 1, "{s:?}");
    assert!(s.hits >= 12, "{s:?}");
}

#[test]
fn a_key_not_yet_valid_is_refused_on_a_hit() {
    let key = active_key();
    let signer = Keyring::builder(RotationPolicy::default())
        .key(
            SigningKey::ed25519_from_seed(&crate::common::SEED),
            KeyState::Active,
            NOW - 10,
        )
        .build()
        .unwrap();
    let token = signer.sign_at(&config(), &claims(), NOW).unwrap();
    let cache = VerifiedCache::new(10);
    signer
        .verify_cached_at(&config(), &token, NOW, &NoRevocations, &cache)
        .unwrap();
    let later_key = Keyring::builder(RotationPolicy::default())
        .public_key(key.public_key().clone(), KeyState::Next, NOW + 3600, 0)
        .build()
        .unwrap();
    assert_eq!(
        code(&later_key.verify_cached_at(&config(), &token, NOW, &NoRevocations, &cache)),
        "key_not_yet_valid"
    );
}

#[test]
fn refused_tokens_are_not_memoised() {
    let ring = ring();
    let token = ring.sign_at(&config(), &claims(), NOW).unwrap();
    let cache = VerifiedCache::new(100);
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for _ in 0..3 {
        assert_eq!(
            code(&ring.verify_cached_at(&config(), &tampered, NOW, &NoRevocations, &cache)),
            "bad_signature"
        );
        assert_eq!(
            code(&ring.verify_cached_at(&config(), &token, NOW + 5 * 3600, &NoRevocations, &cache)),
            "expired"
        );
    }
    assert_eq!(cache.stats().entries, 0);
    assert_eq!(
        code(&ring.verify_cached_at(&config(), "", NOW, &NoRevocations, &cache)),
        "malformed"
    );
}

#[test]
fn revocations_are_forgotten_only_after_the_cutoff() {
    let mut list = RevocationList::default();
    list.revoke_session_at("old", NOW - 100);
    list.revoke_session_at("new", NOW);
    list.revoke_session("forever");
    list.revoke_user_before("u-old", NOW - 100);
    list.revoke_user_before("u-new", NOW);
    assert_eq!(list.len(), 5);
    list.retain_since(NOW - 50);
    use tessera_token::Revocations as _;
    assert!(!list.is_session_revoked("old"));
    assert!(list.is_session_revoked("new"));
    assert!(list.is_session_revoked("forever"));
    assert_eq!(list.revoked_before("u-old"), None);
    assert_eq!(list.revoked_before("u-new"), Some(NOW));
    assert_eq!(list.len(), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the token (honest or with a byte changed) and whenever it is checked, the
    /// cached path answers what the full path answers, first time and again.
    #[test]
    fn cached_equals_full(flip in proptest::option::of((0usize..400, 0u8..=255)), dt in -7200i64..20_000) {
        let ring = ring();
        let mut token = ring.sign_at(&config(), &claims(), NOW).unwrap().into_bytes();
        if let Some((i, b)) = flip {
            let i = i % token.len();
            token[i] = b;
        }
        let Ok(token) = String::from_utf8(token) else { return Ok(()); };
        let cache = VerifiedCache::new(8);
        let now = NOW + dt;
        let full = ring.verify_at(&config(), &token, now, &NoRevocations);
        for _ in 0..2 {
            let cached = ring.verify_cached_at(&config(), &token, now, &NoRevocations, &cache);
            prop_assert_eq!(code(&cached), code(&full));
            if let (Ok(a), Ok(b)) = (&cached, &full) {
                prop_assert_eq!(a, b);
            }
        }
        let _ = ISS;
    }
}
