//! What the application asks for: per-key edits, a login, and what `resolve` does without a
//! session.

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
///
/// # Examples
///
/// ```
/// use tessera::{Lifetime, Login};
///
/// let login = Login::for_user("alice").with_lifetime(Lifetime::Remembered);
/// assert_eq!(login.user.id, "alice");
/// assert!(login.claims.is_empty());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Login {
    /// The user.
    pub user: User,
    /// Custom claims for tokens (e.g. a rate-limit class).
    pub claims: BTreeMap<String, Value>,
    /// How long the session lives.
    pub lifetime: Lifetime,
}

impl Login {
    /// A login of `user`, without custom claims, with the standard lifetimes.
    pub fn new(user: User) -> Self {
        Self {
            user,
            claims: BTreeMap::new(),
            lifetime: Lifetime::Standard,
        }
    }

    /// A login of the user with this id, without a display name or provider.
    pub fn for_user(id: impl Into<String>) -> Self {
        Self::new(User {
            id: id.into(),
            name: None,
            provider: None,
        })
    }

    /// With custom claims for tokens (checked at login).
    pub fn with_claims(mut self, claims: BTreeMap<String, Value>) -> Self {
        self.claims = claims;
        self
    }

    /// With these lifetimes.
    pub fn with_lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }
}

/// How long a logged-in session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Lifetime {
    /// [`SessionConfig::idle_timeout`](crate::SessionConfig::idle_timeout) and
    /// `absolute_timeout`, in a cookie that lasts until the browser closes (the default).
    #[default]
    Standard,
    /// Remember-me: `remember_idle_timeout` and `remember_absolute_timeout`, in a
    /// persistent cookie.
    Remembered,
}

impl Lifetime {
    /// Whether this is remember-me (the record's `remember` flag).
    pub fn is_remembered(self) -> bool {
        self == Self::Remembered
    }
}

/// What `resolve` does when the request names no live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IfMissing {
    /// Nothing: the outcome has no session (the default).
    #[default]
    Nothing,
    /// Create an anonymous session: a sealed cookie in client-side mode (no store write),
    /// one store write in server-side mode.
    CreateAnonymous,
}
