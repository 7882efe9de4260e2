//! Integration tests of the redb store: the conformance suite, persistence across reopening,
//! layout checks, the background purge and crash durability.

mod common;
mod crash;
mod persistence;
mod purge;

use common::TempStore;

tessera_core::conformance_tests!(async { std::sync::Arc::new(TempStore::new()) });
