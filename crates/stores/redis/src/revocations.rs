//! The revocation log on Redis: a stream of revocations in order, read by the feed and the verifiers.

use async_trait::async_trait;
use tessera_core::{Revocation, RevocationLog, Timestamp};

use crate::{RedisStore, StoreResult, scripts};

#[async_trait]
impl RevocationLog for RedisStore {
    async fn log_revocation(&self, r: &Revocation) -> StoreResult<u64> {
        let json =
            serde_json::to_string(r).map_err(|e| tessera_core::Error::Encode(Box::new(e)))?;
        self.invoke(
            scripts::LOG_REVOCATION
                .key(self.keys.revocation_seq())
                .key(self.keys.revocation_log())
                .key(self.keys.revocation_times())
                .arg(json)
                .arg(r.at.unix_millis()),
        )
        .await
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Revocation)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if limit == 0 {
            return Ok(vec![]);
        }
        let members: Vec<Vec<u8>> = self
            .query(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.keys.revocation_log())
                    .arg(format!("({after}"))
                    .arg("+inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit),
            )
            .await?;
        members
            .iter()
            .map(|m| {
                let bad = || {
                    tessera_core::Error::Decode("a revocation log entry is not <seq>:<JSON>".into())
                };
                let colon = m.iter().position(|&b| b == b':').ok_or_else(bad)?;
                let (seq, json) = m.split_at(colon);
                let seq = std::str::from_utf8(seq)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(bad)?;
                let r: Revocation = serde_json::from_slice(json.get(1..).unwrap_or_default())
                    .map_err(|e| tessera_core::Error::Decode(Box::new(e)))?;
                Ok((seq, r))
            })
            .collect()
    }

    async fn purge_revocations(&self, before: Timestamp) -> StoreResult<u64> {
        let n: i64 = self
            .invoke(
                scripts::PURGE_REVOCATIONS
                    .key(self.keys.revocation_log())
                    .key(self.keys.revocation_times())
                    .arg(before.unix_millis()),
            )
            .await?;
        Ok(n.unsigned_abs())
    }
}
