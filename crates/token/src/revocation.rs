//! The revocation check, the last step of verification: [`Revocations`] and its two
//! implementations.

use std::collections::BTreeMap;

/// The revocation check that runs after every other check (security checklist H11).
///
/// Both methods default to "not revoked".
pub trait Revocations {
    /// Tokens of user `sub` issued (`iat`) strictly before this time, in Unix seconds, are
    /// revoked ("log out everywhere").
    ///
    /// `iat` has whole seconds: round a millisecond revocation time *up* so tokens issued
    /// earlier in the same second are caught.
    fn revoked_before(&self, sub: &str) -> Option<i64> {
        let _ = sub;
        None
    }

    /// Whether the session named by the token's `sid` was revoked.
    fn is_session_revoked(&self, sid: &str) -> bool {
        let _ = sid;
        false
    }
}

/// No revocation check.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRevocations;

impl Revocations for NoRevocations {}

/// Revocations held in memory: per-user times and revoked session ids (the revocation feed
/// of DESIGN §5, once loaded), each with the time it happened so the list can forget what no
/// live token can match ([`RevocationList::retain_since`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevocationList {
    users: BTreeMap<String, i64>,
    sessions: BTreeMap<String, i64>,
}

impl RevocationList {
    /// Revokes the tokens of `sub` issued before `at` (Unix seconds). A later time replaces
    /// an earlier one; an earlier one is ignored.
    pub fn revoke_user_before(&mut self, sub: impl Into<String>, at: i64) {
        let t = self.users.entry(sub.into()).or_insert(at);
        *t = (*t).max(at);
    }

    /// Revokes every token bound to session `sid`, for good ([`RevocationList::retain_since`]
    /// never drops it).
    pub fn revoke_session(&mut self, sid: impl Into<String>) {
        self.revoke_session_at(sid, i64::MAX);
    }

    /// Revokes every token bound to session `sid`, which ended at `at` (Unix seconds).
    pub fn revoke_session_at(&mut self, sid: impl Into<String>, at: i64) {
        let t = self.sessions.entry(sid.into()).or_insert(at);
        *t = (*t).max(at);
    }

    /// Forgets revocations from before `cutoff` (Unix seconds): with `cutoff` = now minus
    /// the longest token lifetime (plus skew), every token they refuse has expired anyway.
    pub fn retain_since(&mut self, cutoff: i64) {
        self.users.retain(|_, at| *at >= cutoff);
        self.sessions.retain(|_, at| *at >= cutoff);
    }

    /// How many users and sessions are listed.
    pub fn len(&self) -> usize {
        self.users.len() + self.sessions.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.sessions.is_empty()
    }
}

impl Revocations for RevocationList {
    fn revoked_before(&self, sub: &str) -> Option<i64> {
        self.users.get(sub).copied()
    }

    fn is_session_revoked(&self, sid: &str) -> bool {
        self.sessions.contains_key(sid)
    }
}
