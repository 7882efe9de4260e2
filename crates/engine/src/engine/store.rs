//! The stores, and every store call of the engine, counted: flows call [`Metered`] and never
//! touch a store or a metric label themselves.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Revocation, SessionKind, SessionRecord, SessionStore, StoreKey, Timestamp};

use crate::Result;
use crate::metrics::{Metrics, StoreOpLabels, WriteLabels};

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

/// Why the engine writes: the `reason` label of `tessera_session_writes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Write {
    /// A new anonymous session in the store.
    Create,
    /// An edit of the data or secrets.
    Update,
    /// A renewal of the idle expiry.
    Renew,
    /// A login: the new session, and the end of the old one.
    Login,
    /// A logout.
    Logout,
    /// One session revoked, or deleted after "log out everywhere".
    Revoke,
    /// A user's revocation time ("log out everywhere").
    RevokeAll,
    /// A client-side anonymous session moved to the store.
    Spill,
    /// A new handle for a session, and the end of the old one.
    Rotate,
}

impl Write {
    fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Renew => "renew",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Revoke => "revoke",
            Self::RevokeAll => "revoke_all",
            Self::Spill => "spill",
            Self::Rotate => "rotate",
        }
    }
}

/// Every store call of the engine, each counted in `tessera_store_operations_total` (and
/// writes in `tessera_session_writes_total`).
#[derive(Debug)]
pub(super) struct Metered {
    stores: Stores,
    metrics: Metrics,
    tombstone_ttl: Duration,
}

impl Metered {
    pub(super) fn new(stores: Stores, metrics: Metrics, tombstone_ttl: Duration) -> Self {
        Self {
            stores,
            metrics,
            tombstone_ttl,
        }
    }

    pub(super) fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The live record under `key` in the store of `kind`.
    pub(super) async fn load(
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
        self.op(store.as_ref(), kind, "read", outcome);
        // A record whose kind disagrees with its handle cannot have been written by us.
        Ok(r?.filter(|rec| rec.kind == kind))
    }

    /// Creates `record` under `key`. The store's own error comes back, so a caller can tell
    /// [`AlreadyExists`](tessera_core::Error::AlreadyExists) apart.
    pub(super) async fn create(
        &self,
        kind: SessionKind,
        key: &StoreKey,
        record: &SessionRecord,
        reason: Write,
    ) -> tessera_core::Result<()> {
        let store = self.stores.for_kind(kind);
        let r = store.create(key, record).await;
        self.op(store.as_ref(), kind, "write", outcome_of(&r));
        if r.is_ok() {
            self.write(kind, reason);
        }
        r
    }

    /// Compare-and-set of the record under `key` from version `expected`.
    pub(super) async fn save(
        &self,
        kind: SessionKind,
        key: &StoreKey,
        expected: u64,
        record: &SessionRecord,
        now: Timestamp,
        reason: Write,
    ) -> Result<()> {
        let store = self.stores.for_kind(kind);
        let r = store.save(key, expected, record, now).await;
        self.op(store.as_ref(), kind, "write", outcome_of(&r));
        r?;
        self.write(kind, reason);
        Ok(())
    }

    /// Deletes the record under `key`, with a tombstone for the configured time.
    pub(super) async fn delete(
        &self,
        kind: SessionKind,
        key: &StoreKey,
        now: Timestamp,
        reason: Write,
    ) -> Result<()> {
        let store = self.stores.for_kind(kind);
        let r = store
            .delete(key, now.saturating_add(self.tombstone_ttl))
            .await;
        self.op(store.as_ref(), kind, "delete", outcome_of(&r));
        r?;
        self.write(kind, reason);
        Ok(())
    }

    /// The live sessions of a user (authenticated store).
    pub(super) async fn list_user_sessions(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<(StoreKey, SessionRecord)>> {
        let kind = SessionKind::Authenticated;
        let store = self.stores.for_kind(kind);
        let r = store.list_user_sessions(user_id, now).await;
        self.op(store.as_ref(), kind, "read", outcome_of(&r));
        Ok(r?)
    }

    /// Sets the user's revocation time to `at` (authenticated store).
    pub(super) async fn revoke_user(&self, user_id: &str, at: Timestamp) -> Result<()> {
        let kind = SessionKind::Authenticated;
        let store = self.stores.for_kind(kind);
        let r = store.revoke_user(user_id, at).await;
        self.op(store.as_ref(), kind, "write", outcome_of(&r));
        r?;
        self.write(kind, Write::RevokeAll);
        Ok(())
    }

    /// Appends `r` to the revocation log of the store of `kind`, if it keeps one.
    pub(super) async fn log(&self, kind: SessionKind, r: &Revocation) -> Result<()> {
        let store = self.stores.for_kind(kind);
        let Some(log) = store.as_revocation_log() else {
            return Ok(());
        };
        let res = log.log_revocation(r).await;
        self.op(store.as_ref(), kind, "write", outcome_of(&res));
        res?;
        Ok(())
    }

    fn write(&self, kind: SessionKind, reason: Write) {
        self.metrics
            .session_writes
            .get_or_create(&WriteLabels {
                kind: kind.as_str(),
                reason: reason.as_str(),
            })
            .inc();
    }

    fn op(
        &self,
        store: &dyn SessionStore,
        kind: SessionKind,
        op: &'static str,
        outcome: &'static str,
    ) {
        self.metrics
            .store_operations
            .get_or_create(&StoreOpLabels {
                backend: store.backend(),
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
