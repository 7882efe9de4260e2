//! `login` and `logout`: a new handle for a user (the old session retired first), and the
//! end of a session.

use std::collections::BTreeMap;

use tessera_core::{Expiry, Handle, SessionKind, SessionRecord, Timestamp, User};

use super::client::Anon;
use super::store::Write;
use super::{Engine, Login, Outcome, Status, TokenStatus, backoff, stored};
use crate::cookie::{self, Lookup};
use crate::limits::{check_size, validate_claims};
use crate::{Error, Result};

impl Engine {
    /// Binds a user to a new session. Always issues a new handle (fixation defence); the data
    /// of the previous session moves over when it was anonymous or belonged to the same user;
    /// the previous session is ended first, with a compare-and-set, so an edit racing the
    /// login is either carried over or refused, never lost silently.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad user id or claims; [`Error::MalformedCookie`];
    /// [`Error::Contention`]; store errors.
    pub async fn login(&self, cookie: &str, login: Login, now: Timestamp) -> Result<Outcome> {
        let r = self.login_inner(cookie, login, now).await;
        self.count("login", &r);
        r
    }

    pub(super) async fn login_inner(
        &self,
        cookie: &str,
        login: Login,
        now: Timestamp,
    ) -> Result<Outcome> {
        User::validate_id(&login.user.id).map_err(|e| Error::InvalidInput(e.to_string()))?;
        validate_claims(&login.claims)?;
        let mut data = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        let mut carried = false;
        let mut expiry = Expiry::Default;
        if let Some(old) = self.handle_from(cookie)?
            && let Some(prev) = self.retire(&old, Write::Login, now).await?
        {
            carried = true;
            let same_user = prev.user_id() == Some(login.user.id.as_str());
            if prev.kind == SessionKind::Anonymous || same_user {
                secrets = self.open_secrets(&prev.secrets, &old.store_key(), now);
                data = prev.data;
                // The session's own expiry goes with its data (Django's `set_expiry` then
                // `login()`), its end still within the new absolute expiry.
                expiry = prev.expiry;
            }
        }
        // Promotion of a client-side anonymous session: its data moves in, its cookie goes.
        if !carried && let Anon::Open(state) = self.anon_from(cookie, now) {
            data = state.data;
            self.metrics.anon("promoted");
        }
        let remember = login.lifetime.is_remembered();
        let (idle, absolute) = if remember {
            (
                self.config.remember_idle_timeout,
                self.config.remember_absolute_timeout,
            )
        } else {
            (self.config.idle_timeout, self.config.absolute_timeout)
        };
        let mut base = SessionRecord {
            kind: SessionKind::Authenticated,
            user: Some(login.user),
            claims: login.claims,
            created_at: now,
            renewed_at: now,
            idle_expires_at: now.saturating_add(idle),
            absolute_expires_at: now.saturating_add(absolute),
            remember,
            data,
            secrets: BTreeMap::new(),
            expiry: Expiry::Default,
            version: 1,
        };
        if self.set_expiry(&mut base, expiry, now) {
            // The carried end has passed: the login starts without it.
            self.set_expiry(&mut base, Expiry::Default, now);
        }
        check_size(&base.data, &base.secrets, self.config.max_data_bytes)?;
        // Secrets are sealed to the session they belong to: re-sealed for the new one.
        let (handle, key, record) = self
            .create_resealed(SessionKind::Authenticated, Write::Login, &base, &secrets)
            .await?;
        let set = vec![self.set_cookie(&handle, &record, now)];
        let mut o = self.outcome(Some(stored(key, record)), set, Status::LoggedIn);
        if let Some(t) = &self.tokens
            && let Some(session) = &o.session
        {
            let value = self.issue(t, session, now)?;
            o.set_cookie.push(value);
            o.token_status = TokenStatus::Issued;
        }
        self.clear_anon(cookie, &mut o);
        Ok(o)
    }

    /// Ends the session named by the cookie (a tombstone keeps racing requests from
    /// resurrecting it) and returns the cookie removal. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedCookie`]; store errors.
    pub async fn logout(&self, cookie: &str, now: Timestamp) -> Result<Outcome> {
        let r = self.logout_inner(cookie, now).await;
        self.count("logout", &r);
        r
    }

    pub(super) async fn logout_inner(&self, cookie: &str, now: Timestamp) -> Result<Outcome> {
        let handle = match cookie::find(cookie, self.cookie.name()) {
            Lookup::Absent => None,
            // A logout must always clear the browser's cookie, even a corrupted one.
            Lookup::Invalid => {
                let mut o = self.outcome(None, self.logout_cookies(), Status::LoggedOut);
                self.clear_anon(cookie, &mut o);
                return Ok(o);
            }
            Lookup::Found(v) => v.parse::<Handle>().ok(),
        };
        if let Some(h) = handle {
            let key = h.store_key();
            // Only a session that exists gets a tombstone: a never-issued handle costs no write.
            // The revocation goes first: once the tombstone is written a retried logout finds
            // nothing to end, so a failure between the two would leave the session's tokens
            // verifying until they expire. This way a failed delete leaves a live record whose
            // tokens are already refused, and a retry ends it (a second entry for the same
            // `sid` changes nothing for a verifier).
            if let Some(record) = self.store.load(h.kind(), &key, now).await? {
                self.log_session_end(&key, &record, now).await?;
                self.store
                    .delete(h.kind(), &key, now, Write::Logout)
                    .await?;
            }
        }
        // A client-side anonymous session has nothing stored: clearing its cookie ends it.
        let mut o = self.outcome(None, self.logout_cookies(), Status::LoggedOut);
        self.clear_anon(cookie, &mut o);
        Ok(o)
    }

    pub(super) fn logout_cookies(&self) -> Vec<String> {
        let mut v = vec![self.cookie.remove()];
        if let Some(t) = &self.tokens {
            v.push(t.cookie.remove());
        }
        v
    }

    /// Ends the session behind `handle` for a login and returns what it held. The record is
    /// first expired with a compare-and-set, so an edit that slipped in after the read forces
    /// a re-read instead of being dropped; then it is deleted with a tombstone.
    pub(super) async fn retire(
        &self,
        handle: &Handle,
        reason: Write,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>> {
        let kind = handle.kind();
        let key = handle.store_key();
        let mut attempt = 0u32;
        loop {
            let Some(record) = self.store.load(kind, &key, now).await? else {
                return Ok(None);
            };
            // Revoked before it is expired, for the reason `logout` gives: once expired, a
            // retry finds nothing to end.
            self.log_session_end(&key, &record, now).await?;
            let mut sealed = record.clone();
            sealed.idle_expires_at = now;
            sealed.version = record.version.saturating_add(1);
            match self
                .store
                .save(kind, &key, record.version, &sealed, now, reason)
                .await
            {
                Ok(()) => {
                    self.store.delete(kind, &key, now, reason).await?;
                    return Ok(Some(record));
                }
                Err(Error::Store(tessera_core::Error::Conflict)) => {
                    attempt += 1;
                    if attempt > self.config.max_conflict_retries {
                        return Err(Error::Contention);
                    }
                    backoff(attempt).await;
                }
                Err(Error::Store(tessera_core::Error::NotFound)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}
