//! Client-side anonymous sessions: the sealed cookie, its edits and renewals, and the spill
//! to the store.

use std::collections::BTreeMap;

use tessera_core::{SessionKind, Timestamp};

use super::store::Write;
use super::update::apply;
use super::{Edits, Engine, LiveSession, Outcome, Status, Storage, stored};
use crate::anonymous::{self, ClientState, NotSealed};
use crate::cookie::{self, Lookup};
use crate::limits::check_size;
use crate::{AnonymousMode, Error, Result};

impl Engine {
    /// `update` without a session cookie: edits the sealed anonymous state (or a fresh one
    /// when the cookie is absent or refused) and re-seals it, without a store write; the
    /// session spills to the store when it would outgrow the cookie, when a secret is set,
    /// or in server mode.
    pub(super) async fn update_client(
        &self,
        cookie: &str,
        edits: &Edits,
        now: Timestamp,
    ) -> Result<Outcome> {
        let (state, refused) = match self.anon_from(cookie, now) {
            Anon::Open(s) => (Some(s), false),
            Anon::Refused => (None, true),
            Anon::Absent => (None, false),
        };
        let fresh = state.is_none();
        let Some(mut state) = state.map_or_else(
            || {
                (edits.sets_anything() || edits.in_store)
                    .then(|| ClientState::fresh(&self.config, now).map_err(Error::Random))
                    .transpose()
            },
            |s| Ok(Some(s)),
        )?
        else {
            // Nothing to keep: a new session would be a cookie (or a write) for nothing.
            return Ok(if refused {
                self.outcome(None, vec![self.anon_cookie.remove()], Status::Ended)
            } else {
                self.outcome(None, vec![], Status::None)
            });
        };
        let before = state.data.clone();
        apply(&mut state.data, edits);
        let changed = fresh || state.data != before;
        if changed {
            check_size(&state.data, &BTreeMap::new(), self.config.max_data_bytes)?;
        }
        let server = self.config.anonymous == AnonymousMode::Server;
        let spill = edits.needs_store() || (server && changed);
        let renew = !fresh && self.renewal_due(&state.record(), now);
        if !changed && !renew && !spill {
            return Ok(self.outcome(Some(self.client(&state)), vec![], Status::Unchanged));
        }
        if renew {
            self.renew_client(&mut state, now);
        }
        let status = if fresh {
            Status::Created
        } else if changed || spill {
            Status::Updated
        } else {
            Status::Renewed
        };
        if !spill {
            match self.try_seal(&state) {
                Ok(value) => {
                    // Replaces a refused cookie: one Set-Cookie per name.
                    return Ok(self.outcome(Some(self.client(&state)), vec![value], status));
                }
                Err(NotSealed::OverBudget) => {}
                Err(NotSealed::Failed(e)) => return Err(e),
            }
        }
        let reason = if server && fresh {
            Write::Create
        } else {
            Write::Spill
        };
        let mut o = self.spill(state, edits, reason, now).await?;
        if !fresh || refused {
            o.set_cookie.push(self.anon_cookie.remove());
        }
        if o.session.is_some() {
            o.status = status;
        }
        Ok(o)
    }

    /// Moves a client-side anonymous session (with `edits` applied to its data already; its
    /// secret edits still to apply) to the anonymous store, under the handle inside its seal
    /// so its CSRF tokens stay valid. The outcome sets the session cookie to that handle.
    pub(super) async fn spill(
        &self,
        state: ClientState,
        edits: &Edits,
        reason: Write,
        now: Timestamp,
    ) -> Result<Outcome> {
        let kind = SessionKind::Anonymous;
        let mut base = state.record();
        base.version = 1;
        if let Some(e) = edits.expiry
            && self.set_expiry(&mut base, e, now)
        {
            // Its own end has passed: nothing to keep.
            return Ok(self.outcome(None, vec![], Status::Ended));
        }
        let handle = state.handle;
        let key = handle.store_key();
        let mut record = base.clone();
        self.apply_secrets(&mut record, &key, edits)?;
        check_size(&record.data, &record.secrets, self.config.max_data_bytes)?;
        let (handle, key, record) = match self.store.create(kind, &key, &record, reason).await {
            Ok(()) => (handle, key, record),
            Err(tessera_core::Error::AlreadyExists) => {
                // This cookie spilled already (a request racing this one) or its stored
                // session has since ended. Holding the seal proves the handle was given to
                // this client, so the edits apply to the stored session, key by key.
                match self.update_stored(&handle, edits, now).await {
                    Ok(mut o) => {
                        if let Some(s) = &o.session {
                            let value = self.set_cookie(&handle, &s.record, now);
                            o.set_cookie.retain(|c| !self.is_session_cookie(c));
                            o.set_cookie.insert(0, value);
                        }
                        return Ok(o);
                    }
                    Err(Error::SessionNotFound) => {
                        self.create_record_with(kind, reason, |k| {
                            let mut r = base.clone();
                            self.apply_secrets(&mut r, k, edits)?;
                            Ok(r)
                        })
                        .await?
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e.into()),
        };
        if reason == Write::Spill {
            self.metrics.anon("spilled");
        }
        let set = vec![self.set_cookie(&handle, &record, now)];
        Ok(self.outcome(Some(stored(key, record)), set, Status::Updated))
    }

    /// What the request's anonymous cookie holds. Every failure to open is the same
    /// `Refused`, whatever the cause.
    pub(super) fn anon_from(&self, cookie: &str, now: Timestamp) -> Anon {
        let name = self.anon_cookie.name();
        let opened = match cookie::find(cookie, name) {
            Lookup::Absent | Lookup::Found("") => return Anon::Absent,
            Lookup::Found(v) => {
                let ring = self.seal.read();
                anonymous::open(&ring, name, v, &self.config, now)
            }
            Lookup::Invalid => None,
        };
        match opened {
            Some(state) => {
                self.metrics.anon("opened");
                Anon::Open(state)
            }
            None => {
                // Expiry is normal and looks the same as tampering by design (no oracle), so
                // this is not a warning.
                tracing::info!(target: "security", "anonymous cookie refused (expired, altered, duplicated or sealed with a dropped key); starting afresh");
                self.metrics.anon("refused");
                Anon::Refused
            }
        }
    }

    /// Adds the anonymous cookie's removal when the request carried one and the outcome
    /// does not set it: the session cookie (or no session) now speaks for the client.
    pub(super) fn clear_anon(&self, cookie: &str, o: &mut Outcome) {
        let name = self.anon_cookie.name();
        let present = !matches!(
            cookie::find(cookie, name),
            Lookup::Absent | Lookup::Found("")
        );
        let set = o
            .set_cookie
            .iter()
            .any(|c| c.split_once('=').is_some_and(|(n, _)| n == name));
        if present && !set {
            o.set_cookie.push(self.anon_cookie.remove());
        }
    }

    pub(super) fn is_session_cookie(&self, set_cookie: &str) -> bool {
        set_cookie
            .split_once('=')
            .is_some_and(|(n, _)| n == self.cookie.name())
    }

    pub(super) fn client(&self, state: &ClientState) -> LiveSession {
        LiveSession {
            key: state.handle.store_key(),
            record: state.record(),
            storage: Storage::Cookie,
        }
    }

    pub(super) fn renew_client(&self, state: &mut ClientState, now: Timestamp) {
        state.renewed_at = now;
        state.idle_expires_at = now
            .saturating_add(self.config.idle_timeout)
            .min(state.absolute_expires_at);
    }

    /// The `Set-Cookie` value carrying `state`, if it fits the budget. A browser-session
    /// cookie: the expiry inside is what counts.
    pub(super) fn try_seal(&self, state: &ClientState) -> std::result::Result<String, NotSealed> {
        let ring = self.seal.read();
        let value = anonymous::seal(
            &ring,
            self.anon_cookie.name(),
            state,
            self.config.anonymous_cookie_bytes,
        )?;
        self.metrics.anon("sealed");
        Ok(self.anon_cookie.set(&value, None))
    }
}

/// What the request's anonymous cookie holds.
pub(super) enum Anon {
    /// No anonymous cookie.
    Absent,
    /// A live client-side session.
    Open(ClientState),
    /// A cookie that did not open (tampered, truncated, spliced, under another name,
    /// expired, sealed with a dropped key, duplicated): cleared, and a fresh state starts.
    Refused,
}
