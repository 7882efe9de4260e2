//! `resolve`: read the session named by the cookie, renew it when due, create one on demand.

use std::collections::BTreeMap;

use tessera_core::{Expiry, Handle, SessionKind, SessionRecord, Timestamp};

use super::client::Anon;
use super::store::Write;
use super::{Engine, IfMissing, Outcome, Renewal, Status, Storage, TokenStatus, stored};
use crate::anonymous::{ClientState, NotSealed};
use crate::{AnonymousMode, Error, Result};

impl Engine {
    /// Reads the session named by the `Cookie` header. Renews it (one write) when half its
    /// idle lifetime has passed since the last renewal, re-sending the cookie with a fresh
    /// `Max-Age`. A cookie naming no live session is cleared. With
    /// [`IfMissing::CreateAnonymous`], a request without a live session gets a new anonymous
    /// one.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedCookie`] if the cookie is not a handle; store errors.
    ///
    /// With tokens on, the token cookie is checked against the live session: re-issued when
    /// missing, invalid or past its soft expiry (never a store write), cleared when it
    /// belongs to another user or session or when there is no authenticated session;
    /// [`Outcome::token_status`] says which.
    pub async fn resolve(
        &self,
        cookie: &str,
        missing: IfMissing,
        now: Timestamp,
    ) -> Result<Outcome> {
        self.resolve_with(cookie, missing, Renewal::WhenDue, now)
            .await
    }

    /// [`Engine::resolve`], saying whether the session may be renewed: with
    /// [`Renewal::Never`] a live session is read and nothing is written (its cookie is not
    /// re-sent), what an "exists?" check wants.
    ///
    /// # Errors
    ///
    /// As [`Engine::resolve`].
    pub async fn resolve_with(
        &self,
        cookie: &str,
        missing: IfMissing,
        renewal: Renewal,
        now: Timestamp,
    ) -> Result<Outcome> {
        let mut r = self.resolve_inner(cookie, missing, renewal, now).await;
        if let Ok(o) = &mut r
            && let Err(e) = self.check_token(cookie, o, now)
        {
            // The session (and a renewal already written) stands without a token rather
            // than failing the request.
            tracing::error!(code = e.code(), error = ?e, "cannot issue a session token");
            // The token status says "not issued" whatever the cause; the log has the cause.
            self.token_outcome(o, TokenStatus::IssueFailed);
        }
        self.count("resolve", &r);
        r
    }

    pub(super) async fn resolve_inner(
        &self,
        cookie: &str,
        missing: IfMissing,
        renewal: Renewal,
        now: Timestamp,
    ) -> Result<Outcome> {
        let Some(handle) = self.handle_from(cookie)? else {
            return self.resolve_client(cookie, missing, renewal, now).await;
        };
        let mut o = self.resolve_stored(&handle, missing, renewal, now).await?;
        self.clear_anon(cookie, &mut o);
        Ok(o)
    }

    /// `resolve` for a session named by the session cookie's handle.
    pub(super) async fn resolve_stored(
        &self,
        handle: &Handle,
        missing: IfMissing,
        renewal: Renewal,
        now: Timestamp,
    ) -> Result<Outcome> {
        let key = handle.store_key();
        let Some(record) = self.store.load(handle.kind(), &key, now).await? else {
            if missing.creates() {
                let mut o = self.create_anonymous(missing, now).await?;
                // One Set-Cookie per name: a new stored session's cookie replaces the stale
                // one; a client-side one needs the stale one removed.
                if o.session.as_ref().map(|s| s.storage) == Some(Storage::Cookie) {
                    o.set_cookie.insert(0, self.cookie.remove());
                }
                o.status = Status::Created;
                return Ok(o);
            }
            return Ok(self.outcome(None, vec![self.cookie.remove()], Status::Ended));
        };
        if renewal == Renewal::Never || !self.renewal_due(&record, now) {
            return Ok(self.outcome(Some(stored(key, record)), vec![], Status::Loaded));
        }
        let mut renewed = record.clone();
        self.renew(&mut renewed, now);
        renewed.version = record.version.saturating_add(1);
        match self
            .store
            .save(
                handle.kind(),
                &key,
                record.version,
                &renewed,
                now,
                Write::Renew,
            )
            .await
        {
            Ok(()) => {
                let set = vec![self.set_cookie(handle, &renewed, now)];
                Ok(self.outcome(Some(stored(key, renewed)), set, Status::Renewed))
            }
            // Another request wrote first; it renewed too, or will. This read stands.
            Err(Error::Store(tessera_core::Error::Conflict)) => {
                Ok(self.outcome(Some(stored(key, record)), vec![], Status::Loaded))
            }
            Err(Error::Store(tessera_core::Error::NotFound)) => {
                Ok(self.outcome(None, vec![self.cookie.remove()], Status::Ended))
            }
            Err(e) => Err(e),
        }
    }

    /// `resolve` without a session cookie: the sealed anonymous cookie, if any. Never
    /// touches a store in client mode.
    pub(super) async fn resolve_client(
        &self,
        cookie: &str,
        missing: IfMissing,
        renewal: Renewal,
        now: Timestamp,
    ) -> Result<Outcome> {
        let refused = match self.anon_from(cookie, now) {
            Anon::Open(state) => {
                let record = state.record();
                if renewal == Renewal::Never || !self.renewal_due(&record, now) {
                    return Ok(self.outcome(Some(self.client(&state)), vec![], Status::Loaded));
                }
                // Renewal re-seals the cookie with a later idle expiry: no store write.
                let mut renewed = state.clone();
                self.renew_client(&mut renewed, now);
                return match self.try_seal(&renewed) {
                    Ok(value) => {
                        Ok(self.outcome(Some(self.client(&renewed)), vec![value], Status::Renewed))
                    }
                    // Its new timestamps made it a few bytes too long: it stays as it is
                    // (the next edit moves it to the store).
                    Err(NotSealed::OverBudget) => {
                        Ok(self.outcome(Some(self.client(&state)), vec![], Status::Loaded))
                    }
                    Err(NotSealed::Failed(e)) => Err(e),
                };
            }
            Anon::Refused => true,
            Anon::Absent => false,
        };
        if missing.creates() {
            let mut o = self.create_anonymous(missing, now).await?;
            // A new anonymous cookie replaces a refused one (one Set-Cookie per name); a new
            // stored session needs it removed.
            if refused && o.session.as_ref().map(|s| s.storage) == Some(Storage::Store) {
                o.set_cookie.push(self.anon_cookie.remove());
            }
            return Ok(o);
        }
        if refused {
            return Ok(self.outcome(None, vec![self.anon_cookie.remove()], Status::Ended));
        }
        Ok(self.outcome(None, vec![], Status::None))
    }

    /// A new, empty anonymous session: a sealed cookie in client mode (no write), a stored
    /// record in server mode or for [`IfMissing::CreateStored`].
    pub(super) async fn create_anonymous(
        &self,
        missing: IfMissing,
        now: Timestamp,
    ) -> Result<Outcome> {
        if self.config.anonymous == AnonymousMode::Client && missing != IfMissing::CreateStored {
            let state = ClientState::fresh(&self.config, now).map_err(Error::Random)?;
            let value = self.try_seal(&state).map_err(|e| match e {
                NotSealed::Failed(e) => e,
                NotSealed::OverBudget => {
                    Error::Unreachable("an empty anonymous session is over the cookie budget")
                }
            })?;
            return Ok(self.outcome(Some(self.client(&state)), vec![value], Status::Created));
        }
        let record = SessionRecord {
            kind: SessionKind::Anonymous,
            user: None,
            claims: BTreeMap::new(),
            created_at: now,
            renewed_at: now,
            idle_expires_at: now.saturating_add(self.config.idle_timeout),
            absolute_expires_at: now.saturating_add(self.config.absolute_timeout),
            remember: false,
            data: BTreeMap::new(),
            secrets: BTreeMap::new(),
            expiry: Expiry::Default,
            version: 1,
        };
        let (handle, key, record) = self
            .create_record_with(record.kind, Write::Create, |_| Ok(record.clone()))
            .await?;
        let set = vec![self.set_cookie(&handle, &record, now)];
        Ok(self.outcome(Some(stored(key, record)), set, Status::Created))
    }
}
