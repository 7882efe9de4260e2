//! Integration tests of the Redis store on real servers started by the tests themselves: the
//! conformance suite on one `redis-server` and on a three-master Cluster, then what is
//! particular to Redis (key layout, native TTLs, slots, timeouts, TLS, script reloading).
// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod layout;
mod operations;

use tessera_store_redis::RedisStore;
use tessera_test_support::redis::{RedisCluster, RedisServer};

/// A store on this process's shared standalone server.
pub(crate) async fn standalone() -> RedisStore {
    RedisStore::open(&RedisServer::shared().await.url())
        .await
        .unwrap()
}

/// A store on this process's shared Cluster.
pub(crate) async fn cluster() -> RedisStore {
    RedisStore::open(&RedisCluster::shared().await.url())
        .await
        .unwrap()
}

/// A raw connection to the shared standalone server, to look at what the store wrote.
pub(crate) async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(RedisServer::shared().await.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The conformance suite on one `redis-server`.
mod standalone {
    tessera_core::conformance_tests!(async { std::sync::Arc::new(crate::standalone().await) });
    tessera_core::kv_conformance_tests!(async { std::sync::Arc::new(crate::standalone().await) });
    tessera_core::revocation_conformance_tests!(async {
        std::sync::Arc::new(crate::standalone().await)
    });
    tessera_core::blob_conformance_tests!(async { std::sync::Arc::new(crate::standalone().await) });
}

/// The conformance suite on a three-master Redis Cluster.
mod cluster {
    tessera_core::conformance_tests!(async { std::sync::Arc::new(crate::cluster().await) });
    tessera_core::kv_conformance_tests!(async { std::sync::Arc::new(crate::cluster().await) });
    tessera_core::revocation_conformance_tests!(async {
        std::sync::Arc::new(crate::cluster().await)
    });
    tessera_core::blob_conformance_tests!(async { std::sync::Arc::new(crate::cluster().await) });
}
