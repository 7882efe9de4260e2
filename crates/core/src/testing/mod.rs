//! The store conformance suite: one set of checks that every [`SessionStore`](crate::SessionStore) passes.
//!
//! A store crate runs it with one line in its integration tests:
//!
//! ```ignore
//! tessera_core::conformance_tests!(async { std::sync::Arc::new(MyStore::new()) });
//! ```
//!
//! Every check uses fresh random keys and user ids, so the suite can run in parallel against
//! one shared server (a Redis or a Postgres) without the checks seeing each other.//!
//! | module | checks of |
//! |---|---|
//! | `mod.rs` | the fixtures every check uses: [`T0`], [`fresh_key`], [`fresh_user`], [`record`] |
//! | `sessions.rs` | [`SessionStore`](crate::SessionStore): create, load, save, delete, the user index, revocation times, purge ([`conformance_tests!`](crate::conformance_tests)) |
//! | `kv.rs` | [`KvStore`](crate::KvStore)'s Kask namespace (`kv_*`) ([`kv_conformance_tests!`](crate::kv_conformance_tests), with `keyed.rs`) |
//! | `keyed.rs` | [`KvStore`](crate::KvStore)'s keyed store (`ns_*`): namespaces, touch, counts, clear |
//! | `revocations.rs` | [`RevocationLog`](crate::RevocationLog) ([`revocation_conformance_tests!`](crate::revocation_conformance_tests)) |
//! | `blobs.rs` | [`BlobStore`](crate::BlobStore) ([`blob_conformance_tests!`](crate::blob_conformance_tests)) |
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{Expiry, Handle, SessionKind, SessionRecord, StoreKey, Timestamp, User};

mod blobs;
mod keyed;
mod kv;
mod revocations;
mod sessions;

pub use self::blobs::*;
pub use self::keyed::*;
pub use self::kv::*;
pub use self::revocations::*;
pub use self::sessions::*;

/// A fixed "now" for the suite: 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_unix_secs(1_767_225_600);

const HOUR: Duration = Duration::from_secs(3600);

/// A fresh random store key.
pub fn fresh_key(kind: SessionKind) -> StoreKey {
    Handle::generate(kind).unwrap().store_key()
}

/// A fresh random user id.
pub fn fresh_user() -> String {
    format!("user-{}", &fresh_key(SessionKind::Anonymous).to_hex()[..16])
}

/// A live record created at `created`, idle for an hour, absolute for a day.
pub fn record(user: Option<&str>, created: Timestamp) -> SessionRecord {
    let mut data = BTreeMap::new();
    data.insert(
        "k".to_owned(),
        serde_json::json!({"nested": [1, "two", null]}),
    );
    SessionRecord {
        kind: if user.is_some() {
            SessionKind::Authenticated
        } else {
            SessionKind::Anonymous
        },
        user: user.map(|id| User {
            id: id.to_owned(),
            name: Some("Ünïcode name".to_owned()),
            provider: None,
        }),
        claims: BTreeMap::new(),
        created_at: created,
        renewed_at: created,
        idle_expires_at: created.saturating_add(HOUR),
        absolute_expires_at: created.saturating_add(24 * HOUR),
        remember: false,
        data,
        // Opaque to stores: what the engine writes here is sealed text.
        secrets: BTreeMap::from([("otp".to_owned(), "1.kid.c2VhbGVk".to_owned())]),
        expiry: Expiry::Default,
        version: 1,
    }
}
