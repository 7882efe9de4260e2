use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_core::{BlobStore as _, SessionKind, SessionStore};
use tessera_store_memory::MemoryStore;
use tessera_token::OsKeySource;

use super::record::Envelope;
use super::*;

const T0: i64 = 1_800_000_000;

fn policies() -> StoredPolicies {
    StoredPolicies {
        tokens: RotationPolicy::default(),
        seal: SealPolicy::default(),
        csrf: CsrfPolicy::default(),
    }
}

fn vault(store: &Arc<MemoryStore>, master: u8) -> KeyVault {
    let store: Arc<dyn SessionStore> = store.clone();
    KeyVault::new(store, MasterKey::from_bytes([master; 32])).unwrap()
}

async fn raw(store: &MemoryStore) -> tessera_core::Blob {
    store.blob_get(KEYS_BLOB).await.unwrap().unwrap()
}

fn jwks(k: &StoredKeys) -> String {
    k.tokens.jwks(&tessera_token::Config::new("tessera"))
}

#[tokio::test]
async fn keys_are_created_once_and_every_node_reads_the_same() {
    let store = Arc::new(MemoryStore::new());
    let (first, created) = vault(&store, 1)
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.version, 1);
    let (again, created) = vault(&store, 1)
        .load_or_create(&policies(), T0 + 5, &mut OsKeySource::default())
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.version, 1);
    assert_eq!(jwks(&first), jwks(&again));
    assert_eq!(first.seal.sealing_kid(), again.seal.sealing_kid());
    let sealed = first.seal.seal("c", "p", b"hello", T0 + 60).unwrap();
    assert_eq!(again.seal.open("c", "p", &sealed, T0).unwrap(), b"hello");
    let s = tessera_core::Handle::generate(SessionKind::Anonymous)
        .unwrap()
        .store_key();
    assert_eq!(first.sid.sid(&s), again.sid.sid(&s));
    assert_eq!(first.csrf.issuing_kid(T0), again.csrf.issuing_kid(T0));
    // A token signed from one copy verifies with the other.
    let signing = first.tokens.signing_key_at(T0).unwrap().kid().clone();
    assert_eq!(again.tokens.signing_key_at(T0).unwrap().kid(), &signing);
}

#[tokio::test]
async fn nodes_starting_together_agree_on_one_set_of_keys() {
    let store = Arc::new(MemoryStore::new());
    let mut tasks = vec![];
    for _ in 0..6 {
        let v = vault(&store, 1);
        tasks.push(tokio::spawn(async move {
            v.load_or_create(&policies(), T0, &mut OsKeySource::default())
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    let mut sets = vec![];
    for t in tasks {
        let (k, c) = t.await.unwrap();
        created += usize::from(c);
        assert_eq!(k.version, 1);
        sets.push(jwks(&k));
    }
    assert_eq!(created, 1);
    assert!(sets.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn the_store_never_holds_a_secret_in_clear() {
    let store = Arc::new(MemoryStore::new());
    let (k, _) = vault(&store, 1)
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap();
    let blob = raw(&store).await;
    let text = String::from_utf8(blob.value.clone()).unwrap();
    let mut secrets: Vec<Vec<u8>> = vec![k.sid.expose_bytes().to_vec()];
    for (ck, _) in k.csrf.secret_keys() {
        secrets.push(ck.expose_bytes().to_vec());
    }
    for (sk, _) in k.seal.secret_keys() {
        secrets.push(sk.expose_bytes().to_vec());
    }
    for sk in k.tokens.secret_keys() {
        secrets.push(sk.to_pkcs8_der().unwrap().to_vec());
    }
    assert_eq!(secrets.len(), 4);
    for secret in &secrets {
        let b64 = URL_SAFE_NO_PAD.encode(secret);
        assert!(!text.contains(&b64), "a secret in base64url in the store");
        assert!(
            !blob
                .value
                .windows(secret.len())
                .any(|w| w == secret.as_slice()),
            "a secret's bytes in the store"
        );
    }
    // Not even the public manifest: the record is ciphertext and an envelope.
    let kid = k.tokens.signing_key_at(T0).unwrap().kid().to_string();
    assert!(!text.contains(&kid), "{text}");
    let envelope: Value = serde_json::from_str(&text).unwrap();
    let mut fields: Vec<&str> = envelope
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["ciphertext", "format", "kek", "kind", "nonce"]);
}

#[tokio::test]
async fn an_altered_or_replayed_record_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let v = vault(&store, 1);
    let (k, _) = v
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap();
    let v1 = raw(&store).await;
    // A rotation writes version 2.
    assert_eq!(v.write(1, &k).await.unwrap(), 2);
    // Replaying version 1's bytes (keys rotated away) as version 3 is refused.
    assert_eq!(store.blob_put(KEYS_BLOB, 2, &v1.value).await.unwrap(), 3);
    let err = v.load(&policies()).await.unwrap_err();
    assert!(
        matches!(err, StoredKeysError::Tampered { version: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "keys-record-tampered");
    assert!(err.to_string().contains("altered or replayed"), "{err}");
    // One flipped bit of ciphertext is refused.
    let mut env: Envelope = serde_json::from_slice(&v1.value).unwrap();
    let mut ct = URL_SAFE_NO_PAD.decode(&env.ciphertext).unwrap();
    ct[10] ^= 1;
    env.ciphertext = URL_SAFE_NO_PAD.encode(ct);
    store
        .blob_put(KEYS_BLOB, 3, &serde_json::to_vec(&env).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        v.load(&policies()).await.unwrap_err(),
        StoredKeysError::Tampered { .. }
    ));
    // Garbage is refused too, and a node starting on it does not overwrite it.
    store.blob_put(KEYS_BLOB, 4, b"not json").await.unwrap();
    assert!(matches!(
        v.load_or_create(&policies(), T0, &mut OsKeySource::default())
            .await
            .unwrap_err(),
        StoredKeysError::Tampered { version: 5, .. }
    ));
    assert_eq!(raw(&store).await.value, b"not json");
    // A record moved under another name does not open either.
    let sealed = seal_record(&MasterKey::from_bytes([1; 32]), "other", 1, b"{}").unwrap();
    assert!(matches!(
        open_record(&MasterKey::from_bytes([1; 32]), KEYS_BLOB, 1, &sealed),
        Err(StoredKeysError::Tampered { .. })
    ));
}

#[tokio::test]
async fn a_wrong_master_key_is_named_and_never_overwrites() {
    let store = Arc::new(MemoryStore::new());
    vault(&store, 1)
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap();
    let before = raw(&store).await;
    let err = vault(&store, 2)
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap_err();
    let StoredKeysError::WrongMasterKey { stored, given } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(stored, MasterKey::from_bytes([1; 32]).id());
    assert_eq!(given, MasterKey::from_bytes([2; 32]).id());
    assert_ne!(stored, given);
    assert_eq!(err.code(), "keys-wrong-master-key");
    assert!(err.to_string().contains("left unchanged"), "{err}");
    assert_eq!(raw(&store).await, before);
}

#[tokio::test]
async fn writes_are_compare_and_set() {
    let store = Arc::new(MemoryStore::new());
    let v = vault(&store, 1);
    let (k, _) = v
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap();
    assert_eq!(v.write(1, &k).await.unwrap(), 2);
    let err = v.write(1, &k).await.unwrap_err();
    assert!(
        matches!(err, StoredKeysError::Store(tessera_core::Error::Conflict)),
        "{err:?}"
    );
    assert_eq!(v.version().await.unwrap(), 2);
    assert_eq!(v.load(&policies()).await.unwrap().unwrap().version, 2);
}

#[tokio::test]
async fn a_store_without_blobs_is_named() {
    #[derive(Debug)]
    struct NoBlobs(MemoryStore);
    #[async_trait::async_trait]
    impl SessionStore for NoBlobs {
        fn backend(&self) -> &'static str {
            "plain"
        }
        async fn create(
            &self,
            k: &tessera_core::StoreKey,
            r: &tessera_core::SessionRecord,
        ) -> tessera_core::Result<()> {
            self.0.create(k, r).await
        }
        async fn load(
            &self,
            k: &tessera_core::StoreKey,
            now: tessera_core::Timestamp,
        ) -> tessera_core::Result<Option<tessera_core::SessionRecord>> {
            self.0.load(k, now).await
        }
        async fn save(
            &self,
            k: &tessera_core::StoreKey,
            e: u64,
            r: &tessera_core::SessionRecord,
            now: tessera_core::Timestamp,
        ) -> tessera_core::Result<()> {
            self.0.save(k, e, r, now).await
        }
        async fn delete(
            &self,
            k: &tessera_core::StoreKey,
            t: tessera_core::Timestamp,
        ) -> tessera_core::Result<()> {
            self.0.delete(k, t).await
        }
        async fn list_user_sessions(
            &self,
            u: &str,
            now: tessera_core::Timestamp,
        ) -> tessera_core::Result<Vec<(tessera_core::StoreKey, tessera_core::SessionRecord)>>
        {
            self.0.list_user_sessions(u, now).await
        }
        async fn revoke_user(
            &self,
            u: &str,
            at: tessera_core::Timestamp,
        ) -> tessera_core::Result<()> {
            self.0.revoke_user(u, at).await
        }
        async fn user_revoked_at(
            &self,
            u: &str,
        ) -> tessera_core::Result<Option<tessera_core::Timestamp>> {
            self.0.user_revoked_at(u).await
        }
        async fn purge_expired(&self, now: tessera_core::Timestamp) -> tessera_core::Result<u64> {
            self.0.purge_expired(now).await
        }
    }
    let err = KeyVault::new(
        Arc::new(NoBlobs(MemoryStore::new())),
        MasterKey::from_bytes([1; 32]),
    )
    .unwrap_err();
    assert_eq!(err.code(), "keys-store-unsupported");
}

#[test]
fn the_master_key_file_follows_the_key_file_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let err = MasterKey::load(&path).unwrap_err();
    assert_eq!(err.code(), "key-file-io");
    let (key, text) = MasterKey::generate().unwrap();
    std::fs::write(&path, text.as_bytes()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = MasterKey::load(&path).unwrap_err();
    assert_eq!(err.code(), "key-file-invalid");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(MasterKey::load(&path).unwrap().id(), key.id());
    std::fs::write(&path, "c2hvcnQ\n").unwrap();
    let err = MasterKey::load(&path).unwrap_err();
    assert!(err.to_string().contains("32 random bytes"), "{err}");
    assert_eq!(
        format!("{key:?}"),
        format!("MasterKey {{ id: {:?}, .. }}", key.id())
    );
}

#[test]
fn codes_are_listed_and_unique() {
    let all = [
        StoredKeysError::Unsupported { backend: "x" },
        StoredKeysError::Store(tessera_core::Error::Conflict),
        StoredKeysError::WrongMasterKey {
            stored: String::new(),
            given: String::new(),
        },
        StoredKeysError::Tampered {
            name: KEYS_BLOB,
            version: 1,
        },
        invalid("x"),
        keyring_error(tessera_token::Error::NoSigningKey),
        StoredKeysError::Random(getrandom::Error::UNSUPPORTED),
    ];
    for e in &all {
        assert!(StoredKeysError::CODES.contains(&e.code()), "{e:?}");
    }
    let mut codes = StoredKeysError::CODES.to_vec();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), StoredKeysError::CODES.len());
    assert_eq!(codes.len(), all.len());
}

#[tokio::test]
async fn one_node_holds_the_lease_until_it_lapses() {
    use std::time::Duration;
    let store = Arc::new(MemoryStore::new());
    let (a, b) = (vault(&store, 1), vault(&store, 1));
    let ttl = Duration::from_secs(30);
    assert!(a.take_lease("a", T0, ttl).await.unwrap());
    assert!(!b.take_lease("b", T0 + 10, ttl).await.unwrap());
    // The holder renews it.
    assert!(a.take_lease("a", T0 + 20, ttl).await.unwrap());
    assert!(!b.take_lease("b", T0 + 49, ttl).await.unwrap());
    // A dead holder's lease lapses.
    assert!(b.take_lease("b", T0 + 50, ttl).await.unwrap());
    assert!(!a.take_lease("a", T0 + 51, ttl).await.unwrap());
    // Of nodes racing for a free lease, one wins.
    let store = Arc::new(MemoryStore::new());
    let mut tasks = vec![];
    for i in 0..6 {
        let v = vault(&store, 1);
        tasks.push(tokio::spawn(async move {
            v.take_lease(&format!("n{i}"), T0, ttl).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn the_schedule_runs_on_a_copy_and_is_written_by_compare_and_set() {
    const DAY: i64 = 86_400;
    let store = Arc::new(MemoryStore::new());
    let v = vault(&store, 1);
    let (k, _) = v
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap();
    let active = k.tokens.signing_key_at(T0).unwrap().kid().clone();
    let (plain, version) = v.read().await.unwrap().unwrap();
    // Nothing is due a minute later.
    let (_, r) = KeyVault::rotate_plain(
        &plain,
        version,
        &policies(),
        T0 + 60,
        &mut OsKeySource::default(),
    )
    .unwrap();
    assert!(!r.changed(), "{r:?}");
    // Thirty days on, a next key is published (and a new sealing key seals).
    let later = T0 + 30 * DAY;
    let (next, r) = KeyVault::rotate_plain(
        &plain,
        version,
        &policies(),
        later,
        &mut OsKeySource::default(),
    )
    .unwrap();
    assert!(r.changed() && r.tokens.generated.is_some(), "{r:?}");
    assert_eq!(v.write(version, &next).await.unwrap(), 2);
    let again = v.load(&policies()).await.unwrap().unwrap();
    assert_eq!(again.version, 2);
    assert_eq!(jwks(&again), jwks(&next));
    assert_eq!(again.tokens.signing_key_at(later).unwrap().kid(), &active);
    // The CSRF keys rotate (a week is up); the sid key never does.
    assert!(r.csrf.generated.is_some(), "{r:?}");
    assert_eq!(again.csrf.keys().count(), 2);
    let s = tessera_core::Handle::generate(SessionKind::Anonymous)
        .unwrap()
        .store_key();
    assert_eq!(again.sid.sid(&s), k.sid.sid(&s));
    // A second node that computed the same step from version 1 loses the race.
    let (late, _) = KeyVault::rotate_plain(
        &plain,
        version,
        &policies(),
        later,
        &mut OsKeySource::default(),
    )
    .unwrap();
    assert!(matches!(
        v.write(version, &late).await,
        Err(StoredKeysError::Store(tessera_core::Error::Conflict))
    ));
    assert_eq!(
        jwks(&v.load(&policies()).await.unwrap().unwrap()),
        jwks(&next)
    );
}

/// The record of a fleet of before the CSRF keys rotated: the plaintext's `csrf` is the one
/// key of CSRF tokens and sids, and there is no `csrf_keys`.
async fn legacy_record(store: &MemoryStore, v: &KeyVault, key: [u8; 32]) -> StoredKeys {
    let (k, _) = v
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap();
    let (plain, version) = v.read().await.unwrap().unwrap();
    let mut json: Value = serde_json::from_slice(&plain).unwrap();
    let obj = json.as_object_mut().unwrap();
    obj.remove("sid").unwrap();
    obj.remove("csrf_keys").unwrap();
    obj.insert("csrf".into(), Value::String(URL_SAFE_NO_PAD.encode(key)));
    let bytes = serde_json::to_vec(&json).unwrap();
    let record = seal_record(&v.master, KEYS_BLOB, version + 1, &bytes).unwrap();
    store.blob_put(KEYS_BLOB, version, &record).await.unwrap();
    k
}

#[tokio::test]
async fn a_record_of_before_keeps_its_csrf_tokens_and_sids() {
    use crate::csrf::CsrfKey;
    use tessera_core::Timestamp;
    let store = Arc::new(MemoryStore::new());
    let v = vault(&store, 1);
    legacy_record(&store, &v, [8; 32]).await;
    let legacy = CsrfKey::from_bytes([8; 32]);
    let s = tessera_core::Handle::generate(SessionKind::Anonymous)
        .unwrap()
        .store_key();
    let token = legacy.issue("p", &s, Timestamp::from_unix_secs(T0));
    let age = std::time::Duration::from_secs(12 * 3600);
    let k = v.load(&policies()).await.unwrap().unwrap();
    assert_eq!(k.sid.sid(&s), legacy.to_sid_key().sid(&s));
    assert!(
        k.csrf
            .verify(&token, "p", &s, age, Timestamp::from_unix_secs(T0 + 60))
    );
    // The schedule's first run adds a CSRF key and writes today's shape; the old token and
    // the sids stay valid.
    let (plain, version) = v.read().await.unwrap().unwrap();
    let (next, r) = KeyVault::rotate_plain(
        &plain,
        version,
        &policies(),
        T0 + 60,
        &mut OsKeySource::default(),
    )
    .unwrap();
    assert!(r.csrf.generated.is_some(), "{r:?}");
    v.write(version, &next).await.unwrap();
    let (plain, _) = v.read().await.unwrap().unwrap();
    let json: Value = serde_json::from_slice(&plain).unwrap();
    assert!(json.get("csrf").is_none() && json.get("sid").is_some());
    let k = v.load(&policies()).await.unwrap().unwrap();
    assert_eq!(k.sid.sid(&s), legacy.to_sid_key().sid(&s));
    assert!(
        k.csrf
            .verify(&token, "p", &s, age, Timestamp::from_unix_secs(T0 + 3600))
    );
    assert_ne!(k.csrf.issuing_kid(T0 + 3600), Some(legacy.kid()));
}

#[tokio::test]
async fn a_record_resealed_under_a_new_master_key_opens_where_that_key_is_known() {
    let store = Arc::new(MemoryStore::new());
    let old = vault(&store, 1);
    let (k, _) = old
        .load_or_create(&policies(), T0, &mut OsKeySource::default())
        .await
        .unwrap();
    // Step 1: every node also knows the new key; step 2: the record moves to it.
    let both = vault(&store, 1).with_other_master(MasterKey::from_bytes([2; 32]));
    assert_eq!(
        old.reseal(&MasterKey::from_bytes([2; 32])).await.unwrap(),
        2
    );
    let moved = both.load(&policies()).await.unwrap().unwrap();
    assert_eq!(jwks(&moved), jwks(&k));
    // A node with the old key alone refuses it and says which key it needs.
    let err = old.load(&policies()).await.unwrap_err();
    assert_eq!(err.code(), "keys-wrong-master-key");
    // A node that still has the old key as its master key writes under the new one: the
    // record does not move back.
    let mut k = both.load(&policies()).await.unwrap().unwrap();
    k.csrf.publish_next_at(T0).unwrap();
    assert_eq!(both.write(2, &k).await.unwrap(), 3);
    assert_eq!(
        record::kek(&raw(&store).await.value).as_deref(),
        Some(MasterKey::from_bytes([2; 32]).id())
    );
    // Step 3: the new key alone opens it; the old one is no longer needed.
    let new = vault(&store, 2);
    assert_eq!(
        jwks(&new.load(&policies()).await.unwrap().unwrap()),
        jwks(&k)
    );
}
