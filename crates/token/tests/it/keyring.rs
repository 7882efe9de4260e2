//! Key states, rotation, revocation, the JWKS and the keyring directory.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use tessera_token::{
    Algorithm, Error, ErrorKind, KeyId, KeySource, KeyState, Keyring, MANIFEST, NoRevocations,
    OsKeySource, RotationPolicy, SigningKey,
};

use crate::common::{NOW, claims, config};

const DAY: i64 = 86_400;

fn policy() -> RotationPolicy {
    RotationPolicy::default()
        .with_rotate_every(Duration::from_secs(30 * DAY as u64))
        .with_publish_ahead(Duration::from_secs(DAY as u64))
        .with_max_token_lifetime(Duration::from_secs(4 * 3600))
        .with_skew(Duration::from_secs(60))
}

fn failing() -> impl FnMut(Algorithm) -> tessera_token::Result<SigningKey> {
    |_| {
        Err(Error::KeyGeneration {
            reason: "test: generator down",
        })
    }
}

fn states(ring: &Keyring) -> Vec<(KeyId, KeyState)> {
    ring.keys().map(|k| (k.kid, k.state)).collect()
}

fn sign_at(ring: &Keyring, now: i64) -> String {
    let mut c = claims();
    c.iat = now;
    c.sxp = now + 3600;
    c.exp = now + 4 * 3600;
    ring.sign_at(&config(), &c, now).unwrap()
}

fn verify_code(ring: &Keyring, token: &str, now: i64) -> &'static str {
    match ring.verify_at(&config(), token, now, &NoRevocations) {
        Ok(v) => v.outcome(),
        Err(e) => e.outcome(),
    }
}

#[test]
fn a_full_rotation_cycle() {
    let mut keys = OsKeySource::default();
    let mut ring = Keyring::generate_at(NOW, policy(), &mut keys).unwrap();
    let first = ring.signing_key_at(NOW).unwrap().kid().clone();
    assert_eq!(states(&ring), vec![(first.clone(), KeyState::Active)]);

    // Nothing is due for 29 days.
    let r = ring.rotate_at(NOW + 28 * DAY, &mut keys).unwrap();
    assert!(!r.changed());

    // 29 days in: the next key is pre-published, valid from day 30.
    let r = ring.rotate_at(NOW + 29 * DAY, &mut keys).unwrap();
    let next = r.generated.unwrap();
    let info = ring.keys().find(|k| k.kid == next).unwrap();
    assert_eq!(
        (info.state, info.valid_from),
        (KeyState::Next, NOW + 30 * DAY)
    );
    assert!(ring.jwks(&config()).contains(next.as_str()));
    // The active key still signs; a token from the next key is refused until valid_from.
    assert_eq!(ring.signing_key_at(NOW + 29 * DAY).unwrap().kid(), &first);
    // The last token the old key signs, a minute before the next key takes over.
    let old_token = sign_at(&ring, NOW + 30 * DAY - 60);
    // Running again before valid_from changes nothing.
    assert!(
        !ring
            .rotate_at(NOW + 29 * DAY + 10, &mut keys)
            .unwrap()
            .changed()
    );

    // Day 30: promotion. The old key is retired, keeps verifying, loses its private half.
    let t30 = NOW + 30 * DAY;
    let r = ring.rotate_at(t30, &mut keys).unwrap();
    assert_eq!(r.promoted.as_ref(), Some(&next));
    assert_eq!(r.retired, vec![first.clone()]);
    assert_eq!(ring.signing_key_at(t30).unwrap().kid(), &next);
    let old = ring.keys().find(|k| k.kid == first).unwrap();
    assert_eq!(
        (old.state, old.has_private_key, old.retired_at),
        (KeyState::Retired, false, Some(t30))
    );
    assert_eq!(verify_code(&ring, &old_token, t30), "ok");
    let new_token = sign_at(&ring, t30);
    assert_eq!(verify_code(&ring, &new_token, t30), "ok");

    // Retained for the longest token lifetime plus skew, then dropped.
    let keep = 4 * 3600 + 60;
    assert!(!ring.rotate_at(t30 + keep - 1, &mut keys).unwrap().changed());
    let r = ring.rotate_at(t30 + keep, &mut keys).unwrap();
    assert_eq!(r.dropped, vec![first.clone()]);
    assert!(ring.public_key(&first).is_none());
    // The old token would have expired by then anyway; its kid is now unknown.
    assert_eq!(verify_code(&ring, &old_token, t30 + keep), "unknown_kid");
}

#[test]
fn rotation_survives_key_generation_failure() {
    let mut ring = Keyring::generate_at(NOW, policy(), &mut OsKeySource::default()).unwrap();
    let before = states(&ring);
    let err = ring.rotate_at(NOW + 29 * DAY, &mut failing()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(states(&ring), before, "unchanged on failure");
    // Signing goes on, long past the planned rotation.
    let t = sign_at(&ring, NOW + 40 * DAY);
    assert_eq!(verify_code(&ring, &t, NOW + 40 * DAY), "ok");
    // A later run that can generate catches up.
    let r = ring
        .rotate_at(NOW + 40 * DAY, &mut OsKeySource::default())
        .unwrap();
    let next = ring
        .keys()
        .find(|k| Some(&k.kid) == r.generated.as_ref())
        .unwrap();
    assert_eq!(
        (next.state, next.valid_from),
        (KeyState::Next, NOW + 41 * DAY)
    );
}

#[test]
fn promotion_does_not_need_generation_to_succeed_when_a_next_key_remains() {
    // A next key that is due, and a further one already published: promotion needs no new
    // key, so a failing generator does not block it.
    let a = SigningKey::ed25519_from_seed(&[1; 32]);
    let b = SigningKey::ed25519_from_seed(&[2; 32]);
    let c = SigningKey::ed25519_from_seed(&[3; 32]);
    let (bk, ck) = (b.kid().clone(), c.kid().clone());
    let mut ring = Keyring::builder(policy())
        .key(a, KeyState::Active, NOW - DAY)
        .key(b, KeyState::Next, NOW)
        .key(c, KeyState::Next, NOW + 30 * DAY)
        .build()
        .unwrap();
    let r = ring.rotate_at(NOW, &mut failing()).unwrap();
    assert_eq!(r.promoted, Some(bk.clone()));
    assert_eq!(ring.signing_key_at(NOW).unwrap().kid(), &bk);
    assert_eq!(
        ring.keys().find(|k| k.kid == ck).unwrap().state,
        KeyState::Next
    );
}

#[test]
fn revoking_the_active_key_hands_over_at_once() {
    let mut keys = OsKeySource::default();
    let mut ring = Keyring::generate_at(NOW, policy(), &mut keys).unwrap();
    let first = ring.signing_key_at(NOW).unwrap().kid().clone();
    let token = sign_at(&ring, NOW);
    ring.rotate_at(NOW + 29 * DAY, &mut keys).unwrap();
    let next = ring.keys().find(|k| k.state == KeyState::Next).unwrap().kid;

    let now = NOW + 29 * DAY + 5;
    let r = ring.revoke_at(&first, now, &mut failing()).unwrap();
    assert_eq!(
        r.promoted.as_ref(),
        Some(&next),
        "the published next key takes over"
    );
    assert_eq!(ring.signing_key_at(now).unwrap().kid(), &next);
    let info = ring.keys().find(|k| k.kid == first).unwrap();
    assert_eq!(
        (info.state, info.has_private_key, info.revoked_at),
        (KeyState::Revoked, false, Some(now))
    );
    // The revoked key's tokens fail with their own code; it leaves the JWKS.
    let err = ring
        .verify_at(&config(), &token, now, &NoRevocations)
        .unwrap_err();
    assert_eq!(
        (err.outcome(), err.kind()),
        ("key_revoked", ErrorKind::Revoked)
    );
    assert!(!ring.jwks(&config()).contains(first.as_str()));
    // Revoking again changes nothing; an unknown id is an error.
    assert!(
        !ring
            .revoke_at(&first, now, &mut failing())
            .unwrap()
            .changed()
    );
    let unknown = SigningKey::ed25519_from_seed(&[42; 32]).kid().clone();
    assert_eq!(
        ring.revoke_at(&unknown, now, &mut failing())
            .unwrap_err()
            .outcome(),
        "unknown_kid"
    );
    // Kept for the retention period for diagnostics, then dropped.
    let r = ring.rotate_at(now + 4 * 3600 + 60, &mut keys).unwrap();
    assert!(r.dropped.contains(&first));
}

#[test]
fn revocation_wins_over_availability() {
    let mut ring = Keyring::generate_at(NOW, policy(), &mut OsKeySource::default()).unwrap();
    let kid = ring.signing_key_at(NOW).unwrap().kid().clone();
    // No next key, and the generator is down: the key is revoked all the same.
    let err = ring.revoke_at(&kid, NOW + 10, &mut failing()).unwrap_err();
    assert_eq!(err.outcome(), "key_generation");
    assert_eq!(ring.keys().next().unwrap().state, KeyState::Revoked);
    assert_eq!(
        ring.signing_key_at(NOW + 10).unwrap_err().outcome(),
        "no_signing_key"
    );
    // The next rotation makes an active key at once.
    let r = ring
        .rotate_at(NOW + 20, &mut OsKeySource::default())
        .unwrap();
    let new = r.generated.unwrap();
    assert_eq!(ring.signing_key_at(NOW + 20).unwrap().kid(), &new);
}

#[test]
fn jwks_is_public_newest_first_and_deterministic() {
    let a = SigningKey::ed25519_from_seed(&[1; 32]);
    let b = SigningKey::ed25519_from_seed(&[2; 32]);
    let c = SigningKey::generate(Algorithm::Es256).unwrap();
    let rsa = crate::common::rfc7515_rsa_key();
    let revoked = SigningKey::ed25519_from_seed(&[4; 32]);
    let (ak, bk, ck, rk, vk) = (
        a.kid().clone(),
        b.kid().clone(),
        c.kid().clone(),
        rsa.kid().clone(),
        revoked.kid().clone(),
    );
    let ring = Keyring::builder(policy())
        .key(a, KeyState::Active, NOW)
        .key(b, KeyState::Next, NOW + DAY)
        .public_key(c.public_key().clone(), KeyState::Retired, NOW - DAY, NOW)
        .public_key(
            rsa.public_key().clone(),
            KeyState::Retired,
            NOW - 2 * DAY,
            NOW - DAY,
        )
        .public_key(
            revoked.public_key().clone(),
            KeyState::Revoked,
            NOW - 3 * DAY,
            NOW,
        )
        .build()
        .unwrap();
    let jwks = ring.jwks(&config());
    assert_eq!(jwks, ring.jwks(&config()));
    let v: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    let kids: Vec<_> = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kids,
        vec![
            bk.to_string(),
            ak.to_string(),
            ck.to_string(),
            rk.to_string()
        ]
    );
    assert!(!jwks.contains(vk.as_str()));
    for k in v["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none());
        }
        assert_eq!(k["use"], "sig");
        // Each published key imports back to the same id.
        let back = tessera_token::PublicKey::from_jwk(k.to_string().as_bytes()).unwrap();
        assert_eq!(back.kid().as_str(), k["kid"].as_str().unwrap());
    }
    let first = &v["keys"][0];
    assert_eq!(
        first
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        // serde_json's map is sorted; the text keeps our member order:
        vec!["alg", "crv", "kid", "kty", "use", "x"]
    );
    assert!(jwks.starts_with(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":""#));
    assert!(jwks.contains(r#""kty":"RSA","n":""#));
    assert!(jwks.contains(r#""kty":"EC","crv":"P-256","x":""#));
}

#[test]
fn debug_output_never_shows_key_material() {
    let key = SigningKey::ed25519_from_seed(&crate::common::SEED);
    let der = key.to_pkcs8_der().unwrap();
    let ring = crate::common::ring();
    for text in [format!("{key:?}"), format!("{ring:?}")] {
        assert!(!text.contains(&crate::common::b64(&der)), "{text}");
        assert!(
            !text.contains(&crate::common::b64(&crate::common::SEED)),
            "{text}"
        );
        assert!(!text.contains("[7, 7"), "{text}");
    }
    assert!(format!("{key:?}").contains(key.kid().as_str()));
}

// === the keyring directory ===

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let mut keys = OsKeySource::default();
    let (mut ring, created) =
        Keyring::load_or_generate_at(&keys_dir, policy(), NOW, &mut keys).unwrap();
    assert!(created);
    assert_eq!(mode(&keys_dir), 0o700);
    let active = ring.signing_key_at(NOW).unwrap().kid().clone();
    let key_file = keys_dir.join(format!("{active}.pk8"));
    assert_eq!(mode(&key_file), 0o600);

    ring.rotate_at(NOW + 29 * DAY, &mut keys).unwrap();
    let token = sign_at(&ring, NOW + 30 * DAY - 60);
    ring.rotate_at(NOW + 30 * DAY, &mut keys).unwrap();
    ring.save(&keys_dir).unwrap();
    // The retired key's private file is gone; the manifest has public facts only.
    assert!(!key_file.exists());
    let manifest = std::fs::read_to_string(keys_dir.join(MANIFEST)).unwrap();
    assert!(manifest.contains(r#""state": "retired""#), "{manifest}");
    assert!(!manifest.contains(r#""d""#));

    let (loaded, created) =
        Keyring::load_or_generate_at(&keys_dir, policy(), NOW, &mut keys).unwrap();
    assert!(!created);
    assert_eq!(
        loaded.keys().collect::<Vec<_>>(),
        ring.keys().collect::<Vec<_>>()
    );
    assert_eq!(verify_code(&loaded, &token, NOW + 30 * DAY), "ok");
    let t = sign_at(&loaded, NOW + 30 * DAY);
    assert_eq!(verify_code(&ring, &t, NOW + 30 * DAY), "ok");
    assert_eq!(loaded.jwks(&config()), ring.jwks(&config()));
}

#[test]
fn every_algorithm_persists() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::builder(policy())
        .key(
            SigningKey::generate(Algorithm::Es256).unwrap(),
            KeyState::Active,
            NOW,
        )
        .key(crate::common::rfc7515_rsa_key(), KeyState::Next, NOW + DAY)
        .key(
            SigningKey::ed25519_from_seed(&[1; 32]),
            KeyState::Next,
            NOW + 2 * DAY,
        )
        .build()
        .unwrap();
    ring.save(dir.path()).unwrap();
    let loaded = Keyring::load(dir.path(), policy()).unwrap();
    assert_eq!(
        loaded.keys().collect::<Vec<_>>(),
        ring.keys().collect::<Vec<_>>()
    );
    // Saving again is idempotent.
    loaded.save(dir.path()).unwrap();
    Keyring::load(dir.path(), policy()).unwrap();
}

#[test]
fn group_or_world_readable_private_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ring = crate::common::ring();
    ring.save(dir.path()).unwrap();
    let kid = ring.signing_key_at(NOW).unwrap().kid().clone();
    let file = dir.path().join(format!("{kid}.pk8"));
    for bad in [0o640, 0o604, 0o644, 0o660] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = Keyring::load(dir.path(), policy()).unwrap_err();
        assert!(
            matches!(err, Error::InsecureKeyFile { mode, .. } if mode == bad),
            "{bad:o}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    Keyring::load(dir.path(), policy()).unwrap();
}

#[test]
fn tampered_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ring = crate::common::ring();
    ring.save(dir.path()).unwrap();
    let kid = ring.signing_key_at(NOW).unwrap().kid().clone();
    let manifest_path = dir.path().join(MANIFEST);
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let key_path = dir.path().join(format!("{kid}.pk8"));

    let load = || Keyring::load(dir.path(), policy());
    let write = |text: &str| std::fs::write(&manifest_path, text).unwrap();

    // A swapped private key file.
    let other = SigningKey::ed25519_from_seed(&[9; 32])
        .to_pkcs8_der()
        .unwrap();
    std::fs::write(&key_path, &*other).unwrap();
    assert_eq!(load().unwrap_err().outcome(), "bad_manifest");
    std::fs::write(
        &key_path,
        &*ring.signing_key_at(NOW).unwrap().to_pkcs8_der().unwrap(),
    )
    .unwrap();
    load().unwrap();

    // A missing private key file.
    std::fs::rename(&key_path, dir.path().join("moved")).unwrap();
    assert_eq!(load().unwrap_err().outcome(), "key_io");
    std::fs::rename(dir.path().join("moved"), &key_path).unwrap();

    // A weak public key smuggled into the manifest, as a retired key.
    let weak = r#"{"kid":"AAAAAAAAAAAAAAAA","alg":"Ed25519","state":"retired","valid_from":0,"retired_at":0,"jwk":{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}"#;
    write(&manifest.replacen(r#""keys": ["#, &format!(r#""keys": [{weak},"#), 1));
    assert_eq!(load().unwrap_err().outcome(), "weak_key");

    // Other refusals: duplicate members, unknown fields, another format, kid mismatch.
    for bad in [
        manifest.replacen(r#""format": 1"#, r#""format": 1, "format": 1"#, 1),
        manifest.replacen(r#""format": 1"#, r#""format": 2"#, 1),
        manifest.replacen(r#""format": 1"#, r#""format": 1, "extra": true"#, 1),
        manifest.replacen(
            &format!(r#""kid": "{kid}""#),
            r#""kid": "AAAAAAAAAAAAAAAA""#,
            1,
        ),
        manifest.replacen(r#""alg": "Ed25519""#, r#""alg": "ES256""#, 1),
        "[]".to_owned(),
    ] {
        write(&bad);
        let err = load().unwrap_err();
        assert!(
            matches!(err.outcome(), "bad_manifest" | "invalid_key"),
            "{bad}: {err:?}"
        );
    }
    write(&manifest);
    load().unwrap();
}

/// A generator that counts, for the rotation property test.
pub(crate) struct Counting(u32);

impl KeySource for Counting {
    fn generate(&mut self, _: Algorithm) -> tessera_token::Result<SigningKey> {
        self.0 += 1;
        let mut seed = [0xaa; 32];
        seed[..4].copy_from_slice(&self.0.to_le_bytes());
        Ok(SigningKey::ed25519_from_seed(&seed))
    }
}

pub(crate) fn counting() -> Counting {
    Counting(0)
}

#[test]
fn a_verify_only_keyring_from_a_published_jwks() {
    use tessera_token::NoRevocations;
    let mut signer = crate::common::ring();
    let config = config();
    // A pre-published next key is in the set too.
    let t = NOW + 28 * 86_400 + 3600;
    let r = signer.rotate_at(t, &mut OsKeySource::default()).unwrap();
    assert!(r.generated.is_some());
    let jwks = signer.jwks(&config);
    let (edge, skipped) = Keyring::from_jwks(jwks.as_bytes()).unwrap();
    assert_eq!(skipped, 0);
    assert_eq!(edge.keys().count(), 2);
    assert!(edge.signing_key_at(t).is_err());
    let claims =
        tessera_token::Claims::new(crate::common::ISS, "alice", "s", "j", t, t + 60, t + 120);
    let token = signer.sign_at(&config, &claims, t).unwrap();
    assert_eq!(
        edge.verify_at(&config, &token, t, &NoRevocations)
            .unwrap()
            .claims,
        claims.into()
    );

    // Keys for other uses are skipped; broken sets and keys are refused.
    let mixed = format!(
        r#"{{"keys":[{{"kty":"oct","k":"c2VjcmV0"}},{{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}},{{"kty":"OKP","crv":"Ed25519","use":"enc","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}},{}]}}"#,
        &jwks[9..jwks.len() - 2]
    );
    // The `k` member is private: a set that carries one is refused, not skipped.
    assert!(Keyring::from_jwks(mixed.as_bytes()).is_err());
    let mixed = mixed.replace(r#"{"kty":"oct","k":"c2VjcmV0"},"#, "");
    let (ring, skipped) = Keyring::from_jwks(mixed.as_bytes()).unwrap();
    assert_eq!((ring.keys().count(), skipped), (signer.keys().count(), 2));
    for bad in [
        "",
        "[]",
        r#"{"keys":{}}"#,
        r#"{"keys":[1]}"#,
        r#"{"keys":[],"keys":[]}"#,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA"}]}"#,
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"not-the-thumbprint"}]}"#,
    ] {
        assert!(Keyring::from_jwks(bad.as_bytes()).is_err(), "{bad}");
    }
    let twice = format!(r#"{{"keys":[{k},{k}]}}"#, k = &jwks[9..jwks.len() - 2]);
    assert!(Keyring::from_jwks(twice.as_bytes()).is_err());
}

#[test]
fn a_forced_rotation_publishes_first_and_promotes_on_schedule() {
    let mut keys = OsKeySource::default();
    let mut ring = Keyring::generate_at(NOW, policy(), &mut keys).unwrap();
    let first = ring.signing_key_at(NOW).unwrap().kid().clone();
    let t = NOW + 3 * DAY;

    // A failing generator leaves the keyring as it was.
    let before = states(&ring);
    assert_eq!(
        ring.publish_next_at(t, &mut failing())
            .unwrap_err()
            .outcome(),
        "key_generation"
    );
    assert_eq!(states(&ring), before);

    // Long before the schedule would, a next key is published a day ahead.
    let r = ring.publish_next_at(t, &mut keys).unwrap();
    let next = r.generated.clone().unwrap();
    assert!(r.changed() && r.promoted.is_none());
    let info = ring.keys().find(|k| k.kid == next).unwrap();
    assert_eq!((info.state, info.valid_from), (KeyState::Next, t + DAY));
    assert!(ring.jwks(&config()).contains(next.as_str()));
    assert_eq!(ring.signing_key_at(t).unwrap().kid(), &first);
    // Asking again while it is pending changes nothing, and needs no generator.
    assert!(
        !ring
            .publish_next_at(t + 60, &mut failing())
            .unwrap()
            .changed()
    );
    // The schedule does not add another one either.
    assert!(!ring.rotate_at(t + 60, &mut failing()).unwrap().changed());

    // At its valid_from the schedule promotes it and retires the old key, which still
    // verifies its tokens.
    let old_token = sign_at(&ring, t + DAY - 60);
    let r = ring.rotate_at(t + DAY, &mut failing()).unwrap();
    assert_eq!((r.promoted, r.retired), (Some(next.clone()), vec![first]));
    assert_eq!(ring.signing_key_at(t + DAY).unwrap().kid(), &next);
    assert_eq!(verify_code(&ring, &old_token, t + DAY), "ok");
    // The next scheduled rotation counts from the promoted key (meanwhile the retired key
    // is dropped when its retention ends).
    let r = ring.rotate_at(t + 28 * DAY, &mut failing()).unwrap();
    assert!(r.generated.is_none() && r.dropped.len() == 1, "{r:?}");
    let r = ring.rotate_at(t + 30 * DAY, &mut keys).unwrap();
    let third = r.generated.unwrap();
    assert_eq!(
        ring.keys().find(|k| k.kid == third).unwrap().valid_from,
        t + 31 * DAY
    );
}

#[test]
fn promoting_the_next_key_by_hand_signs_with_it_at_once() {
    let mut keys = OsKeySource::default();
    let mut ring = Keyring::generate_at(NOW, policy(), &mut keys).unwrap();
    let first = ring.signing_key_at(NOW).unwrap().kid().clone();
    // Without a next key there is nothing to promote.
    let r = ring.promote_next_at(NOW + 10);
    assert!(!r.changed() && r.promoted.is_none());

    let old_token = sign_at(&ring, NOW + 10);
    let next = ring
        .publish_next_at(NOW + 10, &mut keys)
        .unwrap()
        .generated
        .unwrap();
    let now = NOW + 20;
    let r = ring.promote_next_at(now);
    assert_eq!(
        (r.promoted, r.retired),
        (Some(next.clone()), vec![first.clone()])
    );
    assert_eq!(ring.signing_key_at(now).unwrap().kid(), &next);
    let promoted = ring.keys().find(|k| k.kid == next).unwrap();
    assert_eq!(
        (promoted.state, promoted.valid_from),
        (KeyState::Active, now)
    );
    let retired = ring.keys().find(|k| k.kid == first).unwrap();
    assert_eq!(
        (retired.state, retired.has_private_key, retired.retired_at),
        (KeyState::Retired, false, Some(now))
    );
    // Old tokens verify with the retired key, new ones with the promoted key.
    assert_eq!(verify_code(&ring, &old_token, now), "ok");
    let new_token = sign_at(&ring, now);
    assert_eq!(verify_code(&ring, &new_token, now), "ok");
    // The schedule agrees with the result: nothing to do.
    assert!(!ring.rotate_at(now + 60, &mut failing()).unwrap().changed());
}

#[test]
fn promotion_by_hand_takes_the_next_key_due_first() {
    let a = SigningKey::ed25519_from_seed(&[1; 32]);
    let b = SigningKey::ed25519_from_seed(&[2; 32]);
    let c = SigningKey::ed25519_from_seed(&[3; 32]);
    let (ak, bk, ck) = (a.kid().clone(), b.kid().clone(), c.kid().clone());
    let mut ring = Keyring::builder(policy())
        .key(a, KeyState::Active, NOW - DAY)
        .key(b, KeyState::Next, NOW + DAY)
        .key(c, KeyState::Next, NOW + 30 * DAY)
        .build()
        .unwrap();
    let r = ring.promote_next_at(NOW);
    assert_eq!((r.promoted, r.retired), (Some(bk.clone()), vec![ak]));
    assert_eq!(ring.signing_key_at(NOW).unwrap().kid(), &bk);
    assert_eq!(
        ring.keys().find(|k| k.kid == ck).unwrap().state,
        KeyState::Next
    );
    // The later key is promoted by the schedule when it is due, retiring this one.
    let r = ring.rotate_at(NOW + 30 * DAY, &mut failing()).unwrap();
    assert_eq!((r.promoted, r.retired), (Some(ck), vec![bk]));
}

#[test]
fn the_directory_lock_is_exclusive_and_survives_saves() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let lock = Keyring::lock_dir(&keys_dir).unwrap();
    assert_eq!(mode(&keys_dir), 0o700);
    let lock_file = keys_dir.join(tessera_token::LOCK_FILE);
    assert_eq!(mode(&lock_file), 0o600);
    // Another open file description cannot take it while the guard lives.
    let other = std::fs::File::open(&lock_file).unwrap();
    assert!(matches!(
        other.try_lock(),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    let ring = crate::common::ring();
    ring.save(&keys_dir).unwrap();
    assert!(lock_file.exists(), "save keeps the lock file");
    drop(lock);
    other.try_lock().unwrap();
    other.unlock().unwrap();
    // Taking it again works (the directory and the file exist now).
    drop(Keyring::lock_dir(&keys_dir).unwrap());
    Keyring::load(&keys_dir, policy()).unwrap();
}

#[test]
fn the_manifest_version_tells_when_another_process_changed_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Keyring::manifest_version(dir.path()).unwrap(), None);
    let mut keys = OsKeySource::default();
    let mut ring = Keyring::generate_at(NOW, policy(), &mut keys).unwrap();
    ring.save(dir.path()).unwrap();
    let (_, v1) = Keyring::load_versioned(dir.path(), policy()).unwrap();
    assert_eq!(Keyring::manifest_version(dir.path()).unwrap(), Some(v1));
    // Saving the same keys again is the same version.
    ring.save(dir.path()).unwrap();
    assert_eq!(Keyring::manifest_version(dir.path()).unwrap(), Some(v1));
    ring.publish_next_at(NOW, &mut keys).unwrap();
    ring.save(dir.path()).unwrap();
    let v2 = Keyring::manifest_version(dir.path()).unwrap().unwrap();
    assert_ne!(v1, v2);
    assert!(format!("{v2:?}").starts_with("ManifestVersion("));
}
