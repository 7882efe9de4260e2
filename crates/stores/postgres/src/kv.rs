//! The Kask-compatible key-value store on Postgres (table `tessera_kv`, expiry in a column),
//! and the keyed store (`ns_*`: tables `tessera_kv_namespaces` and `tessera_kv_values`).

use async_trait::async_trait;
use tessera_core::{KvEntry, KvKey, KvNamespace, KvStore, Timestamp};

use crate::{PURGE_BATCH, PostgresStore, StoreResult, pg_error};

const KV_GET: &str = "SELECT value FROM tessera_kv WHERE key = $1 AND expires_at > $2";

const KV_PUT: &str = "
INSERT INTO tessera_kv (key, value, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at";

const KV_DELETE: &str = "DELETE FROM tessera_kv WHERE key = $1";

const KV_PURGE: &str = "
DELETE FROM tessera_kv WHERE key IN (
    SELECT key FROM tessera_kv WHERE expires_at <= $1
    ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// The current generation of namespace `$1` (0 before its first clear).
macro_rules! ns_generation {
    () => {
        "COALESCE((SELECT generation FROM tessera_kv_namespaces WHERE ns = $1), 0)"
    };
}

const NS_GET: &str = concat!(
    "SELECT value, expires_at FROM tessera_kv_values
WHERE ns = $1 AND key = $2 AND expires_at > $3 AND generation = ",
    ns_generation!()
);

/// One statement: the value written in the current generation, and the namespace's count
/// raised when the key is new to it (inserted, or over a row of an older generation). A row
/// of a later generation than the one read (a clear and a put landed since the snapshot) is
/// left alone: this put is then ordered before that clear, which hides it anyway. The count
/// is raised only while the namespace is still in the generation written (the re-checked
/// `WHERE` of `ON CONFLICT DO UPDATE`).
const NS_PUT: &str = concat!(
    "WITH cur AS (SELECT ",
    ns_generation!(),
    " AS g),
up AS (
    INSERT INTO tessera_kv_values AS v (ns, key, generation, replaced, value, expires_at)
    SELECT $1::text, $2::bytea, cur.g, NULL::bigint, $3::bytea, $4::bigint FROM cur
    ON CONFLICT (ns, key) DO UPDATE SET
        generation = EXCLUDED.generation, replaced = v.generation,
        value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
    WHERE v.generation <= EXCLUDED.generation
    RETURNING generation, replaced),
counted AS (
    INSERT INTO tessera_kv_namespaces AS n (ns, generation, count)
    SELECT $1::text, up.generation, 1 FROM up
    WHERE up.replaced IS NULL OR up.replaced <> up.generation
    ON CONFLICT (ns) DO UPDATE SET count = n.count + 1
    WHERE n.generation = EXCLUDED.generation
    RETURNING 1)
SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM counted)"
);

const NS_TOUCH: &str = concat!(
    "UPDATE tessera_kv_values SET expires_at = $3
WHERE ns = $1 AND key = $2 AND expires_at > $4 AND generation = ",
    ns_generation!()
);

/// One statement: the row deleted, the count lowered if it was of the current generation,
/// and whether it was live. All three parts see the snapshot of the statement's start.
const NS_DELETE: &str = concat!(
    "WITH cur AS (SELECT ",
    ns_generation!(),
    " AS g),
gone AS (DELETE FROM tessera_kv_values WHERE ns = $1 AND key = $2
         RETURNING generation, expires_at),
lowered AS (UPDATE tessera_kv_namespaces n SET count = GREATEST(n.count - 1, 0) FROM gone
            WHERE n.ns = $1 AND n.generation = gone.generation RETURNING 1)
SELECT EXISTS (SELECT 1 FROM gone, cur WHERE gone.generation = cur.g AND gone.expires_at > $3)"
);

const NS_COUNT: &str = "SELECT count FROM tessera_kv_namespaces WHERE ns = $1";

/// One write whatever the namespace holds: the generation moves on and the count is reset.
const NS_CLEAR: &str = "
INSERT INTO tessera_kv_namespaces AS n (ns, generation, count) VALUES ($1, 1, 0)
ON CONFLICT (ns) DO UPDATE SET generation = n.generation + 1, count = 0";

/// One batch of the purge: due rows deleted (skipping rows being written), and the counts of
/// their namespaces lowered for those of the current generation. Returns how many went.
const NS_PURGE: &str = "
WITH gone AS (
    DELETE FROM tessera_kv_values WHERE (ns, key) IN (
        SELECT ns, key FROM tessera_kv_values WHERE expires_at <= $1
        ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING ns, generation),
per AS (SELECT ns, generation, count(*) AS k FROM gone GROUP BY ns, generation),
lowered AS (UPDATE tessera_kv_namespaces n SET count = GREATEST(n.count - per.k, 0) FROM per
            WHERE n.ns = per.ns AND n.generation = per.generation RETURNING 1)
SELECT count(*) FROM gone";

#[async_trait]
impl KvStore for PostgresStore {
    async fn kv_get(&self, key: &[u8], now: Timestamp) -> StoreResult<Option<Vec<u8>>> {
        let row = self
            .with_reader(|c| async move {
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
        let kask = self.purge_in_batches(KV_PURGE, now).await?;
        Ok(kask + self.purge_namespaces(now).await?)
    }

    async fn ns_get(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        now: Timestamp,
    ) -> StoreResult<Option<KvEntry>> {
        let row = self
            .with_reader(|c| async move {
                let st = c.prepare_cached(NS_GET).await.map_err(pg_error)?;
                c.query_opt(
                    &st,
                    &[&ns.as_str(), &key.as_bytes().as_slice(), &now.unix_millis()],
                )
                .await
                .map_err(pg_error)
            })
            .await?;
        row.map(|r| {
            Ok(KvEntry {
                value: r.try_get(0)?,
                expires_at: Timestamp::from_unix_millis(r.try_get(1)?),
            })
        })
        .transpose()
        .map_err(pg_error)
    }

    async fn ns_put(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        value: &[u8],
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> StoreResult<()> {
        self.with_client(|c| async move {
            let st = c.prepare_cached(NS_PUT).await.map_err(pg_error)?;
            c.query_one(
                &st,
                &[
                    &ns.as_str(),
                    &key.as_bytes().as_slice(),
                    &value,
                    &expires_at.unix_millis(),
                ],
            )
            .await
            .map_err(pg_error)
        })
        .await
        .map(drop)
    }

    async fn ns_touch(
        &self,
        ns: &KvNamespace,
        key: &KvKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let n = self
            .with_client(|c| async move {
                let st = c.prepare_cached(NS_TOUCH).await.map_err(pg_error)?;
                c.execute(
                    &st,
                    &[
                        &ns.as_str(),
                        &key.as_bytes().as_slice(),
                        &expires_at.unix_millis(),
                        &now.unix_millis(),
                    ],
                )
                .await
                .map_err(pg_error)
            })
            .await?;
        Ok(n == 1)
    }

    async fn ns_delete(&self, ns: &KvNamespace, key: &KvKey, now: Timestamp) -> StoreResult<bool> {
        let row = self
            .with_client(|c| async move {
                let st = c.prepare_cached(NS_DELETE).await.map_err(pg_error)?;
                c.query_one(
                    &st,
                    &[&ns.as_str(), &key.as_bytes().as_slice(), &now.unix_millis()],
                )
                .await
                .map_err(pg_error)
            })
            .await?;
        row.try_get(0).map_err(pg_error)
    }

    async fn ns_count(&self, ns: &KvNamespace, _now: Timestamp) -> StoreResult<u64> {
        // A count over the namespace: on a connection of its own, off the read lanes.
        let row = self
            .with_client(|c| async move {
                let st = c.prepare_cached(NS_COUNT).await.map_err(pg_error)?;
                c.query_opt(&st, &[&ns.as_str()]).await.map_err(pg_error)
            })
            .await?;
        let count: i64 = match row {
            Some(r) => r.try_get(0).map_err(pg_error)?,
            None => 0,
        };
        Ok(count.unsigned_abs())
    }

    async fn ns_clear(&self, ns: &KvNamespace, _now: Timestamp) -> StoreResult<()> {
        self.with_client(|c| async move {
            let st = c.prepare_cached(NS_CLEAR).await.map_err(pg_error)?;
            c.execute(&st, &[&ns.as_str()]).await.map_err(pg_error)
        })
        .await
        .map(drop)
    }
}

impl PostgresStore {
    /// Purges the keyed store's due values in batches; returns how many went.
    async fn purge_namespaces(&self, now: Timestamp) -> StoreResult<u64> {
        let mut purged = 0;
        loop {
            let row = self
                .with_client(|c| async move {
                    let st = c.prepare_cached(NS_PURGE).await.map_err(pg_error)?;
                    c.query_one(&st, &[&now.unix_millis(), &PURGE_BATCH])
                        .await
                        .map_err(pg_error)
                })
                .await?;
            let n: i64 = row.try_get(0).map_err(pg_error)?;
            purged += n.unsigned_abs();
            if n < PURGE_BATCH {
                return Ok(purged);
            }
        }
    }
}
