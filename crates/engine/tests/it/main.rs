//! Engine behaviour over the memory store, with a manual clock.
// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod anonymous;
mod builder;
mod frameworks;
mod lifecycle;
mod tower;
