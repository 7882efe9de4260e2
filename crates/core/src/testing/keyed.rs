//! Checks of [`KvStore`]'s keyed store (`ns_*`): namespaces, expiry, touch, counts, clear,
//! purge.

use std::sync::Arc;
use std::time::Duration;

use super::{HOUR, T0, fresh_key, fresh_kv_key};
use crate::{KvEntry, KvKey, KvNamespace, KvStore, SessionKind, Timestamp};

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
