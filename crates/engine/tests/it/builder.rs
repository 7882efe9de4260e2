//! `Engine::builder`: working defaults, keys beside a redb store in `tessera serve`'s layout,
//! a clear error where keys have nowhere to live, and registered metrics.

use std::sync::Arc;

use serde_json::json;
use tessera::csrf::CsrfKey;
use tessera::{Edits, Engine, Error, IfMissing, Login};
use tessera_core::{ManualClock, Timestamp};
use tessera_store_memory::MemoryStore;
use tessera_store_redb::RedbStore;

const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);

fn set(k: &str, v: serde_json::Value) -> Edits {
    let mut e = Edits::default();
    e.set.insert(k.to_owned(), v);
    e
}

fn first_cookie(set_cookie: &[String]) -> String {
    set_cookie[0].split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn keys_beside_a_redb_store_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("sessions.redb");
    let (anon, stored, csrf) = {
        let engine = Engine::builder(RedbStore::open(&path).unwrap())
            .with_clock(Arc::new(ManualClock::new(NOW)))
            .build()
            .unwrap();
        // A client-side anonymous session (sealed cookie) and a stored one with a secret.
        let o = engine
            .update("", &set("cart", json!([1])), NOW)
            .await
            .unwrap();
        let anon = first_cookie(&o.set_cookie);
        let csrf = engine.csrf_token(o.session.as_ref().unwrap(), "form", NOW);
        let mut edits = Edits::default();
        edits.secrets.insert("otp".into(), json!("123"));
        let o = engine
            .login("", Login::for_user("alice"), NOW)
            .await
            .unwrap();
        let stored = first_cookie(&o.set_cookie);
        let _ = engine.update(&stored, &edits, NOW).await.unwrap();
        (anon, stored, csrf)
    };
    // The layout of `tessera serve`'s data directory, private.
    let data = dir.path().join("data");
    assert!(data.join("csrf.key").is_file());
    assert!(data.join("keys").is_dir());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(data.join("csrf.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A new process: the same keys open the old cookie, the CSRF token and the secret.
    let engine = Engine::builder(RedbStore::open(&path).unwrap())
        .with_clock(Arc::new(ManualClock::new(NOW)))
        .build()
        .unwrap();
    let o = engine
        .resolve(&anon, IfMissing::Nothing, NOW)
        .await
        .unwrap();
    assert_eq!(o.session.unwrap().record.data["cart"], json!([1]));
    assert!(engine.check_csrf(&anon, &csrf, "form", NOW).await.unwrap());
    let o = engine
        .resolve(&stored, IfMissing::Nothing, NOW)
        .await
        .unwrap();
    let s = o.session.unwrap();
    assert_eq!(engine.secret(&s, "otp", NOW), Some(json!("123")));
}

#[tokio::test]
async fn a_store_without_a_directory_needs_keys_a_key_dir_or_ephemeral_keys() {
    let err = Engine::builder(MemoryStore::new()).build().unwrap_err();
    assert!(matches!(err, Error::NoKeyDir), "{err:?}");
    assert_eq!(err.code(), "engine-no-key-dir");
    let msg = err.to_string();
    assert!(
        msg.contains("with_key_dir") && msg.contains("ephemeral_keys"),
        "{msg}"
    );

    // A key directory of its own: shared by two engines over different stores.
    let dir = tempfile::tempdir().unwrap();
    let a = Engine::builder(MemoryStore::new())
        .with_key_dir(dir.path())
        .build()
        .unwrap();
    let b = Engine::builder(MemoryStore::new())
        .with_key_dir(dir.path())
        .build()
        .unwrap();
    let o = a.update("", &set("k", json!(1)), NOW).await.unwrap();
    let c = first_cookie(&o.set_cookie);
    let o = b.resolve(&c, IfMissing::Nothing, NOW).await.unwrap();
    assert_eq!(o.session.unwrap().record.data["k"], json!(1));

    // Keys given: no directory needed.
    let seal = tessera::keys::SealKeys::new(tessera_token::seal::SealKeyring::new(vec![
        tessera_token::seal::SealKey::from_bytes([1; 32]),
    ]));
    Engine::builder(MemoryStore::new())
        .with_csrf_key(CsrfKey::from_bytes([2; 32]))
        .with_seal_keys(seal)
        .build()
        .unwrap();
    // Explicitly ephemeral.
    Engine::builder(MemoryStore::new())
        .ephemeral_keys()
        .build()
        .unwrap();
}

#[tokio::test]
async fn the_default_metrics_are_registered_where_the_caller_can_read_them() {
    let engine = Engine::builder(MemoryStore::new())
        .ephemeral_keys()
        .build()
        .unwrap();
    let _ = engine.resolve("", IfMissing::Nothing, NOW).await.unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, engine.registry().unwrap()).unwrap();
    assert!(
        text.contains("tessera_session_operations_total{op=\"resolve\",outcome=\"none\"} 1"),
        "{text}"
    );

    // Metrics registered by the caller: the caller's registry counts, the engine has none.
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = tessera::metrics::Metrics::register(&mut registry);
    let engine = Engine::builder(MemoryStore::new())
        .with_metrics(metrics)
        .ephemeral_keys()
        .build()
        .unwrap();
    assert!(engine.registry().is_none());
    let _ = engine.resolve("", IfMissing::Nothing, NOW).await.unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("op=\"resolve\""), "{text}");
}

#[test]
fn an_inconsistent_configuration_is_refused_at_build() {
    let err = Engine::builder(MemoryStore::new())
        .with_config(
            tessera::SessionConfig::default()
                .with_idle_timeout(std::time::Duration::from_secs(13 * 3600)),
        )
        .ephemeral_keys()
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "engine-config-invalid");
    let err = Engine::builder(MemoryStore::new())
        .with_anonymous_cookie("__Host-tessera")
        .ephemeral_keys()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("own name"), "{err}");
    let err = Engine::builder(MemoryStore::new())
        .with_anonymous_cookie("bad name")
        .ephemeral_keys()
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "engine-cookie-invalid");
}
