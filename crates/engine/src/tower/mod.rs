//! Tessera in-process: a tower [`SessionLayer`] and axum extractors, for Rust applications
//! that link the engine instead of calling the service over HTTP.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use tessera::Engine;
//! use tessera::tower::{Session, SessionLayer};
//!
//! let store = tessera_store_memory::MemoryStore::new();
//! let engine = Engine::builder(store).ephemeral_keys().build()?;
//! async fn visits(session: Session) -> Result<String, tessera::Error> {
//!     let n: u64 = session.get("visits").await?.unwrap_or(0);
//!     session.set("visits", n + 1).await?;
//!     Ok(format!("visit {}", n + 1))
//! }
//! let app: Router = Router::new()
//!     .route("/", get(visits))
//!     .layer(SessionLayer::new(engine));
//! # let _ = app; Ok(()) }
//! ```
//!
//! # Behaviour
//!
//! - The layer reads the request's `Cookie` headers and the engine's clock once and puts a
//!   [`Session`] handle in the request's extensions. Nothing touches the store until a
//!   handler calls the handle.
//! - Two extractors: [`Session`], the handle every operation goes through, and
//!   [`LiveSession`](crate::LiveSession), the live session's data read eagerly (401 without
//!   one; `Option<LiveSession>` for optional).
//! - Each operation is one call on the handle and goes through the same [`Engine`](crate::Engine) as the HTTP
//!   service: same stores, same keys, same rules (compare-and-set edits, renewal throttling,
//!   fixation defence at login, tombstones at logout).
//! - `Set-Cookie` is written on the response only when an operation changed a cookie (a new
//!   session, a renewal, a login, a logout, a stale cookie cleared, a token issued or
//!   refreshed), and never on a 5xx response. When several operations in one request change a
//!   cookie, only its last value is sent: one `Set-Cookie` per name.
//! - A malformed or unknown cookie starts afresh: the handle acts as if there were no session
//!   and the response clears the cookie; a warning goes to the `security` log target.
//! - A handler that extracts [`Session`] without the layer gets a 500 that says so.

mod extract;
mod layer;
mod session;

pub use extract::SessionRejection;
pub use layer::{SessionLayer, SessionService};
pub use session::Session;

/// The CSRF purpose used by [`Session::csrf_token`] and [`Session::verify_csrf`] by default.
pub const DEFAULT_PURPOSE: &str = "default";
