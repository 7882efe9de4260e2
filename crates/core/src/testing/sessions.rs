//! Checks of [`SessionStore`]: create, load, save, delete, the user index, revocation
//! times, purge.

use std::sync::Arc;
use std::time::Duration;

use super::{HOUR, T0, fresh_key, fresh_user, record};
use crate::{Error, Expiry, SessionKind, SessionStore, StoreKey};

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

/// `save` keeps the liveness rule of `load` ([`SessionRecord::is_live`](crate::SessionRecord::is_live)), which a store may
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
