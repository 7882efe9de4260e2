//! Integration tests of the service over real HTTP on 127.0.0.1:0.
// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anonymous;
mod backup;
mod bad_input;
mod binary;
mod cli;
mod cluster_failover;
mod common;
mod concurrency;
mod contract;
mod csrf_keys;
mod edge;
mod expiry;
mod faults;
mod fleet;
mod fleet_rotation;
mod frameworks;
mod kask;
mod kask_log;
mod kv;
mod logs;
mod mediawiki;
mod mediawiki_kask;
mod metrics_doc;
mod operations;
mod peers;
mod persistence;
mod revocations;
mod shutdown;
mod store_faults;
mod stores;
mod systemd;
mod tokens;
mod walkthrough;
