//! What the application asks for: per-key edits, a login, and what `resolve` does without a
//! session.

use std::collections::BTreeMap;

use serde_json::Value;
use tessera_core::{Expiry, User};

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
    /// The session's own expiry, if it changes (`None`: as it was). An end in the past ends
    /// the session, as a logout does. Setting one other than [`Expiry::Default`] moves a
    /// client-side anonymous session to the store (a sealed cookie has no place for it).
    pub expiry: Option<Expiry>,
    /// Keep the session in the store: a new anonymous session is created there (with the
    /// edits, in one write) whatever the anonymous mode, even without data, and a client-side
    /// one moves there. What an application whose session keys must name stored sessions
    /// asks for (Django's "must create").
    pub in_store: bool,
}

impl Edits {
    pub(super) fn sets_anything(&self) -> bool {
        !self.set.is_empty() || !self.secrets.is_empty()
    }

    /// Whether a client-side anonymous session must move to the store for these edits.
    pub(super) fn needs_store(&self) -> bool {
        self.in_store || !self.secrets.is_empty() || self.expiry.is_some_and(|e| !e.is_default())
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
    /// Create an anonymous session in the store (one write), whatever the anonymous mode:
    /// for an application whose session keys must name stored sessions.
    CreateStored,
}

impl IfMissing {
    pub(super) fn creates(self) -> bool {
        self != Self::Nothing
    }
}

/// Whether `resolve` may renew the session it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Renewal {
    /// Push the idle expiry forward (one write) when half of it has passed (the default).
    #[default]
    WhenDue,
    /// Never: a pure read, which writes nothing and re-sends no cookie (an "exists?" check
    /// must not keep a session alive).
    Never,
}
