//! The session records and the user index on Redis: create, load, save, delete, list, revoke and purge.

use async_trait::async_trait;
use futures_util::future::try_join_all;
use tessera_core::{KvStore, RevocationLog, SessionRecord, SessionStore, StoreKey, Timestamp};

use crate::{
    Conn, MAX_TTL_MS, MIN_TTL_MS, RedisStore, StoreResult, decode, encode, keys, scripts, ttl_ms,
};

#[async_trait]
impl SessionStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
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
        let json = encode(record)?;
        let hex = key.to_hex();
        let expires = record.expires_at();
        // The engine writes a new record at its creation time.
        let ttl = ttl_ms(expires, record.created_at.max(record.renewed_at));
        let user = record.user_id().unwrap_or("");
        if !user.is_empty() && !self.is_cluster() {
            // One script: the record and its user's index, written together or not at all.
            let created: i64 = self
                .invoke(
                    scripts::CREATE_STANDALONE
                        .key(self.keys.session_hex(&hex))
                        .arg(json)
                        .arg(record.version)
                        .arg(expires.unix_millis())
                        .arg(record.created_at.unix_millis())
                        .arg(user)
                        .arg(ttl)
                        .arg(&hex)
                        .arg(self.keys.user_key_start()),
                )
                .await?;
            return match created {
                1 => Ok(()),
                _ => Err(tessera_core::Error::AlreadyExists),
            };
        }
        if !user.is_empty() {
            // Index first: the index may list a key that then fails to be created (dropped
            // when listed), but never misses a session that exists.
            self.touch_user(user, &hex, expires, ttl).await?;
        }
        let created: i64 = self
            .invoke(
                scripts::CREATE
                    .key(self.keys.session_hex(&hex))
                    .arg(json)
                    .arg(record.version)
                    .arg(expires.unix_millis())
                    .arg(record.created_at.unix_millis())
                    .arg(user)
                    .arg(ttl),
            )
            .await?;
        match created {
            1 => Ok(()),
            _ => Err(tessera_core::Error::AlreadyExists),
        }
    }

    async fn load(&self, key: &StoreKey, now: Timestamp) -> StoreResult<Option<SessionRecord>> {
        let name = self.keys.session(key);
        let (record, revoked) = match &self.conn {
            Conn::Single(_) => {
                let reply: Option<(Vec<u8>, Option<i64>)> = self
                    .invoke(
                        scripts::LOAD_STANDALONE
                            .key(&name)
                            .arg(self.keys.user_key_start()),
                    )
                    .await?;
                let Some((bytes, revoked)) = reply else {
                    return Ok(None);
                };
                (decode(&bytes)?, revoked.map(Timestamp::from_unix_millis))
            }
            Conn::Cluster(_) => {
                let bytes: Option<Vec<u8>> =
                    self.query(redis::cmd("HGET").arg(&name).arg("r")).await?;
                let Some(bytes) = bytes else {
                    return Ok(None);
                };
                let record = decode(&bytes)?;
                // Spares the second round trip; `is_live` below decides.
                if record.is_expired(now) {
                    return Ok(None);
                }
                let revoked = match record.user_id() {
                    Some(u) => self.user_revoked_at(u).await?,
                    None => None,
                };
                (record, revoked)
            }
        };
        // The Rust-side liveness rule is authoritative for `load` (the scripts only read).
        Ok(record.is_live(now, revoked).then_some(record))
    }

    async fn save(
        &self,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
    ) -> StoreResult<()> {
        let json = encode(record)?;
        let hex = key.to_hex();
        let name = self.keys.session_hex(&hex);
        let expires = record.expires_at();
        let ttl = ttl_ms(expires, now);
        let new_user = record.user_id().unwrap_or("");
        if !self.is_cluster() {
            // One script: the check (with the stored owner's revocation time), the write and
            // both owners' indexes.
            let reply: String = self
                .invoke(
                    scripts::SAVE_STANDALONE
                        .key(&name)
                        .arg(expected)
                        .arg(now.unix_millis())
                        .arg(&json)
                        .arg(record.version)
                        .arg(expires.unix_millis())
                        .arg(record.created_at.unix_millis())
                        .arg(new_user)
                        .arg(ttl)
                        .arg(&hex)
                        .arg(self.keys.user_key_start()),
                )
                .await?;
            return match reply.as_str() {
                "ok" => Ok(()),
                "missing" => Err(tessera_core::Error::NotFound),
                "conflict" => Err(tessera_core::Error::Conflict),
                _ => Err(tessera_core::Error::Unreachable(
                    "unknown save script reply",
                )),
            };
        }
        // A Cluster: the new owner's index first (as in create), and its revocation time for the check.
        let mut owner = new_user.to_owned();
        let mut revoked = if new_user.is_empty() {
            None
        } else {
            self.touch_user(new_user, &hex, expires, ttl).await?
        };
        for _ in 0..2 {
            let reply: Vec<String> = self
                .invoke(
                    scripts::SAVE
                        .key(&name)
                        .arg(expected)
                        .arg(now.unix_millis())
                        .arg(&owner)
                        .arg(revoked.map_or(String::new(), |t| t.unix_millis().to_string()))
                        .arg(&json)
                        .arg(record.version)
                        .arg(expires.unix_millis())
                        .arg(record.created_at.unix_millis())
                        .arg(new_user)
                        .arg(ttl),
                )
                .await?;
            match reply.first().map(String::as_str) {
                Some("ok") => {
                    if owner != new_user && !owner.is_empty() {
                        self.unindex(&owner, &[&hex]).await?;
                    }
                    return Ok(());
                }
                Some("missing") => return Err(tessera_core::Error::NotFound),
                Some("conflict") => return Err(tessera_core::Error::Conflict),
                Some("user") => {
                    // The record belongs to someone else than the new record says: check that
                    // user's revocation time instead, and try once more.
                    owner = reply.get(1).cloned().unwrap_or_default();
                    revoked = if owner.is_empty() {
                        None
                    } else {
                        self.user_revoked_at(&owner).await?
                    };
                }
                _ => {
                    return Err(tessera_core::Error::Unreachable(
                        "unknown save script reply",
                    ));
                }
            }
        }
        // The owner changed between the two attempts: someone else wrote it.
        Err(tessera_core::Error::Conflict)
    }

    async fn delete(&self, key: &StoreKey, tombstone_until: Timestamp) -> StoreResult<()> {
        let hex = key.to_hex();
        if !self.is_cluster() {
            // One script: the tombstone and the un-indexing.
            return self
                .invoke::<Option<i64>>(
                    scripts::DELETE_STANDALONE
                        .key(self.keys.session_hex(&hex))
                        .arg(tombstone_until.unix_millis())
                        .arg(MIN_TTL_MS)
                        .arg(MAX_TTL_MS)
                        .arg(&hex)
                        .arg(self.keys.user_key_start()),
                )
                .await
                .map(drop);
        }
        let user: Option<String> = self
            .invoke(
                scripts::DELETE
                    .key(self.keys.session_hex(&hex))
                    .arg(tombstone_until.unix_millis())
                    .arg(MIN_TTL_MS)
                    .arg(MAX_TTL_MS),
            )
            .await?;
        // Un-index after the tombstone is written: a crash in between leaves an entry that
        // listing drops, never a listed session that is gone.
        match user {
            Some(u) => self.unindex(&u, &[&hex]).await,
            None => Ok(()),
        }
    }

    async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<(StoreKey, SessionRecord)>> {
        let now_ms = now.unix_millis();
        let index = self.keys.user_index(user_id);
        // One slot, one round trip: the index and the revocation time.
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGE")
            .arg(&index)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .cmd("GET")
            .arg(self.keys.user_revoked(user_id));
        let mut conn = self.conn.clone();
        let (entries, revoked): (Vec<(String, f64)>, Option<i64>) =
            self.bounded(pipe.query_async(&mut conn)).await?;
        let revoked = revoked.map(Timestamp::from_unix_millis);

        // Entries scored at or before now are of expired sessions (a score never falls below
        // its session's expiry).
        let (current, mut stale): (Vec<_>, Vec<_>) = entries
            .iter()
            .partition(|(_, score)| *score > now_ms as f64);
        let mut stale: Vec<&str> = stale.drain(..).map(|(h, _)| h.as_str()).collect();
        let stored = try_join_all(current.iter().map(|(hex, _)| {
            let cmd = std::mem::take(
                redis::cmd("HMGET")
                    .arg(self.keys.session_hex(hex))
                    .arg("r")
                    .arg("t"),
            );
            async move { self.query::<(Option<Vec<u8>>, Option<i64>)>(&cmd).await }
        }))
        .await?;

        let mut out = vec![];
        for ((hex, _), (bytes, tombstone)) in current.iter().zip(stored) {
            let Some(key) = keys::store_key_from_hex(hex) else {
                stale.push(hex);
                continue;
            };
            match bytes {
                Some(bytes) => {
                    let r = decode(&bytes)?;
                    if r.user_id() == Some(user_id) && r.is_live(now, revoked) {
                        out.push((key, r));
                    } else {
                        // Another user's now, expired, or revoked: dead for good here, since
                        // expiry and revocation only move forward.
                        stale.push(hex);
                    }
                }
                // A tombstone: deleted. Nothing at all: a create still in flight, or a
                // tombstone Redis already expired; the entry goes when its score passes.
                None if tombstone.is_some() => stale.push(hex),
                None => {}
            }
        }
        // Tidying the index is best effort: the answer above does not depend on it.
        let _ = self.unindex(user_id, &stale).await;
        Ok(out)
    }

    async fn revoke_user(&self, user_id: &str, at: Timestamp) -> StoreResult<()> {
        self.invoke::<i64>(
            scripts::REVOKE
                .key(self.keys.user_revoked(user_id))
                .arg(at.unix_millis()),
        )
        .await
        .map(drop)
    }

    async fn user_revoked_at(&self, user_id: &str) -> StoreResult<Option<Timestamp>> {
        let at: Option<i64> = self
            .query(redis::cmd("GET").arg(self.keys.user_revoked(user_id)))
            .await?;
        Ok(at.map(Timestamp::from_unix_millis))
    }

    async fn purge_expired(&self, now: Timestamp) -> StoreResult<u64> {
        let sessions = self.keys.session_pattern();
        let indexes = self.keys.user_index_pattern();
        let mut purged = 0;
        for node in self.scan_targets().await? {
            for (pattern, is_index) in [(&sessions, false), (&indexes, true)] {
                let mut cursor = 0;
                loop {
                    let (next, names) = self.scan_step(&node, cursor, pattern).await?;
                    if is_index {
                        self.trim_indexes(&names, now).await?;
                    } else {
                        purged += self.purge_sessions(&names, now).await?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        }
        Ok(purged)
    }
}
