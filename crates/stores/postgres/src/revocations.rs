//! The revocation log on Postgres: table `tessera_revocations`, appended in sequence order.

use async_trait::async_trait;
use tessera_core::{Revocation, RevocationLog, RevokedSubject, Timestamp};

use crate::{PostgresStore, StoreResult, pg_error};

/// The advisory lock that serialises appends to the revocation log ("tesseraR" as ASCII).
const REVOCATION_LOCK: i64 = 0x7465_7373_6572_6152;

/// Appends under a transaction-scoped advisory lock, taken before `nextval`: appends commit
/// in sequence order, so a reader that saw sequence number `n` never later finds a smaller
/// one committed behind it (a bare `bigserial` would allow that, and a feed polling "after
/// `n`" would miss the entry).
const LOG_REVOCATION: &str = "
INSERT INTO tessera_revocations (subject_kind, subject_id, at)
SELECT $1, $2, $3 FROM (SELECT pg_advisory_xact_lock($4)) AS serialised
RETURNING seq";

const REVOCATIONS_SINCE: &str = "
SELECT seq, subject_kind, subject_id, at FROM tessera_revocations
WHERE seq > $1 ORDER BY seq LIMIT $2";

const PURGE_REVOCATIONS: &str = "DELETE FROM tessera_revocations WHERE at < $1";

#[async_trait]
impl RevocationLog for PostgresStore {
    async fn log_revocation(&self, r: &Revocation) -> StoreResult<u64> {
        let (kind, id) = match &r.subject {
            RevokedSubject::User(u) => ("user", u.as_str()),
            RevokedSubject::Session(s) => ("session", s.as_str()),
        };
        let at = r.at.unix_millis();
        let row = self
            .with_client(|c| async move {
                let st = c.prepare_cached(LOG_REVOCATION).await.map_err(pg_error)?;
                c.query_one(&st, &[&kind, &id, &at, &REVOCATION_LOCK])
                    .await
                    .map_err(pg_error)
            })
            .await?;
        let seq: i64 = row.try_get(0).map_err(pg_error)?;
        Ok(seq.unsigned_abs())
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Revocation)>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // A page of up to 10,000 entries, read by every edge verifier: on a connection of its
        // own, so that it never holds up the point reads of a read lane.
        let rows = self
            .with_client(|c| async move {
                let st = c
                    .prepare_cached(REVOCATIONS_SINCE)
                    .await
                    .map_err(pg_error)?;
                c.query(&st, &[&after, &limit]).await.map_err(pg_error)
            })
            .await?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(pg_error)?;
                let kind: &str = row.try_get(1).map_err(pg_error)?;
                let id: String = row.try_get(2).map_err(pg_error)?;
                let at: i64 = row.try_get(3).map_err(pg_error)?;
                let subject = match kind {
                    "user" => RevokedSubject::User(id),
                    "session" => RevokedSubject::Session(id),
                    _ => {
                        return Err(tessera_core::Error::Decode(
                            "unknown revocation subject kind".into(),
                        ));
                    }
                };
                Ok((
                    seq.unsigned_abs(),
                    Revocation {
                        subject,
                        at: Timestamp::from_unix_millis(at),
                    },
                ))
            })
            .collect()
    }

    async fn purge_revocations(&self, before: Timestamp) -> StoreResult<u64> {
        self.with_client(|c| async move {
            let st = c
                .prepare_cached(PURGE_REVOCATIONS)
                .await
                .map_err(pg_error)?;
            c.execute(&st, &[&before.unix_millis()])
                .await
                .map_err(pg_error)
        })
        .await
    }
}
