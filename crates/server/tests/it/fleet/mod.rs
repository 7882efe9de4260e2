//! A fleet (issue 11): `tessera serve` processes on loopback, each with a data directory of
//! its own, sharing one store (a throwaway Postgres cluster of `tessera-test-support`, or a
//! Redis Cluster of their own) with `TESSERA_KEYS=store`, behind Debian's nginx configured
//! as docs/fleet.md says, with a `tessera verifier` at the edge where a test needs one.
//!
//! [`scaffold`] starts and stops those processes and holds the helpers every fleet test
//! shares; each other file proves one property:
//!
//! - `one_service`: a browser-like client through nginx gets its anonymous cookie, login,
//!   updates, CSRF checks and token checks accepted whichever node answers; every node
//!   serves the same JWKS bytes; a fourth node started later serves with the fleet's keys at
//!   once; a wrong master key or an altered record stops a node and changes nothing; a key
//!   directory is imported once;
//! - `revocation`: a logout on one node is refused by every other node and by the edge
//!   verifier within `verify.refresh` + 1 s, and every node serves the same revocation feed
//!   and the same JWKS bytes;
//! - `failover`: `kill -9` of a node under load through nginx: every idempotent request
//!   succeeds, a `POST` in flight on the dead node gets a 502 (counted);
//! - `lease`: `kill -9` of the node holding the rotation lease mid-rotation; another node
//!   rotates once the lease has lapsed, and no key is lost or duplicated.

mod failover;
mod lease;
mod master_key;
mod one_service;
mod revocation;
pub(crate) mod scaffold;
