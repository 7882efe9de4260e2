//! The versioned blobs of a Redis store: `<prefix>b:{<name, hex>}`, a hash (`v` the value,
//! `n` the version), in the blob's own slot; no TTL.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use tessera_core::{Blob, BlobStore, Result as StoreResult};

use crate::RedisStore;

/// Compare-and-set: writes only if the stored version (0 when absent) is `ARGV[1]`.
///
/// KEYS: blob. ARGV: expected version, value. Returns the new version, or -1 on conflict.
static BLOB_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if cur ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', cur + 1)
return cur + 1
",
    )
});

impl RedisStore {
    /// The name is hex-encoded so that its bytes (braces included) never pick the slot.
    fn blob_key(&self, name: &str) -> String {
        let prefix = self.keys.prefix();
        let mut key = String::with_capacity(prefix.len() + 4 + 2 * name.len());
        key.push_str(prefix);
        key.push_str("b:{");
        tessera_core::push_hex(&mut key, name.as_bytes());
        key.push('}');
        key
    }
}

#[async_trait]
impl BlobStore for RedisStore {
    async fn blob_get(&self, name: &str) -> StoreResult<Option<Blob>> {
        let (value, version): (Option<Vec<u8>>, Option<u64>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(self.blob_key(name))
                    .arg("v")
                    .arg("n"),
            )
            .await?;
        Ok(match (value, version) {
            (Some(v), Some(n)) => Some(Blob::new(v, n)),
            (None, None) => None,
            _ => {
                return Err(tessera_core::Error::Decode(
                    "a blob without its value or version".into(),
                ));
            }
        })
    }

    async fn blob_put(&self, name: &str, expected: u64, value: &[u8]) -> StoreResult<u64> {
        let n: i64 = self
            .invoke(BLOB_PUT.key(self.blob_key(name)).arg(expected).arg(value))
            .await?;
        u64::try_from(n).map_err(|_| tessera_core::Error::Conflict)
    }
}
