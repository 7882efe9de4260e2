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

/// A live session as the engine read or wrote it: its store key (whose base64url form is the
/// public reference), its record, and where it is kept.
///
/// Named apart from [`tower::Session`](crate::tower), the per-request *handle* of the tower
/// layer that operations go through: this is the *data* of a live session, what the engine
/// answers and what the tower layer's eager extractor gives a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSession {
    /// Where the session is stored; for a client-side anonymous session, the key its
    /// random identity would be stored under if it spilled (no store holds it).
    pub key: StoreKey,
    /// The session itself (version 0 for a client-side anonymous session).
    pub record: SessionRecord,
    /// Whether the record is in a store or in the anonymous cookie.
    pub storage: Storage,
}

impl LiveSession {
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
    /// The session got a new handle; the old one is retired.
    Rotated,
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
            Self::Rotated => "rotated",
        }
    }
}

/// The result of a session operation: the session (if one is live afterwards) and the
/// `Set-Cookie` values the application must send back, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "the Set-Cookie values must reach the browser"]
pub struct Outcome {
    /// The live session after the operation.
    pub session: Option<LiveSession>,
    /// `Set-Cookie` header values, in order.
    pub set_cookie: Vec<String>,
    /// What happened.
    pub status: Status,
    /// What the token check found (on `resolve`) or did (on `login`).
    pub token_status: TokenStatus,
    /// The session's sid when the operation computed it already: see [`Outcome::known_sid`].
    pub(crate) sid: Option<String>,
}

impl Outcome {
    /// The session's sid ([`Engine::sid`](crate::Engine::sid)) if the operation computed it
    /// already (the token check of `resolve` does, to compare it with the token's), so that
    /// an answer that shows it need not compute it again (an HMAC); `None` otherwise, and
    /// then `Engine::sid` gives it.
    #[must_use]
    pub fn known_sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
}

/// What the session token check found or did: the `token_status` of the API, the
/// `X-Tessera-Token-Status` vocabulary of DESIGN §5.
///
/// These are token statuses, not error codes: [`TokenStatus::as_str`] gives the snake_case
/// names that appear on the wire and in the `outcome` label of
/// `tessera_token_validations_total` (`ok`, `soft_expired`, `bad_signature`, ...), and they
/// never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenStatus {
    /// The engine issues no tokens: `disabled`.
    Disabled,
    /// No token applies (no authenticated session and no token cookie): `none`.
    None,
    /// A token was issued at login: `issued`.
    Issued,
    /// The token cookie verified and matches the session: `ok`, or `soft_expired` (a new
    /// token was issued).
    Valid(tessera_token::Status),
    /// The token cookie did not verify, with the token crate's outcome (`bad_signature`,
    /// `expired`, `unknown_kid`, ...): a new token was issued.
    Refused(&'static str),
    /// An anonymous session came with a token cookie, which was cleared:
    /// `anon_session_with_token`.
    AnonSessionWithToken,
    /// An authenticated session came without a token; one was issued:
    /// `user_session_without_token`.
    UserSessionWithoutToken,
    /// The token belongs to another user; it was cleared: `wrong_user`.
    WrongUser,
    /// The token belongs to another session of the user; it was cleared: `wrong_session`.
    WrongSession,
    /// A token was due but could not be issued (no key can sign now); the session stands
    /// without one: `token_failed`.
    IssueFailed,
}

impl TokenStatus {
    /// The stable snake_case name (see the type's documentation).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::None => "none",
            Self::Issued => "issued",
            Self::Valid(s) => s.outcome(),
            Self::Refused(outcome) => outcome,
            Self::AnonSessionWithToken => "anon_session_with_token",
            Self::UserSessionWithoutToken => "user_session_without_token",
            Self::WrongUser => "wrong_user",
            Self::WrongSession => "wrong_session",
            Self::IssueFailed => "token_failed",
        }
    }
}

impl std::fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
