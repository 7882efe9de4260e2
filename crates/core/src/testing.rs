//! The store conformance suite: one set of checks that every [`SessionStore`] passes.
//!
//! A store crate runs it with one line in its integration tests:
//!
//! ```ignore
//! tessera_core::conformance_tests!(async { std::sync::Arc::new(MyStore::new()) });
//! ```
//!
//! Every check uses fresh random keys and user ids, so the suite can run in parallel against
//! one shared server (a Redis or a Postgres) without the checks seeing each other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    Blob, BlobStore, Error, Expiry, Handle, KvEntry, KvKey, KvNamespace, KvStore, Revocation,
    RevocationLog, RevokedSubject, SessionKind, SessionRecord, SessionStore, StoreKey, Timestamp,
    User,
};

/// A fixed "now" for the suite: 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_unix_secs(1_767_225_600);

const HOUR: Duration = Duration::from_secs(3600);

/// A fresh random store key.
pub fn fresh_key(kind: SessionKind) -> StoreKey {
    Handle::generate(kind).unwrap().store_key()
}

/// A fresh random user id.
pub fn fresh_user() -> String {
    format!("user-{}", &fresh_key(SessionKind::Anonymous).to_hex()[..16])
}

/// A live record created at `created`, idle for an hour, absolute for a day.
pub fn record(user: Option<&str>, created: Timestamp) -> SessionRecord {
    let mut data = BTreeMap::new();
    data.insert(
        "k".to_owned(),
        serde_json::json!({"nested": [1, "two", null]}),
    );
    SessionRecord {
        kind: if user.is_some() {
            SessionKind::Authenticated
        } else {
            SessionKind::Anonymous
        },
        user: user.map(|id| User {
            id: id.to_owned(),
            name: Some("Ünïcode name".to_owned()),
            provider: None,
        }),
        claims: BTreeMap::new(),
        created_at: created,
        renewed_at: created,
        idle_expires_at: created.saturating_add(HOUR),
        absolute_expires_at: created.saturating_add(24 * HOUR),
        remember: false,
        data,
        // Opaque to stores: what the engine writes here is sealed text.
        secrets: BTreeMap::from([("otp".to_owned(), "1.kid.c2VhbGVk".to_owned())]),
        expiry: Expiry::Default,
        version: 1,
    }
}

/// A created record loads back equal.
pub async fn create_then_load(s: Arc<dyn SessionStore>) {
    for user in [None, Some(fresh_user())] {
        let k = fresh_key(SessionKind::Anonymous);
        let r = record(user.as_deref(), T0);
        s.create(&k, &r).await.unwrap();
        assert_eq!(s.load(&k, T0).await.unwrap(), Some(r));
    }
    assert_eq!(
        s.load(&fresh_key(SessionKind::Anonymous), T0)
            .await
            .unwrap(),
        None
    );
}

/// `create` on an occupied key fails and leaves the first record.
pub async fn create_is_unique(s: Arc<dyn SessionStore>) {
    let k = fresh_key(SessionKind::Anonymous);
    let first = record(None, T0);
    s.create(&k, &first).await.unwrap();
    let mut second = record(None, T0);
    second.data.clear();
    assert!(matches!(
        s.create(&k, &second).await,
        Err(Error::AlreadyExists)
    ));
    assert_eq!(s.load(&k, T0).await.unwrap(), Some(first));
}

/// Only one of many concurrent creates on one key wins.
pub async fn concurrent_creates_have_one_winner(s: Arc<dyn SessionStore>) {
    let k = fresh_key(SessionKind::Anonymous);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let s = s.clone();
        set.spawn(async move { s.create(&k, &record(None, T0)).await });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(()) => ok += 1,
            Err(Error::AlreadyExists) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(ok, 1);
}

/// An expired record never loads, by idle or by absolute expiry, even before purge.
pub async fn load_never_returns_expired(s: Arc<dyn SessionStore>) {
    let k = fresh_key(SessionKind::Anonymous);
    let r = record(None, T0);
    s.create(&k, &r).await.unwrap();
    let just_before = r.expires_at().saturating_sub(Duration::from_millis(1));
    assert!(s.load(&k, just_before).await.unwrap().is_some());
    assert_eq!(s.load(&k, r.expires_at()).await.unwrap(), None);
    assert_eq!(
        s.load(&k, T0.saturating_add(48 * HOUR)).await.unwrap(),
        None
    );

    let k2 = fresh_key(SessionKind::Anonymous);
    let mut r2 = record(None, T0);
    r2.idle_expires_at = T0.saturating_add(48 * HOUR);
    r2.absolute_expires_at = T0.saturating_add(HOUR);
    s.create(&k2, &r2).await.unwrap();
    assert_eq!(s.load(&k2, T0.saturating_add(HOUR)).await.unwrap(), None);
}

/// A record's own expiry round-trips through `create` and `save`, and its [`Expiry::At`] end
/// is a bound of liveness (even past an idle expiry that says otherwise), as `purge` knows.
pub async fn own_expiry_is_kept_and_honoured(s: Arc<dyn SessionStore>) {
    let end = T0.saturating_add(HOUR / 2);
    for expiry in [Expiry::Idle(90), Expiry::Browser, Expiry::At(end)] {
        let k = fresh_key(SessionKind::Anonymous);
        let mut r = record(None, T0);
        r.expiry = expiry;
        s.create(&k, &r).await.unwrap();
        assert_eq!(s.load(&k, T0).await.unwrap(), Some(r.clone()), "{expiry:?}");
        let mut next = r.clone();
        next.expiry = Expiry::Default;
        next.version = 2;
        s.save(&k, 1, &next, T0).await.unwrap();
        assert_eq!(s.load(&k, T0).await.unwrap(), Some(next.clone()));
        let mut back = next.clone();
        back.expiry = expiry;
        back.version = 3;
        s.save(&k, 2, &back, T0).await.unwrap();
        assert_eq!(s.load(&k, T0).await.unwrap(), Some(back));
    }
    // The end is a bound even if `idle_expires_at` were later.
    let k = fresh_key(SessionKind::Anonymous);
    let mut r = record(None, T0);
    r.expiry = Expiry::At(end);
    s.create(&k, &r).await.unwrap();
    let before = end.saturating_sub(Duration::from_millis(1));
    assert!(s.load(&k, before).await.unwrap().is_some());
    assert_eq!(s.load(&k, end).await.unwrap(), None);
    let mut next = r.clone();
    next.version = 2;
    assert!(matches!(
        s.save(&k, 1, &next, end).await,
        Err(Error::NotFound)
    ));
}

/// `save` writes on the expected version and refuses a stale one.
pub async fn save_is_compare_and_set(s: Arc<dyn SessionStore>) {
    let k = fresh_key(SessionKind::Anonymous);
    let r = record(None, T0);
    s.create(&k, &r).await.unwrap();
    let mut r2 = r.clone();
    r2.version = 2;
    r2.data.insert("a".into(), serde_json::json!(1));
    s.save(&k, 1, &r2, T0).await.unwrap();
    let mut stale = r.clone();
    stale.version = 2;
    assert!(matches!(
        s.save(&k, 1, &stale, T0).await,
        Err(Error::Conflict)
    ));
    assert_eq!(s.load(&k, T0).await.unwrap(), Some(r2));
}

/// Of many concurrent saves from the same version, exactly one wins.
pub async fn concurrent_saves_have_one_winner(s: Arc<dyn SessionStore>) {
    let k = fresh_key(SessionKind::Anonymous);
    s.create(&k, &record(None, T0)).await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16 {
        let s = s.clone();
        set.spawn(async move {
            let mut r = record(None, T0);
            r.version = 2;
            r.data.insert("writer".into(), serde_json::json!(i));
            s.save(&k, 1, &r, T0).await.map(|()| i)
        });
    }
    let mut winners = vec![];
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(i) => winners.push(i),
            Err(Error::Conflict) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = s.load(&k, T0).await.unwrap().unwrap();
    assert_eq!(stored.data["writer"], serde_json::json!(winners[0]));
    assert_eq!(stored.version, 2);
}

/// `save` on a missing or expired record fails with `NotFound` and creates nothing.
pub async fn save_never_creates(s: Arc<dyn SessionStore>) {
    let k = fresh_key(SessionKind::Anonymous);
    let mut r = record(None, T0);
    r.version = 2;
    assert!(matches!(s.save(&k, 1, &r, T0).await, Err(Error::NotFound)));
    assert_eq!(s.load(&k, T0).await.unwrap(), None);

    let k2 = fresh_key(SessionKind::Anonymous);
    let r2 = record(None, T0);
    s.create(&k2, &r2).await.unwrap();
    let later = r2.expires_at();
    let mut renewed = r2.clone();
    renewed.version = 2;
    renewed.idle_expires_at = later.saturating_add(HOUR);
    assert!(matches!(
        s.save(&k2, 1, &renewed, later).await,
        Err(Error::NotFound)
    ));
    assert_eq!(s.load(&k2, later).await.unwrap(), None);
}

/// A delete leaves a tombstone: the session stays dead for a racing save, and the key
/// cannot be created again until the tombstone goes.
pub async fn tombstone_blocks_resurrection(s: Arc<dyn SessionStore>) {
    let user = fresh_user();
    let k = fresh_key(SessionKind::Authenticated);
    let r = record(Some(&user), T0);
    s.create(&k, &r).await.unwrap();
    let loaded = s.load(&k, T0).await.unwrap().unwrap();
    s.delete(&k, T0.saturating_add(HOUR)).await.unwrap();
    assert_eq!(s.load(&k, T0).await.unwrap(), None);

    let mut racing = loaded;
    racing.version = 2;
    assert!(matches!(
        s.save(&k, 1, &racing, T0).await,
        Err(Error::NotFound)
    ));
    assert_eq!(s.load(&k, T0).await.unwrap(), None);
    assert!(matches!(
        s.create(&k, &record(Some(&user), T0)).await,
        Err(Error::AlreadyExists)
    ));
    assert!(s.list_user_sessions(&user, T0).await.unwrap().is_empty());
    // Idempotent, and fine on a key that never existed.
    s.delete(&k, T0.saturating_add(HOUR)).await.unwrap();
    s.delete(&fresh_key(SessionKind::Anonymous), T0.saturating_add(HOUR))
        .await
        .unwrap();
}

/// The user index lists live sessions of one user only.
pub async fn user_index(s: Arc<dyn SessionStore>) {
    let (u, v) = (fresh_user(), fresh_user());
    let mut keys = vec![];
    for _ in 0..3 {
        let k = fresh_key(SessionKind::Authenticated);
        s.create(&k, &record(Some(&u), T0)).await.unwrap();
        keys.push(k);
    }
    let expired = fresh_key(SessionKind::Authenticated);
    let mut old = record(Some(&u), T0.saturating_sub(48 * HOUR));
    old.version = 1;
    s.create(&expired, &old).await.unwrap();
    s.create(
        &fresh_key(SessionKind::Authenticated),
        &record(Some(&v), T0),
    )
    .await
    .unwrap();

    let mut listed: Vec<StoreKey> = s
        .list_user_sessions(&u, T0)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, r)| {
            assert_eq!(r.user_id(), Some(u.as_str()));
            k
        })
        .collect();
    listed.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(listed, want);

    s.delete(&keys[0], T0.saturating_add(HOUR)).await.unwrap();
    assert_eq!(s.list_user_sessions(&u, T0).await.unwrap().len(), 2);
    assert_eq!(s.list_user_sessions(&v, T0).await.unwrap().len(), 1);
    assert!(
        s.list_user_sessions(&fresh_user(), T0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A user's revocation time kills the sessions created at or before it, and only moves
/// forward.
pub async fn revocation_time(s: Arc<dyn SessionStore>) {
    let u = fresh_user();
    assert_eq!(s.user_revoked_at(&u).await.unwrap(), None);
    let before = fresh_key(SessionKind::Authenticated);
    s.create(&before, &record(Some(&u), T0)).await.unwrap();

    let t1 = T0.saturating_add(Duration::from_secs(10));
    s.revoke_user(&u, t1).await.unwrap();
    assert_eq!(s.user_revoked_at(&u).await.unwrap(), Some(t1));
    assert_eq!(s.load(&before, t1).await.unwrap(), None);
    assert!(s.list_user_sessions(&u, t1).await.unwrap().is_empty());

    // Never backwards.
    s.revoke_user(&u, T0).await.unwrap();
    assert_eq!(s.user_revoked_at(&u).await.unwrap(), Some(t1));

    // Exactly at the revocation time is revoked; a millisecond after lives.
    let at = fresh_key(SessionKind::Authenticated);
    s.create(&at, &record(Some(&u), t1)).await.unwrap();
    assert_eq!(s.load(&at, t1).await.unwrap(), None);
    let after = fresh_key(SessionKind::Authenticated);
    let t2 = t1.saturating_add(Duration::from_millis(1));
    s.create(&after, &record(Some(&u), t2)).await.unwrap();
    assert!(s.load(&after, t2).await.unwrap().is_some());

    // Other users are untouched.
    let other = fresh_key(SessionKind::Authenticated);
    s.create(&other, &record(Some(&fresh_user()), T0))
        .await
        .unwrap();
    assert!(s.load(&other, t1).await.unwrap().is_some());
}

/// `save` keeps the liveness rule of `load` ([`SessionRecord::is_live`]), which a store may
/// restate inside its backend for atomicity (Redis' Lua, Postgres' SQL): a session created at
/// its user's revocation time is not saved, one created a millisecond later is.
pub async fn save_keeps_the_liveness_rule(s: Arc<dyn SessionStore>) {
    let u = fresh_user();
    let t1 = T0.saturating_add(Duration::from_secs(10));
    let t2 = t1.saturating_add(Duration::from_millis(1));
    let (at, after) = (
        fresh_key(SessionKind::Authenticated),
        fresh_key(SessionKind::Authenticated),
    );
    s.create(&at, &record(Some(&u), t1)).await.unwrap();
    s.create(&after, &record(Some(&u), t2)).await.unwrap();
    s.revoke_user(&u, t1).await.unwrap();
    let revoked = s.user_revoked_at(&u).await.unwrap();
    for (key, created) in [(at, t1), (after, t2)] {
        let mut edited = record(Some(&u), created);
        edited.version = 2;
        let saved = s.save(&key, 1, &edited, t2).await;
        if record(Some(&u), created).is_live(t2, revoked) {
            assert!(saved.is_ok(), "{saved:?}");
            assert_eq!(s.load(&key, t2).await.unwrap(), Some(edited));
        } else {
            assert!(matches!(saved, Err(Error::NotFound)), "{saved:?}");
            assert_eq!(s.load(&key, t2).await.unwrap(), None);
        }
    }
    // The rule says which is which: the first is dead, the second lives.
    assert!(!record(Some(&u), t1).is_live(t2, revoked));
    assert!(record(Some(&u), t2).is_live(t2, revoked));
}

/// Purge removes expired records and old tombstones and keeps live ones.
pub async fn purge(s: Arc<dyn SessionStore>) {
    let u = fresh_user();
    let live = fresh_key(SessionKind::Authenticated);
    s.create(&live, &record(Some(&u), T0)).await.unwrap();
    let expired = fresh_key(SessionKind::Authenticated);
    s.create(&expired, &record(Some(&u), T0.saturating_sub(48 * HOUR)))
        .await
        .unwrap();
    let tomb = fresh_key(SessionKind::Anonymous);
    s.create(&tomb, &record(None, T0)).await.unwrap();
    s.delete(&tomb, T0.saturating_add(Duration::from_secs(1)))
        .await
        .unwrap();

    let later = T0.saturating_add(Duration::from_secs(2));
    let n = s.purge_expired(later).await.unwrap();
    assert!(n >= 2, "purged {n}");
    assert!(s.load(&live, later).await.unwrap().is_some());
    // The expired key and the old tombstone are gone: the keys are free again.
    s.create(&expired, &record(Some(&u), T0)).await.unwrap();
    s.create(&tomb, &record(None, T0)).await.unwrap();
    assert_eq!(s.list_user_sessions(&u, later).await.unwrap().len(), 2);
    // A second purge finds nothing of ours to do and breaks nothing.
    s.purge_expired(later).await.unwrap();
    assert!(s.load(&live, later).await.unwrap().is_some());
}

/// Declares one `#[tokio::test]` per conformance check. `$make` is an expression (usually an
/// `async` block) that yields an `Arc<impl SessionStore>`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            create_then_load, create_is_unique, concurrent_creates_have_one_winner,
            load_never_returns_expired, save_is_compare_and_set,
            concurrent_saves_have_one_winner, save_never_creates,
            tombstone_blocks_resurrection, user_index, revocation_time,
            save_keeps_the_liveness_rule, purge, own_expiry_is_kept_and_honoured);
    };
    (@each $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $make.await;
                $crate::testing::$name(store).await;
            }
        )+
    };
}

/// A fresh random key for the key-value namespace, shaped like MediaWiki's.
pub fn fresh_kv_key() -> Vec<u8> {
    format!(
        "wiki:MWSession:{}",
        fresh_key(SessionKind::Anonymous).to_hex()
    )
    .into_bytes()
}

/// Values round-trip byte for byte (binary included), and a put replaces.
pub async fn kv_round_trip(s: Arc<dyn KvStore>) {
    let k = fresh_kv_key();
    assert_eq!(s.kv_get(&k, T0).await.unwrap(), None);
    let v: Vec<u8> = (0..=255u8).collect();
    s.kv_put(&k, &v, T0.saturating_add(HOUR), T0).await.unwrap();
    assert_eq!(s.kv_get(&k, T0).await.unwrap(), Some(v));
    s.kv_put(&k, b"second", T0.saturating_add(HOUR), T0)
        .await
        .unwrap();
    assert_eq!(s.kv_get(&k, T0).await.unwrap(), Some(b"second".to_vec()));
    // Keys are exact bytes: a prefix or another case is another key.
    assert_eq!(s.kv_get(&k[..k.len() - 1], T0).await.unwrap(), None);
}

/// An expired value never comes back, even before purge; a put with a later expiry revives
/// the key.
pub async fn kv_never_returns_expired(s: Arc<dyn KvStore>) {
    let k = fresh_kv_key();
    let until = T0.saturating_add(HOUR);
    s.kv_put(&k, b"v", until, T0).await.unwrap();
    assert!(
        s.kv_get(&k, until.saturating_sub(Duration::from_millis(1)))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.kv_get(&k, until).await.unwrap(), None);
    s.kv_put(&k, b"w", until.saturating_add(HOUR), until)
        .await
        .unwrap();
    assert_eq!(s.kv_get(&k, until).await.unwrap(), Some(b"w".to_vec()));
}

/// Delete removes, and is idempotent.
pub async fn kv_delete_is_idempotent(s: Arc<dyn KvStore>) {
    let k = fresh_kv_key();
    s.kv_put(&k, b"v", T0.saturating_add(HOUR), T0)
        .await
        .unwrap();
    s.kv_delete(&k).await.unwrap();
    assert_eq!(s.kv_get(&k, T0).await.unwrap(), None);
    s.kv_delete(&k).await.unwrap();
    s.kv_delete(&fresh_kv_key()).await.unwrap();
}

/// Purge removes expired values and keeps live ones.
pub async fn kv_purge(s: Arc<dyn KvStore>) {
    let (old, live) = (fresh_kv_key(), fresh_kv_key());
    s.kv_put(&old, b"old", T0.saturating_add(Duration::from_secs(1)), T0)
        .await
        .unwrap();
    s.kv_put(&live, b"live", T0.saturating_add(HOUR), T0)
        .await
        .unwrap();
    let later = T0.saturating_add(Duration::from_secs(2));
    assert!(s.kv_purge_expired(later).await.unwrap() >= 1);
    assert_eq!(
        s.kv_get(&live, later).await.unwrap(),
        Some(b"live".to_vec())
    );
    // Gone for good: even a clock turned back does not see it.
    assert_eq!(s.kv_get(&old, T0).await.unwrap(), None);
}

/// A fresh namespace, so checks sharing a backend never see each other's counts.
pub fn fresh_namespace() -> KvNamespace {
    KvNamespace::try_new(&format!(
        "t-{}",
        &fresh_key(SessionKind::Anonymous).to_hex()[..20]
    ))
    .unwrap()
}

/// A fresh key of the keyed store.
pub fn fresh_ns_key() -> KvKey {
    KvKey::digest(&fresh_kv_key())
}

fn entry(value: &[u8], expires_at: Timestamp) -> Option<KvEntry> {
    Some(KvEntry {
        value: value.to_vec(),
        expires_at,
    })
}

/// Values round-trip with their expiry; a put replaces; namespaces are apart; and the
/// keyed store is apart from the Kask namespace.
pub async fn ns_round_trip(s: Arc<dyn KvStore>) {
    let (ns, other) = (fresh_namespace(), fresh_namespace());
    let k = fresh_ns_key();
    let until = T0.saturating_add(HOUR);
    assert_eq!(s.ns_get(&ns, &k, T0).await.unwrap(), None);
    let v: Vec<u8> = (0..=255u8).collect();
    s.ns_put(&ns, &k, &v, until, T0).await.unwrap();
    assert_eq!(s.ns_get(&ns, &k, T0).await.unwrap(), entry(&v, until));
    let later = until.saturating_add(HOUR);
    s.ns_put(&ns, &k, b"second", later, T0).await.unwrap();
    assert_eq!(
        s.ns_get(&ns, &k, T0).await.unwrap(),
        entry(b"second", later)
    );
    assert_eq!(s.ns_get(&other, &k, T0).await.unwrap(), None);
    assert_eq!(s.ns_get(&ns, &fresh_ns_key(), T0).await.unwrap(), None);
    assert_eq!(s.kv_get(k.as_bytes(), T0).await.unwrap(), None);
    assert_eq!(s.kv_get(k.to_hex().as_bytes(), T0).await.unwrap(), None);
}

/// An expired value never comes back, even before purge; a put revives the key.
pub async fn ns_never_returns_expired(s: Arc<dyn KvStore>) {
    let (ns, k) = (fresh_namespace(), fresh_ns_key());
    let until = T0.saturating_add(HOUR);
    s.ns_put(&ns, &k, b"v", until, T0).await.unwrap();
    let just_before = until.saturating_sub(Duration::from_millis(1));
    assert!(s.ns_get(&ns, &k, just_before).await.unwrap().is_some());
    assert_eq!(s.ns_get(&ns, &k, until).await.unwrap(), None);
    let revived = until.saturating_add(HOUR);
    s.ns_put(&ns, &k, b"w", revived, until).await.unwrap();
    assert_eq!(
        s.ns_get(&ns, &k, until).await.unwrap(),
        entry(b"w", revived)
    );
}

/// Touch moves the expiry of a live value only, and keeps the value.
pub async fn ns_touch(s: Arc<dyn KvStore>) {
    let (ns, k) = (fresh_namespace(), fresh_ns_key());
    let until = T0.saturating_add(HOUR);
    assert!(!s.ns_touch(&ns, &k, until, T0).await.unwrap());
    assert_eq!(s.ns_get(&ns, &k, T0).await.unwrap(), None);
    s.ns_put(&ns, &k, b"v", until, T0).await.unwrap();
    let later = until.saturating_add(HOUR);
    assert!(s.ns_touch(&ns, &k, later, T0).await.unwrap());
    assert_eq!(s.ns_get(&ns, &k, until).await.unwrap(), entry(b"v", later));
    // Shorter works too: the expiry is set, not only extended.
    let sooner = T0.saturating_add(Duration::from_secs(60));
    assert!(s.ns_touch(&ns, &k, sooner, T0).await.unwrap());
    assert_eq!(s.ns_get(&ns, &k, T0).await.unwrap(), entry(b"v", sooner));
    assert_eq!(s.ns_get(&ns, &k, sooner).await.unwrap(), None);
    // An expired value is not revived by a touch.
    assert!(!s.ns_touch(&ns, &k, later, sooner).await.unwrap());
    assert_eq!(s.ns_get(&ns, &k, sooner).await.unwrap(), None);
}

/// Delete removes, says whether a live value went, and is idempotent.
pub async fn ns_delete(s: Arc<dyn KvStore>) {
    let (ns, k) = (fresh_namespace(), fresh_ns_key());
    s.ns_put(&ns, &k, b"v", T0.saturating_add(HOUR), T0)
        .await
        .unwrap();
    assert!(s.ns_delete(&ns, &k, T0).await.unwrap());
    assert_eq!(s.ns_get(&ns, &k, T0).await.unwrap(), None);
    assert!(!s.ns_delete(&ns, &k, T0).await.unwrap());
    assert!(!s.ns_delete(&fresh_namespace(), &k, T0).await.unwrap());
}

/// The count follows puts of new keys, replacements (no change), deletes and touches.
pub async fn ns_count(s: Arc<dyn KvStore>) {
    let ns = fresh_namespace();
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 0);
    let until = T0.saturating_add(HOUR);
    let keys: Vec<KvKey> = (0..3).map(|_| fresh_ns_key()).collect();
    for k in &keys {
        s.ns_put(&ns, k, b"v", until, T0).await.unwrap();
    }
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 3);
    s.ns_put(&ns, &keys[0], b"again", until, T0).await.unwrap();
    assert!(s.ns_touch(&ns, &keys[1], until, T0).await.unwrap());
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 3);
    assert!(s.ns_delete(&ns, &keys[2], T0).await.unwrap());
    assert!(!s.ns_delete(&ns, &keys[2], T0).await.unwrap());
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 2);
    assert_eq!(s.ns_count(&fresh_namespace(), T0).await.unwrap(), 0);
}

/// Clear hides every value at once and resets the count; the namespace is usable again at
/// once, and other namespaces are untouched.
pub async fn ns_clear(s: Arc<dyn KvStore>) {
    let (ns, other) = (fresh_namespace(), fresh_namespace());
    let until = T0.saturating_add(HOUR);
    let keys: Vec<KvKey> = (0..3).map(|_| fresh_ns_key()).collect();
    for k in &keys {
        s.ns_put(&ns, k, b"v", until, T0).await.unwrap();
        s.ns_put(&other, k, b"o", until, T0).await.unwrap();
    }
    s.ns_clear(&ns, T0).await.unwrap();
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 0);
    for k in &keys {
        assert_eq!(s.ns_get(&ns, k, T0).await.unwrap(), None);
        assert!(!s.ns_touch(&ns, k, until, T0).await.unwrap());
    }
    assert!(!s.ns_delete(&ns, &keys[0], T0).await.unwrap());
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 0);
    // A key written again after the clear is a new value, counted once.
    s.ns_put(&ns, &keys[1], b"new", until, T0).await.unwrap();
    assert_eq!(
        s.ns_get(&ns, &keys[1], T0).await.unwrap(),
        entry(b"new", until)
    );
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 1);
    // A purge after the clear takes the hidden values without touching the count.
    s.kv_purge_expired(T0).await.unwrap();
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 1);
    assert_eq!(
        s.ns_get(&ns, &keys[1], T0).await.unwrap(),
        entry(b"new", until)
    );
    assert_eq!(s.ns_get(&ns, &keys[2], T0).await.unwrap(), None);
    // Clearing an empty or unknown namespace is fine.
    s.ns_clear(&fresh_namespace(), T0).await.unwrap();
    assert_eq!(s.ns_count(&other, T0).await.unwrap(), 3);
    for k in &keys {
        assert_eq!(s.ns_get(&other, k, T0).await.unwrap(), entry(b"o", until));
    }
}

/// Purge removes expired values and keeps live ones; afterwards the count is exact.
pub async fn ns_purge(s: Arc<dyn KvStore>) {
    let ns = fresh_namespace();
    let (old, live) = (fresh_ns_key(), fresh_ns_key());
    s.ns_put(
        &ns,
        &old,
        b"old",
        T0.saturating_add(Duration::from_secs(1)),
        T0,
    )
    .await
    .unwrap();
    s.ns_put(&ns, &live, b"live", T0.saturating_add(HOUR), T0)
        .await
        .unwrap();
    let later = T0.saturating_add(Duration::from_secs(2));
    s.kv_purge_expired(later).await.unwrap();
    assert_eq!(s.ns_count(&ns, later).await.unwrap(), 1);
    assert_eq!(
        s.ns_get(&ns, &live, later).await.unwrap(),
        entry(b"live", T0.saturating_add(HOUR))
    );
    // Gone for good: even a clock turned back does not see it.
    assert_eq!(s.ns_get(&ns, &old, T0).await.unwrap(), None);
    assert!(!s.ns_delete(&ns, &old, T0).await.unwrap());
    assert_eq!(s.ns_count(&ns, later).await.unwrap(), 1);
}

/// Concurrent puts of one new key count it once; concurrent deletes uncount it once;
/// concurrent puts of new keys count each.
pub async fn ns_concurrent_puts_count_once(s: Arc<dyn KvStore>) {
    let ns = fresh_namespace();
    let k = fresh_ns_key();
    let until = T0.saturating_add(HOUR);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let (s, ns) = (s.clone(), ns.clone());
        tasks.spawn(async move { s.ns_put(&ns, &k, &[i], until, T0).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (s, ns) = (s.clone(), ns.clone());
        tasks.spawn(async move { s.ns_delete(&ns, &k, T0).await });
    }
    let mut went = 0;
    while let Some(r) = tasks.join_next().await {
        went += usize::from(r.unwrap().unwrap());
    }
    assert_eq!(went, 1);
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 0);
    // Concurrent first puts of different keys in a fresh namespace each count.
    let ns = fresh_namespace();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (s, ns) = (s.clone(), ns.clone());
        tasks.spawn(async move { s.ns_put(&ns, &fresh_ns_key(), b"v", until, T0).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(s.ns_count(&ns, T0).await.unwrap(), 8);
}

/// Declares one `#[tokio::test]` per key-value check. `$make` yields an `Arc<impl KvStore>`.
#[macro_export]
macro_rules! kv_conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            kv_round_trip, kv_never_returns_expired, kv_delete_is_idempotent, kv_purge,
            ns_round_trip, ns_never_returns_expired, ns_touch, ns_delete, ns_count,
            ns_clear, ns_purge, ns_concurrent_puts_count_once);
    };
}

/// Sequence numbers only grow; `since` pages oldest first; purge removes only old entries.
pub async fn revocation_log(s: Arc<dyn RevocationLog>) {
    // Other tests may share the backend: work after whatever is there now.
    let start = s
        .revocations_since(0, usize::MAX)
        .await
        .unwrap()
        .last()
        .map_or(0, |(n, _)| *n);
    let user = fresh_user();
    let mut seqs = vec![];
    for i in 0..5u64 {
        let subject = if i % 2 == 0 {
            RevokedSubject::User(user.clone())
        } else {
            RevokedSubject::Session(format!("sid-{user}-{i}"))
        };
        let at = T0.saturating_add(Duration::from_secs(i));
        seqs.push(s.log_revocation(&Revocation { subject, at }).await.unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs[0] > start);
    let ours = |v: Vec<(u64, Revocation)>| -> Vec<(u64, Revocation)> {
        v.into_iter().filter(|(n, _)| seqs.contains(n)).collect()
    };
    let all = ours(s.revocations_since(start, usize::MAX).await.unwrap());
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].1.subject, RevokedSubject::User(user.clone()));
    assert_eq!(
        all[1].1.subject,
        RevokedSubject::Session(format!("sid-{user}-1"))
    );
    // Paging: after the second, at most two.
    let page = s.revocations_since(seqs[1], 2).await.unwrap();
    assert!(page.len() <= 2 && !page.is_empty());
    assert_eq!(page[0].0, seqs[2]);
    // Purge drops what is older than the bound (ours at T0 and T0+1s), keeps the rest.
    s.purge_revocations(T0.saturating_add(Duration::from_secs(2)))
        .await
        .unwrap();
    let left = ours(s.revocations_since(start, usize::MAX).await.unwrap());
    assert_eq!(
        left.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        seqs[2..].to_vec()
    );
}

/// Declares the revocation-log check as a `#[tokio::test]`. `$make` yields an
/// `Arc<impl RevocationLog>`.
#[macro_export]
macro_rules! revocation_conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make; revocation_log);
    };
}

// === blobs ===

/// A fresh random blob name, so checks sharing one server never see each other's blobs.
pub fn fresh_blob_name() -> String {
    format!("test/{}", &fresh_key(SessionKind::Anonymous).to_hex()[..24])
}

/// A blob is absent until written; a put is compare-and-set on a counted version, and bytes
/// (binary included) round-trip.
pub async fn blob_compare_and_set(s: Arc<dyn BlobStore>) {
    let name = fresh_blob_name();
    assert_eq!(s.blob_get(&name).await.unwrap(), None);
    // Not there yet: only `expected = 0` writes.
    assert!(matches!(
        s.blob_put(&name, 1, b"x").await,
        Err(Error::Conflict)
    ));
    assert_eq!(s.blob_get(&name).await.unwrap(), None);
    let v: Vec<u8> = (0..=255u8).collect();
    assert_eq!(s.blob_put(&name, 0, &v).await.unwrap(), 1);
    assert_eq!(
        s.blob_get(&name).await.unwrap(),
        Some(Blob::new(v.clone(), 1))
    );
    // A stale or a future version writes nothing.
    for stale in [0, 2, 7] {
        assert!(
            matches!(s.blob_put(&name, stale, b"no").await, Err(Error::Conflict)),
            "expected {stale}"
        );
    }
    assert_eq!(s.blob_get(&name).await.unwrap(), Some(Blob::new(v, 1)));
    assert_eq!(s.blob_put(&name, 1, b"second").await.unwrap(), 2);
    assert_eq!(
        s.blob_get(&name).await.unwrap(),
        Some(Blob::new(b"second".to_vec(), 2))
    );
    // An empty value is a value.
    assert_eq!(s.blob_put(&name, 2, b"").await.unwrap(), 3);
    assert_eq!(s.blob_get(&name).await.unwrap(), Some(Blob::new(vec![], 3)));
    // Names are exact: another name is another blob.
    assert_eq!(s.blob_get(&format!("{name}x")).await.unwrap(), None);
}

/// Of concurrent puts from one version, exactly one wins, and its bytes are what is stored.
pub async fn blob_concurrent_puts_have_one_winner(s: Arc<dyn BlobStore>) {
    let name = fresh_blob_name();
    for expected in [0u64, 1] {
        let mut tasks = vec![];
        for i in 0..8u8 {
            let (s, name) = (s.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                (i, s.blob_put(&name, expected, &[i; 16]).await)
            }));
        }
        let mut winners = vec![];
        for t in tasks {
            match t.await.unwrap() {
                (i, Ok(v)) => {
                    assert_eq!(v, expected + 1);
                    winners.push(i);
                }
                (_, Err(Error::Conflict)) => {}
                (_, Err(e)) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let got = s.blob_get(&name).await.unwrap().unwrap();
        assert_eq!(got, Blob::new(vec![winners[0]; 16], expected + 1));
    }
}

/// Declares one `#[tokio::test]` per blob check. `$make` yields an `Arc<impl BlobStore>`.
#[macro_export]
macro_rules! blob_conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            blob_compare_and_set, blob_concurrent_puts_have_one_winner);
    };
}
