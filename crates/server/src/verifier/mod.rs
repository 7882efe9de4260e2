//! The edge verifier behind `GET /v1/verify` (DESIGN §1, §5, §7), for nginx `auth_request`,
//! Traefik ForwardAuth and Envoy `ext_authz` (HTTP).
//!
//! One [`Verifier`] serves both deployments:
//!
//! - inside `tessera serve`, with the service's own keyring and its store's revocation log;
//! - alone (`tessera verifier`), with no store at all: keys from a JWKS URL or file and/or
//!   PEM files, refetched on an unknown `kid` (at most once per cooldown, the last good copy
//!   kept), revocations from the feed of a Tessera service (`/v1/revocations`).
//!
//! Keys given as PEM (`[verify] public_keys`, e.g. MediaWiki's `$wgJwtPublicKey`) also verify
//! tokens without a `kid`; inside `tessera serve` they are tried before the service's own
//! keyring. A key of the set that cannot be used is skipped, logged once (not on every
//! refresh) and counted in `tessera_verifier_keys_skipped{reason}`; the others keep verifying,
//! and the verifier is not ready only when no usable key is left.
//!
//! Requests never wait for I/O once a copy of the revocations is loaded: a stale copy is
//! brought up to date by one request while the others verify against it. Tokens seen before
//! are served from a [`VerifiedCache`], so a cookie sent again costs no signature check.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;
use tessera::cookie::{self, Lookup};
use tessera::metrics::TokenOutcomeLabels;
use tessera_token::{Config, Error as TokenError, Keyring, VerifiedCache};

mod feed;
mod remote;

pub use feed::RevocationSource;
use feed::{Copy, Cursor};
pub(crate) use remote::KeySetMetrics;
pub use remote::{FetchError, JwksLocation, KeySource, RemoteKeys, http_client};

/// The subject header of `GET /v1/verify`.
pub const SUBJECT_HEADER: &str = "x-tessera-subject";
/// The `sid` header of `GET /v1/verify`.
pub const SESSION_HEADER: &str = "x-tessera-session";
/// The outcome-code header of `GET /v1/verify`.
pub const STATUS_HEADER: &str = "x-tessera-token-status";
/// The prefix of the headers that carry configured claims (`x-tessera-claim-rlc`).
pub const CLAIM_HEADER_PREFIX: &str = "x-tessera-claim-";

// The header names, made once: `HeaderName::from_static` outside a constant checks its
// text on every call (about 140 instructions each, three a request).
const SUBJECT: HeaderName = HeaderName::from_static(SUBJECT_HEADER);
const SESSION: HeaderName = HeaderName::from_static(SESSION_HEADER);
const STATUS: HeaderName = HeaderName::from_static(STATUS_HEADER);

/// What [`Verifier::new`] needs.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// Issuer, `typ`, algorithms, leeway and lifetime of the tokens.
    pub config: Config,
    /// The token cookie's name.
    pub cookie_name: String,
    /// Where the keys are.
    pub keys: KeySource,
    /// Keys given as PEM (`[verify] public_keys`), tried before `keys` inside `tessera
    /// serve`; `None` when there are none or they are `keys` already.
    pub pem_keys: Option<Arc<RemoteKeys>>,
    /// Where the revocations are.
    pub revocations: RevocationSource,
    /// How long a copy of the revocations is used before new entries are read (zero: on
    /// every request).
    pub refresh: Duration,
    /// Revocations older than this are forgotten (the longest token lifetime plus skew).
    pub keep: Duration,
    /// Whether a request without a valid token gets 401 (else 200 as `anon`).
    pub required: bool,
    /// Claims passed to the upstream, each as `x-tessera-claim-<name>`.
    pub claim_headers: Vec<String>,
    /// Tokens already verified.
    pub cache: Arc<VerifiedCache>,
}

/// The edge verifier. See the module documentation.
pub struct Verifier {
    config: Config,
    cookie_name: String,
    keys: KeySource,
    pem_keys: Option<Arc<RemoteKeys>>,
    source: RevocationSource,
    client: reqwest::Client,
    copy: RwLock<Copy>,
    cursor: tokio::sync::Mutex<Cursor>,
    refresh: Duration,
    keep: i64,
    required: bool,
    claims: Vec<(String, HeaderName)>,
    cache: Arc<VerifiedCache>,
    validations: Family<TokenOutcomeLabels, Counter>,
    /// The counters of `validations` for the outcomes of [`KEPT_OUTCOMES`], taken from it
    /// the first time each is counted (so `/metrics` shows a series once it has a count, as
    /// before): a valid token counts without hashing its label into the family.
    kept: [std::sync::OnceLock<Counter>; KEPT_OUTCOMES.len()],
}

/// The outcomes whose counters a [`Verifier`] keeps at hand: those of valid tokens.
const KEPT_OUTCOMES: [&str; 2] = ["ok", "soft_expired"];

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.config.issuer())
            .field("cookie", &self.cookie_name)
            .field("required", &self.required)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// A token that passed, as the upstream should see it.
struct Identity {
    token: Arc<tessera_token::Claims>,
    code: &'static str,
    claims: Vec<(HeaderName, HeaderValue)>,
}

/// The header that carries claim `name`, if the name can be one.
pub fn claim_header(name: &str) -> Option<HeaderName> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return None;
    }
    let h = format!(
        "{CLAIM_HEADER_PREFIX}{}",
        name.to_ascii_lowercase().replace('_', "-")
    );
    HeaderName::from_bytes(h.as_bytes()).ok()
}

fn header_value(v: &Value) -> Option<HeaderValue> {
    match v {
        Value::String(s) => HeaderValue::from_bytes(s.as_bytes()).ok(),
        Value::Null => None,
        other => HeaderValue::from_str(&other.to_string()).ok(),
    }
}

impl Verifier {
    /// A verifier; `validations` counts outcomes (`tessera_token_validations_total`).
    ///
    /// # Errors
    ///
    /// A claim name that cannot be a header name, or an HTTP client that cannot be built.
    pub fn new(
        s: VerifierSettings,
        validations: Family<TokenOutcomeLabels, Counter>,
    ) -> Result<Self, String> {
        let claims = s
            .claim_headers
            .iter()
            .map(|c| {
                claim_header(c)
                    .map(|h| (c.clone(), h))
                    .ok_or_else(|| format!("claim {c:?} cannot name a header"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            config: s.config,
            cookie_name: s.cookie_name,
            keys: s.keys,
            pem_keys: s.pem_keys,
            source: s.revocations,
            client: http_client().map_err(|e| e.to_string())?,
            copy: RwLock::new(Copy::default()),
            cursor: tokio::sync::Mutex::new(Cursor::default()),
            refresh: s.refresh,
            keep: i64::try_from(s.keep.as_secs()).unwrap_or(i64::MAX),
            required: s.required,
            claims,
            cache: s.cache,
            validations,
            kept: Default::default(),
        })
    }

    /// The cache of verified tokens.
    pub fn cache(&self) -> &VerifiedCache {
        &self.cache
    }

    pub(crate) fn cache_arc(&self) -> Arc<VerifiedCache> {
        self.cache.clone()
    }

    /// Whether at least one usable key is loaded and, if revocations are checked, a copy of
    /// them exists: the verifier's readiness.
    pub fn ready(&self) -> bool {
        let keys = self.keys.has_usable_key()
            || self.pem_keys.as_ref().is_some_and(|k| k.has_usable_key());
        let revocations = matches!(self.source, RevocationSource::None)
            || self
                .copy
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .fetched
                .is_some();
        keys && revocations
    }

    /// Answers one `GET /v1/verify` at `now` (Unix seconds).
    pub async fn respond(&self, headers: &HeaderMap, now: i64) -> Response {
        let code = match self.check(headers, now).await {
            Ok(id) => {
                self.count(id.code);
                let (Ok(sub), Ok(sid)) = (
                    // Raw bytes: a UTF-8 subject passes as obs-text, as proxies forward it.
                    HeaderValue::from_bytes(id.token.sub.as_bytes()),
                    HeaderValue::from_bytes(id.token.sid.as_bytes()),
                ) else {
                    return crate::problem::ApiError::internal().into_response();
                };
                let mut resp = StatusCode::OK.into_response();
                let h = resp.headers_mut();
                h.insert(SUBJECT, sub);
                // MediaWiki's own tokens bind no session: no header then.
                if !sid.is_empty() {
                    h.insert(SESSION, sid);
                }
                h.insert(STATUS, HeaderValue::from_static(id.code));
                for (name, value) in id.claims {
                    h.insert(name, value);
                }
                return resp;
            }
            Err(code) => code,
        };
        self.count(code);
        refusal(self.required, code)
    }

    fn count(&self, code: &'static str) {
        let labels = TokenOutcomeLabels { outcome: code };
        let kept = KEPT_OUTCOMES
            .iter()
            .position(|o| *o == code)
            .and_then(|i| self.kept.get(i));
        match kept {
            Some(cell) => cell
                .get_or_init(|| self.validations.get_or_create(&labels).clone())
                .inc(),
            None => self.validations.get_or_create(&labels).inc(),
        };
    }

    /// The token of the request: the token cookie, else `Authorization: Bearer`. Taken as
    /// sent: whitespace or quotes around it are not trimmed away, so they fail verification
    /// (`bad_encoding`) and a token has one spelling. RFC 6750 §2.1 puts one or more spaces
    /// between `Bearer` and the token; those are the header's syntax, not the token's.
    fn token<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, &'static str> {
        for v in headers.get_all(header::COOKIE) {
            let Ok(c) = v.to_str() else { continue };
            match cookie::find(c, &self.cookie_name) {
                Lookup::Found(v) if !v.is_empty() => return Ok(v),
                Lookup::Invalid => return Err("malformed"),
                _ => {}
            }
        }
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim_start_matches(' '))
            .filter(|t| !t.is_empty())
            .ok_or("none")
    }

    async fn check(&self, headers: &HeaderMap, now: i64) -> Result<Identity, &'static str> {
        let token = self.token(headers)?;
        self.bring_up_to_date(now).await?;
        let mut verified = self.verify(token, now);
        if matches!(verified, Err(TokenError::UnknownKeyId)) {
            let mut refetched = false;
            for remote in self.remotes() {
                refetched |= remote.refetch_for_unknown_kid().await;
            }
            if refetched {
                verified = self.verify(token, now);
            }
        }
        match verified {
            Ok(v) => {
                let claims = self
                    .claims
                    .iter()
                    .filter_map(|(c, h)| {
                        v.claims
                            .custom
                            .get(c)
                            .and_then(header_value)
                            .map(|v| (h.clone(), v))
                    })
                    .collect();
                Ok(Identity {
                    code: v.outcome(),
                    token: v.claims,
                    claims,
                })
            }
            Err(e) => {
                tracing::info!(target: "security", code = e.outcome(), issuer = self.config.issuer(), "token refused at /v1/verify");
                Err(e.outcome())
            }
        }
    }

    /// The key sets fetched from elsewhere (refetched on an unknown `kid`).
    fn remotes(&self) -> impl Iterator<Item = &Arc<RemoteKeys>> {
        let primary = match &self.keys {
            KeySource::Remote(r) => Some(r),
            KeySource::Local(_) => None,
        };
        self.pem_keys.iter().chain(primary)
    }

    /// Verifies against the PEM keys first (they alone take tokens without a `kid`; a
    /// token whose `kid` they do not hold is `unknown_kid` there), then the keys.
    fn verify(&self, token: &str, now: i64) -> tessera_token::Result<tessera_token::Verified> {
        let copy = self.copy.read().unwrap_or_else(PoisonError::into_inner);
        let check = |ring: &Keyring| {
            ring.verify_cached_at(&self.config, token, now, &copy.list, &self.cache)
        };
        if let Some(pem) = self.pem_keys.as_ref().and_then(|k| k.current()) {
            match check(&pem) {
                Err(TokenError::UnknownKeyId) => {}
                other => return other,
            }
        }
        self.keys
            .with_ring(check)
            .unwrap_or(Err(TokenError::UnknownKeyId))
    }

    /// How long a copy of the revocations is used before new entries are read.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// The keys, when they come from a JWK Set.
    pub fn remote_keys(&self) -> Option<&Arc<RemoteKeys>> {
        match &self.keys {
            KeySource::Remote(r) => Some(r),
            KeySource::Local(_) => None,
        }
    }
}

/// The answer without a valid token: 401 in required mode, else 200 as `anon`; with the
/// outcome code either way.
pub(crate) fn refusal(required: bool, code: &'static str) -> Response {
    let status = (STATUS, HeaderValue::from_static(code));
    if required {
        return (
            StatusCode::UNAUTHORIZED,
            [
                (
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(if code == "none" {
                        "Bearer"
                    } else {
                        // RFC 6750 §3.1: a token was sent and is not valid.
                        r#"Bearer error="invalid_token""#
                    }),
                ),
                status,
            ],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [(SUBJECT, HeaderValue::from_static("anon")), status],
    )
        .into_response()
}

/// Claim names to pass upstream, from config text.
pub fn claim_names(names: &[String]) -> Result<Vec<String>, String> {
    let mut seen = BTreeMap::new();
    for n in names {
        let h = claim_header(n).ok_or_else(|| {
            format!("{n:?} is not a claim name that can be a header (letters, digits, - and _)")
        })?;
        if let Some(prev) = seen.insert(h.as_str().to_owned(), n) {
            return Err(format!("{prev:?} and {n:?} name the same header {h}"));
        }
    }
    Ok(names.to_vec())
}

/// `tessera_token_cache_hits_total`, `…_misses_total` and `tessera_token_cache_entries`,
/// read from the cache at every scrape.
#[derive(Debug)]
pub(crate) struct CacheMetrics(pub(crate) Arc<VerifiedCache>);

impl prometheus_client::collector::Collector for CacheMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        use prometheus_client::metrics::TypedMetric as _;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let s = self.0.stats();
        for (name, help, value) in [
            (
                "tessera_token_cache_hits",
                "Token checks answered by the verified-token cache (no signature check)",
                s.hits,
            ),
            (
                "tessera_token_cache_misses",
                "Token checks that were not in the verified-token cache",
                s.misses,
            ),
        ] {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, ConstCounter::<u64>::TYPE)?)?;
        }
        let g = ConstGauge::new(i64::try_from(s.entries).unwrap_or(i64::MAX));
        g.encode(encoder.encode_descriptor(
            "tessera_token_cache_entries",
            "Tokens held by the verified-token cache",
            None,
            ConstGauge::<i64>::TYPE,
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn fetch_error_codes_are_listed_and_unique() {
        let http = reqwest::Client::new().get("not a URL").build().unwrap_err();
        let all = [
            FetchError::Http(http),
            FetchError::Status(StatusCode::NOT_FOUND),
            FetchError::TooLarge,
            FetchError::File(std::io::Error::other("test")),
            FetchError::Jwks(TokenError::NoSigningKey),
            FetchError::PemFile(PathBuf::new(), std::io::Error::other("test")),
            FetchError::NoUsableKey { skipped: 1 },
            FetchError::Feed(serde_json::from_str::<Value>("{").unwrap_err()),
            FetchError::Store(tessera_core::Error::AlreadyExists),
        ];
        crate::codes::check(FetchError::CODES, all.iter().map(FetchError::code));
    }

    #[test]
    fn claim_headers_are_named_predictably() {
        assert_eq!(claim_header("rlc").unwrap().as_str(), "x-tessera-claim-rlc");
        assert_eq!(
            claim_header("Rate_Class").unwrap().as_str(),
            "x-tessera-claim-rate-class"
        );
        for bad in ["", "a b", "é", "a:b", &"x".repeat(65)] {
            assert!(claim_header(bad).is_none(), "{bad}");
        }
        assert!(claim_names(&["a_b".into(), "a-b".into()]).is_err());
        assert!(claim_names(&["rlc".into(), "groups".into()]).is_ok());
    }

    #[test]
    fn claim_values_become_header_values_or_nothing() {
        assert_eq!(
            header_value(&Value::from("authed-user")).unwrap(),
            "authed-user"
        );
        assert_eq!(header_value(&Value::from(3)).unwrap(), "3");
        assert_eq!(
            header_value(&serde_json::json!(["a", "b"])).unwrap(),
            r#"["a","b"]"#
        );
        assert!(header_value(&Value::Null).is_none());
        assert!(header_value(&Value::from("a\nb")).is_none());
    }
}
