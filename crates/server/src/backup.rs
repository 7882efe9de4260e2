//! `GET /v1/admin/backup`: a consistent copy of an embedded (redb) store, made by the running
//! service from one read transaction ([`RedbStore::backup_to`]) and streamed to the caller.
//! A backup thus needs no stop: the service holds the file's lock, so only it can read the
//! file, and a copy of the file's bytes taken while it commits could be torn. `tessera
//! backup` is the client (docs/operations.md).
//!
//! The copy is written into a hidden file beside the store (`.backup-<random>.redb`, mode
//! 0600), which is unlinked as soon as it is open for streaming: nothing is left behind, even
//! when the client goes away. Nothing of the request names a path on the server.
//!
//! The endpoint is not in the OpenAPI document: it is an operations endpoint of the binary's
//! own `tessera backup`, not part of the session API the clients implement.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_store_redb::RedbStore;
use tokio::io::AsyncReadExt as _;
use tokio::sync::OwnedSemaphorePermit;

use crate::api::ApiKey;
use crate::problem::ApiError;
use crate::state::AppState;

/// The store labels a backup can name: those of [`crate::Settings::redb_stores`].
pub const STORES: [&str; 2] = ["session", "anonymous"];

/// The response header with the number of session entries in the copy.
pub const SESSIONS_HEADER: &str = "x-tessera-backup-sessions";
/// The response header with the number of key-value entries in the copy.
pub const KV_HEADER: &str = "x-tessera-backup-kv-entries";
/// The response header with the number of revocation-log entries in the copy.
pub const REVOCATIONS_HEADER: &str = "x-tessera-backup-revocations";

/// The query of `GET /v1/admin/backup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupQuery {
    /// Which store: `session` (the default: authenticated sessions, the Kask values and the
    /// revocation log) or `anonymous` (with `[store] anonymous` on redb).
    pub store: Option<String>,
}

/// The name of a copy on its way to a client, beside the store: `.backup-<24 hex>.redb`.
fn is_copy_name(name: &str) -> bool {
    name.strip_prefix(".backup-")
        .and_then(|r| r.strip_suffix(".redb"))
        .is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes the copies a service that stopped mid-backup left beside the store file `store`
/// (a copy is unlinked as soon as it is open, so only a crash in between leaves one). Call
/// it once the store is open: redb's lock then keeps any other process from making one.
/// Returns how many it removed; failures are logged, not fatal.
pub(crate) fn remove_stale_copies(store: &std::path::Path) -> usize {
    let dir = store
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        if is_copy_name(&e.file_name().to_string_lossy()) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => n += 1,
                Err(err) => tracing::warn!(path = %e.path().display(), error = %err,
                    "cannot remove a stale backup copy"),
            }
        }
    }
    n
}

fn random_name() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b)?;
    Ok(tessera_core::to_hex(&b))
}

/// `GET /v1/admin/backup[?store=session|anonymous]`: the copy as `application/octet-stream`,
/// with its counts in the `X-Tessera-Backup-*` headers; 400 `invalid-query`, 401, 409
/// `backup-in-progress` while another copy is made or sent (one at a time: each takes the
/// store's size on disk), 501 `backup-unsupported` for a store that is not redb, 503
/// `store-unavailable` if the copy fails.
pub async fn backup(
    _: ApiKey,
    State(s): State<AppState>,
    q: Result<Query<BackupQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(r) => {
            return ApiError::invalid_query(crate::problem::redact(&r.body_text())).into_response();
        }
    };
    let label = q.store.as_deref().unwrap_or("session");
    if !STORES.contains(&label) {
        return ApiError::invalid_query("store must be `session` or `anonymous`").into_response();
    }
    let Some(store) = s.redb_store(label) else {
        return ApiError::backup_unsupported(label).into_response();
    };
    let Some(permit) = s.backup_permit() else {
        return ApiError::backup_in_progress().into_response();
    };
    match copy(store, permit).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(store = label, error = %e, "backup failed");
            ApiError::store_unavailable().into_response()
        }
    }
}

/// Makes the copy and streams it; `permit` is held until the stream ends (or is dropped).
async fn copy(
    store: Arc<RedbStore>,
    permit: OwnedSemaphorePermit,
) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
    let dest = store
        .path()
        .with_file_name(format!(".backup-{}.redb", random_name()?));
    let path = dest.clone();
    let made = tokio::task::spawn_blocking(move || store.backup_to(&path)).await?;
    let stats = match made {
        Ok(s) => s,
        Err(e) => return Err(e.into()),
    };
    let file = tokio::fs::File::open(&dest).await;
    // Unlinked once open (or at once if it cannot be): the stream reads the open file.
    let _ = tokio::fs::remove_file(&dest).await;
    let file = file?;
    let body = futures_util::stream::try_unfold((file, permit), |(mut f, p)| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), (f, p))))
    });
    let mut res = Body::from_stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(stats.bytes));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(SESSIONS_HEADER, HeaderValue::from(stats.sessions));
    h.insert(KV_HEADER, HeaderValue::from(stats.kv_entries));
    h.insert(REVOCATIONS_HEADER, HeaderValue::from(stats.revocations));
    Ok(res)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_copy_names_are_taken_for_copies() {
        assert!(super::is_copy_name(".backup-0123456789abcdef01234567.redb"));
        for other in [
            "sessions.redb",
            ".backup-.redb",
            ".backup-0123456789abcdef0123456.redb",
            ".backup-0123456789abcdef01234567.redb.partial",
            ".backup-0123456789abcdef0123456z.redb",
            "backup-0123456789abcdef01234567.redb",
        ] {
            assert!(!super::is_copy_name(other), "{other}");
        }
    }
}
