//! [`Config`]: what a token must be, shared by signing and verification.

use std::time::Duration;

use crate::key::{Algorithm, JwsAlgorithm};

/// The default header `typ`: explicit typing per RFC 8725 §3.11.
pub const DEFAULT_TYP: &str = "session+jwt";
/// The largest leeway [`Config::with_leeway`] accepts (security checklist H8).
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
/// The default size cap of a token, in bytes: a cookie holds at most 4096.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 4096;

/// Whole seconds of `d`, saturating.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// What a token must be: issuer, audience, type, algorithms, clock leeway, lifetime and
/// size. The same value configures signing and verification, so a service cannot mint
/// tokens its own verifier refuses.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tessera_token::{Config, JwsAlgorithm};
///
/// let config = Config::new("https://wiki.example")
///     .with_audience("wiki")
///     .with_algorithms([JwsAlgorithm::EdDsa, JwsAlgorithm::Ed25519, JwsAlgorithm::Es256])
///     .with_leeway(Duration::from_secs(30));
/// assert_eq!(config.typ(), "session+jwt");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub(crate) issuer: String,
    pub(crate) audience: Option<String>,
    pub(crate) typ: String,
    algorithms: u8,
    ed25519_alg: JwsAlgorithm,
    /// Seconds.
    pub(crate) leeway: i64,
    /// Seconds.
    pub(crate) max_lifetime: i64,
    pub(crate) max_token_bytes: usize,
}

impl Config {
    /// Tokens of `issuer`, with the defaults: no audience, `typ` [`DEFAULT_TYP`], algorithms
    /// `EdDSA` and `Ed25519` only, Ed25519 headers say `EdDSA`, leeway 60 s, longest
    /// lifetime 4 h, at most [`DEFAULT_MAX_TOKEN_BYTES`].
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: None,
            typ: DEFAULT_TYP.to_owned(),
            algorithms: JwsAlgorithm::EdDsa.bit() | JwsAlgorithm::Ed25519.bit(),
            ed25519_alg: JwsAlgorithm::EdDsa,
            leeway: 60,
            max_lifetime: 4 * 3600,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    /// Requires `aud` to contain `audience`. Without it, a token that has an `aud` at all is
    /// refused (RFC 7519 §4.1.3).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The header `typ` to emit and require (compared ASCII case-insensitively, with an
    /// optional `application/` prefix, RFC 7515 §4.1.9).
    pub fn with_typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = typ.into();
        self
    }

    /// The allow-list of header `alg` values. `none` and HMAC are not
    /// [`JwsAlgorithm`]s, so they can never be allowed.
    ///
    /// # ⚠️ Warning
    ///
    /// The allow-list is checked before the key; the key's own algorithm is checked after.
    /// Allow only what your keys use.
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = JwsAlgorithm>) -> Self {
        self.algorithms = algorithms.into_iter().fold(0, |acc, a| acc | a.bit());
        self
    }

    /// The header `alg` written for Ed25519 keys: [`JwsAlgorithm::EdDsa`] (default, widest
    /// support) or [`JwsAlgorithm::Ed25519`] (RFC 9864). Both are accepted when allowed.
    /// Any other value is ignored.
    pub fn with_ed25519_header(mut self, alg: JwsAlgorithm) -> Self {
        if alg.key_algorithm() == Algorithm::Ed25519 {
            self.ed25519_alg = alg;
        }
        self
    }

    /// The clock leeway for `exp`, `nbf`, `iat` and key `valid_from`, at most
    /// [`MAX_LEEWAY`]; larger values are clamped to it.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = secs(leeway.min(MAX_LEEWAY));
        self
    }

    /// The longest token lifetime: signing refuses `exp - iat` above it, and verification
    /// refuses tokens whose `iat` is older than it (plus leeway), whatever their `exp`.
    pub fn with_max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = secs(lifetime);
        self
    }

    /// The size cap in bytes, checked before anything is decoded.
    pub fn with_max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The header `typ`.
    pub fn typ(&self) -> &str {
        &self.typ
    }

    /// The header `alg` written for Ed25519 keys.
    pub fn ed25519_alg(&self) -> JwsAlgorithm {
        self.ed25519_alg
    }

    /// Whether header `alg` value `alg` is allowed.
    pub fn allows(&self, alg: JwsAlgorithm) -> bool {
        self.algorithms & alg.bit() != 0
    }

    /// The header `alg` written for a key of `key`'s algorithm.
    pub(crate) fn header_alg(&self, key: Algorithm) -> JwsAlgorithm {
        match key {
            Algorithm::Ed25519 => self.ed25519_alg,
            Algorithm::Es256 => JwsAlgorithm::Es256,
            Algorithm::Rs256 => JwsAlgorithm::Rs256,
        }
    }

    /// Whether a header `typ` is ours: ASCII case-insensitive, `application/` optional.
    pub(crate) fn typ_matches(&self, given: &str) -> bool {
        let bare = match given.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => given.get(12..).unwrap_or(""),
            _ => given,
        };
        bare.eq_ignore_ascii_case(&self.typ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison() {
        let c = Config::new("i");
        assert!(c.typ_matches("session+jwt"));
        assert!(c.typ_matches("Session+JWT"));
        assert!(c.typ_matches("application/session+jwt"));
        assert!(!c.typ_matches("application/"));
        assert!(!c.typ_matches("JWT"));
        assert!(!c.typ_matches("session+jwt "));
        assert!(!c.typ_matches("é"));
    }

    #[test]
    fn leeway_is_clamped() {
        let c = Config::new("i").with_leeway(Duration::from_secs(3600));
        assert_eq!(c.leeway, 60);
    }
}
