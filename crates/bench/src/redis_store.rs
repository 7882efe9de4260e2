//! A tower-sessions 0.15 store on Redis through `fred`.
//!
//! It does what `tower-sessions-redis-store` 0.16 does, so that the peer measures the Redis
//! store a tower-sessions user would deploy: records are MessagePack (`rmp-serde`), `create`
//! is `SET NX` with a fresh id on collision, `save` is `SET XX`, both with `EXAT` at the
//! record's expiry, `load` is `GET` and `delete` is `DEL`. That crate can't be used directly:
//! its newest release is built against tower-sessions-core 0.14, and tower-sessions 0.15 pins
//! core 0.15.

use async_trait::async_trait;
use fred::prelude::{KeysInterface, Pool};
use fred::types::{Expiration, SetOptions};
use tower_sessions::session::{Id, Record};
use tower_sessions::{SessionStore, session_store};

/// Redis session store over a `fred` connection pool.
#[derive(Debug, Clone)]
pub(crate) struct RedisStore {
    pool: Pool,
}

impl RedisStore {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn set(&self, record: &Record, options: SetOptions) -> session_store::Result<bool> {
        let bytes =
            rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let expire = Expiration::EXAT(record.expiry_date.unix_timestamp());
        self.pool
            .set(
                record.id.to_string(),
                bytes.as_slice(),
                Some(expire),
                Some(options),
                false,
            )
            .await
            .map_err(backend)
    }
}

fn backend(e: fred::error::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while !self.set(record, SetOptions::NX).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.set(record, SetOptions::XX).await.map(drop)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let data: Option<Vec<u8>> = self.pool.get(id.to_string()).await.map_err(backend)?;
        data.map(|bytes| {
            rmp_serde::from_slice(&bytes).map_err(|e| session_store::Error::Decode(e.to_string()))
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.pool
            .del::<(), _>(id.to_string())
            .await
            .map_err(backend)
    }
}
