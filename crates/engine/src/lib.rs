//! Tessera's session engine: the lifecycle of DESIGN §3 over any
//! [`SessionStore`](tessera_core::SessionStore).
//!
//! - handles of 256 random bits that name their kind, parsed strictly; stores keyed by their
//!   SHA-256;
//! - compare-and-set edits per key with retry, so concurrent edits of different keys survive;
//! - tombstones on logout; idle and absolute timeouts enforced by the server; renewal written
//!   at most once per half idle lifetime;
//! - login on a new handle with the anonymous data carried over; per-user list, revoke one,
//!   revoke all through a revocation time;
//! - anonymous sessions client-side by default ([`anonymous`]): a cookie sealed with
//!   XChaCha20-Poly1305, no store write; they move to the store (under the same identity)
//!   when they outgrow the cookie budget or keep a secret, and into the new session at login;
//! - secrets ([`Edits::secrets`]) sealed with a server key and kept in the store only;
//! - CSRF tokens derived by HMAC, never stored;
//! - `__Host-` cookies with `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`, and removals that
//!   match.
//!
//! Start with [`Engine::builder`]; with the `tower` feature, `SessionLayer::new(engine)`
//! gives an axum or tower application a session per request (see `tower`).
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `tower` | [`tower`]: a `SessionLayer` and axum extractors for in-process use |
//!
//! ```
//! # async fn demo() -> Result<(), tessera::Error> {
//! use tessera::{Edits, Engine, Login};
//! use tessera_core::Timestamp;
//!
//! let store = tessera_store_memory::MemoryStore::new();
//! // A memory store has no directory to keep the keys in: fresh ones, lost at exit.
//! let engine = Engine::builder(store).ephemeral_keys().build()?;
//! let now = Timestamp::from_unix_secs(1_800_000_000);
//! let mut edits = Edits::default();
//! edits.set.insert("cart".into(), serde_json::json!([1, 2]));
//! // No cookie yet: the edit creates an anonymous session, in a sealed cookie (no write).
//! let out = engine.update("", &edits, now).await?;
//! assert!(out.set_cookie[0].starts_with("__Host-tessera-anon=1."));
//! // A login carries the data into a stored session and clears the anonymous cookie.
//! let cookie = out.set_cookie[0].split(';').next().unwrap_or_default();
//! let out = engine.login(cookie, Login::for_user("alice"), now).await?;
//! assert_eq!(out.session.unwrap().record.data["cart"], serde_json::json!([1, 2]));
//! assert!(out.set_cookie[0].starts_with("__Host-tessera=u"));
//! assert!(out.set_cookie[1].starts_with("__Host-tessera-anon=;"));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod anonymous;
pub mod bounded;
mod config;
pub mod cookie;
pub mod csrf;
mod engine;
mod error;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod token;

#[doc(hidden)]
pub mod fuzzing;

/// The README, whose Rust example (section "In a Rust application") is compiled as a doctest
/// so it cannot drift from the API. Its other blocks (`sh`, `toml`, `nginx`) are not Rust.
#[cfg(all(doctest, feature = "tower"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
#[cfg(feature = "tower")]
pub mod tower;

pub use config::{AnonymousMode, SessionConfig};
pub use engine::{
    Edits, Engine, EngineBuilder, IfMissing, Lifetime, LiveSession, Login, Outcome, Renewal,
    Status, Storage, Stores, TokenStatus,
};
pub use error::{Error, Result};
pub use limits::{MAX_CLAIMS_BYTES, MAX_EDITS, MAX_JSON_DEPTH, MAX_KEY_LEN, RESERVED_CLAIMS};
pub use tessera_core;
pub use tessera_token;
