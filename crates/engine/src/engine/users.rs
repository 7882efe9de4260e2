//! Per-user operations: list a user's sessions, revoke one, log out everywhere.

use tessera_core::{
    Revocation, RevokedSubject, SessionKind, SessionRecord, StoreKey, Timestamp, User,
};

use super::store::Write;
use super::{Engine, LiveSession, stored};
use crate::{Error, Result};

impl Engine {
    /// The live sessions of a user.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad user id; store errors.
    pub async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<LiveSession>> {
        User::validate_id(user_id).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let list = self.store.list_user_sessions(user_id, now).await;
        self.metrics
            .op("list", if list.is_ok() { "ok" } else { "error" });
        Ok(list?
            .into_iter()
            .map(|(key, record)| stored(key, record))
            .collect())
    }

    /// Ends one session of a user, named by its reference. Returns whether a live session of
    /// that user was there.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad user id or reference; store errors.
    pub async fn revoke_session(
        &self,
        user_id: &str,
        reference: &str,
        now: Timestamp,
    ) -> Result<bool> {
        User::validate_id(user_id).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let key = StoreKey::from_ref(reference)
            .ok_or_else(|| Error::InvalidInput("not a session reference".to_owned()))?;
        let kind = SessionKind::Authenticated;
        let found = match self.store.load(kind, &key, now).await? {
            Some(r) if r.user_id() == Some(user_id) => {
                // Revoked before the tombstone, as `logout` does.
                self.log_session_end(&key, &r, now).await?;
                self.store.delete(kind, &key, now, Write::Revoke).await?;
                true
            }
            _ => false,
        };
        self.metrics
            .op("revoke", if found { "revoked" } else { "not_found" });
        Ok(found)
    }

    /// Logs a user out everywhere: sets the user's revocation time to `now`, so every session
    /// (and, with tokens, every token) of the user issued up to now is dead, then deletes the
    /// sessions it knew of. Returns how many live sessions there were.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad user id; store errors.
    pub async fn revoke_all(&self, user_id: &str, now: Timestamp) -> Result<usize> {
        User::validate_id(user_id).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let kind = SessionKind::Authenticated;
        let live = self.store.list_user_sessions(user_id, now).await?;
        self.store.revoke_user(user_id, now).await?;
        let r = Revocation {
            subject: RevokedSubject::User(user_id.to_owned()),
            at: now,
        };
        self.store.log(kind, &r).await?;
        // The revocation time already kills them; deleting frees the space and the index now
        // rather than at purge.
        for (key, _) in &live {
            self.store.delete(kind, key, now, Write::Revoke).await?;
        }
        self.metrics.op("revoke_all", "ok");
        Ok(live.len())
    }

    /// Records in the revocation log that an authenticated session ended, so verifiers
    /// refuse its tokens before they expire. Anonymous sessions have no tokens.
    pub(super) async fn log_session_end(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<()> {
        if record.kind != SessionKind::Authenticated {
            return Ok(());
        }
        let r = Revocation {
            subject: RevokedSubject::Session(self.sid.sid(key)),
            at: now,
        };
        self.store.log(record.kind, &r).await
    }
}
