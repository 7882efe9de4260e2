//! Integration tests of the Postgres store on a real server: a throwaway cluster started by
//! the tests (or `TESSERA_TEST_POSTGRES_URL`), each test process in a schema of its own. The
//! conformance suite, then migrations and what is particular to Postgres.
// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod batch;
mod operations;

use tessera_store_postgres::PostgresStore;
use tessera_test_support::postgres::PostgresServer;

/// A store in this process's schema on the shared server.
pub(crate) async fn store() -> PostgresStore {
    PostgresStore::open(PostgresServer::shared_schema_url().await)
        .await
        .unwrap()
}

tessera_core::conformance_tests!(async { std::sync::Arc::new(store().await) });
tessera_core::kv_conformance_tests!(async { std::sync::Arc::new(store().await) });
tessera_core::revocation_conformance_tests!(async { std::sync::Arc::new(store().await) });
tessera_core::blob_conformance_tests!(async { std::sync::Arc::new(store().await) });
