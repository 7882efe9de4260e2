//! CSRF tokens of a session: issued without a write, checked against the live session.

use tessera_core::Timestamp;

use super::client::Anon;
use super::{Engine, LiveSession};
use crate::csrf;
use crate::{Error, Result};

impl Engine {
    /// The session's `sid` (see [`SidKey::sid`](crate::csrf::SidKey::sid)).
    pub fn sid(&self, session: &LiveSession) -> String {
        self.sid.sid(&session.key)
    }

    /// The CSRF keys the engine issues and checks tokens with.
    pub fn csrf_keys(&self) -> &crate::keys::CsrfKeys {
        &self.csrf
    }

    /// A CSRF token for the session, for `purpose`. Costs no write (and, for a client-side
    /// anonymous session, no read: its identity is inside its sealed cookie).
    pub fn csrf_token(&self, session: &LiveSession, purpose: &str, now: Timestamp) -> String {
        self.csrf.read().issue(purpose, &session.key, now)
    }

    /// Whether `token` is a CSRF token for `purpose` of the live session named by the cookie.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedCookie`], [`Error::InvalidInput`] for an over-long purpose; store
    /// errors.
    pub async fn check_csrf(
        &self,
        cookie: &str,
        token: &str,
        purpose: &str,
        now: Timestamp,
    ) -> Result<bool> {
        if purpose.len() > csrf::MAX_PURPOSE_LEN {
            return Err(Error::InvalidInput(format!(
                "purpose is longer than {} bytes",
                csrf::MAX_PURPOSE_LEN
            )));
        }
        let Some(handle) = self.handle_from(cookie)? else {
            // A client-side anonymous session: its identity is inside the seal, no read.
            if let Anon::Open(state) = self.anon_from(cookie, now) {
                let ok = self.csrf.read().verify(
                    token,
                    purpose,
                    &state.handle.store_key(),
                    self.config.csrf_max_age,
                    now,
                );
                self.metrics
                    .op("csrf_check", if ok { "valid" } else { "invalid" });
                return Ok(ok);
            }
            self.metrics.op("csrf_check", "no_session");
            return Ok(false);
        };
        let key = handle.store_key();
        if self.store.load(handle.kind(), &key, now).await?.is_none() {
            self.metrics.op("csrf_check", "no_session");
            return Ok(false);
        }
        let ok = self
            .csrf
            .read()
            .verify(token, purpose, &key, self.config.csrf_max_age, now);
        self.metrics
            .op("csrf_check", if ok { "valid" } else { "invalid" });
        Ok(ok)
    }
}
