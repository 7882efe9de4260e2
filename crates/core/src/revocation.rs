use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Result, Timestamp};

/// What a revocation ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum RevokedSubject {
    /// Every session and token of this user issued at or before the revocation time ("log out
    /// everywhere").
    User(String),
    /// One session, named by its token `sid` (a keyed digest of its store key), so verifiers
    /// can refuse that session's tokens without knowing anything else about it.
    Session(String),
}

/// One entry of the revocation log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What ended.
    pub subject: RevokedSubject,
    /// When.
    pub at: Timestamp,
}

/// An append-only log of revocations, the source of the revocation feed that verifiers at the
/// edge poll (DESIGN §5). Entries carry a sequence number that only grows, so a verifier asks
/// for what came after the last one it saw.
///
/// An extension capability of a store, reached through
/// [`SessionStore::as_revocation_log`](crate::SessionStore::as_revocation_log).
///
/// # Promises (checked by `revocation_conformance_tests!`)
///
/// - `log_revocation` returns a sequence number greater than every earlier one;
/// - `revocations_since(after, limit)` returns the entries with a greater sequence number,
///   oldest first, at most `limit`;
/// - `purge_revocations(before)` removes entries older than `before` and nothing else.
#[async_trait]
pub trait RevocationLog: Send + Sync + fmt::Debug + 'static {
    /// Appends `r`; returns its sequence number.
    async fn log_revocation(&self, r: &Revocation) -> Result<u64>;

    /// The entries after sequence number `after`, oldest first, at most `limit`.
    async fn revocations_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Revocation)>>;

    /// Removes entries whose time is before `before`; returns how many went.
    async fn purge_revocations(&self, before: Timestamp) -> Result<u64>;
}
