use std::path::PathBuf;

/// What a caller may branch on when a token operation fails: four classes, fixed forever.
///
/// The detailed variant of [`Error`] (and its [`Error::code`] and [`Error::outcome`]) is for
/// logs and metrics; a caller decides with this (rustls' `PeerMisbehaved` guidance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The token was good once and is now past its hard expiry (`exp`, or `iat` older than
    /// the longest token lifetime). Issue a new one from the session.
    Expired,
    /// The token, a key or an input is not acceptable: malformed, forged, for another
    /// issuer, audience or type, or not yet valid. Treat it as absent.
    Invalid,
    /// The token, or the key that signed it, was revoked.
    Revoked,
    /// Tessera cannot do the operation now: no signing key, key files unreadable, key
    /// generation failed. Not the client's fault.
    Unavailable,
}

/// Which part of a token a [`Error::BadJson`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The JOSE header (first segment).
    Header,
    /// The claims (second segment).
    Claims,
}

/// Errors of token signing and verification, keys and the keyring.
///
/// Every variant has two stable names, in two vocabularies:
///
/// - [`Error::code`], the error code (kebab-case, `token-bad-signature`, `keyring-io` …,
///   listed in [`Error::CODES`]), as every Tessera error type has, for logs and runbooks;
/// - [`Error::outcome`], the token status of DESIGN §5 (snake_case, `bad_signature`,
///   `unknown_kid` …): part of the HTTP API (`token_status`, `X-Tessera-Token-Status`) and the
///   `outcome` label of `tessera_token_validations_total`, beside the successful outcomes
///   `ok` and `soft_expired` of [`Verified::outcome`](crate::Verified::outcome).
///
/// No variant carries token bytes, key material or any string taken from a token, so an
/// error can be logged as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // === token validation outcomes, in the order they are checked ===
    /// The token is empty or longer than [`Config::with_max_token_bytes`](crate::Config::with_max_token_bytes).
    #[error("token is malformed: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// The token is not exactly three segments of strict, canonical base64url without
    /// padding.
    #[error("token encoding is invalid")]
    BadEncoding,
    /// A compact JWE (five segments), a `crit`, `cty` or `b64` header: features Tessera
    /// refuses rather than half-supports.
    #[error("token uses an unsupported feature: {what}")]
    Unsupported {
        /// Which feature.
        what: &'static str,
    },
    /// The header or the claims are not a JSON object of the exact expected shape:
    /// duplicate members, wrong types (a string `exp`), missing required members.
    #[error("token {part:?} JSON is invalid: {reason}")]
    BadJson {
        /// Header or claims.
        part: Part,
        /// What was wrong.
        reason: &'static str,
    },
    /// The header `alg` is not in the allow-list, or is not the algorithm of the key
    /// named by `kid`.
    #[error("token algorithm is not allowed{}", if *mismatch { " for this key" } else { "" })]
    AlgorithmNotAllowed {
        /// `true` when `alg` is allowed but differs from the key's algorithm.
        mismatch: bool,
    },
    /// No key of the keyring has the header's `kid`.
    #[error("token key id is unknown")]
    UnknownKeyId,
    /// The key named by `kid` was revoked.
    #[error("token key was revoked")]
    KeyRevoked,
    /// The key named by `kid` has a `valid_from` in the future.
    #[error("token key is not valid yet")]
    KeyNotYetValid,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` has passed, or `iat` is older than the longest token lifetime (both with
    /// leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer is wrong")]
    WrongIssuer,
    /// `aud` does not contain the configured audience, or is present when none is
    /// configured.
    #[error("token audience is wrong")]
    WrongAudience,
    /// The header `typ` is missing or not the configured token type.
    #[error("token type is wrong")]
    WrongType,
    /// The revocation check refused the token: its session was revoked, or its user
    /// logged out everywhere after it was issued.
    #[error("token was revoked")]
    Revoked,

    // === signing, keys and keyring ===
    /// Claims given to `sign_at` break a rule (times out of order, lifetime too long,
    /// custom claim shadowing a registered one, token too large).
    #[error("claims cannot be signed: {0}")]
    InvalidClaims(&'static str),
    /// The keyring has no active key with a private half and `valid_from <= now`.
    #[error("no key can sign now")]
    NoSigningKey,
    /// Key material (a JWK, a PKCS#8 document, a manifest entry) is not acceptable.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What was wrong.
        reason: &'static str,
    },
    /// An Ed25519 public key of small order (a "weak" key), refused at load.
    #[error("weak Ed25519 public key refused")]
    WeakKey,
    /// The random source or the key generator failed.
    #[error("key generation failed: {reason}")]
    KeyGeneration {
        /// What failed.
        reason: &'static str,
    },
    /// The signature primitive failed (RSA only; Ed25519 and ECDSA signing cannot fail).
    #[error("signing failed")]
    Signing,
    /// A private-key file is readable by group or others.
    #[error(
        "private key file {path} has mode {mode:o}; it must not be readable by group or others (0600)"
    )]
    InsecureKeyFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Reading or writing the keyring directory failed.
    #[error("keyring I/O failed on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The keyring manifest is not valid.
    #[error("keyring manifest {path} is invalid: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
        /// The JSON error, when there is one.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// Logic that cannot happen happened; the string says where.
    #[error("internal invariant broken: {0}")]
    Unreachable(&'static str),
}

impl Error {
    /// Every code [`Error::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "token-malformed",
        "token-bad-encoding",
        "token-unsupported",
        "token-bad-json",
        "token-alg-not-allowed",
        "token-unknown-kid",
        "token-key-revoked",
        "token-key-not-yet-valid",
        "token-bad-signature",
        "token-expired",
        "token-not-yet-valid",
        "token-wrong-issuer",
        "token-wrong-audience",
        "token-wrong-type",
        "token-revoked",
        "token-invalid-claims",
        "token-no-signing-key",
        "key-invalid",
        "key-weak",
        "key-generation-failed",
        "token-signing-failed",
        "key-file-insecure",
        "keyring-io",
        "keyring-manifest-invalid",
        "token-unreachable",
    ];

    /// The error code: stable, kebab-case, unique across Tessera, for logs and runbooks.
    ///
    /// Not the token status a client or a metric sees: that is [`Error::outcome`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "token-malformed",
            Self::BadEncoding => "token-bad-encoding",
            Self::Unsupported { .. } => "token-unsupported",
            Self::BadJson { .. } => "token-bad-json",
            Self::AlgorithmNotAllowed { .. } => "token-alg-not-allowed",
            Self::UnknownKeyId => "token-unknown-kid",
            Self::KeyRevoked => "token-key-revoked",
            Self::KeyNotYetValid => "token-key-not-yet-valid",
            Self::BadSignature => "token-bad-signature",
            Self::Expired => "token-expired",
            Self::NotYetValid => "token-not-yet-valid",
            Self::WrongIssuer => "token-wrong-issuer",
            Self::WrongAudience => "token-wrong-audience",
            Self::WrongType => "token-wrong-type",
            Self::Revoked => "token-revoked",
            Self::InvalidClaims(_) => "token-invalid-claims",
            Self::NoSigningKey => "token-no-signing-key",
            Self::InvalidKey { .. } => "key-invalid",
            Self::WeakKey => "key-weak",
            Self::KeyGeneration { .. } => "key-generation-failed",
            Self::Signing => "token-signing-failed",
            Self::InsecureKeyFile { .. } => "key-file-insecure",
            Self::Io { .. } => "keyring-io",
            Self::Manifest { .. } => "keyring-manifest-invalid",
            Self::Unreachable(_) => "token-unreachable",
        }
    }

    /// The token status (DESIGN §5), a vocabulary of its own: snake_case, fixed forever,
    /// part of the HTTP API (`token_status`, `X-Tessera-Token-Status`, the `outcome` label of
    /// `tessera_token_validations_total`). The validation failures are `malformed`,
    /// `bad_encoding`, `unsupported`, `bad_json`, `alg_not_allowed`, `unknown_kid`,
    /// `key_revoked`, `key_not_yet_valid`, `bad_signature`, `expired`, `not_yet_valid`,
    /// `wrong_issuer`, `wrong_audience`, `wrong_type` and `revoked`; the successful outcomes
    /// `ok` and `soft_expired` come from [`Verified::outcome`](crate::Verified::outcome).
    /// Signing and keyring failures have one too (`no_signing_key`, `key_io` …), for the
    /// places that report them as a token status.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::BadEncoding => "bad_encoding",
            Self::Unsupported { .. } => "unsupported",
            Self::BadJson { .. } => "bad_json",
            Self::AlgorithmNotAllowed { .. } => "alg_not_allowed",
            Self::UnknownKeyId => "unknown_kid",
            Self::KeyRevoked => "key_revoked",
            Self::KeyNotYetValid => "key_not_yet_valid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongType => "wrong_type",
            Self::Revoked => "revoked",
            Self::InvalidClaims(_) => "invalid_claims",
            Self::NoSigningKey => "no_signing_key",
            Self::InvalidKey { .. } => "invalid_key",
            Self::WeakKey => "weak_key",
            Self::KeyGeneration { .. } => "key_generation",
            Self::Signing => "signing_failed",
            Self::InsecureKeyFile { .. } => "insecure_key_file",
            Self::Io { .. } => "key_io",
            Self::Manifest { .. } => "bad_manifest",
            Self::Unreachable(_) => "unreachable",
        }
    }

    /// The class a caller branches on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Expired => ErrorKind::Expired,
            Self::Revoked | Self::KeyRevoked => ErrorKind::Revoked,
            Self::NoSigningKey
            | Self::KeyGeneration { .. }
            | Self::Signing
            | Self::InsecureKeyFile { .. }
            | Self::Io { .. }
            | Self::Manifest { .. }
            | Self::Unreachable(_) => ErrorKind::Unavailable,
            Self::Malformed { .. }
            | Self::BadEncoding
            | Self::Unsupported { .. }
            | Self::BadJson { .. }
            | Self::AlgorithmNotAllowed { .. }
            | Self::UnknownKeyId
            | Self::KeyNotYetValid
            | Self::BadSignature
            | Self::NotYetValid
            | Self::WrongIssuer
            | Self::WrongAudience
            | Self::WrongType
            | Self::InvalidClaims(_)
            | Self::InvalidKey { .. }
            | Self::WeakKey => ErrorKind::Invalid,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The result of a token operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Error> {
        vec![
            Error::Malformed { reason: "" },
            Error::BadEncoding,
            Error::Unsupported { what: "" },
            Error::BadJson {
                part: Part::Header,
                reason: "",
            },
            Error::AlgorithmNotAllowed { mismatch: false },
            Error::UnknownKeyId,
            Error::KeyRevoked,
            Error::KeyNotYetValid,
            Error::BadSignature,
            Error::Expired,
            Error::NotYetValid,
            Error::WrongIssuer,
            Error::WrongAudience,
            Error::WrongType,
            Error::Revoked,
            Error::InvalidClaims(""),
            Error::NoSigningKey,
            Error::InvalidKey { reason: "" },
            Error::WeakKey,
            Error::KeyGeneration { reason: "" },
            Error::Signing,
            Error::InsecureKeyFile {
                path: PathBuf::new(),
                mode: 0,
            },
            Error::io("", std::io::Error::other("x")),
            Error::Manifest {
                path: PathBuf::new(),
                reason: String::new(),
                source: None,
            },
            Error::Unreachable(""),
        ]
    }

    #[test]
    fn codes_are_listed_unique_and_kebab_case() {
        tessera_test_support::assert_error_codes(Error::CODES, all().iter().map(Error::code));
    }

    #[test]
    fn outcomes_are_unique_and_distinct_from_success_outcomes() {
        let all = all();
        let mut outcomes: Vec<_> = all.iter().map(Error::outcome).collect();
        outcomes.extend(["ok", "soft_expired"]);
        outcomes.sort_unstable();
        outcomes.dedup();
        assert_eq!(outcomes.len(), all.len() + 2);
        // A vocabulary of its own: no outcome is an error code.
        assert!(outcomes.iter().all(|o| !Error::CODES.contains(o)));
    }

    #[test]
    fn design_outcome_codes_exist() {
        let codes: Vec<_> = all().iter().map(Error::outcome).collect();
        for c in [
            "expired",
            "not_yet_valid",
            "malformed",
            "bad_encoding",
            "bad_json",
            "alg_not_allowed",
            "unknown_kid",
            "bad_signature",
            "wrong_issuer",
            "wrong_audience",
            "wrong_type",
            "revoked",
        ] {
            assert!(codes.contains(&c), "{c}");
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(Error::Expired.kind(), ErrorKind::Expired);
        assert_eq!(Error::KeyRevoked.kind(), ErrorKind::Revoked);
        assert_eq!(Error::Revoked.kind(), ErrorKind::Revoked);
        assert_eq!(Error::NoSigningKey.kind(), ErrorKind::Unavailable);
        assert_eq!(Error::BadSignature.kind(), ErrorKind::Invalid);
    }
}
