//! Checks of [`BlobStore`].

use std::sync::Arc;

use super::fresh_key;
use crate::{Blob, BlobStore, Error, SessionKind};

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
