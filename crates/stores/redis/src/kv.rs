//! The Kask-compatible key-value store on Redis (one hash a key, its expiry beside the value),
//! and the keyed store (`ns_*`, one hash tag per namespace; see the crate documentation).

use async_trait::async_trait;
use futures_util::future::try_join_all;
use tessera_core::{KvEntry, KvKey, KvNamespace, KvStore, Timestamp};

use crate::{NS_PURGE_BATCH, RedisStore, StoreResult, scripts, ttl_ms};

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
        // The entry and its TTL in one `MULTI`/`EXEC` (one round trip, applied together): a
        // script doing the same costs Redis several times the CPU (each `redis.call` about
        // as much as a plain command, plus the script's own start), and the Kask API's
        // writes are this call.
        let name = self.keys.kv(key);
        self.pipeline::<()>(
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&name)
                .arg("v")
                .arg(value)
                .arg("e")
                .arg(expires_at.unix_millis())
                .ignore()
                .cmd("PEXPIRE")
                .arg(&name)
                .arg(ttl_ms(expires_at, now))
                .ignore(),
        )
        .await
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
        Ok(purged + self.purge_namespaces(now).await?)
    }

    async fn ns_get(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        now: Timestamp,
    ) -> StoreResult<Option<KvEntry>> {
        let found: Option<(Vec<u8>, i64)> = self
            .invoke(
                scripts::NS_GET
                    .key(self.keys.ns_generation(ns))
                    .key(self.keys.ns_value(ns, key))
                    .arg(now.unix_millis()),
            )
            .await?;
        Ok(found.map(|(value, until)| KvEntry {
            value,
            expires_at: Timestamp::from_unix_millis(until),
        }))
    }

    async fn ns_put(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<()> {
        let fresh: i64 = self
            .invoke(
                scripts::NS_PUT
                    .key(self.keys.ns_generation(ns))
                    .key(self.keys.ns_value(ns, key))
                    .key(self.keys.ns_index(ns))
                    .arg(value)
                    .arg(expires_at.unix_millis())
                    .arg(ttl_ms(expires_at, now))
                    .arg(key.to_hex())
                    .arg(now.unix_millis()),
            )
            .await?;
        if fresh == 1 {
            // Another slot on a Cluster, so a second step; only when the namespace's index
            // was just created. Losing it costs nothing but the purge's early removal: Redis
            // still drops the values at their TTLs, and the count does not depend on it.
            self.query::<()>(
                redis::cmd("SADD")
                    .arg(self.keys.ns_registry())
                    .arg(ns.as_str()),
            )
            .await?;
        }
        Ok(())
    }

    async fn ns_touch(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let touched: i64 = self
            .invoke(
                scripts::NS_TOUCH
                    .key(self.keys.ns_generation(ns))
                    .key(self.keys.ns_value(ns, key))
                    .key(self.keys.ns_index(ns))
                    .arg(expires_at.unix_millis())
                    .arg(ttl_ms(expires_at, now))
                    .arg(key.to_hex())
                    .arg(now.unix_millis()),
            )
            .await?;
        Ok(touched == 1)
    }

    async fn ns_delete(&self, ns: &KvNamespace, key: &KvKey, now: Timestamp) -> StoreResult<bool> {
        let went: i64 = self
            .invoke(
                scripts::NS_DELETE
                    .key(self.keys.ns_generation(ns))
                    .key(self.keys.ns_value(ns, key))
                    .key(self.keys.ns_index(ns))
                    .arg(key.to_hex())
                    .arg(now.unix_millis()),
            )
            .await?;
        Ok(went == 1)
    }

    async fn ns_count(&self, ns: &KvNamespace, now: Timestamp) -> StoreResult<u64> {
        // The index holds the current generation's keys scored by expiry: counting those
        // after `now` is exact on the engine's clock, O(log n), and reads one key.
        self.query(
            redis::cmd("ZCOUNT")
                .arg(self.keys.ns_index(ns))
                .arg(format!("({}", now.unix_millis()))
                .arg("+inf"),
        )
        .await
    }

    async fn ns_clear(&self, ns: &KvNamespace, _now: Timestamp) -> StoreResult<()> {
        self.invoke::<i64>(
            scripts::NS_CLEAR
                .key(self.keys.ns_generation(ns))
                .key(self.keys.ns_index(ns)),
        )
        .await
        .map(drop)
    }
}

impl RedisStore {
    /// Removes the keyed store's values due at `now`, namespace by namespace (the registry
    /// names them: no `SCAN`), reading each index by score. Returns how many went.
    async fn purge_namespaces(&self, now: Timestamp) -> StoreResult<u64> {
        let now_ms = now.unix_millis();
        let registry = self.keys.ns_registry();
        let names: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(&registry)).await?;
        let mut purged = 0;
        for name in names {
            let Ok(ns) = KvNamespace::try_new(&name) else {
                // Not a name this store writes; leave it to the operator.
                continue;
            };
            let index = self.keys.ns_index(&ns);
            loop {
                let due: Vec<String> = self
                    .query(
                        redis::cmd("ZRANGEBYSCORE")
                            .arg(&index)
                            .arg("-inf")
                            .arg(now_ms)
                            .arg("LIMIT")
                            .arg(0)
                            .arg(NS_PURGE_BATCH),
                    )
                    .await?;
                if due.is_empty() {
                    break;
                }
                let mut inv = scripts::NS_PURGE.key(self.keys.ns_generation(&ns));
                inv.key(&index).arg(now_ms);
                for hex in &due {
                    inv.key(self.keys.ns_value_hex(&ns, hex)).arg(hex);
                }
                let n: i64 = self.invoke(&inv).await?;
                purged += n.unsigned_abs();
                if due.len() < NS_PURGE_BATCH {
                    break;
                }
            }
            let exists: i64 = self.query(redis::cmd("EXISTS").arg(&index)).await?;
            if exists == 0 {
                // Best effort (a put may create the index again in between): see `ns_put`.
                self.query::<()>(redis::cmd("SREM").arg(&registry).arg(&name))
                    .await?;
            }
        }
        Ok(purged)
    }
}
