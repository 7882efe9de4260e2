//! The versioned blobs of a redb store, in the `blobs` table: name → version (8 bytes,
//! big-endian) + value.

use async_trait::async_trait;
use redb::ReadableTable as _;
use tessera_core::{Blob, BlobStore, Result as StoreResult};

use crate::batch::Touches;
use crate::{BLOBS, RedbStore, backend, read};

/// Splits a stored blob into its version and value.
fn split(bytes: &[u8]) -> StoreResult<(u64, &[u8])> {
    let (version, value) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| tessera_core::Error::Decode("blob shorter than its version".into()))?;
    Ok((u64::from_be_bytes(*version), value))
}

#[async_trait]
impl BlobStore for RedbStore {
    async fn blob_get(&self, name: &str) -> StoreResult<Option<Blob>> {
        self.run_read(|db| {
            read(db, |txn| {
                let blobs = txn.open_table(BLOBS).map_err(backend)?;
                let Some(entry) = blobs.get(name).map_err(backend)? else {
                    return Ok(None);
                };
                let (version, value) = split(entry.value())?;
                Ok(Some(Blob::new(value.to_vec(), version)))
            })
        })
    }

    async fn blob_put(&self, name: &str, expected: u64, value: &[u8]) -> StoreResult<u64> {
        let name = name.to_owned();
        let version = expected
            .checked_add(1)
            .ok_or(tessera_core::Error::Unreachable("blob version overflow"))?;
        let mut entry = Vec::with_capacity(8 + value.len());
        entry.extend_from_slice(&version.to_be_bytes());
        entry.extend_from_slice(value);
        self.write(Touches::Nothing, move |txn| {
            let mut blobs = txn.open_table(BLOBS).map_err(backend)?;
            let current = blobs
                .get(name.as_str())
                .map_err(backend)?
                .map(|e| split(e.value()).map(|(v, _)| v))
                .transpose()?
                .unwrap_or(0);
            // The refusal comes before the first write, as the writer's batches require.
            if current != expected {
                return Err(tessera_core::Error::Conflict);
            }
            blobs
                .insert(name.as_str(), entry.as_slice())
                .map_err(backend)?;
            Ok(version)
        })
        .await
    }
}
