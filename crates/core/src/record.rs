use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{SessionKind, Timestamp};

/// The longest user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 255;

/// The user an authenticated session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The application's id for the user. Non-empty, at most 255 bytes, no control characters.
    pub id: String,
    /// A display name, if the application gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the identity comes from (an identity provider, a wiki farm scope...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// Why a record or one of its parts is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The user id is empty, too long or contains control characters.
    #[error("user id must be 1 to {MAX_USER_ID_LEN} bytes without control characters")]
    BadUserId,
}

impl RecordError {
    /// Every code [`RecordError::code`] returns.
    pub const CODES: &'static [&'static str] = &["user-id-invalid"];

    /// A stable identifier for this error, for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserId => "user-id-invalid",
        }
    }
}

impl User {
    /// Checks that `id` can name a user in every backend's index.
    ///
    /// # Errors
    ///
    /// [`RecordError::BadUserId`] if it is empty, longer than 255 bytes or has a control
    /// character.
    pub fn validate_id(id: &str) -> Result<(), RecordError> {
        if id.is_empty() || id.len() > MAX_USER_ID_LEN || id.chars().any(char::is_control) {
            return Err(RecordError::BadUserId);
        }
        Ok(())
    }
}

/// A session's own expiry, set by the application (Django's `set_expiry`, express-session's
/// `cookie.maxAge`), on top of the server's idle and absolute timeouts, which still bound it.
///
/// [`Expiry::Default`] is what a record without one has: records stored before this field
/// existed read back with it (the field is optional in every store's JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Expiry {
    /// The server's timeouts, and a cookie that is persistent for remember-me sessions only.
    #[default]
    Default,
    /// The session dies at this time (never later than its absolute expiry); activity does
    /// not push it. The cookie is persistent until then.
    At(Timestamp),
    /// The session dies after this many seconds without activity (this session's idle
    /// timeout, still bounded by its absolute expiry). The cookie is persistent, its age
    /// following the idle expiry.
    Idle(u64),
    /// The server's timeouts, in a cookie that lasts until the browser closes, even for a
    /// remember-me session.
    Browser,
}

impl Expiry {
    /// Whether this is [`Expiry::Default`] (the field is then left out of the stored JSON).
    pub fn is_default(&self) -> bool {
        *self == Self::Default
    }

    /// The fixed end [`Expiry::At`] sets, if any.
    pub fn at(&self) -> Option<Timestamp> {
        match self {
            Self::At(t) => Some(*t),
            _ => None,
        }
    }
}

/// One session as the store keeps it.
///
/// The engine owns the lifecycle rules; a store only guarantees what
/// [`SessionStore`](crate::SessionStore) promises about versions, expiry and tombstones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Anonymous or authenticated. Matches the kind encoded in the handle.
    pub kind: SessionKind,
    /// The user, for authenticated sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// Custom claims to put in tokens (a rate-limit class, a scope...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
    /// When the session was created. Compared with the user's revocation time.
    pub created_at: Timestamp,
    /// When the idle expiry was last pushed forward (renewal).
    pub renewed_at: Timestamp,
    /// The session dies at this time unless renewed.
    pub idle_expires_at: Timestamp,
    /// The session dies at this time whatever happens.
    pub absolute_expires_at: Timestamp,
    /// Remember-me: the cookie is persistent up to the absolute expiry.
    #[serde(default)]
    pub remember: bool,
    /// The application's data, by key.
    #[serde(default)]
    pub data: BTreeMap<String, serde_json::Value>,
    /// Values the application keeps from every client (an OAuth `state`, a one-time code),
    /// by key, each sealed by the engine with a server key bound to this session. They are
    /// never put in a cookie; a store (or a dump of it) sees only sealed text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// The session's own expiry, if the application set one. The engine keeps
    /// `idle_expires_at` within it; [`SessionRecord::expires_at`] takes it as a bound too, so
    /// every store's liveness check and purge honour it without knowing it.
    #[serde(default, skip_serializing_if = "Expiry::is_default")]
    pub expiry: Expiry,
    /// Compare-and-set version; 1 for a new record, one more at every save.
    pub version: u64,
}

impl SessionRecord {
    /// The moment the record stops being loadable: the earliest of idle expiry, absolute
    /// expiry and the end its own [`Expiry::At`] sets.
    pub fn expires_at(&self) -> Timestamp {
        let end = self.idle_expires_at.min(self.absolute_expires_at);
        self.expiry.at().map_or(end, |at| end.min(at))
    }

    /// Whether the record is dead at `now` by its own times alone. Expiry is inclusive: at
    /// `expires_at` it is dead. [`SessionRecord::is_live`] adds the user's revocation time.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at()
    }

    /// Whether a store may return this record at `now`: the one rule behind "`load` never
    /// returns a dead record", the security contract of every
    /// [`SessionStore`](crate::SessionStore).
    ///
    /// `revoked_at` is the revocation time of the record's user
    /// ([`SessionStore::user_revoked_at`](crate::SessionStore::user_revoked_at)), `None` when
    /// the record has no user or its user was never revoked. The record is live when both
    /// hold:
    ///
    /// - it has not expired: `now` is before its idle and its absolute expiry, and before
    ///   the end its own [`Expiry::At`] sets ([`SessionRecord::is_expired`]; at the expiry
    ///   it is dead);
    /// - it was created *after* its user's revocation time: a session created at or before
    ///   "log out everywhere" is dead, one created a millisecond later lives.
    ///
    /// A tombstone (what `delete` leaves) is not a record and is never live: stores check for
    /// it before they have a record to ask.
    ///
    /// Every store decides with this function on the Rust side. Where a store must also check
    /// inside the backend, so that the check and a write are one atomic step (the
    /// compare-and-set of `save` in Redis' Lua and in Postgres' SQL), that restatement must
    /// agree with this function; the conformance suite (`tessera_core::testing`) checks on
    /// every backend that it does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// use tessera_core::{Expiry, SessionKind, SessionRecord, Timestamp, User};
    ///
    /// let t = Timestamp::from_unix_secs;
    /// let record = SessionRecord {
    ///     kind: SessionKind::Authenticated,
    ///     user: Some(User { id: "alice".into(), name: None, provider: None }),
    ///     claims: BTreeMap::new(),
    ///     created_at: t(100),
    ///     renewed_at: t(100),
    ///     idle_expires_at: t(200),
    ///     absolute_expires_at: t(300),
    ///     remember: false,
    ///     data: BTreeMap::new(),
    ///     secrets: BTreeMap::new(),
    ///     expiry: Expiry::Default,
    ///     version: 1,
    /// };
    /// assert!(record.is_live(t(150), None));
    /// assert!(!record.is_live(t(200), None), "idle expiry reached");
    /// assert!(!record.is_live(t(150), Some(t(100))), "logged out everywhere at its creation");
    /// assert!(record.is_live(t(150), Some(t(99))), "revoked before it was created");
    /// let record = SessionRecord { expiry: Expiry::At(t(120)), ..record };
    /// assert!(!record.is_live(t(120), None), "its own expiry reached");
    /// ```
    pub fn is_live(&self, now: Timestamp, revoked_at: Option<Timestamp>) -> bool {
        !self.is_expired(now) && revoked_at.is_none_or(|at| self.created_at > at)
    }

    /// The user id, for authenticated sessions.
    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_error_codes() {
        tessera_test_support::assert_error_codes(
            RecordError::CODES,
            [RecordError::BadUserId.code()],
        );
    }

    #[test]
    fn user_ids_are_checked() {
        assert!(User::validate_id("alice").is_ok());
        assert!(User::validate_id("mw:CentralAuth::123").is_ok());
        assert!(User::validate_id("").is_err());
        assert!(User::validate_id("a\nb").is_err());
        assert!(User::validate_id(&"x".repeat(256)).is_err());
        assert!(User::validate_id(&"x".repeat(255)).is_ok());
    }

    pub(super) fn record(idle: i64, absolute: i64) -> SessionRecord {
        SessionRecord {
            kind: SessionKind::Anonymous,
            user: None,
            claims: BTreeMap::new(),
            created_at: Timestamp::from_unix_secs(0),
            renewed_at: Timestamp::from_unix_secs(0),
            idle_expires_at: Timestamp::from_unix_secs(idle),
            absolute_expires_at: Timestamp::from_unix_secs(absolute),
            remember: false,
            data: BTreeMap::new(),
            secrets: BTreeMap::new(),
            expiry: Expiry::Default,
            version: 1,
        }
    }

    #[test]
    fn expiry_is_the_earlier_bound_and_inclusive() {
        let r = record(20, 10);
        assert_eq!(r.expires_at(), Timestamp::from_unix_secs(10));
        assert!(!r.is_expired(Timestamp::from_unix_millis(9_999)));
        assert!(r.is_expired(Timestamp::from_unix_secs(10)));
    }

    #[test]
    fn liveness_is_expiry_then_revocation() {
        let ms = Timestamp::from_unix_millis;
        // Created at 0, idle expiry at 20 s, absolute at 10 s.
        let r = record(20, 10);
        assert!(r.is_live(ms(0), None));
        assert!(r.is_live(ms(9_999), None));
        // Expired (the earlier bound, inclusive), whatever the revocation time says.
        assert!(!r.is_live(ms(10_000), None));
        assert!(!r.is_live(ms(10_000), Some(ms(-1))));
        let r = record(10, 20);
        assert!(!r.is_live(ms(10_000), None), "idle expiry is a bound too");
        // Revoked at or after its creation: dead. Revoked before it: alive.
        assert!(!r.is_live(ms(1), Some(ms(0))));
        assert!(!r.is_live(ms(1), Some(ms(5))));
        assert!(r.is_live(ms(1), Some(ms(-1))));
        // A revocation time in the future of `now` still kills it: it is a fact about the
        // user, not about the request.
        assert!(!r.is_live(ms(1), Some(ms(9_000))));
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    fn base() -> SessionRecord {
        tests::record(20, 30)
    }

    #[test]
    fn an_own_end_is_a_bound_of_liveness() {
        let s = Timestamp::from_unix_secs;
        let r = SessionRecord {
            expiry: Expiry::At(s(5)),
            ..base()
        };
        assert_eq!(r.expires_at(), s(5));
        assert!(r.is_live(Timestamp::from_unix_millis(4_999), None));
        assert!(!r.is_live(s(5), None));
        // Never later than the server's bounds.
        let r = SessionRecord {
            expiry: Expiry::At(s(99)),
            ..base()
        };
        assert_eq!(r.expires_at(), s(20));
        for e in [Expiry::Idle(5), Expiry::Browser, Expiry::Default] {
            let r = SessionRecord {
                expiry: e,
                ..base()
            };
            assert_eq!(r.expires_at(), s(20), "{e:?} is kept in idle_expires_at");
        }
    }

    /// Records stored before `expiry` existed read back with the default, and a default
    /// expiry is not written, so such records are byte-for-byte what they were.
    #[test]
    fn the_field_is_backward_compatible() {
        let old = r#"{"kind":"anonymous","created_at":0,"renewed_at":0,"idle_expires_at":20000,"absolute_expires_at":30000,"data":{"k":1},"version":3}"#;
        let r: SessionRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.expiry, Expiry::Default);
        assert_eq!(r.version, 3);
        let again = serde_json::to_string(&r).unwrap();
        assert!(!again.contains("expiry"), "{again}");
        for (e, json) in [
            (
                Expiry::At(Timestamp::from_unix_millis(1_500)),
                r#""expiry":{"at":1500}"#,
            ),
            (Expiry::Idle(60), r#""expiry":{"idle":60}"#),
            (Expiry::Browser, r#""expiry":"browser""#),
        ] {
            let r = SessionRecord {
                expiry: e,
                ..base()
            };
            let text = serde_json::to_string(&r).unwrap();
            assert!(text.contains(json), "{text}");
            assert_eq!(serde_json::from_str::<SessionRecord>(&text).unwrap(), r);
        }
    }
}
