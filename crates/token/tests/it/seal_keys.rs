//! The sealing keys in the keyring directory: beside the signing keys, mode 0600, loaded,
//! rotated and saved; tampered directories refused.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use tessera_token::seal::{SealKey, SealKeyring, SealPolicy};
use tessera_token::{Error, Keyring, MANIFEST, OsKeySource, RotationPolicy, SEAL_MANIFEST};

use crate::common::NOW;

const DAY: i64 = 86_400;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn policy() -> SealPolicy {
    SealPolicy::default()
        .with_rotate_every(Duration::from_secs(30 * 86_400))
        .with_retention(Duration::from_secs(12 * 3600 + 60))
}

#[test]
fn sealing_keys_live_beside_the_signing_keys_and_survive_rotation_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let (signing, _) = Keyring::load_or_generate_at(
        &keys,
        RotationPolicy::default(),
        NOW,
        &mut OsKeySource::default(),
    )
    .unwrap();
    let (mut ring, created) = SealKeyring::load_or_generate_at(&keys, policy(), NOW).unwrap();
    assert!(created);
    let first = ring.sealing_kid().unwrap().to_owned();
    assert_eq!(mode(&keys.join(format!("{first}.seal"))), 0o600);
    assert_eq!(mode(&keys), 0o700);
    let manifest = std::fs::read_to_string(keys.join(SEAL_MANIFEST)).unwrap();
    assert!(
        manifest.contains(&first) && manifest.contains("created_at"),
        "{manifest}"
    );

    let old = ring.seal("c", "anon", b"old", NOW + 40 * DAY).unwrap();
    assert!(ring.rotate_at(NOW + 30 * DAY).unwrap().changed());
    ring.save(&keys).unwrap();
    let second = ring.sealing_kid().unwrap().to_owned();

    // A restart loads both: the old value opens, new values use the new kid.
    let (loaded, created) = SealKeyring::load_or_generate_at(&keys, policy(), NOW).unwrap();
    assert!(!created);
    assert_eq!(
        loaded.keys().collect::<Vec<_>>(),
        ring.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        loaded.open("c", "anon", &old, NOW + 30 * DAY).unwrap(),
        b"old"
    );
    let new = loaded.seal("c", "anon", b"new", NOW + 40 * DAY).unwrap();
    assert!(new.starts_with(&format!("1.{second}.")), "{new}");

    // Past the retention the old key is dropped and its file deleted.
    assert_eq!(
        ring.rotate_at(NOW + 30 * DAY + 12 * 3600 + 60)
            .unwrap()
            .dropped,
        vec![first.clone()]
    );
    ring.save(&keys).unwrap();
    assert!(!keys.join(format!("{first}.seal")).exists());

    // The signing keyring's files are untouched, and saving it leaves the sealing keys.
    Keyring::load(&keys, RotationPolicy::default()).unwrap();
    signing.save(&keys).unwrap();
    SealKeyring::load(&keys, policy()).unwrap();
    assert!(keys.join(MANIFEST).exists());
}

#[test]
fn readable_or_tampered_sealing_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ring = SealKeyring::generate_at(NOW, policy()).unwrap();
    ring.save(dir.path()).unwrap();
    let kid = ring.sealing_kid().unwrap().to_owned();
    let file = dir.path().join(format!("{kid}.seal"));
    let load = || SealKeyring::load(dir.path(), policy());

    for bad in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = load().unwrap_err();
        assert!(
            matches!(err, Error::InsecureKeyFile { mode, .. } if mode == bad),
            "{bad:o}: {err:?}"
        );
    }
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    load().unwrap();

    // Another key under this kid, a short file, a missing file.
    let good = std::fs::read(&file).unwrap();
    std::fs::write(&file, SealKey::from_bytes([5; 32]).expose_bytes()).unwrap();
    assert_eq!(load().unwrap_err().outcome(), "bad_manifest");
    std::fs::write(&file, &good[..31]).unwrap();
    assert_eq!(load().unwrap_err().outcome(), "bad_manifest");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(load().unwrap_err().outcome(), "key_io");
    std::fs::write(&file, &good).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    load().unwrap();

    let manifest_path = dir.path().join(SEAL_MANIFEST);
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    for bad in [
        manifest.replacen(r#""format": 1"#, r#""format": 2"#, 1),
        manifest.replacen(r#""format": 1"#, r#""format": 1, "format": 1"#, 1),
        manifest.replacen(r#""format": 1"#, r#""format": 1, "extra": 1"#, 1),
        manifest.replacen(&kid, "../../etc/passwd", 1),
        r#"{"format": 1, "keys": []}"#.to_owned(),
        "[]".to_owned(),
    ] {
        std::fs::write(&manifest_path, &bad).unwrap();
        assert_eq!(load().unwrap_err().outcome(), "bad_manifest", "{bad}");
    }
    std::fs::write(&manifest_path, &manifest).unwrap();
    load().unwrap();
}

#[test]
fn debug_shows_key_ids_only() {
    let ring = SealKeyring::new(vec![SealKey::from_bytes([7; 32])]);
    let text = format!("{ring:?}");
    assert!(text.contains(ring.sealing_kid().unwrap()), "{text}");
    assert!(!text.contains("7, 7"), "{text}");
}
