//! The stores, and every store call of the engine with its metrics.

use std::sync::Arc;

use tessera_core::{
    Handle, Revocation, SessionKind, SessionRecord, SessionStore, StoreKey, Timestamp,
};

use super::Engine;
use crate::metrics::{StoreOpLabels, WriteLabels};
use crate::{Error, Result};

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

impl Engine {
    /// Stores the record `make` builds for a fresh handle's key (secrets are sealed to the
    /// key). A collision of 256-bit random values does not happen, but `create` is unique,
    /// so the loop costs nothing to keep honest.
    pub(super) async fn create_record_with(
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
        self.store_op(store.backend(), kind, "read", outcome);
        // A record whose kind disagrees with its handle cannot have been written by us.
        Ok(r?.filter(|rec| rec.kind == kind))
    }

    pub(super) async fn save(
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

    pub(super) async fn delete(
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

    pub(super) async fn log(&self, kind: SessionKind, r: Revocation) -> Result<()> {
        let store = self.stores.for_kind(kind);
        let Some(log) = store.as_revocation_log() else {
            return Ok(());
        };
        let res = log.log_revocation(&r).await;
        self.store_op(store.backend(), kind, "write", outcome_of(&res));
        res?;
        Ok(())
    }

    pub(super) fn write(&self, kind: SessionKind, reason: &'static str) {
        self.metrics
            .session_writes
            .get_or_create(&WriteLabels {
                kind: kind.as_str(),
                reason,
            })
            .inc();
    }

    pub(super) fn store_op(
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

pub(super) fn outcome_of<T>(r: &tessera_core::Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => error_outcome(e),
    }
}

pub(super) fn error_outcome(e: &tessera_core::Error) -> &'static str {
    match e {
        tessera_core::Error::Conflict => "conflict",
        tessera_core::Error::NotFound => "not_found",
        tessera_core::Error::AlreadyExists => "exists",
        tessera_core::Error::Timeout => "timeout",
        _ => "error",
    }
}
