//! Integration tests of the memory store: the conformance suite.

use std::sync::Arc;

use tessera_store_memory::MemoryStore;

tessera_core::conformance_tests!(async { Arc::new(MemoryStore::new()) });
