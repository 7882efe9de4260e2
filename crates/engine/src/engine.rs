use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tessera_core::{
    Handle, Revocation, RevokedSubject, SessionKind, SessionRecord, SessionStore, StoreKey,
    Timestamp, User,
};

use tessera_token::seal::{SealKey, SealKeyring};

use crate::anonymous::{self, AnonymousMode, ClientState, NotSealed};
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

/// Where a live session's record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// In a store, named by the session cookie's handle.
    Store,
    /// In the sealed anonymous cookie (client-side mode): no store holds it.
    Cookie,
}

impl Storage {
    /// The stable lowercase name: `store` or `cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Cookie => "cookie",
        }
    }
}

/// A live session: its store key (whose base64url form is the public reference) and record.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Where the session is stored; for a client-side anonymous session, the key its
    /// random identity would be stored under if it spilled (no store holds it).
    pub key: StoreKey,
    /// The session itself (version 0 for a client-side anonymous session).
    pub record: SessionRecord,
    /// Whether the record is in a store or in the anonymous cookie.
    pub storage: Storage,
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

/// Per-key edits of a session's data and secrets.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// Keys to set, with their new values.
    pub set: BTreeMap<String, Value>,
    /// Keys to remove (absent keys are ignored).
    pub remove: Vec<String>,
    /// Secrets to set: sealed with a server key and kept in the store only, never in a
    /// cookie. Setting one moves a client-side anonymous session to the store.
    pub secrets: BTreeMap<String, Value>,
    /// Secrets to remove (absent keys are ignored).
    pub remove_secrets: Vec<String>,
}

impl Edits {
    fn sets_anything(&self) -> bool {
        !self.set.is_empty() || !self.secrets.is_empty()
    }
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
/// Claim names the token codec owns (and header names, so a claim cannot be mistaken for
/// one); custom claims may not use them.
pub const RESERVED_CLAIMS: [&str; 11] = [
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
    /// The sealed anonymous cookie: the session cookie's attributes, its own name.
    anon_cookie: CookieConfig,
    /// Seals anonymous cookies and secrets; shared so rotation can swap keys under a
    /// running engine.
    seal: Arc<RwLock<SealKeyring>>,
}

impl Engine {
    /// An engine over `stores`.
    ///
    /// Anonymous sessions follow [`SessionConfig::anonymous`] (client-side by default), in
    /// a cookie named [`anonymous::DEFAULT_ANON_COOKIE`] (`<name>-anon` beside a
    /// development cookie) with the attributes of `cookie`. The sealing keys are fresh and
    /// in memory until [`Engine::with_seal_keys`] gives persistent ones.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `config` is inconsistent; [`Error::Random`] if the OS random
    /// source fails.
    pub fn try_new(
        stores: Stores,
        config: SessionConfig,
        cookie: CookieConfig,
        csrf: CsrfKey,
        metrics: Metrics,
    ) -> Result<Self> {
        config.validate()?;
        let anon_name = if cookie.secure() {
            anonymous::DEFAULT_ANON_COOKIE.to_owned()
        } else {
            format!("{}-anon", cookie.name())
        };
        let anon_cookie = cookie
            .with_name(anon_name)
            .map_err(|e| Error::Config(format!("anonymous cookie: {e}")))?;
        let key = SealKey::generate().map_err(Error::Random)?;
        let engine = Self {
            stores,
            config,
            cookie,
            csrf,
            metrics,
            tokens: None,
            anon_cookie,
            seal: Arc::new(RwLock::new(SealKeyring::new(vec![key]))),
        };
        engine.check_cookie_names()?;
        Ok(engine)
    }

    /// Turns on session tokens (DESIGN §5): authenticated sessions get a token cookie.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the token settings are inconsistent.
    pub fn with_tokens(mut self, tokens: TokenSettings) -> Result<Self> {
        tokens.validate(&self.cookie)?;
        self.tokens = Some(tokens);
        self.check_cookie_names()?;
        Ok(self)
    }

    /// Seals anonymous cookies and secrets with `keys` (the service loads them from its
    /// key directory and rotates them on a schedule through this handle).
    ///
    /// # ⚠️ Warning
    ///
    /// Without this call the keys live in memory only: after a restart every client-side
    /// anonymous session starts afresh and stored secrets no longer open.
    pub fn with_seal_keys(mut self, keys: Arc<RwLock<SealKeyring>>) -> Self {
        self.seal = keys;
        self
    }

    /// Names the anonymous cookie `name` (with the session cookie's attributes).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the name is not valid for these attributes or is the name of
    /// another cookie of the engine.
    pub fn with_anonymous_cookie(mut self, name: impl Into<String>) -> Result<Self> {
        self.anon_cookie = self
            .cookie
            .with_name(name)
            .map_err(|e| Error::Config(format!("anonymous cookie: {e}")))?;
        self.check_cookie_names()?;
        Ok(self)
    }

    fn check_cookie_names(&self) -> Result<()> {
        let anon = self.anon_cookie.name();
        let token = self.tokens.as_ref().map(|t| t.cookie.name());
        if anon == self.cookie.name() || token == Some(anon) {
            return Err(Error::Config(
                "the anonymous cookie needs its own name".to_owned(),
            ));
        }
        Ok(())
    }

    /// The sealing keys (anonymous cookies and secrets).
    pub fn seal_keys(&self) -> &Arc<RwLock<SealKeyring>> {
        &self.seal
    }

    /// The anonymous cookie's configuration.
    pub fn anonymous_cookie(&self) -> &CookieConfig {
        &self.anon_cookie
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
            return self.resolve_client(cookie, create, now).await;
        };
        let mut o = self.resolve_stored(&handle, create, now).await?;
        self.clear_anon(cookie, &mut o);
        Ok(o)
    }

    /// `resolve` for a session named by the session cookie's handle.
    async fn resolve_stored(
        &self,
        handle: &Handle,
        create: bool,
        now: Timestamp,
    ) -> Result<Outcome> {
        let key = handle.store_key();
        let Some(record) = self.load(handle.kind(), &key, now).await? else {
            if create {
                let mut o = self.create_anonymous(now).await?;
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
        if !self.renewal_due(&record, now) {
            return Ok(self.outcome(Some(stored(key, record)), vec![], Status::Loaded));
        }
        let mut renewed = record.clone();
        self.renew(&mut renewed, now);
        renewed.version = record.version.saturating_add(1);
        match self
            .save(handle.kind(), &key, record.version, &renewed, now, "renew")
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
    async fn resolve_client(&self, cookie: &str, create: bool, now: Timestamp) -> Result<Outcome> {
        let refused = match self.anon_from(cookie, now) {
            Anon::Open(state) => {
                let record = state.record();
                if !self.renewal_due(&record, now) {
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
        if create {
            let mut o = self.create_anonymous(now).await?;
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
            return self.update_client(cookie, edits, now).await;
        };
        let mut o = self.update_stored(&handle, edits, now).await?;
        self.clear_anon(cookie, &mut o);
        Ok(o)
    }

    /// `update` of a session named by the session cookie's handle.
    async fn update_stored(
        &self,
        handle: &Handle,
        edits: &Edits,
        now: Timestamp,
    ) -> Result<Outcome> {
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
            self.apply_secrets(&mut next, &key, edits)?;
            let changed = next.data != record.data || next.secrets != record.secrets;
            if changed {
                self.check_size(&next.data, &next.secrets)?;
            }
            let renew = self.renewal_due(&record, now);
            if !changed && !renew {
                return Ok(self.outcome(Some(stored(key, record)), vec![], Status::Unchanged));
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
                        vec![self.set_cookie(handle, &next, now)]
                    } else {
                        vec![]
                    };
                    let status = if changed {
                        Status::Updated
                    } else {
                        Status::Renewed
                    };
                    return Ok(self.outcome(Some(stored(key, next)), set, status));
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

    /// `update` without a session cookie: edits the sealed anonymous state (or a fresh one
    /// when the cookie is absent or refused) and re-seals it, without a store write; the
    /// session spills to the store when it would outgrow the cookie, when a secret is set,
    /// or in server mode.
    async fn update_client(&self, cookie: &str, edits: &Edits, now: Timestamp) -> Result<Outcome> {
        let (state, refused) = match self.anon_from(cookie, now) {
            Anon::Open(s) => (Some(s), false),
            Anon::Refused => (None, true),
            Anon::Absent => (None, false),
        };
        let fresh = state.is_none();
        let Some(mut state) = state.map_or_else(
            || {
                edits
                    .sets_anything()
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
            self.check_size(&state.data, &BTreeMap::new())?;
        }
        let server = self.config.anonymous == AnonymousMode::Server;
        let spill = !edits.secrets.is_empty() || (server && changed);
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
        let reason = if server && fresh { "create" } else { "spill" };
        let mut o = self.spill(state, edits, reason, now).await?;
        if !fresh || refused {
            o.set_cookie.push(self.anon_cookie.remove());
        }
        o.status = status;
        Ok(o)
    }

    /// Moves a client-side anonymous session (with `edits` applied to its data already; its
    /// secret edits still to apply) to the anonymous store, under the handle inside its seal
    /// so its CSRF tokens stay valid. The outcome sets the session cookie to that handle.
    async fn spill(
        &self,
        state: ClientState,
        edits: &Edits,
        reason: &'static str,
        now: Timestamp,
    ) -> Result<Outcome> {
        let kind = SessionKind::Anonymous;
        let mut base = state.record();
        base.version = 1;
        let handle = state.handle;
        let key = handle.store_key();
        let mut record = base.clone();
        self.apply_secrets(&mut record, &key, edits)?;
        self.check_size(&record.data, &record.secrets)?;
        let store = self.stores.for_kind(kind);
        let r = store.create(&key, &record).await;
        self.store_op(store.backend(), kind, "write", outcome_of(&r));
        let (handle, key, record) = match r {
            Ok(()) => {
                self.write(kind, reason);
                (handle, key, record)
            }
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
        if reason == "spill" {
            self.metrics.anon("spilled");
        }
        let set = vec![self.set_cookie(&handle, &record, now)];
        Ok(self.outcome(Some(stored(key, record)), set, Status::Updated))
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
        let mut secrets = BTreeMap::new();
        let mut carried = false;
        if let Some(old) = self.handle_from(cookie)?
            && let Some(prev) = self.retire(&old, now).await?
        {
            carried = true;
            let same_user = prev.user_id() == Some(login.user.id.as_str());
            if prev.kind == SessionKind::Anonymous || same_user {
                secrets = self.open_secrets(&prev.secrets, &old.store_key(), now);
                data = prev.data;
            }
        }
        // Promotion of a client-side anonymous session: its data moves in, its cookie goes.
        if !carried && let Anon::Open(state) = self.anon_from(cookie, now) {
            data = state.data;
            self.metrics.anon("promoted");
        }
        let (idle, absolute) = if login.remember {
            (
                self.config.remember_idle_timeout,
                self.config.remember_absolute_timeout,
            )
        } else {
            (self.config.idle_timeout, self.config.absolute_timeout)
        };
        let base = SessionRecord {
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
        self.check_size(&base.data, &base.secrets)?;
        // Secrets are sealed to the session they belong to: re-sealed for the new one.
        let (handle, key, record) = self
            .create_record_with(SessionKind::Authenticated, "login", |k| {
                let mut r = base.clone();
                for (name, v) in &secrets {
                    let sealed = self.seal_secret(name, v, k, r.absolute_expires_at)?;
                    r.secrets.insert(name.clone(), sealed);
                }
                self.check_size(&r.data, &r.secrets)?;
                Ok(r)
            })
            .await?;
        let set = vec![self.set_cookie(&handle, &record, now)];
        let mut o = self.outcome(Some(stored(key, record)), set, Status::LoggedIn);
        if let Some(t) = &self.tokens
            && let Some(session) = &o.session
        {
            let value = self.issue(t, session, now)?;
            o.set_cookie.push(value);
            o.token_status = "issued";
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

    async fn logout_inner(&self, cookie: &str, now: Timestamp) -> Result<Outcome> {
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
            if let Some(record) = self.load(h.kind(), &key, now).await? {
                self.delete(h.kind(), &key, now, "logout").await?;
                self.log_session_end(&key, &record, now).await?;
            }
        }
        // A client-side anonymous session has nothing stored: clearing its cookie ends it.
        let mut o = self.outcome(None, self.logout_cookies(), Status::LoggedOut);
        self.clear_anon(cookie, &mut o);
        Ok(o)
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
            // Revocation is the store's job here: a revoked session does not load.
            ring.verify_cached_at(
                &t.config,
                token,
                secs,
                &tessera_token::NoRevocations,
                &t.cache,
            )
        };
        let code = match verified {
            Err(e) => {
                tracing::info!(target: "security", code = e.outcome(), issuer = t.config.issuer(), "session token refused; issuing a new one");
                let value = self.issue(t, session, now)?;
                o.set_cookie.push(value);
                e.outcome()
            }
            Ok(v) => {
                let subject = t.subject.subject(user_id);
                let code = if v.claims.sub != subject {
                    "wrong_user"
                } else if v.claims.sid != self.sid(session) {
                    "wrong_session"
                } else {
                    v.outcome()
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

    /// A CSRF token for the session, for `purpose`. Costs no write (and, for a client-side
    /// anonymous session, no read: its identity is inside its sealed cookie).
    pub fn csrf_token(&self, session: &Session, purpose: &str, now: Timestamp) -> String {
        self.csrf.issue(purpose, &session.key, now)
    }

    /// The session's secrets, opened. A secret that no longer opens (its sealing key was
    /// dropped) is left out, with a warning in the log.
    pub fn secrets(&self, session: &Session, now: Timestamp) -> BTreeMap<String, Value> {
        self.open_secrets(&session.record.secrets, &session.key, now)
    }

    /// One secret of the session, opened; `None` if there is none (or it no longer opens).
    pub fn secret(&self, session: &Session, name: &str, now: Timestamp) -> Option<Value> {
        let sealed = session.record.secrets.get(name)?;
        self.open_secret(name, sealed, &session.key, now)
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
                let ok = self.csrf.verify(
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

    /// Data and (sealed) secrets together stay within `max_data_bytes`.
    fn check_size(
        &self,
        data: &BTreeMap<String, Value>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<()> {
        let size = serde_json::to_vec(data)
            .map_err(|e| Error::InvalidInput(format!("data is not serialisable: {e}")))?
            .len()
            + secrets
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>();
        if size > self.config.max_data_bytes {
            return Err(Error::DataTooLarge {
                size,
                limit: self.config.max_data_bytes,
            });
        }
        Ok(())
    }

    /// A new, empty anonymous session: a sealed cookie in client mode (no write), a stored
    /// record in server mode.
    async fn create_anonymous(&self, now: Timestamp) -> Result<Outcome> {
        if self.config.anonymous == AnonymousMode::Client {
            let state = ClientState::fresh(&self.config, now).map_err(Error::Random)?;
            let value = self.try_seal(&state).map_err(NotSealed::into_error)?;
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
            version: 1,
        };
        let (handle, key, record) = self
            .create_record_with(record.kind, "create", |_| Ok(record.clone()))
            .await?;
        let set = vec![self.set_cookie(&handle, &record, now)];
        Ok(self.outcome(Some(stored(key, record)), set, Status::Created))
    }

    /// Stores the record `make` builds for a fresh handle's key (secrets are sealed to the
    /// key). A collision of 256-bit random values does not happen, but `create` is unique,
    /// so the loop costs nothing to keep honest.
    async fn create_record_with(
        &self,
        kind: SessionKind,
        reason: &'static str,
        make: impl Fn(&StoreKey) -> Result<SessionRecord>,
    ) -> Result<(Handle, StoreKey, SessionRecord)> {
        for _ in 0..3 {
            let handle = Handle::generate(kind).map_err(Error::Random)?;
            let key = handle.store_key();
            let record = make(&key)?;
            let store = self.stores.for_kind(kind);
            let r = store.create(&key, &record).await;
            self.store_op(store.backend(), kind, "write", outcome_of(&r));
            match r {
                Ok(()) => {
                    self.write(kind, reason);
                    return Ok((handle, key, record));
                }
                Err(tessera_core::Error::AlreadyExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(tessera_core::Error::Unreachable(
            "three 256-bit random handles collided",
        )))
    }

    // ---- client-side anonymous sessions and secrets -------------------------------------

    /// What the request's anonymous cookie holds. Every failure to open is the same
    /// `Refused`, whatever the cause.
    fn anon_from(&self, cookie: &str, now: Timestamp) -> Anon {
        let name = self.anon_cookie.name();
        let opened = match cookie::find(cookie, name) {
            Lookup::Absent | Lookup::Found("") => return Anon::Absent,
            Lookup::Found(v) => {
                let ring = self
                    .seal
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
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
    fn clear_anon(&self, cookie: &str, o: &mut Outcome) {
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

    fn is_session_cookie(&self, set_cookie: &str) -> bool {
        set_cookie
            .split_once('=')
            .is_some_and(|(n, _)| n == self.cookie.name())
    }

    fn client(&self, state: &ClientState) -> Session {
        Session {
            key: state.handle.store_key(),
            record: state.record(),
            storage: Storage::Cookie,
        }
    }

    fn renew_client(&self, state: &mut ClientState, now: Timestamp) {
        state.renewed_at = now;
        state.idle_expires_at = now
            .saturating_add(self.config.idle_timeout)
            .min(state.absolute_expires_at);
    }

    /// The `Set-Cookie` value carrying `state`, if it fits the budget. A browser-session
    /// cookie: the expiry inside is what counts.
    fn try_seal(&self, state: &ClientState) -> std::result::Result<String, NotSealed> {
        let ring = self
            .seal
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let value = anonymous::seal(
            &ring,
            self.anon_cookie.name(),
            state,
            self.config.anonymous_cookie_bytes,
        )?;
        self.metrics.anon("sealed");
        Ok(self.anon_cookie.set(&value, None))
    }

    fn secret_purpose(key: &StoreKey) -> String {
        format!("{}{}", anonymous::SECRET_PURPOSE, key.to_ref())
    }

    /// Seals secret `name` to the session stored under `key`, until `expires_at`.
    fn seal_secret(
        &self,
        name: &str,
        value: &Value,
        key: &StoreKey,
        expires_at: Timestamp,
    ) -> Result<String> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(value)
                .map_err(|e| Error::InvalidInput(format!("a secret is not serialisable: {e}")))?,
        );
        let ms = expires_at.unix_millis();
        let exp = ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0);
        self.seal
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seal(name, &Self::secret_purpose(key), &plain, exp)
            .map_err(Error::Seal)
    }

    fn open_secret(
        &self,
        name: &str,
        sealed: &str,
        key: &StoreKey,
        now: Timestamp,
    ) -> Option<Value> {
        let opened = self
            .seal
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .open(name, &Self::secret_purpose(key), sealed, now.unix_secs());
        match opened.map(|p| serde_json::from_slice(&zeroize::Zeroizing::new(p))) {
            Ok(Ok(v)) => Some(v),
            _ => {
                tracing::warn!(key = %key.to_ref(), "a stored secret does not open (its sealing key was dropped?); ignored");
                None
            }
        }
    }

    fn open_secrets(
        &self,
        sealed: &BTreeMap<String, String>,
        key: &StoreKey,
        now: Timestamp,
    ) -> BTreeMap<String, Value> {
        sealed
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), self.open_secret(k, v, key, now)?)))
            .collect()
    }

    /// Applies the secret edits to `record`, stored under `key`. A secret set to the value
    /// it already has keeps its sealed text, so the edit is no change (and no write).
    fn apply_secrets(
        &self,
        record: &mut SessionRecord,
        key: &StoreKey,
        edits: &Edits,
    ) -> Result<()> {
        for k in &edits.remove_secrets {
            record.secrets.remove(k);
        }
        for (k, v) in &edits.secrets {
            let same = record.secrets.get(k).is_some_and(|old| {
                // The record is live, so its secrets have not expired: any time before its
                // end opens them.
                self.open_secret(k, old, key, record.renewed_at).as_ref() == Some(v)
            });
            if !same {
                let sealed = self.seal_secret(k, v, key, record.absolute_expires_at)?;
                record.secrets.insert(k.clone(), sealed);
            }
        }
        Ok(())
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

/// What the request's anonymous cookie holds.
enum Anon {
    /// No anonymous cookie.
    Absent,
    /// A live client-side session.
    Open(ClientState),
    /// A cookie that did not open (tampered, truncated, spliced, under another name,
    /// expired, sealed with a dropped key, duplicated): cleared, and a fresh state starts.
    Refused,
}

fn stored(key: StoreKey, record: SessionRecord) -> Session {
    Session {
        key,
        record,
        storage: Storage::Store,
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
    let count =
        edits.set.len() + edits.remove.len() + edits.secrets.len() + edits.remove_secrets.len();
    if count > MAX_EDITS {
        return Err(Error::InvalidInput(format!(
            "at most {MAX_EDITS} keys and secrets may be set or removed at once"
        )));
    }
    for k in edits
        .set
        .keys()
        .chain(edits.remove.iter())
        .chain(edits.secrets.keys())
        .chain(edits.remove_secrets.iter())
    {
        validate_key(k)?;
    }
    if edits
        .set
        .values()
        .chain(edits.secrets.values())
        .any(|v| depth(v) > MAX_JSON_DEPTH)
    {
        return Err(Error::InvalidInput(format!(
            "values may nest at most {MAX_JSON_DEPTH} levels"
        )));
    }
    if edits.remove.iter().any(|k| edits.set.contains_key(k))
        || edits
            .remove_secrets
            .iter()
            .any(|k| edits.secrets.contains_key(k))
    {
        return Err(Error::InvalidInput(
            "a key may not be both set and removed".to_owned(),
        ));
    }
    Ok(())
}

pub(crate) fn validate_claims(claims: &BTreeMap<String, Value>) -> Result<()> {
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
