//! `update`: per-key edits of a stored session, as a compare-and-set retried on conflict.

use std::collections::BTreeMap;

use serde_json::Value;
use tessera_core::{Handle, Timestamp};

use super::store::Write;
use super::{Edits, Engine, Outcome, Status, backoff, stored};
use crate::limits::{check_size, validate_edits};
use crate::{Error, Result};

impl Engine {
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

    pub(super) async fn update_inner(
        &self,
        cookie: &str,
        edits: &Edits,
        now: Timestamp,
    ) -> Result<Outcome> {
        validate_edits(edits)?;
        let Some(handle) = self.handle_from(cookie)? else {
            return self.update_client(cookie, edits, now).await;
        };
        let mut o = self.update_stored(&handle, edits, now).await?;
        self.clear_anon(cookie, &mut o);
        Ok(o)
    }

    /// `update` of a session named by the session cookie's handle.
    pub(super) async fn update_stored(
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
                .store
                .load(kind, &key, now)
                .await?
                .ok_or(Error::SessionNotFound)?;
            let mut next = record.clone();
            apply(&mut next.data, edits);
            self.apply_secrets(&mut next, &key, edits)?;
            let new_expiry = edits.expiry.filter(|e| *e != record.expiry);
            let changed = next.data != record.data || next.secrets != record.secrets;
            if changed {
                check_size(&next.data, &next.secrets, self.config.max_data_bytes)?;
            }
            if let Some(e) = new_expiry
                && self.set_expiry(&mut next, e, now)
            {
                // An end in the past: the session ends, as at a logout, unless another
                // request wrote first (then this edit applies to what it wrote).
                if self.end_stored(kind, &key, &record, now).await? {
                    return Ok(self.outcome(None, self.logout_cookies(), Status::Ended));
                }
                attempt += 1;
                if attempt > self.config.max_conflict_retries {
                    return Err(Error::Contention);
                }
                backoff(attempt).await;
                continue;
            }
            // A new expiry recomputed the idle expiry already, as a renewal does.
            let renew = new_expiry.is_some() || self.renewal_due(&record, now);
            let changed = changed || new_expiry.is_some();
            if !changed && !renew {
                return Ok(self.outcome(Some(stored(key, record)), vec![], Status::Unchanged));
            }
            if renew && new_expiry.is_none() {
                self.renew(&mut next, now);
            }
            next.version = record.version.saturating_add(1);
            let reason = if changed { Write::Update } else { Write::Renew };
            match self
                .store
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
}

impl Engine {
    /// Ends the stored session `record` (read at `version`) as `retire` does: expired with a
    /// compare-and-set, then deleted with a tombstone and logged. `false` if another write
    /// won the compare-and-set (nothing ended; re-read).
    pub(super) async fn end_stored(
        &self,
        kind: tessera_core::SessionKind,
        key: &tessera_core::StoreKey,
        record: &tessera_core::SessionRecord,
        now: Timestamp,
    ) -> Result<bool> {
        // Revoked before it is expired, as `logout` does: once expired, a retry finds nothing
        // to end.
        self.log_session_end(key, record, now).await?;
        let mut sealed = record.clone();
        sealed.idle_expires_at = now;
        sealed.version = record.version.saturating_add(1);
        match self
            .store
            .save(kind, key, record.version, &sealed, now, Write::Logout)
            .await
        {
            Ok(()) => {
                self.store.delete(kind, key, now, Write::Logout).await?;
                Ok(true)
            }
            Err(Error::Store(tessera_core::Error::Conflict)) => Ok(false),
            // Gone already: ended all the same.
            Err(Error::Store(tessera_core::Error::NotFound)) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

pub(super) fn apply(data: &mut BTreeMap<String, Value>, edits: &Edits) {
    for k in &edits.remove {
        data.remove(k);
    }
    for (k, v) in &edits.set {
        data.insert(k.clone(), v.clone());
    }
}
