//! The versioned blobs of a memory store.

use async_trait::async_trait;
use tessera_core::{Blob, BlobStore, Error, Result};

use crate::MemoryStore;

#[async_trait]
impl BlobStore for MemoryStore {
    async fn blob_get(&self, name: &str) -> Result<Option<Blob>> {
        Ok(self
            .lock()
            .blobs
            .get(name)
            .map(|(value, version)| Blob::new(value.clone(), *version)))
    }

    async fn blob_put(&self, name: &str, expected: u64, value: &[u8]) -> Result<u64> {
        let mut g = self.lock();
        let current = g.blobs.get(name).map_or(0, |(_, v)| *v);
        if current != expected {
            return Err(Error::Conflict);
        }
        let version = expected
            .checked_add(1)
            .ok_or(Error::Unreachable("blob version overflow"))?;
        g.blobs.insert(name.to_owned(), (value.to_vec(), version));
        Ok(version)
    }
}
