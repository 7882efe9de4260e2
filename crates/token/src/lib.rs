//! Tessera's session tokens: a keyring with rotation and a JWKS, and a strict codec for
//! compact JWS tokens (DESIGN §5).
//!
//! A session token is a small signed JWT that any edge proxy can verify offline with the
//! JWKS. This crate stands alone (no store, no engine, no clock: every function that needs
//! the time takes `now` in Unix seconds), so an edge verifier can use it without the rest.
//!
//! - [`Keyring`]: Ed25519 (default), ES256 and RS256 keys with states `next` → `active` →
//!   `retired` (or `revoked`), `valid_from`, scheduled rotation ([`Keyring::rotate_at`]),
//!   a deterministic JWKS ([`Keyring::jwks`]) and a directory on disk
//!   ([`Keyring::load`], [`Keyring::save`]).
//! - [`Keyring::verify_cached_at`] with a [`VerifiedCache`]: a token seen again skips the
//!   signature check (and only that).
//! - [`Keyring::sign_at`] and [`Keyring::verify_at`]: header `alg`, `kid`, `typ`; claims
//!   `iss`, `sub`, `iat`, `exp`, `sxp`, `jti`, `sid`, optional `aud`/`nbf`, custom claims
//!   ([`Claims`]); validation in a fixed order with one stable token status per outcome
//!   ([`Error::outcome`], [`Verified::outcome`]: `ok`, `bad_signature` …, DESIGN §5), a
//!   coarse [`Error::kind`] to branch on, and an error code ([`Error::code`]:
//!   `token-bad-signature` …) as every Tessera error has.
//!
//! ```
//! use tessera_token::{Claims, Config, ErrorKind, Keyring, OsKeySource, RevocationList, RotationPolicy, Status};
//!
//! let now = 1_800_000_000;
//! let ring = Keyring::generate_at(now, RotationPolicy::default(), &mut OsKeySource::default())?;
//! let config = Config::new("https://wiki.example");
//!
//! let mut claims = Claims::new("https://wiki.example", "mw:CentralAuth::123", "sid-1", "jti-1",
//!                              now, now + 3600, now + 4 * 3600);
//! claims.custom.insert("rlc".into(), "bot".into());
//! let token = ring.sign_at(&config, &claims, now)?;
//!
//! let mut revoked = RevocationList::default();
//! let ok = ring.verify_at(&config, &token, now + 10, &revoked)?;
//! assert_eq!((ok.status, ok.outcome()), (Status::Fresh, "ok"));
//! assert_eq!(ring.verify_at(&config, &token, now + 3600, &revoked)?.outcome(), "soft_expired");
//! assert_eq!(ring.verify_at(&config, &token, now + 5 * 3600, &revoked).unwrap_err().kind(), ErrorKind::Expired);
//!
//! revoked.revoke_session("sid-1");
//! let err = ring.verify_at(&config, &token, now + 10, &revoked).unwrap_err();
//! assert_eq!((err.kind(), err.outcome(), err.code()), (ErrorKind::Revoked, "revoked", "token-revoked"));
//!
//! let jwks = ring.jwks(&config);
//! assert!(jwks.starts_with(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","#));
//! # Ok::<(), tessera_token::Error>(())
//! ```
//!
//! [`seal`]: sealed values (XChaCha20-Poly1305 under rotatable keys) for state a client
//! carries, such as write-free anonymous sessions, and for secrets kept in a store. The
//! sealing keys ([`seal::SealKeyring`]) live in the keyring directory beside the signing
//! keys, with the same file rules, and rotate on a schedule of their own.
//!
//! This crate has no features.
//!
//! # Key ids
//!
//! A key id is the first 16 characters ([`KEY_ID_LEN`]) of the base64url (no padding)
//! SHA-256 JWK thumbprint of the public key (RFC 7638): 96 bits, derived from public material
//! only, the same for every party. **This derivation is fixed forever.**
//!
//! # Security
//!
//! - No `unsafe` (`#![forbid(unsafe_code)]`); no panics on any input (fuzzed, see
//!   `fuzz/fuzz_targets/token_verify.rs`).
//! - `none` and HMAC algorithms do not exist here; the header `alg` must be in the
//!   allow-list *and* equal the algorithm of the key named by `kid`; keys come only from
//!   the keyring (`jku`, `x5u`, `jwk`, `x5c` are ignored); `crit`, `b64`, `cty`, `zip` and
//!   JWE are refused. A token without a `kid` is refused unless the keyring holds keys
//!   given as PEM for such tokens (MediaWiki writes none); it is then checked against those
//!   of its `alg` only, at most [`MAX_KEYS_WITHOUT_KID`].
//! - ES256 signatures must have a low `s` ([`verify_jws_signature`]), so every token has
//!   exactly one accepted spelling; the signer writes the low one.
//! - Lifetimes are bounded both ways: `now - iat` and `exp - iat` at most the configured
//!   longest lifetime (plus leeway).
//! - Ed25519 refuses exactly what ed25519-dalek's `verify_strict` refuses (canonical `S`, no
//!   small-order `R`), at the cost of its non-strict `verify` (docs/tokens.md), and weak
//!   (small-order) or non-canonical public keys are refused when loaded. ES256 uses p256 (RFC 6979 deterministic nonces;
//!   `r` and `s` must be in `[1, n-1]`, so CVE-2022-21449 "psychic signatures" fail). RS256
//!   uses AWS-LC (aws-lc-rs) for signing and verifying, never the `rsa` crate
//!   (RUSTSEC-2023-0071); moduli are 2048 to 8192 bits with exponent 65537.
//! - Base64url is strict and canonical; header and claims JSON reject duplicate members at
//!   any depth and wrong types (a string `exp` is refused, never ignored).
//! - Private keys are [`SigningKey`]s: zeroized on drop, `Debug` shows only kid and
//!   algorithm, no `Serialize`, no `Clone`. Their files are mode 0600 and refused at load
//!   when group- or world-readable. Public keys are a distinct type, [`PublicKey`].
//! - Errors never carry token contents; log the [`Error::code`] or [`Error::outcome`], never
//!   the token.
//!
//! `docs/tokens.md` has the rotation model, the validation order and a threat model of past
//! JWT vulnerability classes.
//!
//! # Layout
//!
//! One job per module, lowest first; each uses only modules above it, so there is no
//! import cycle. [`Keyring`]'s methods live with the job they do: signing in `sign.rs`,
//! verification in `verify.rs`, files in `dir/`, rotation in `keyring/rotate.rs`, the rest
//! (keys, states, lookups, JWKS) in `keyring/mod.rs`.
//!
//! | module | what it does |
//! |---|---|
//! | `error` | [`Error`], [`ErrorKind`], [`Part`] |
//! | `b64`, `json` | strict base64url; JSON objects without duplicate members |
//! | `key` | algorithms, [`KeyId`] (`mod.rs`), [`PublicKey`] (`public.rs`: checks a signature), [`SigningKey`] (`signing.rs`: makes one) |
//! | `claims` | [`Claims`] |
//! | `config` | [`Config`]: what a token must be, for signing and verifying alike |
//! | `revocation` | [`Revocations`], [`NoRevocations`], [`RevocationList`] |
//! | `keyring` | [`Keyring`]: keys with states, [`Keyring::jwks`] (`mod.rs`); [`RotationPolicy`], [`KeyState`], [`KeySource`] (`policy.rs`); [`Keyring::rotate_at`] (`rotate.rs`) |
//! | `pem` | [`PublicKey::from_pem`], [`PublicKey::from_spki_der`]: RSA, P-256 and Ed25519 SubjectPublicKeyInfo |
//! | `jwks` | [`TrustedKeys`]: verify-only key sets from JWK Sets and PEM, bad keys skipped ([`SkippedKey`]); [`Keyring::from_jwks`] |
//! | `jws` | the compact form `header.payload.signature`, the JOSE header, what verified bytes say |
//! | `sign` | [`Keyring::sign_at`] |
//! | `cache` | [`VerifiedCache`] |
//! | `verify` | [`Keyring::verify_at`], [`Keyring::verify_cached_at`]: the validation order; [`Verified`], [`Status`] |
//! | [`seal`] | sealed values (`mod.rs`: the format) and [`seal::SealKeyring`] (`keyring.rs`: the keys, their schedule) |
//! | `dir` | both keyrings on disk: [`Keyring::load`], [`Keyring::save`], [`Keyring::lock_dir`] (`signing.rs`), [`seal::SealKeyring::load`] (`seal.rs`) |
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Parsers of untrusted input: no indexing that could panic (STYLE.md).
#![deny(clippy::indexing_slicing)]
#![warn(clippy::print_stdout)]

// One job per module; "Layout" in the crate docs lists them lowest first (no cycles).
mod b64;
mod cache;
mod claims;
mod config;
mod dir;
mod ed25519;
mod error;
mod json;
mod jwks;
mod jws;
mod key;
mod keyring;
mod pem;
mod revocation;
pub mod seal;
mod sign;
mod verify;

#[doc(hidden)]
pub mod fuzzing;

pub use cache::{CacheStats, VerifiedCache};
pub use claims::{
    Claims, ClaimsError, MAX_CLAIM_DEPTH, MAX_CLAIM_NAME_LEN, MAX_CLAIMS_BYTES, REGISTERED_CLAIMS,
    RESERVED_CLAIMS, json_depth, validate_custom_claims, validate_subject,
};
pub use config::{ClaimSet, Config, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_TYP, MAX_LEEWAY};
pub use dir::{KeyringLock, LOCK_FILE, MANIFEST, ManifestVersion, SEAL_MANIFEST};
pub use error::{Error, ErrorKind, Part, Result};
pub use jwks::{SkipReason, SkippedKey, TrustedKeys};
pub use key::{
    Algorithm, JwsAlgorithm, KEY_ID_LEN, KeyId, PublicKey, RSA_MAX_BITS, RSA_MIN_BITS, RsaBits,
    SigningKey,
};
pub use keyring::{
    KeyInfo, KeySource, KeyState, Keyring, KeyringBuilder, MAX_KEYS_WITHOUT_KID, OsKeySource,
    Rotation, RotationPolicy,
};
pub use revocation::{NoRevocations, RevocationList, Revocations};
pub use verify::{Status, Verified, verify_jws_signature};
