//! Session tokens: checked against the live session on `resolve`, issued at login, minted
//! for sessions that are not stored.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tessera_core::{SessionKind, Timestamp};

use super::{Engine, LiveSession, Outcome, TokenStatus};
use crate::cookie::{self, Lookup};
use crate::limits::{validate_claims, validate_subject};
use crate::metrics::{AlgLabels, TokenOutcomeLabels};
use crate::token::TokenSettings;
use crate::{Error, Result};

impl Engine {
    /// A token for a session that is not stored (an API client): `sub` as given, a random
    /// `sid`, the custom `claims`. Writes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::TokensDisabled`] if tokens are off; [`Error::InvalidInput`] for a bad `sub` or
    /// claims; [`Error::Token`] if signing fails.
    pub fn mint(
        &self,
        sub: &str,
        claims: &BTreeMap<String, Value>,
        now: Timestamp,
    ) -> Result<String> {
        let t = self.tokens.as_ref().ok_or(Error::TokensDisabled)?;
        validate_subject(sub)?;
        validate_claims(claims)?;
        let secs = now.unix_secs();
        let mut c = t.claims(sub.to_owned(), crate::token::random_id()?, secs, i64::MAX)?;
        c.custom
            .extend(claims.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.sign(t, &c, secs)
    }

    /// Checks the token cookie of the request against the session `o` ended with, adding
    /// the `Set-Cookie` value that re-issues or clears it.
    pub(super) fn check_token(&self, cookie: &str, o: &mut Outcome, now: Timestamp) -> Result<()> {
        let Some(t) = &self.tokens else {
            return Ok(());
        };
        let presented = match cookie::find(cookie, t.cookie.name()) {
            Lookup::Absent | Lookup::Found("") => None,
            Lookup::Found(v) => Some(v),
            // Oversized or duplicated: nothing to verify, and it must go.
            Lookup::Invalid => Some(""),
        };
        let user = o
            .session
            .as_ref()
            .filter(|s| s.record.kind == SessionKind::Authenticated)
            .and_then(|s| s.record.user_id().map(|u| (s, u)));
        let Some((session, user_id)) = user else {
            if presented.is_some() {
                o.set_cookie.push(t.cookie.remove());
                self.token_outcome(o, TokenStatus::AnonSessionWithToken);
                return Ok(());
            }
            o.token_status = TokenStatus::None;
            return Ok(());
        };
        let Some(token) = presented else {
            let value = self.issue(t, session, now)?;
            o.set_cookie.push(value);
            self.token_outcome(o, TokenStatus::UserSessionWithoutToken);
            return Ok(());
        };
        let secs = now.unix_secs();
        let verified = {
            let ring = t.keyring.read();
            // Revocation is the store's job here: a revoked session does not load.
            ring.verify_cached_at(
                &t.config,
                token,
                secs,
                &tessera_token::NoRevocations,
                &t.cache,
            )
        };
        let status = match verified {
            Err(e) => {
                let outcome = e.outcome();
                tracing::info!(target: "security", code = outcome, issuer = t.config.issuer(), "session token refused; issuing a new one");
                let value = self.issue(t, session, now)?;
                o.set_cookie.push(value);
                TokenStatus::Refused(outcome)
            }
            Ok(v) => {
                let subject = t.subject.subject(user_id);
                let sid = self.sid(session);
                let status = if v.claims.sub != subject {
                    TokenStatus::WrongUser
                } else if v.claims.sid != sid {
                    TokenStatus::WrongSession
                } else {
                    TokenStatus::Valid(v.status)
                };
                let code = status.as_str();
                match status {
                    TokenStatus::WrongUser | TokenStatus::WrongSession => {
                        tracing::warn!(target: "security", code, issuer = t.config.issuer(), subject = %v.claims.sub, kid = %v.kid, "session token does not match its session; cleared");
                        o.set_cookie.push(t.cookie.remove());
                    }
                    TokenStatus::Valid(tessera_token::Status::SoftExpired) => {
                        tracing::debug!(code, issuer = t.config.issuer(), subject = %v.claims.sub, kid = %v.kid, "session token soft-expired; issuing a new one");
                        let value = self.issue(t, session, now)?;
                        o.set_cookie.push(value);
                    }
                    _ => {}
                }
                o.sid = Some(sid);
                status
            }
        };
        self.token_outcome(o, status);
        Ok(())
    }

    pub(super) fn token_outcome(&self, o: &mut Outcome, status: TokenStatus) {
        o.token_status = status;
        self.metrics
            .token_validations
            .get_or_create(&TokenOutcomeLabels {
                outcome: status.as_str(),
            })
            .inc();
    }

    /// A `Set-Cookie` value carrying a new token for `session`. A pure function of the
    /// record and the key: no store access.
    pub(super) fn issue(
        &self,
        t: &TokenSettings,
        session: &LiveSession,
        now: Timestamp,
    ) -> Result<String> {
        // Callers pass authenticated sessions only (login, and `check_token`'s filter).
        let user_id = session
            .record
            .user_id()
            .ok_or(Error::Unreachable("a token for a session without a user"))?;
        let secs = now.unix_secs();
        let mut c = t.claims(
            t.subject.subject(user_id),
            self.sid(session),
            secs,
            session.record.absolute_expires_at.unix_secs(),
        )?;
        c.custom.extend(
            session
                .record
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let token = self.sign(t, &c, secs)?;
        // Like the session cookie: a browser-session cookie unless remembered, so closing
        // the browser drops both; a remembered session's token cookie lasts until `exp`.
        let max_age = session
            .record
            .remember
            .then(|| Duration::from_secs(u64::try_from(c.exp.saturating_sub(secs)).unwrap_or(0)));
        Ok(t.cookie.set(&token, max_age))
    }

    pub(super) fn sign(
        &self,
        t: &TokenSettings,
        c: &tessera_token::Claims,
        secs: i64,
    ) -> Result<String> {
        let ring = t.keyring.read();
        let alg = ring.signing_key_at(secs).map_err(Error::Token)?.algorithm();
        let token = ring.sign_at(&t.config, c, secs).map_err(Error::Token)?;
        self.metrics
            .tokens_issued
            .get_or_create(&AlgLabels { alg: alg.name() })
            .inc();
        Ok(token)
    }
}
