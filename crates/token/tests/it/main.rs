//! tessera-token behaviour through its public API: known answers, Wycheproof, every
//! validation branch, rotation and the keyring directory, property tests.
// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cache;
mod common;
mod ed25519_strict;
mod keyring;
mod negative;
mod pem_keys;
mod props;
mod seal_keys;
mod seal_vectors;
mod vectors;
mod wycheproof_vectors;
