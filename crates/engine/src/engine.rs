use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tessera_core::{
    Handle, Revocation, RevokedSubject, SessionKind, SessionRecord, SessionStore, StoreKey,
    Timestamp, User,
};

use crate::cookie::{self, CookieConfig, Lookup};
use crate::csrf::{self, CsrfKey};
use crate::metrics::{AlgLabels, Metrics, StoreOpLabels, TokenOutcomeLabels, WriteLabels};
use crate::token::TokenSettings;
use crate::{Error, Result, SessionConfig};

/// The stores sessions live in. The kind encoded in a handle picks exactly one of them, so a
/// lookup never probes two backends.
#[derive(Debug, Clone)]
pub struct Stores {
    authenticated: Arc<dyn SessionStore>,
    anonymous: Arc<dyn SessionStore>,
}

impl Stores {
    /// One store for every session.
    pub fn single(store: Arc<dyn SessionStore>) -> Self {
        Self {
            authenticated: store.clone(),
            anonymous: store,
        }
    }

    /// Authenticated and anonymous sessions in different stores.
    pub fn split(authenticated: Arc<dyn SessionStore>, anonymous: Arc<dyn SessionStore>) -> Self {
        Self {
            authenticated,
            anonymous,
        }
    }

    /// The store for sessions of `kind`.
    pub fn for_kind(&self, kind: SessionKind) -> &Arc<dyn SessionStore> {
        match kind {
            SessionKind::Anonymous => &self.anonymous,
            SessionKind::Authenticated => &self.authenticated,
        }
    }
}

/// A live session: its store key (whose base64url form is the public reference) and record.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Where the session is stored.
    pub key: StoreKey,
    /// The session itself.
    pub record: SessionRecord,
}

impl Session {
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
        }
    }
}

/// The result of a session operation: the session (if one is live afterwards) and the
/// `Set-Cookie` values the application must send back, in order.
#[derive(Debug, Clone)]
#[must_use = "the Set-Cookie values must reach the browser"]
pub struct Outcome {
    /// The live session after the operation.
    pub session: Option<Session>,
    /// `Set-Cookie` header values, in order.
    pub set_cookie: Vec<String>,
    /// What happened.
    pub status: Status,
    /// What the token check found (DESIGN §5 codes; on `resolve`), `issued` when a token
    /// was issued on login, `none` when no token applies, `disabled` without the token
    /// component.
    pub token_status: &'static str,
}

/// Per-key edits of a session's data.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// Keys to set, with their new values.
    pub set: BTreeMap<String, Value>,
    /// Keys to remove (absent keys are ignored).
    pub remove: Vec<String>,
}

/// What `login` binds to the session.
#[derive(Debug, Clone)]
pub struct Login {
    /// The user.
    pub user: User,
    /// Custom claims for tokens (e.g. a rate-limit class).
    pub claims: BTreeMap<String, Value>,
    /// Remember-me: a persistent cookie and the longer lifetimes.
    pub remember: bool,
}

/// The most keys one request may set or remove.
pub const MAX_EDITS: usize = 256;
/// The longest data key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// The deepest JSON nesting accepted in a value.
pub const MAX_JSON_DEPTH: usize = 32;
/// The largest custom claims of one session, as JSON bytes: they travel in every token.
pub const MAX_CLAIMS_BYTES: usize = 1024;
/// Claim names the token codec owns; custom claims may not use them.
const RESERVED_CLAIMS: [&str; 11] = [
    "iss", "sub", "aud", "iat", "exp", "nbf", "sxp", "jti", "sid", "typ", "kid",
];

/// The session engine: every lifecycle rule of DESIGN §3 over a pair of [`Stores`].
///
/// Every method takes `now`, read once per request by the caller from its
/// [`Clock`](tessera_core::Clock).
#[derive(Debug)]
pub struct Engine {
    stores: Stores,
    config: SessionConfig,
    cookie: CookieConfig,
    csrf: CsrfKey,
    metrics: Metrics,
    tokens: Option<TokenSettings>,
}

impl Engine {
    /// An engine over `stores`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `config` is inconsistent.
    pub fn try_new(
        stores: Stores,
        config: SessionConfig,
        cookie: CookieConfig,
        csrf: CsrfKey,
        metrics: Metrics,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            stores,
            config,
            cookie,
            csrf,
            metrics,
            tokens: None,
        })
    }

    /// Turns on session tokens (DESIGN §5): authenticated sessions get a token cookie.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the token settings are inconsistent.
    pub fn with_tokens(mut self, tokens: TokenSettings) -> Result<Self> {
        tokens.validate(&self.cookie)?;
        self.tokens = Some(tokens);
        Ok(self)
    }

    /// The token settings, if tokens are on.
    pub fn tokens(&self) -> Option<&TokenSettings> {
        self.tokens.as_ref()
    }

    /// The session configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The cookie configuration.
    pub fn cookie(&self) -> &CookieConfig {
        &self.cookie
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Reads the session named by the `Cookie` header. Renews it (one write) when half its
    /// idle lifetime has passed since the last renewal, re-sending the cookie with a fresh
    /// `Max-Age`. A cookie naming no live session is cleared. With `create`, a request without
    /// a live session gets a new anonymous one.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedCookie`] if the cookie is not a handle; store errors.
    ///
    /// With tokens on, the token cookie is checked against the live session: re-issued when
    /// missing, invalid or past its soft expiry (never a store write), cleared when it
    /// belongs to another user or session or when there is no authenticated session;
    /// [`Outcome::token_status`] says which.
    pub async fn resolve(&self, cookie: &str, create: bool, now: Timestamp) -> Result<Outcome> {
        let mut r = self.resolve_inner(cookie, create, now).await;
        if let Ok(o) = &mut r
            && let Err(e) = self.check_token(cookie, o, now)
        {
            // The session (and a renewal already written) stands without a token rather
            // than failing the request.
            tracing::error!(code = e.code(), error = ?e, "cannot issue a session token");
            self.token_outcome(o, e.code());
        }
        self.count("resolve", &r);
        r
    }

    async fn resolve_inner(&self, cookie: &str, create: bool, now: Timestamp) -> Result<Outcome> {
        let Some(handle) = self.handle_from(cookie)? else {
            if create {
                return self.create_anonymous(BTreeMap::new(), now).await;
            }
            return Ok(self.outcome(None, vec![], Status::None));
        };
        let key = handle.store_key();
        let Some(record) = self.load(handle.kind(), &key, now).await? else {
            if create {
                // The new cookie replaces the stale one: one Set-Cookie per name.
                let mut o = self.create_anonymous(BTreeMap::new(), now).await?;
                o.status = Status::Created;
                return Ok(o);
            }
            return Ok(self.outcome(None, vec![self.cookie.remove()], Status::Ended));
        };
        if !self.renewal_due(&record, now) {
            return Ok(self.outcome(Some(Session { key, record }), vec![], Status::Loaded));
        }
        let mut renewed = record.clone();
        self.renew(&mut renewed, now);
        renewed.version = record.version.saturating_add(1);
        match self
            .save(handle.kind(), &key, record.version, &renewed, now, "renew")
            .await
        {
            Ok(()) => {
                let set = vec![self.set_cookie(&handle, &renewed, now)];
                Ok(self.outcome(
                    Some(Session {
                        key,
                        record: renewed,
                    }),
                    set,
                    Status::Renewed,
                ))
            }
            // Another request wrote first; it renewed too, or will. This read stands.
            Err(Error::Store(tessera_core::Error::Conflict)) => {
                Ok(self.outcome(Some(Session { key, record }), vec![], Status::Loaded))
            }
            Err(Error::Store(tessera_core::Error::NotFound)) => {
                Ok(self.outcome(None, vec![self.cookie.remove()], Status::Ended))
            }
            Err(e) => Err(e),
        }
    }

    /// Applies per-key edits to the session named by the cookie, as a compare-and-set retried
    /// on conflict, so concurrent edits of different keys all survive. Without a session
    /// cookie a new anonymous session is created with the edits. An edit that changes nothing
    /// writes nothing (unless a renewal is due).
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`] if the cookie names no live session (nothing is created for
    /// it); [`Error::InvalidInput`], [`Error::DataTooLarge`], [`Error::MalformedCookie`],
    /// [`Error::Contention`] and store errors. No error leaves a partial edit.
    pub async fn update(&self, cookie: &str, edits: &Edits, now: Timestamp) -> Result<Outcome> {
        let r = self.update_inner(cookie, edits, now).await;
        self.count("update", &r);
        r
    }

    async fn update_inner(&self, cookie: &str, edits: &Edits, now: Timestamp) -> Result<Outcome> {
        validate_edits(edits)?;
        let Some(handle) = self.handle_from(cookie)? else {
            if edits.set.is_empty() {
                // Nothing to store: creating an empty session would be a write for nothing.
                return Ok(self.outcome(None, vec![], Status::None));
            }
            let mut data = BTreeMap::new();
            apply(&mut data, edits);
            self.check_size(&data)?;
            return self.create_anonymous(data, now).await;
        };
        let kind = handle.kind();
        let key = handle.store_key();
        let mut attempt = 0u32;
        loop {
            let record = self
                .load(kind, &key, now)
                .await?
                .ok_or(Error::SessionNotFound)?;
            let mut next = record.clone();
            apply(&mut next.data, edits);
            let changed = next.data != record.data;
            if changed {
                self.check_size(&next.data)?;
            }
            let renew = self.renewal_due(&record, now);
            if !changed && !renew {
                return Ok(self.outcome(Some(Session { key, record }), vec![], Status::Unchanged));
            }
            if renew {
                self.renew(&mut next, now);
            }
            next.version = record.version.saturating_add(1);
            let reason = if changed { "update" } else { "renew" };
            match self
                .save(kind, &key, record.version, &next, now, reason)
                .await
            {
                Ok(()) => {
                    let set = if renew {
                        vec![self.set_cookie(&handle, &next, now)]
                    } else {
                        vec![]
                    };
                    let status = if changed {
                        Status::Updated
                    } else {
                        Status::Renewed
                    };
                    return Ok(self.outcome(Some(Session { key, record: next }), set, status));
                }
                Err(Error::Store(tessera_core::Error::Conflict)) => {
                    attempt += 1;
                    if attempt > self.config.max_conflict_retries {
                        return Err(Error::Contention);
                    }
                    self.metrics.conflict_retries.inc();
                    backoff(attempt).await;
                }
                Err(Error::Store(tessera_core::Error::NotFound)) => {
                    return Err(Error::SessionNotFound);
                }
                Err(e) => return Err(e),
            }
        }
    }

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

    async fn login_inner(&self, cookie: &str, login: Login, now: Timestamp) -> Result<Outcome> {
        User::validate_id(&login.user.id).map_err(|e| Error::InvalidInput(e.to_string()))?;
        validate_claims(&login.claims)?;
        let mut data = BTreeMap::new();
        if let Some(old) = self.handle_from(cookie)?
            && let Some(prev) = self.retire(&old, now).await?
        {
            let same_user = prev.user_id() == Some(login.user.id.as_str());
            if prev.kind == SessionKind::Anonymous || same_user {
                data = prev.data;
            }
        }
        self.check_size(&data)?;
        let (idle, absolute) = if login.remember {
            (
                self.config.remember_idle_timeout,
                self.config.remember_absolute_timeout,
            )
        } else {
            (self.config.idle_timeout, self.config.absolute_timeout)
        };
        let record = SessionRecord {
            kind: SessionKind::Authenticated,
            user: Some(login.user),
            claims: login.claims,
            created_at: now,
            renewed_at: now,
            idle_expires_at: now.saturating_add(idle),
            absolute_expires_at: now.saturating_add(absolute),
            remember: login.remember,
            data,
            secrets: BTreeMap::new(),
            version: 1,
        };
        let (handle, key) = self.create_record(&record, "login").await?;
        let set = vec![self.set_cookie(&handle, &record, now)];
        let mut o = self.outcome(Some(Session { key, record }), set, Status::LoggedIn);
        if let Some(t) = &self.tokens
            && let Some(session) = &o.session
        {
            let value = self.issue(t, session, now)?;
            o.set_cookie.push(value);
            o.token_status = "issued";
        }
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

    async fn logout_inner(&self, cookie: &str, now: Timestamp) -> Result<Outcome> {
        let handle = match cookie::find(cookie, self.cookie.name()) {
            Lookup::Absent => None,
            // A logout must always clear the browser's cookie, even a corrupted one.
            Lookup::Invalid => {
                return Ok(self.outcome(None, self.logout_cookies(), Status::LoggedOut));
            }
            Lookup::Found(v) => v.parse::<Handle>().ok(),
        };
        if let Some(h) = handle {
            let key = h.store_key();
            // Only a session that exists gets a tombstone: a never-issued handle costs no write.
            if let Some(record) = self.load(h.kind(), &key, now).await? {
                self.delete(h.kind(), &key, now, "logout").await?;
                self.log_session_end(&key, &record, now).await?;
            }
        }
        Ok(self.outcome(None, self.logout_cookies(), Status::LoggedOut))
    }

    fn logout_cookies(&self) -> Vec<String> {
        let mut v = vec![self.cookie.remove()];
        if let Some(t) = &self.tokens {
            v.push(t.cookie.remove());
        }
        v
    }

    /// A token for a session that is not stored (an API client): `sub` as given, a random
    /// `sid`, the custom `claims`. Writes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if tokens are off; [`Error::InvalidInput`] for a bad `sub` or
    /// claims; [`Error::Token`] if signing fails.
    pub fn mint(
        &self,
        sub: &str,
        claims: &BTreeMap<String, Value>,
        now: Timestamp,
    ) -> Result<String> {
        let t = self
            .tokens
            .as_ref()
            .ok_or_else(|| Error::Config("tokens are disabled".to_owned()))?;
        if sub.is_empty() || sub.len() > MAX_KEY_LEN || sub.chars().any(char::is_control) {
            return Err(Error::InvalidInput(format!(
                "sub must be 1 to {MAX_KEY_LEN} bytes without control characters"
            )));
        }
        validate_claims(claims)?;
        let secs = now.unix_secs();
        let mut c = t.claims(sub.to_owned(), crate::token::random_id()?, secs, i64::MAX)?;
        c.custom
            .extend(claims.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.sign(t, &c, secs)
    }

    /// Checks the token cookie of the request against the session `o` ended with, adding
    /// the `Set-Cookie` value that re-issues or clears it.
    fn check_token(&self, cookie: &str, o: &mut Outcome, now: Timestamp) -> Result<()> {
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
                self.token_outcome(o, "anon_session_with_token");
                return Ok(());
            }
            o.token_status = "none";
            return Ok(());
        };
        let Some(token) = presented else {
            let value = self.issue(t, session, now)?;
            o.set_cookie.push(value);
            self.token_outcome(o, "user_session_without_token");
            return Ok(());
        };
        let secs = now.unix_secs();
        let verified = {
            let ring = t
                .keyring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ring.verify_at(&t.config, token, secs, &tessera_token::NoRevocations)
        };
        let code = match verified {
            Err(e) => {
                tracing::info!(target: "security", code = e.code(), issuer = t.config.issuer(), "session token refused; issuing a new one");
                let value = self.issue(t, session, now)?;
                o.set_cookie.push(value);
                e.code()
            }
            Ok(v) => {
                let subject = t.subject.subject(user_id);
                let code = if v.claims.sub != subject {
                    "wrong_user"
                } else if v.claims.sid != self.sid(session) {
                    "wrong_session"
                } else {
                    v.code()
                };
                match code {
                    "wrong_user" | "wrong_session" => {
                        tracing::warn!(target: "security", code, issuer = t.config.issuer(), subject = %v.claims.sub, kid = %v.kid, "session token does not match its session; cleared");
                        o.set_cookie.push(t.cookie.remove());
                    }
                    "soft_expired" => {
                        tracing::debug!(code, issuer = t.config.issuer(), subject = %v.claims.sub, kid = %v.kid, "session token soft-expired; issuing a new one");
                        let value = self.issue(t, session, now)?;
                        o.set_cookie.push(value);
                    }
                    _ => {}
                }
                code
            }
        };
        self.token_outcome(o, code);
        Ok(())
    }

    fn token_outcome(&self, o: &mut Outcome, code: &'static str) {
        o.token_status = code;
        self.metrics
            .token_validations
            .get_or_create(&TokenOutcomeLabels { outcome: code })
            .inc();
    }

    /// A `Set-Cookie` value carrying a new token for `session`. A pure function of the
    /// record and the key: no store access.
    fn issue(&self, t: &TokenSettings, session: &Session, now: Timestamp) -> Result<String> {
        let user_id = session.record.user_id().ok_or(Error::Config(
            "only authenticated sessions get tokens".to_owned(),
        ))?;
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

    fn sign(&self, t: &TokenSettings, c: &tessera_token::Claims, secs: i64) -> Result<String> {
        let ring = t
            .keyring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let alg = ring.signing_key_at(secs).map_err(Error::Token)?.algorithm();
        let token = ring.sign_at(&t.config, c, secs).map_err(Error::Token)?;
        self.metrics
            .tokens_issued
            .get_or_create(&AlgLabels { alg: alg.name() })
            .inc();
        Ok(token)
    }

    /// The session's `sid` (see [`CsrfKey::sid`]).
    pub fn sid(&self, session: &Session) -> String {
        self.csrf.sid(&session.key)
    }

    /// A CSRF token for the session, for `purpose`. Costs no write.
    pub fn csrf_token(&self, session: &Session, purpose: &str, now: Timestamp) -> String {
        self.csrf.issue(purpose, &session.key, now)
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
            self.metrics.op("csrf_check", "no_session");
            return Ok(false);
        };
        let key = handle.store_key();
        if self.load(handle.kind(), &key, now).await?.is_none() {
            self.metrics.op("csrf_check", "no_session");
            return Ok(false);
        }
        let ok = self
            .csrf
            .verify(token, purpose, &key, self.config.csrf_max_age, now);
        self.metrics
            .op("csrf_check", if ok { "valid" } else { "invalid" });
        Ok(ok)
    }

    /// The live sessions of a user.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad user id; store errors.
    pub async fn list_user_sessions(&self, user_id: &str, now: Timestamp) -> Result<Vec<Session>> {
        User::validate_id(user_id).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let store = self.stores.for_kind(SessionKind::Authenticated);
        let list = store.list_user_sessions(user_id, now).await;
        self.store_op(
            store.backend(),
            SessionKind::Authenticated,
            "read",
            outcome_of(&list),
        );
        self.metrics
            .op("list", if list.is_ok() { "ok" } else { "error" });
        Ok(list?
            .into_iter()
            .map(|(key, record)| Session { key, record })
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
        let found = match self.load(kind, &key, now).await? {
            Some(r) if r.user_id() == Some(user_id) => {
                self.delete(kind, &key, now, "revoke").await?;
                self.log_session_end(&key, &r, now).await?;
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
        let store = self.stores.for_kind(kind);
        let live = store.list_user_sessions(user_id, now).await?;
        let r = store.revoke_user(user_id, now).await;
        self.store_op(store.backend(), kind, "write", outcome_of(&r));
        r?;
        self.log(
            kind,
            Revocation {
                subject: RevokedSubject::User(user_id.to_owned()),
                at: now,
            },
        )
        .await?;
        self.metrics
            .session_writes
            .get_or_create(&WriteLabels {
                kind: kind.as_str(),
                reason: "revoke_all",
            })
            .inc();
        // The revocation time already kills them; deleting frees the space and the index now
        // rather than at purge.
        for (key, _) in &live {
            self.delete(kind, key, now, "revoke").await?;
        }
        self.metrics.op("revoke_all", "ok");
        Ok(live.len())
    }

    // ---- internals -------------------------------------------------------------------

    fn outcome(
        &self,
        session: Option<Session>,
        set_cookie: Vec<String>,
        status: Status,
    ) -> Outcome {
        Outcome {
            session,
            set_cookie,
            status,
            token_status: if self.tokens.is_some() {
                "none"
            } else {
                "disabled"
            },
        }
    }

    fn count(&self, op: &'static str, r: &Result<Outcome>) {
        let outcome = match r {
            Ok(o) => o.status.as_str(),
            Err(e) => e.code(),
        };
        self.metrics.op(op, outcome);
    }

    fn handle_from(&self, cookie: &str) -> Result<Option<Handle>> {
        match cookie::find(cookie, self.cookie.name()) {
            Lookup::Absent | Lookup::Found("") => Ok(None),
            Lookup::Found(v) => match v.parse::<Handle>() {
                Ok(h) => Ok(Some(h)),
                Err(_) => {
                    tracing::warn!(target: "security", "possibly suspicious activity: malformed session cookie");
                    Err(Error::MalformedCookie)
                }
            },
            Lookup::Invalid => {
                tracing::warn!(target: "security", "possibly suspicious activity: oversized or duplicated session cookie");
                Err(Error::MalformedCookie)
            }
        }
    }

    fn renewal_due(&self, record: &SessionRecord, now: Timestamp) -> bool {
        let (idle, _) = self.lifetimes(record);
        now.duration_since(record.renewed_at) >= idle / 2
            && record.idle_expires_at < record.absolute_expires_at
    }

    fn renew(&self, record: &mut SessionRecord, now: Timestamp) {
        let (idle, _) = self.lifetimes(record);
        record.renewed_at = now;
        record.idle_expires_at = now.saturating_add(idle).min(record.absolute_expires_at);
    }

    fn lifetimes(&self, record: &SessionRecord) -> (Duration, Duration) {
        if record.remember {
            (
                self.config.remember_idle_timeout,
                self.config.remember_absolute_timeout,
            )
        } else {
            (self.config.idle_timeout, self.config.absolute_timeout)
        }
    }

    /// The cookie for `handle`: persistent until the session's expiry for remember-me
    /// sessions, a browser-session cookie otherwise (the server enforces both timeouts).
    fn set_cookie(&self, handle: &Handle, record: &SessionRecord, now: Timestamp) -> String {
        let max_age = record
            .remember
            .then(|| record.expires_at().duration_since(now));
        self.cookie.set(handle.expose(), max_age)
    }

    fn check_size(&self, data: &BTreeMap<String, Value>) -> Result<()> {
        let size = serde_json::to_vec(data)
            .map_err(|e| Error::InvalidInput(format!("data is not serialisable: {e}")))?
            .len();
        if size > self.config.max_data_bytes {
            return Err(Error::DataTooLarge {
                size,
                limit: self.config.max_data_bytes,
            });
        }
        Ok(())
    }

    async fn create_anonymous(
        &self,
        data: BTreeMap<String, Value>,
        now: Timestamp,
    ) -> Result<Outcome> {
        let record = SessionRecord {
            kind: SessionKind::Anonymous,
            user: None,
            claims: BTreeMap::new(),
            created_at: now,
            renewed_at: now,
            idle_expires_at: now.saturating_add(self.config.idle_timeout),
            absolute_expires_at: now.saturating_add(self.config.absolute_timeout),
            remember: false,
            data,
            secrets: BTreeMap::new(),
            version: 1,
        };
        let (handle, key) = self.create_record(&record, "create").await?;
        let set = vec![self.set_cookie(&handle, &record, now)];
        Ok(self.outcome(Some(Session { key, record }), set, Status::Created))
    }

    /// Stores `record` under a fresh handle. A collision of 256-bit random values does not
    /// happen, but `create` is unique, so the loop costs nothing to keep honest.
    async fn create_record(
        &self,
        record: &SessionRecord,
        reason: &'static str,
    ) -> Result<(Handle, StoreKey)> {
        for _ in 0..3 {
            let handle = Handle::generate(record.kind).map_err(Error::Random)?;
            let key = handle.store_key();
            let store = self.stores.for_kind(record.kind);
            let r = store.create(&key, record).await;
            self.store_op(store.backend(), record.kind, "write", outcome_of(&r));
            match r {
                Ok(()) => {
                    self.write(record.kind, reason);
                    return Ok((handle, key));
                }
                Err(tessera_core::Error::AlreadyExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(tessera_core::Error::Unreachable(
            "three 256-bit random handles collided",
        )))
    }

    /// Ends the session behind `handle` for a login and returns what it held. The record is
    /// first expired with a compare-and-set, so an edit that slipped in after the read forces
    /// a re-read instead of being dropped; then it is deleted with a tombstone.
    async fn retire(&self, handle: &Handle, now: Timestamp) -> Result<Option<SessionRecord>> {
        let kind = handle.kind();
        let key = handle.store_key();
        let mut attempt = 0u32;
        loop {
            let Some(record) = self.load(kind, &key, now).await? else {
                return Ok(None);
            };
            let mut sealed = record.clone();
            sealed.idle_expires_at = now;
            sealed.version = record.version.saturating_add(1);
            match self
                .save(kind, &key, record.version, &sealed, now, "login")
                .await
            {
                Ok(()) => {
                    self.delete(kind, &key, now, "login").await?;
                    self.log_session_end(&key, &record, now).await?;
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

    async fn load(
        &self,
        kind: SessionKind,
        key: &StoreKey,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>> {
        let store = self.stores.for_kind(kind);
        let r = store.load(key, now).await;
        let outcome = match &r {
            Ok(Some(_)) => "ok",
            Ok(None) => "miss",
            Err(e) => error_outcome(e),
        };
        self.store_op(store.backend(), kind, "read", outcome);
        // A record whose kind disagrees with its handle cannot have been written by us.
        Ok(r?.filter(|rec| rec.kind == kind))
    }

    async fn save(
        &self,
        kind: SessionKind,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
        reason: &'static str,
    ) -> Result<()> {
        let store = self.stores.for_kind(kind);
        let r = store.save(key, expected, record, now).await;
        self.store_op(store.backend(), kind, "write", outcome_of(&r));
        r?;
        self.write(kind, reason);
        Ok(())
    }

    async fn delete(
        &self,
        kind: SessionKind,
        key: &StoreKey,
        now: Timestamp,
        reason: &'static str,
    ) -> Result<()> {
        let store = self.stores.for_kind(kind);
        let r = store
            .delete(key, now.saturating_add(self.config.tombstone_ttl))
            .await;
        self.store_op(store.backend(), kind, "delete", outcome_of(&r));
        r?;
        self.write(kind, reason);
        Ok(())
    }

    /// Records in the revocation log that an authenticated session ended, so verifiers
    /// refuse its tokens before they expire. Anonymous sessions have no tokens.
    async fn log_session_end(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        now: Timestamp,
    ) -> Result<()> {
        if record.kind != SessionKind::Authenticated {
            return Ok(());
        }
        let r = Revocation {
            subject: RevokedSubject::Session(self.csrf.sid(key)),
            at: now,
        };
        self.log(record.kind, r).await
    }

    async fn log(&self, kind: SessionKind, r: Revocation) -> Result<()> {
        let store = self.stores.for_kind(kind);
        let Some(log) = store.as_revocation_log() else {
            return Ok(());
        };
        let res = log.log_revocation(&r).await;
        self.store_op(store.backend(), kind, "write", outcome_of(&res));
        res?;
        Ok(())
    }

    fn write(&self, kind: SessionKind, reason: &'static str) {
        self.metrics
            .session_writes
            .get_or_create(&WriteLabels {
                kind: kind.as_str(),
                reason,
            })
            .inc();
    }

    fn store_op(
        &self,
        backend: &'static str,
        kind: SessionKind,
        op: &'static str,
        outcome: &'static str,
    ) {
        self.metrics
            .store_operations
            .get_or_create(&StoreOpLabels {
                backend,
                kind: kind.as_str(),
                op,
                outcome,
            })
            .inc();
    }
}

fn outcome_of<T>(r: &tessera_core::Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => error_outcome(e),
    }
}

fn error_outcome(e: &tessera_core::Error) -> &'static str {
    match e {
        tessera_core::Error::Conflict => "conflict",
        tessera_core::Error::NotFound => "not_found",
        tessera_core::Error::AlreadyExists => "exists",
        tessera_core::Error::Timeout => "timeout",
        _ => "error",
    }
}

/// Randomised exponential backoff after a conflict, so writers that collided spread out.
async fn backoff(attempt: u32) {
    let mut b = [0u8; 2];
    let jitter = if getrandom::fill(&mut b).is_ok() {
        u64::from(u16::from_le_bytes(b))
    } else {
        0
    };
    let ceiling_us = 50u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_micros(jitter % ceiling_us.max(1))).await;
}

fn apply(data: &mut BTreeMap<String, Value>, edits: &Edits) {
    for k in &edits.remove {
        data.remove(k);
    }
    for (k, v) in &edits.set {
        data.insert(k.clone(), v.clone());
    }
}

fn validate_key(k: &str) -> Result<()> {
    if k.is_empty() || k.len() > MAX_KEY_LEN || k.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "data keys must be 1 to {MAX_KEY_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

fn validate_edits(edits: &Edits) -> Result<()> {
    if edits.set.len() + edits.remove.len() > MAX_EDITS {
        return Err(Error::InvalidInput(format!(
            "at most {MAX_EDITS} keys may be set or removed at once"
        )));
    }
    for k in edits.set.keys().chain(edits.remove.iter()) {
        validate_key(k)?;
    }
    if edits.set.values().any(|v| depth(v) > MAX_JSON_DEPTH) {
        return Err(Error::InvalidInput(format!(
            "values may nest at most {MAX_JSON_DEPTH} levels"
        )));
    }
    if edits.remove.iter().any(|k| edits.set.contains_key(k)) {
        return Err(Error::InvalidInput(
            "a key may not be both set and removed".to_owned(),
        ));
    }
    Ok(())
}

fn validate_claims(claims: &BTreeMap<String, Value>) -> Result<()> {
    if let Some(k) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(Error::InvalidInput(format!(
            "claim {k:?} is reserved for the token itself"
        )));
    }
    for k in claims.keys() {
        validate_key(k)?;
    }
    let size = serde_json::to_vec(claims)
        .map_err(|e| Error::InvalidInput(format!("claims are not serialisable: {e}")))?
        .len();
    if size > MAX_CLAIMS_BYTES {
        return Err(Error::InvalidInput(format!(
            "claims may take at most {MAX_CLAIMS_BYTES} bytes of JSON"
        )));
    }
    if claims.values().any(|v| depth(v) > MAX_JSON_DEPTH) {
        return Err(Error::InvalidInput(format!(
            "claims may nest at most {MAX_JSON_DEPTH} levels"
        )));
    }
    Ok(())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!([[1]])), 2);
        assert_eq!(depth(&serde_json::json!({"a": {"b": []}})), 3);
    }

    #[test]
    fn edits_are_bounded() {
        let mut e = Edits::default();
        e.set.insert(String::new(), Value::Null);
        assert!(validate_edits(&e).is_err());
        let mut e = Edits::default();
        e.set.insert("a".into(), Value::Null);
        e.remove.push("a".into());
        assert!(validate_edits(&e).is_err());
        let mut e = Edits::default();
        let mut v = Value::Null;
        for _ in 0..=MAX_JSON_DEPTH {
            v = Value::Array(vec![v]);
        }
        e.set.insert("a".into(), v);
        assert!(validate_edits(&e).is_err());
        let e = Edits {
            remove: (0..=MAX_EDITS).map(|i| i.to_string()).collect(),
            ..Edits::default()
        };
        assert!(validate_edits(&e).is_err());
    }

    #[test]
    fn reserved_claims_are_refused() {
        let mut c = BTreeMap::new();
        c.insert("rlc".to_owned(), serde_json::json!("bot"));
        assert!(validate_claims(&c).is_ok());
        c.insert("exp".to_owned(), serde_json::json!(1));
        assert!(validate_claims(&c).is_err());
    }
}
