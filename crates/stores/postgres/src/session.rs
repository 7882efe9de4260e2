//! The session records and the user index on Postgres: one statement an operation.

use async_trait::async_trait;
use tessera_core::{KvStore, RevocationLog, SessionRecord, SessionStore, StoreKey, Timestamp};

use crate::batch::{LoadOp, Loaded, SaveOp, Saved};
use crate::{PostgresStore, StoreResult, decode, encode, pg_error};

const CREATE: &str = "
INSERT INTO tessera_sessions (key, version, user_id, created_at, dead_at, record)
VALUES ($1, $2, $3, $4, $5, $6::text::json)
ON CONFLICT (key) DO NOTHING";

const LOAD: &str = "
SELECT s.record::text, r.revoked_at
FROM tessera_sessions s
LEFT JOIN tessera_user_revocations r ON r.user_id = s.user_id
WHERE s.key = $1 AND s.record IS NOT NULL AND s.dead_at > $2";

/// The live-record condition on `s`, used twice by `SAVE_OR_WHY`: it restates
/// [`SessionRecord::is_live`] (plus "not a tombstone") in SQL so that `save`'s check and
/// write are one statement. For `save` it is authoritative and must agree with `is_live` (the
/// conformance suite checks that it does); `load` and `list_user_sessions` filter in SQL only
/// to read less, and decide with `is_live`.
macro_rules! live_condition {
    ($now:literal) => {
        concat!(
            "s.record IS NOT NULL AND s.dead_at > ",
            $now,
            " AND NOT EXISTS (SELECT 1 FROM tessera_user_revocations r",
            " WHERE r.user_id = s.user_id AND r.revoked_at >= s.created_at)"
        )
    };
}

/// The compare-and-set of `save` and, in the same statement and snapshot, whether there was
/// a live record to save over: `(written, live)`. The `SELECT` sees the rows as they were when the statement
/// started (a data-modifying `WITH` does not change its snapshot).
const SAVE_OR_WHY: &str = concat!(
    "WITH written AS (UPDATE tessera_sessions s
SET version = $3, user_id = $4, created_at = $5, dead_at = $6, record = $7::text::json
WHERE s.key = $1 AND s.version = $2 AND ",
    live_condition!("$8"),
    " RETURNING 1)
SELECT EXISTS (SELECT 1 FROM written),
       EXISTS (SELECT 1 FROM tessera_sessions s WHERE s.key = $1 AND ",
    live_condition!("$8"),
    ")"
);

const DELETE: &str = "
INSERT INTO tessera_sessions (key, version, user_id, created_at, dead_at, record)
VALUES ($1, NULL, NULL, NULL, $2, NULL)
ON CONFLICT (key) DO UPDATE SET
    version = NULL, user_id = NULL, created_at = NULL, record = NULL,
    dead_at = CASE WHEN tessera_sessions.record IS NULL
                   THEN GREATEST(tessera_sessions.dead_at, EXCLUDED.dead_at)
                   ELSE EXCLUDED.dead_at END";

const LIST: &str = "
SELECT s.key, s.record::text, r.revoked_at
FROM tessera_sessions s
LEFT JOIN tessera_user_revocations r ON r.user_id = s.user_id
WHERE s.user_id = $1 AND s.record IS NOT NULL AND s.dead_at > $2
  AND (r.revoked_at IS NULL OR s.created_at > r.revoked_at)
ORDER BY s.created_at, s.key";

const REVOKE: &str = "
INSERT INTO tessera_user_revocations (user_id, revoked_at) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE
SET revoked_at = GREATEST(tessera_user_revocations.revoked_at, EXCLUDED.revoked_at)";

const REVOKED_AT: &str = "SELECT revoked_at FROM tessera_user_revocations WHERE user_id = $1";

const PURGE: &str = "
DELETE FROM tessera_sessions WHERE key IN (
    SELECT key FROM tessera_sessions WHERE dead_at <= $1
    ORDER BY dead_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

#[async_trait]
impl SessionStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn as_kv(&self) -> Option<&dyn KvStore> {
        Some(self)
    }

    fn as_revocation_log(&self) -> Option<&dyn RevocationLog> {
        Some(self)
    }

    fn as_blobs(&self) -> Option<&dyn tessera_core::BlobStore> {
        Some(self)
    }

    async fn create(&self, key: &StoreKey, record: &SessionRecord) -> StoreResult<()> {
        let (json, version) = encode(record)?;
        let inserted = self
            .with_client(|c| async move {
                let st = c.prepare_cached(CREATE).await.map_err(pg_error)?;
                c.execute(
                    &st,
                    &[
                        &key.as_bytes().as_slice(),
                        &version,
                        &record.user_id(),
                        &record.created_at.unix_millis(),
                        &record.expires_at().unix_millis(),
                        &json,
                    ],
                )
                .await
                .map_err(pg_error)
            })
            .await?;
        match inserted {
            1 => Ok(()),
            _ => Err(tessera_core::Error::AlreadyExists),
        }
    }

    async fn load(&self, key: &StoreKey, now: Timestamp) -> StoreResult<Option<SessionRecord>> {
        let found = match &self.loads {
            Some(loads) => {
                let op = LoadOp {
                    key: *key.as_bytes(),
                    now: now.unix_millis(),
                };
                tokio::time::timeout(self.timeout, loads.submit(op))
                    .await
                    .unwrap_or(Err(tessera_core::Error::Timeout))?
            }
            None => self.load_alone(key, now).await?,
        };
        let Some((json, revoked)) = found else {
            return Ok(None);
        };
        let record = decode(&json)?;
        Ok(record
            .is_live(now, revoked.map(Timestamp::from_unix_millis))
            .then_some(record))
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (json, version) = encode(record)?;
        // A version past i64::MAX cannot be stored, so nothing stored has it: a conflict.
        let expected = i64::try_from(expected).map_err(|_| tessera_core::Error::Conflict)?;
        let op = SaveOp {
            key: *key.as_bytes(),
            expected,
            version,
            user_id: record.user_id().map(str::to_owned),
            created_at: record.created_at.unix_millis(),
            dead_at: record.expires_at().unix_millis(),
            record: json,
            now: now.unix_millis(),
        };
        // One deadline for the batch and, after a busy answer, the save sent alone.
        let work = async {
            match self.batcher.submit(op).await? {
                Saved::Ok => Ok(()),
                Saved::Conflict => Err(tessera_core::Error::Conflict),
                Saved::NotFound => Err(tessera_core::Error::NotFound),
                Saved::Busy => {
                    // Another transaction holds the row: the single statement waits for it.
                    self.batcher.count_busy();
                    self.save_alone(key, expected, version, record, now).await
                }
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(tessera_core::Error::Timeout))
    }

    async fn delete(&self, key: &StoreKey, tombstone_until: Timestamp) -> StoreResult<()> {
        self.with_client(|c| async move {
            let st = c.prepare_cached(DELETE).await.map_err(pg_error)?;
            c.execute(
                &st,
                &[&key.as_bytes().as_slice(), &tombstone_until.unix_millis()],
            )
            .await
            .map_err(pg_error)
        })
        .await
        .map(drop)
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<(StoreKey, SessionRecord)>> {
        // A scan (every session of a user) on a connection of its own, not a read lane: a
        // Postgres backend runs a connection's statements one after the other, so a long
        // read on a lane would hold up the point reads queued behind it.
        let rows = self
            .with_client(|c| async move {
                let st = c.prepare_cached(LIST).await.map_err(pg_error)?;
                c.query(&st, &[&user_id, &now.unix_millis()])
                    .await
                    .map_err(pg_error)
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key: &[u8] = row.try_get(0).map_err(pg_error)?;
            let key: [u8; 32] = key
                .try_into()
                .map_err(|e| tessera_core::Error::Decode(Box::new(e)))?;
            let json: String = row.try_get(1).map_err(pg_error)?;
            let revoked: Option<i64> = row.try_get(2).map_err(pg_error)?;
            let record = decode(&json)?;
            // The query filtered on the columns; the record's own fields decide.
            if record.user_id() == Some(user_id)
                && record.is_live(now, revoked.map(Timestamp::from_unix_millis))
            {
                out.push((StoreKey::from_bytes(key), record));
            }
        }
        Ok(out)
    }

    async fn revoke_user(&self, user_id: &str, at: Timestamp) -> StoreResult<()> {
        self.with_client(|c| async move {
            let st = c.prepare_cached(REVOKE).await.map_err(pg_error)?;
            c.execute(&st, &[&user_id, &at.unix_millis()])
                .await
                .map_err(pg_error)
        })
        .await
        .map(drop)
    }

    async fn user_revoked_at(&self, user_id: &str) -> StoreResult<Option<Timestamp>> {
        let row = self
            .with_reader(|c| async move {
                let st = c.prepare_cached(REVOKED_AT).await.map_err(pg_error)?;
                c.query_opt(&st, &[&user_id]).await.map_err(pg_error)
            })
            .await?;
        row.map(|r| r.try_get::<_, i64>(0).map(Timestamp::from_unix_millis))
            .transpose()
            .map_err(pg_error)
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        self.purge_in_batches(PURGE, now).await
    }
}

impl PostgresStore {
    /// `load` as one statement of its own, on a read lane: when loads are not batched.
    async fn load_alone(&self, key: &StoreKey, now: Timestamp) -> StoreResult<Loaded> {
        let row = self
            .with_reader(|c| async move {
                let st = c.prepare_cached(LOAD).await.map_err(pg_error)?;
                c.query_opt(&st, &[&key.as_bytes().as_slice(), &now.unix_millis()])
                    .await
                    .map_err(pg_error)
            })
            .await?;
        row.map(|row| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
            .transpose()
            .map_err(pg_error)
    }

    /// `save` as one statement of its own, which waits for a row another transaction holds:
    /// for a save its batch found busy.
    async fn save_alone(
        &self,
        key: &StoreKey,
        expected: i64,
        version: i64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> StoreResult<()> {
        let json = encode(record)?.0;
        self.with_client(|c| async move {
            let key = key.as_bytes().as_slice();
            let st = c.prepare_cached(SAVE_OR_WHY).await.map_err(pg_error)?;
            let row = c
                .query_one(
                    &st,
                    &[
                        &key,
                        &expected,
                        &version,
                        &record.user_id(),
                        &record.created_at.unix_millis(),
                        &record.expires_at().unix_millis(),
                        &json,
                        &now.unix_millis(),
                    ],
                )
                .await
                .map_err(pg_error)?;
            let written: bool = row.try_get(0).map_err(pg_error)?;
            let live: bool = row.try_get(1).map_err(pg_error)?;
            // Nothing written: a live record means another version won.
            match (written, live) {
                (true, _) => Ok(()),
                (false, true) => Err(tessera_core::Error::Conflict),
                (false, false) => Err(tessera_core::Error::NotFound),
            }
        })
        .await
    }
}
