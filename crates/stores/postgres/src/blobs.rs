//! The versioned blobs of a Postgres store, in `tessera_blobs`.

use async_trait::async_trait;
use tessera_core::{Blob, BlobStore, Result as StoreResult};

use crate::{PostgresStore, pg_error};

const BLOB_GET: &str = "SELECT value, version FROM tessera_blobs WHERE name = $1";

/// The first write: a concurrent first write makes the loser's insert do nothing.
const BLOB_CREATE: &str = "
INSERT INTO tessera_blobs (name, version, value) VALUES ($1, 1, $2)
ON CONFLICT (name) DO NOTHING";

/// A later write: one row update, which Postgres serialises on the row lock, so of
/// concurrent updates from one version only the first matches.
const BLOB_UPDATE: &str = "
UPDATE tessera_blobs SET version = version + 1, value = $3
WHERE name = $1 AND version = $2";

fn version_error(e: std::num::TryFromIntError) -> tessera_core::Error {
    tessera_core::Error::Decode(Box::new(e))
}

#[async_trait]
impl BlobStore for PostgresStore {
    async fn blob_get(&self, name: &str) -> StoreResult<Option<Blob>> {
        let row = self
            .with_reader(|c| async move {
                let st = c.prepare_cached(BLOB_GET).await.map_err(pg_error)?;
                c.query_opt(&st, &[&name]).await.map_err(pg_error)
            })
            .await?;
        let Some(row) = row else { return Ok(None) };
        let value: Vec<u8> = row.try_get(0).map_err(pg_error)?;
        let version: i64 = row.try_get(1).map_err(pg_error)?;
        Ok(Some(Blob::new(
            value,
            u64::try_from(version).map_err(version_error)?,
        )))
    }

    async fn blob_put(&self, name: &str, expected: u64, value: &[u8]) -> StoreResult<u64> {
        let old = i64::try_from(expected).map_err(|e| tessera_core::Error::Encode(Box::new(e)))?;
        let written = self
            .with_client(|c| async move {
                if old == 0 {
                    let st = c.prepare_cached(BLOB_CREATE).await.map_err(pg_error)?;
                    c.execute(&st, &[&name, &value]).await.map_err(pg_error)
                } else {
                    let st = c.prepare_cached(BLOB_UPDATE).await.map_err(pg_error)?;
                    c.execute(&st, &[&name, &old, &value])
                        .await
                        .map_err(pg_error)
                }
            })
            .await?;
        if written == 1 {
            expected
                .checked_add(1)
                .ok_or(tessera_core::Error::Unreachable("blob version overflow"))
        } else {
            Err(tessera_core::Error::Conflict)
        }
    }
}
