//! What an operation answers: the live session, what happened, and the cookies to send.

use tessera_core::{SessionRecord, StoreKey};

/// Where a live session's record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// In a store, named by the session cookie's handle.
    Store,
    /// In the sealed anonymous cookie (client-side mode): no store holds it.
    Cookie,
}

impl Storage {
    /// The stable lowercase name: `store` or `cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Cookie => "cookie",
        }
    }
}

/// A live session: its store key (whose base64url form is the public reference) and record.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Where the session is stored; for a client-side anonymous session, the key its
    /// random identity would be stored under if it spilled (no store holds it).
    pub key: StoreKey,
    /// The session itself (version 0 for a client-side anonymous session).
    pub record: SessionRecord,
    /// Whether the record is in a store or in the anonymous cookie.
    pub storage: Storage,
}

impl Session {
    /// The session's public reference (not a secret: it cannot be turned into a cookie).
    pub fn reference(&self) -> String {
        self.key.to_ref()
    }
}

/// What an operation found or did, for metrics and the API's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// No session cookie and none was created.
    None,
    /// A live session was read; nothing written.
    Loaded,
    /// A live session was read and its idle expiry pushed forward (one write).
    Renewed,
    /// A new anonymous session was created.
    Created,
    /// The cookie named no live session; it is cleared.
    Ended,
    /// The session's data was changed.
    Updated,
    /// The edit changed nothing, so nothing was written.
    Unchanged,
    /// A user was bound to a new session.
    LoggedIn,
    /// The session was ended.
    LoggedOut,
}

impl Status {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Loaded => "loaded",
            Self::Renewed => "renewed",
            Self::Created => "created",
            Self::Ended => "ended",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::LoggedIn => "logged_in",
            Self::LoggedOut => "logged_out",
        }
    }
}

/// The result of a session operation: the session (if one is live afterwards) and the
/// `Set-Cookie` values the application must send back, in order.
#[derive(Debug, Clone)]
#[must_use = "the Set-Cookie values must reach the browser"]
pub struct Outcome {
    /// The live session after the operation.
    pub session: Option<Session>,
    /// `Set-Cookie` header values, in order.
    pub set_cookie: Vec<String>,
    /// What happened.
    pub status: Status,
    /// What the token check found (DESIGN §5 codes; on `resolve`), `issued` when a token
    /// was issued on login, `none` when no token applies, `disabled` without the token
    /// component.
    pub token_status: &'static str,
}
