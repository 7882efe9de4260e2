//! Checks of [`KvStore`]'s Kask namespace (`kv_*`), and the macro that runs them with the
//! keyed store's (`keyed.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::{HOUR, T0, fresh_key};
use crate::{KvStore, SessionKind};

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
