//! The per-request session handle every operation goes through.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_core::{Timestamp, User};
use tokio::sync::Mutex;

use crate::{Edits, Engine, Error, IfMissing, LiveSession, Login, Outcome, Result, TokenStatus};

/// The session of the current request: an extractor, and the handle every operation goes
/// through. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    now: Timestamp,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The `Cookie` header as the engine should see it now (rewritten after an operation
    /// issues or clears a cookie: the session, anonymous or token cookie).
    cookie: String,
    /// The names of the cookies the request came with.
    sent: Vec<String>,
    /// The session as last read or written in this request.
    current: Option<Option<LiveSession>>,
    /// The last `Set-Cookie` value of each cookie name, in first-set order: one per name.
    set_cookie: Vec<(String, String)>,
    /// The token outcome of the last operation.
    token_status: Option<TokenStatus>,
}

impl State {
    /// Records a `Set-Cookie` value: it replaces an earlier one for the same name, and the
    /// effective `Cookie` header follows it (a removal drops the cookie).
    fn record(&mut self, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = name.trim();
        let fresh = format!("{name}={value}");
        let mut kept: Vec<&str> = self
            .cookie
            .split(';')
            // The space after `;` is the header's; what follows `=` is the value as sent.
            .map(str::trim_start)
            .filter(|p| !p.is_empty() && p.split_once('=').map_or(*p, |(n, _)| n.trim()) != name)
            .collect();
        if !value.is_empty() {
            kept.push(&fresh);
        }
        let cookie = kept.join("; ");
        self.cookie = cookie;
        if value.is_empty() && !self.sent.iter().any(|n| n == name) {
            // Removing a cookie the browser does not have (one set earlier in this request,
            // such as the anonymous cookie before a login): send nothing for it.
            self.set_cookie.retain(|(n, _)| n != name);
            return;
        }
        match self.set_cookie.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = set_cookie.to_owned(),
            None => self
                .set_cookie
                .push((name.to_owned(), set_cookie.to_owned())),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    pub(super) fn new(engine: Arc<Engine>, cookie: String, now: Timestamp) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                now,
                state: Mutex::new(State {
                    sent: cookie
                        .split(';')
                        .filter_map(|p| Some(p.split_once('=')?.0.trim().to_owned()))
                        .collect(),
                    cookie,
                    ..State::default()
                }),
            }),
        }
    }

    pub(super) async fn take_set_cookies(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.state.lock().await.set_cookie)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Runs one engine operation with the current cookie and records its outcome. A
    /// malformed cookie is dropped (and cleared in the response) and the operation retried
    /// as if there were none.
    async fn run<F, Fut>(&self, op: F) -> Result<Option<LiveSession>>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Outcome>>,
    {
        let mut st = self.inner.state.lock().await;
        let out = match op(st.cookie.clone()).await {
            Err(Error::MalformedCookie) => {
                let removal = self.engine().cookie().remove();
                st.record(&removal);
                op(st.cookie.clone()).await?
            }
            other => other?,
        };
        for sc in &out.set_cookie {
            st.record(sc);
        }
        st.token_status = Some(out.token_status);
        st.current = Some(out.session.clone());
        Ok(out.session)
    }

    /// The live session, read once per request (and renewed when due).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn load(&self) -> Result<Option<LiveSession>> {
        if let Some(current) = self.inner.state.lock().await.current.clone() {
            return Ok(current);
        }
        let now = self.inner.now;
        self.run(|c| async move { self.engine().resolve(&c, IfMissing::Nothing, now).await })
            .await
    }

    /// The logged-in user, if any.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn user(&self) -> Result<Option<User>> {
        Ok(self.load().await?.and_then(|s| s.record.user))
    }

    /// The value under `key`, decoded as `T`; `None` if absent (or not a `T`).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        Ok(self
            .load()
            .await?
            .and_then(|s| s.record.data.get(key).cloned())
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Applies per-key edits (creating an anonymous session if there is none).
    ///
    /// # Errors
    ///
    /// As [`Engine::update`].
    pub async fn update(&self, edits: Edits) -> Result<()> {
        let now = self.inner.now;
        let edits = &edits;
        self.run(|c| async move { self.engine().update(&c, edits, now).await })
            .await
            .map(drop)
    }

    /// Sets one key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if `value` does not serialise; as [`Engine::update`].
    pub async fn set(&self, key: &str, value: impl Serialize) -> Result<()> {
        let v = serde_json::to_value(value).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut edits = Edits::default();
        edits.set.insert(key.to_owned(), v);
        self.update(edits).await
    }

    /// Removes one key.
    ///
    /// # Errors
    ///
    /// As [`Engine::update`].
    pub async fn remove(&self, key: &str) -> Result<()> {
        let edits = Edits {
            remove: vec![key.to_owned()],
            ..Edits::default()
        };
        self.update(edits).await
    }

    /// Keeps a secret under `key` (an OAuth `state`, a one-time code): sealed with a server
    /// key and stored server-side only, never in a cookie. A client-side anonymous session
    /// moves to the store for it (DESIGN §4, "spill").
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if `value` does not serialise; as [`Engine::update`].
    pub async fn set_secret(&self, key: &str, value: impl Serialize) -> Result<()> {
        let v = serde_json::to_value(value).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut edits = Edits::default();
        edits.secrets.insert(key.to_owned(), v);
        self.update(edits).await
    }

    /// Removes the secret under `key`.
    ///
    /// # Errors
    ///
    /// As [`Engine::update`].
    pub async fn remove_secret(&self, key: &str) -> Result<()> {
        let edits = Edits {
            remove_secrets: vec![key.to_owned()],
            ..Edits::default()
        };
        self.update(edits).await
    }

    /// The secret under `key`, decoded as `T`; `None` if absent (or not a `T`).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn secret<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let now = self.inner.now;
        Ok(self
            .load()
            .await?
            .and_then(|s| self.engine().secret(&s, key, now))
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Logs a user in: a new session under a new handle, the anonymous data carried over.
    ///
    /// # Errors
    ///
    /// As [`Engine::login`].
    pub async fn login(&self, login: Login) -> Result<()> {
        let now = self.inner.now;
        let login = &login;
        self.run(|c| async move { self.engine().login(&c, login.clone(), now).await })
            .await
            .map(drop)
    }

    /// Ends the session; the response clears the cookie.
    ///
    /// # Errors
    ///
    /// As [`Engine::logout`].
    pub async fn logout(&self) -> Result<()> {
        let now = self.inner.now;
        self.run(|c| async move { self.engine().logout(&c, now).await })
            .await
            .map(drop)
    }

    /// A CSRF token for `purpose`, bound to this session. Without a session, an anonymous one
    /// is created first (a login form needs a token before anyone logs in): in client-side
    /// mode a sealed cookie, no store write.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn csrf_token(&self, purpose: &str) -> Result<String> {
        let now = self.inner.now;
        let session = match self.load().await? {
            Some(s) => s,
            None => self
                .run(|c| async move {
                    self.engine()
                        .resolve(&c, IfMissing::CreateAnonymous, now)
                        .await
                })
                .await?
                .ok_or(Error::SessionNotFound)?,
        };
        Ok(self.engine().csrf_token(&session, purpose, now))
    }

    /// The session token's status for this request ([`TokenStatus`]: `ok`, `soft_expired`,
    /// `user_session_without_token`, ...; `disabled` without tokens). Reading it resolves
    /// the session, which issues or refreshes the token cookie when due, without a store
    /// write.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn token_status(&self) -> Result<TokenStatus> {
        self.load().await?;
        let status = self.inner.state.lock().await.token_status;
        // `load` ran an engine operation unless an earlier one already had.
        Ok(status.unwrap_or(if self.engine().tokens().is_some() {
            TokenStatus::None
        } else {
            TokenStatus::Disabled
        }))
    }

    /// Mints a token for a non-persisted session (a bearer or OAuth-style client): nothing is
    /// stored and no cookie is set.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for bad claims; token errors when tokens are off or no key can
    /// sign.
    pub async fn mint_token(
        &self,
        sub: &str,
        claims: &BTreeMap<String, serde_json::Value>,
    ) -> Result<String> {
        self.engine().mint(sub, claims, self.inner.now)
    }

    /// Whether `token` is a CSRF token of this session for `purpose`.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn verify_csrf(&self, token: &str, purpose: &str) -> Result<bool> {
        let cookie = self.inner.state.lock().await.cookie.clone();
        match self
            .engine()
            .check_csrf(&cookie, token, purpose, self.inner.now)
            .await
        {
            Err(Error::MalformedCookie) => Ok(false),
            other => other,
        }
    }

    /// The live sessions of the logged-in user (empty when anonymous).
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn sessions(&self) -> Result<Vec<LiveSession>> {
        match self.user().await? {
            Some(u) => {
                self.engine()
                    .list_user_sessions(&u.id, self.inner.now)
                    .await
            }
            None => Ok(vec![]),
        }
    }

    /// Ends one session of the logged-in user by reference; whether it existed.
    ///
    /// # Errors
    ///
    /// Store failures; [`Error::InvalidInput`] for a malformed reference.
    pub async fn revoke(&self, reference: &str) -> Result<bool> {
        match self.user().await? {
            Some(u) => {
                let own = self.load().await?.map(|s| s.reference());
                let found = self
                    .engine()
                    .revoke_session(&u.id, reference, self.inner.now)
                    .await?;
                if found && own.as_deref() == Some(reference) {
                    // Revoking the current session is a logout: clear the cookie too.
                    self.logout().await?;
                }
                Ok(found)
            }
            None => Ok(false),
        }
    }

    /// Logs the user out everywhere (this session included); how many sessions ended.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn logout_everywhere(&self) -> Result<usize> {
        match self.user().await? {
            Some(u) => {
                let n = self.engine().revoke_all(&u.id, self.inner.now).await?;
                self.logout().await?;
                Ok(n)
            }
            None => Ok(0),
        }
    }
}
