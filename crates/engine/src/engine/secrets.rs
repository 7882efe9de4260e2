//! Secrets: values sealed to their session with a server key, kept in the store only.

use std::collections::BTreeMap;

use serde_json::Value;
use tessera_core::{Handle, SessionKind, SessionRecord, StoreKey, Timestamp};

use super::store::Write;
use super::{Edits, Engine, LiveSession};
use crate::limits::check_size;
use crate::{Error, Result, anonymous};

impl Engine {
    /// The session's secrets, opened. A secret that no longer opens (its sealing key was
    /// dropped) is left out, with a warning in the log.
    pub fn secrets(&self, session: &LiveSession, now: Timestamp) -> BTreeMap<String, Value> {
        self.open_secrets(&session.record.secrets, &session.key, now)
    }

    /// One secret of the session, opened; `None` if there is none (or it no longer opens).
    pub fn secret(&self, session: &LiveSession, name: &str, now: Timestamp) -> Option<Value> {
        let sealed = session.record.secrets.get(name)?;
        self.open_secret(name, sealed, &session.key, now)
    }

    pub(super) fn secret_purpose(key: &StoreKey) -> String {
        format!("{}{}", anonymous::SECRET_PURPOSE, key.to_ref())
    }

    /// Seals secret `name` to the session stored under `key`, until `expires_at`.
    pub(super) fn seal_secret(
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
        let ring = self.seal.read();
        anonymous::seal_value(&ring, name, &Self::secret_purpose(key), &plain, exp)
    }

    pub(super) fn open_secret(
        &self,
        name: &str,
        sealed: &str,
        key: &StoreKey,
        now: Timestamp,
    ) -> Option<Value> {
        let opened =
            self.seal
                .read()
                .open(name, &Self::secret_purpose(key), sealed, now.unix_secs());
        match opened.map(|p| serde_json::from_slice(&zeroize::Zeroizing::new(p))) {
            Ok(Ok(v)) => Some(v),
            _ => {
                tracing::warn!(key = %key.to_ref(), "a stored secret does not open (its sealing key was dropped?); ignored");
                None
            }
        }
    }

    /// Stores a copy of `base` under a fresh handle, with `secrets` (opened from the session
    /// it replaces, on login or rotation) sealed again: a secret is sealed to the session key
    /// it belongs to. Checked against the size limit once sealed.
    pub(super) async fn create_resealed(
        &self,
        kind: SessionKind,
        reason: Write,
        base: &SessionRecord,
        secrets: &BTreeMap<String, Value>,
    ) -> Result<(Handle, StoreKey, SessionRecord)> {
        self.create_record_with(kind, reason, |k| {
            let mut r = base.clone();
            for (name, v) in secrets {
                let sealed = self.seal_secret(name, v, k, r.absolute_expires_at)?;
                r.secrets.insert(name.clone(), sealed);
            }
            check_size(&r.data, &r.secrets, self.config.max_data_bytes)?;
            Ok(r)
        })
        .await
    }

    pub(super) fn open_secrets(
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
    pub(super) fn apply_secrets(
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
}
