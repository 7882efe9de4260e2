//! Integration tests of the memory store: the conformance suite.
// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use tessera_store_memory::MemoryStore;

tessera_core::conformance_tests!(async { Arc::new(MemoryStore::new()) });

tessera_core::kv_conformance_tests!(async { Arc::new(MemoryStore::new()) });
tessera_core::revocation_conformance_tests!(async { Arc::new(MemoryStore::new()) });
tessera_core::blob_conformance_tests!(async { Arc::new(MemoryStore::new()) });
