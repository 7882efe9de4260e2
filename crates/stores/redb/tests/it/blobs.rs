//! The blob conformance suite, and blobs surviving a reopen.

#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use tessera_core::{Blob, BlobStore, Result};
use tessera_store_redb::RedbStore;

/// A store that owns its temporary directory (the store closes first).
#[derive(Debug)]
pub(crate) struct TempBlobs {
    store: RedbStore,
    _dir: tempfile::TempDir,
}

impl TempBlobs {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("blobs.redb")).unwrap();
        Self { store, _dir: dir }
    }
}

#[async_trait]
impl BlobStore for TempBlobs {
    async fn blob_get(&self, name: &str) -> Result<Option<Blob>> {
        self.store.blob_get(name).await
    }
    async fn blob_put(&self, name: &str, expected: u64, value: &[u8]) -> Result<u64> {
        self.store.blob_put(name, expected, value).await
    }
}

tessera_core::blob_conformance_tests!(async { std::sync::Arc::new(TempBlobs::new()) });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.redb");
    {
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.blob_put("tessera/keys", 0, b"one").await.unwrap(), 1);
        assert_eq!(s.blob_put("tessera/keys", 1, b"two").await.unwrap(), 2);
    }
    let s = RedbStore::open(&path).unwrap();
    assert_eq!(
        s.blob_get("tessera/keys").await.unwrap(),
        Some(Blob::new(b"two".to_vec(), 2))
    );
    assert!(s.blob_put("tessera/keys", 1, b"stale").await.is_err());
}
