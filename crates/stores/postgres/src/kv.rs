//! The Kask-compatible key-value store on Postgres: table `tessera_kv`, expiry in a column.

use async_trait::async_trait;
use tessera_core::{KvStore, Timestamp};

use crate::{PostgresStore, StoreResult, pg_error};

const KV_GET: &str = "SELECT value FROM tessera_kv WHERE key = $1 AND expires_at > $2";

const KV_PUT: &str = "
INSERT INTO tessera_kv (key, value, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at";

const KV_DELETE: &str = "DELETE FROM tessera_kv WHERE key = $1";

const KV_PURGE: &str = "
DELETE FROM tessera_kv WHERE key IN (
    SELECT key FROM tessera_kv WHERE expires_at <= $1
    ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

#[async_trait]
impl KvStore for PostgresStore {
    async fn kv_get(&self, key: &[u8], now: Timestamp) -> StoreResult<Option<Vec<u8>>> {
        let row = self
            .with_client(|c| async move {
                let st = c.prepare_cached(KV_GET).await.map_err(pg_error)?;
                c.query_opt(&st, &[&key, &now.unix_millis()])
                    .await
                    .map_err(pg_error)
            })
            .await?;
        row.map(|r| r.try_get::<_, Vec<u8>>(0))
            .transpose()
            .map_err(pg_error)
    }

    async fn kv_put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> StoreResult<()> {
        self.with_client(|c| async move {
            let st = c.prepare_cached(KV_PUT).await.map_err(pg_error)?;
            c.execute(&st, &[&key, &value, &expires_at.unix_millis()])
                .await
                .map_err(pg_error)
        })
        .await
        .map(drop)
    }

    async fn kv_delete(&self, key: &[u8]) -> StoreResult<()> {
        self.with_client(|c| async move {
            let st = c.prepare_cached(KV_DELETE).await.map_err(pg_error)?;
            c.execute(&st, &[&key]).await.map_err(pg_error)
        })
        .await
        .map(drop)
    }

    async fn kv_purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        self.purge_in_batches(KV_PURGE, now).await
    }
}
