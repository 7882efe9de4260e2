//! The rotation lease: which node rotates, taken by compare-and-set with an expiry.

use serde::{Deserialize, Serialize};

use super::{KeyVault, LEASE_BLOB, StoredKeysError, invalid};

#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: i64,
}

impl KeyVault {
    /// Takes (or renews) the rotation lease for `holder` until `now + ttl`, if it is free,
    /// lapsed, or `holder`'s already; returns whether `holder` holds it. Taken by
    /// compare-and-set, so of nodes racing for it one wins; a node that dies holding it
    /// loses it when `ttl` runs out. The lease only keeps nodes from generating keys in
    /// vain: what guards the keys is the manifest's own compare-and-set.
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Store`] (other than the conflict of a lost race, which is `false`).
    pub async fn take_lease(
        &self,
        holder: &str,
        now: i64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoredKeysError> {
        let blobs = self.blobs()?;
        let current = blobs
            .blob_get(LEASE_BLOB)
            .await
            .map_err(StoredKeysError::Store)?;
        let expected = current.as_ref().map_or(0, |b| b.version);
        if let Some(b) = &current
            // A lease that does not parse is no one's: taken over.
            && let Ok(lease) = serde_json::from_slice::<Lease>(&b.value)
            && lease.holder != holder
            && lease.until > now
        {
            return Ok(false);
        }
        let lease = Lease {
            holder: holder.to_owned(),
            until: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        };
        let bytes =
            serde_json::to_vec(&lease).map_err(|e| invalid(format!("cannot encode: {e}")))?;
        match blobs.blob_put(LEASE_BLOB, expected, &bytes).await {
            Ok(_) => Ok(true),
            Err(tessera_core::Error::Conflict) => Ok(false),
            Err(e) => Err(StoredKeysError::Store(e)),
        }
    }
}

impl KeyVault {
    /// Gives the lease up if `holder` holds it (`tessera keys` when it is done, so the nodes'
    /// schedule need not wait for it to lapse). Losing a race here is fine: the lease is then
    /// someone else's.
    ///
    /// # Errors
    ///
    /// [`StoredKeysError::Store`] (other than a lost race).
    pub async fn release_lease(&self, holder: &str) -> Result<(), StoredKeysError> {
        let blobs = self.blobs()?;
        let Some(b) = blobs
            .blob_get(LEASE_BLOB)
            .await
            .map_err(StoredKeysError::Store)?
        else {
            return Ok(());
        };
        match serde_json::from_slice::<Lease>(&b.value) {
            Ok(lease) if lease.holder == holder => {}
            _ => return Ok(()),
        }
        let free = Lease {
            holder: String::new(),
            until: 0,
        };
        let bytes =
            serde_json::to_vec(&free).map_err(|e| invalid(format!("cannot encode: {e}")))?;
        match blobs.blob_put(LEASE_BLOB, b.version, &bytes).await {
            Ok(_) | Err(tessera_core::Error::Conflict) => Ok(()),
            Err(e) => Err(StoredKeysError::Store(e)),
        }
    }
}
