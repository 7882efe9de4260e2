//! Test scaffolding shared by Tessera's crates (never published; a dev-dependency only).
//!
//! - [`process`]: what any test that runs a server needs: a [`Watchdog`] that cleans up when
//!   the test process ends however it ends, free loopback ports, temporary directories,
//!   binary lookup with the Debian package to install, polling until a server is ready.
//! - [`redis`]: throwaway `redis-server`s and three-node Redis Clusters.
//! - [`postgres`]: a throwaway PostgreSQL cluster (or `TESSERA_TEST_POSTGRES_URL`).
//! - [`errors`]: the checks every error type's `code()` and `CODES` pass, and an error's
//!   whole source chain as text (to assert a secret never shows).
//!
//! A missing binary fails the test with a message naming the package to install: a test
//! never passes untested.
// Test scaffolding: a failed unwrap or a panic is a failed test, with its message.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod errors;
pub mod postgres;
pub mod process;
pub mod redis;

pub use errors::{assert_error_codes, error_chain};
pub use process::{Watchdog, free_port, free_ports, temp_dir};
