//! What the application asks for: per-key edits and a login.

use std::collections::BTreeMap;

use serde_json::Value;
use tessera_core::User;

/// Per-key edits of a session's data and secrets.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// Keys to set, with their new values.
    pub set: BTreeMap<String, Value>,
    /// Keys to remove (absent keys are ignored).
    pub remove: Vec<String>,
    /// Secrets to set: sealed with a server key and kept in the store only, never in a
    /// cookie. Setting one moves a client-side anonymous session to the store.
    pub secrets: BTreeMap<String, Value>,
    /// Secrets to remove (absent keys are ignored).
    pub remove_secrets: Vec<String>,
}

impl Edits {
    pub(super) fn sets_anything(&self) -> bool {
        !self.set.is_empty() || !self.secrets.is_empty()
    }
}

/// What `login` binds to the session.
#[derive(Debug, Clone)]
pub struct Login {
    /// The user.
    pub user: User,
    /// Custom claims for tokens (e.g. a rate-limit class).
    pub claims: BTreeMap<String, Value>,
    /// Remember-me: a persistent cookie and the longer lifetimes.
    pub remember: bool,
}
