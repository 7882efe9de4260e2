//! `rotate`: a new handle for the same session, the old one retired (Django's `cycle_key`).

use tessera_core::Timestamp;

use super::store::Write;
use super::{Engine, Outcome, Status, TokenStatus, stored};
use crate::{Error, Result};

impl Engine {
    /// Gives the stored session named by the cookie a new handle: the same record (kind,
    /// user, data, secrets, claims, remember-me, own expiry, creation time and expiries)
    /// under a new key, and the old handle retired as a login retires it (expired with a
    /// compare-and-set, so an edit racing the rotation is carried over or refused, never
    /// lost; then a tombstone, and for a user's session the revocation feed's entry for the
    /// old `sid`). With tokens on, an authenticated session gets a token for its new `sid`.
    ///
    /// A client-side anonymous session cannot be rotated: nothing stored names it, so its
    /// old cookie could not be retired. Keep such a session in the store first (an
    /// [`Edits::in_store`](crate::Edits::in_store) update).
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`] if the cookie names no live stored session (nothing is
    /// created); [`Error::MalformedCookie`]; [`Error::Contention`]; store errors.
    pub async fn rotate(&self, cookie: &str, now: Timestamp) -> Result<Outcome> {
        let r = self.rotate_inner(cookie, now).await;
        self.count("rotate", &r);
        r
    }

    async fn rotate_inner(&self, cookie: &str, now: Timestamp) -> Result<Outcome> {
        let old = self.handle_from(cookie)?.ok_or(Error::SessionNotFound)?;
        let prev = self
            .retire(&old, Write::Rotate, now)
            .await?
            .ok_or(Error::SessionNotFound)?;
        let secrets = self.open_secrets(&prev.secrets, &old.store_key(), now);
        let mut base = prev;
        base.secrets.clear();
        base.version = 1;
        let (handle, key, record) = self
            .create_resealed(base.kind, Write::Rotate, &base, &secrets)
            .await?;
        let set = vec![self.set_cookie(&handle, &record, now)];
        let mut o = self.outcome(Some(stored(key, record)), set, Status::Rotated);
        if let Some(t) = &self.tokens
            && let Some(session) = &o.session
            && session.record.user.is_some()
        {
            let value = self.issue(t, session, now)?;
            o.set_cookie.push(value);
            o.token_status = TokenStatus::Issued;
        }
        self.clear_anon(cookie, &mut o);
        Ok(o)
    }
}
