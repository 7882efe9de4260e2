//! The Kask-compatible key-value store on Redis: one hash a key, its expiry beside the value.

use async_trait::async_trait;
use futures_util::future::try_join_all;
use tessera_core::{KvStore, Timestamp};

use crate::{RedisStore, StoreResult, scripts, ttl_ms};

#[async_trait]
impl KvStore for RedisStore {
    async fn kv_get(&self, key: &[u8], now: Timestamp) -> StoreResult<Option<Vec<u8>>> {
        let (value, expires): (Option<Vec<u8>>, Option<i64>) = self
            .query(redis::cmd("HMGET").arg(self.keys.kv(key)).arg("v").arg("e"))
            .await?;
        // Never trust the TTL: the engine's clock decides.
        Ok(match (value, expires) {
            (Some(v), Some(e)) if now.unix_millis() < e => Some(v),
            _ => None,
        })
    }

    async fn kv_put(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.invoke::<i64>(
            scripts::KV_PUT
                .key(self.keys.kv(key))
                .arg(value)
                .arg(expires_at.unix_millis())
                .arg(ttl_ms(expires_at, now)),
        )
        .await
        .map(drop)
    }

    async fn kv_delete(&self, key: &[u8]) -> StoreResult<()> {
        self.query::<()>(redis::cmd("DEL").arg(self.keys.kv(key)))
            .await
    }

    async fn kv_purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        let pattern = self.keys.kv_pattern();
        let now_ms = now.unix_millis();
        let mut purged = 0;
        for node in self.scan_targets().await? {
            let mut cursor = 0;
            loop {
                let (next, names) = self.scan_step(&node, cursor, &pattern).await?;
                let gone = try_join_all(names.iter().map(|n| async move {
                    self.invoke::<i64>(scripts::KV_PURGE_ONE.key(n.as_str()).arg(now_ms))
                        .await
                }))
                .await?;
                purged += gone.iter().filter(|&&g| g == 1).count() as u64;
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(purged)
    }
}
