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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;
use serde_json::Value;
use tessera::cookie::{self, Lookup};
use tessera::keys::TokenKeys;
use tessera::metrics::TokenOutcomeLabels;
use tessera::token::SubjectFormat;
use tessera_core::{RevokedSubject, SessionStore};
use tessera_token::{
    Config, Error as TokenError, Keyring, RevocationList, SkipReason, TrustedKeys, VerifiedCache,
};
use tokio::time::Instant;

/// The subject header of `GET /v1/verify`.
pub const SUBJECT_HEADER: &str = "x-tessera-subject";
/// The `sid` header of `GET /v1/verify`.
pub const SESSION_HEADER: &str = "x-tessera-session";
/// The outcome-code header of `GET /v1/verify`.
pub const STATUS_HEADER: &str = "x-tessera-token-status";
/// The prefix of the headers that carry configured claims (`x-tessera-claim-rlc`).
pub const CLAIM_HEADER_PREFIX: &str = "x-tessera-claim-";
/// Revocation entries read per request to the log or the feed, at most.
const FEED_BATCH: usize = 10_000;
/// The largest JWKS or revocation-feed answer accepted, in bytes.
const MAX_FETCH_BYTES: usize = 4 << 20;
/// How long one fetch of the JWKS or the feed may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the verifier's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The service's own keyring (rotation swaps keys in place).
    Local(TokenKeys),
    /// A published JWK Set, fetched and refetched.
    Remote(Arc<RemoteKeys>),
}

/// Where a JWK Set is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    /// `http://` or `https://`.
    Url(String),
    /// A file (e.g. one a deployment tool writes).
    File(PathBuf),
}

/// Where the verifier's revocations come from.
#[derive(Debug, Clone)]
pub enum RevocationSource {
    /// No revocation check beyond the token's own expiry.
    None,
    /// The store's revocation log (user ids mapped to `sub` with the token settings).
    Store(Arc<dyn SessionStore>, SubjectFormat),
    /// A Tessera revocation feed (`…/v1/revocations`), polled.
    Feed(String),
}

/// Keys from a JWK Set and/or PEM files, with the last good copy kept when a fetch fails.
pub struct RemoteKeys {
    location: Option<JwksLocation>,
    pem: Vec<PathBuf>,
    client: reqwest::Client,
    ring: RwLock<Option<Arc<Keyring>>>,
    /// When the set was last fetched (successfully or not), guarding refetches.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    cooldown: Duration,
    report: Mutex<KeyReport>,
}

/// What the copy in use holds, for the metrics, and which bad keys were logged already.
#[derive(Debug, Default)]
struct KeyReport {
    usable: usize,
    skipped: BTreeMap<SkipReason, usize>,
    /// Digests of the skipped entries of the last load: an entry still there at the next
    /// refresh is not logged again.
    logged: BTreeSet<[u8; 32]>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("location", &self.location)
            .field("pem", &self.pem)
            .field("loaded", &self.current().is_some())
            .finish_non_exhaustive()
    }
}

/// Why a fetch failed (logged; the verifier keeps its last copy).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed or timed out.
    #[error("request failed")]
    Http(#[source] reqwest::Error),
    /// A status other than 200 (or 304 for the feed).
    #[error("unexpected status {0}")]
    Status(StatusCode),
    /// More than the size cap.
    #[error("answer larger than {MAX_FETCH_BYTES} bytes")]
    TooLarge,
    /// The file could not be read.
    #[error("cannot read the file")]
    File(#[source] std::io::Error),
    /// Not a JWK Set this verifier can use.
    #[error("not a usable JWK Set")]
    Jwks(#[source] TokenError),
    /// A PEM file could not be read.
    #[error("cannot read the PEM file {0}")]
    PemFile(PathBuf, #[source] std::io::Error),
    /// The JWK Set and the PEM files hold no key this verifier can use (every one was
    /// skipped, or there were none).
    #[error("no usable key ({skipped} skipped)")]
    NoUsableKey {
        /// How many keys were skipped.
        skipped: usize,
    },
    /// Not a revocation feed.
    #[error("not a revocation feed")]
    Feed(#[source] serde_json::Error),
    /// The store's revocation log failed.
    #[error("revocation log unavailable")]
    Store(#[source] tessera_core::Error),
}

impl FetchError {
    /// Every code [`FetchError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "fetch-http",
        "fetch-status",
        "fetch-too-large",
        "fetch-file",
        "fetch-jwks",
        "fetch-pem-file",
        "fetch-no-usable-key",
        "fetch-feed",
        "fetch-store",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Http(_) => "fetch-http",
            Self::Status(_) => "fetch-status",
            Self::TooLarge => "fetch-too-large",
            Self::File(_) => "fetch-file",
            Self::Jwks(_) => "fetch-jwks",
            Self::PemFile(..) => "fetch-pem-file",
            Self::NoUsableKey { .. } => "fetch-no-usable-key",
            Self::Feed(_) => "fetch-feed",
            Self::Store(_) => "fetch-store",
        }
    }
}

/// An HTTP client for the JWKS and the feed: bounded time, no redirects to elsewhere.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tessera-verifier/", env!("CARGO_PKG_VERSION")))
        .build()
}

async fn get_bounded(
    client: &reqwest::Client,
    url: &str,
    etag: Option<&str>,
) -> Result<Option<(Vec<u8>, Option<String>)>, FetchError> {
    let mut req = client.get(url);
    if let Some(e) = etag {
        req = req.header(header::IF_NONE_MATCH, e);
    }
    let mut resp = req.send().await.map_err(FetchError::Http)?;
    if resp.status() == StatusCode::NOT_MODIFIED && etag.is_some() {
        return Ok(None);
    }
    if resp.status() != StatusCode::OK {
        return Err(FetchError::Status(resp.status()));
    }
    let etag = resp
        .headers()
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(FetchError::Http)? {
        if body.len() + chunk.len() > MAX_FETCH_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some((body, etag)))
}

impl RemoteKeys {
    /// Keys from the JWK Set at `location` (if any) and the PEM files `pem`, none loaded yet
    /// (call [`RemoteKeys::refresh`]). A refetch on an unknown `kid` happens at most once per
    /// `cooldown`.
    pub fn new(
        location: Option<JwksLocation>,
        pem: Vec<PathBuf>,
        client: reqwest::Client,
        cooldown: Duration,
    ) -> Self {
        Self {
            location,
            pem,
            client,
            ring: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
            cooldown,
            report: Mutex::new(KeyReport::default()),
        }
    }

    /// Whether the copy in use has at least one key.
    pub fn has_usable_key(&self) -> bool {
        self.current().is_some_and(|r| r.keys().next().is_some())
    }

    /// The last good copy.
    pub fn current(&self) -> Option<Arc<Keyring>> {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn fetch(&self) -> Result<Keyring, FetchError> {
        let mut keys = TrustedKeys::new();
        if let Some(location) = &self.location {
            let body = match location {
                JwksLocation::Url(url) => {
                    get_bounded(&self.client, url, None)
                        .await?
                        .ok_or(FetchError::Status(StatusCode::NOT_MODIFIED))?
                        .0
                }
                JwksLocation::File(path) => {
                    let body = tokio::fs::read(path).await.map_err(FetchError::File)?;
                    if body.len() > MAX_FETCH_BYTES {
                        return Err(FetchError::TooLarge);
                    }
                    body
                }
            };
            keys.add_jwks(&body).map_err(FetchError::Jwks)?;
        }
        for path in &self.pem {
            // A file that cannot be read fails the whole load (the last copy stays): a
            // deployment replacing it must not leave the edge without its keys.
            let text = tokio::fs::read(path)
                .await
                .map_err(|e| FetchError::PemFile(path.clone(), e))?;
            if text.len() > MAX_FETCH_BYTES {
                return Err(FetchError::TooLarge);
            }
            keys.add_pem(&path.display().to_string(), &text);
        }
        let usable = keys.usable();
        let (ring, skipped) = keys.build().map_err(FetchError::Jwks)?;
        let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
        let mut logged = BTreeSet::new();
        for s in &skipped {
            // Logged once: an entry that was bad at the last load as well is not again.
            if !report.logged.contains(&s.digest) {
                tracing::warn!(
                    code = "verifier-key-skipped",
                    location = %s.location,
                    kid = s.kid.as_deref().unwrap_or(""),
                    reason = s.reason.as_str(),
                    error = %s.error,
                    "a key of the trusted set cannot be used; skipped, the others verify"
                );
            }
            logged.insert(s.digest);
        }
        report.logged = logged;
        if usable == 0 {
            return Err(FetchError::NoUsableKey {
                skipped: skipped.len(),
            });
        }
        report.usable = usable;
        report.skipped = BTreeMap::new();
        for s in &skipped {
            *report.skipped.entry(s.reason).or_default() += 1;
        }
        Ok(ring)
    }

    /// Fetches the set now and keeps it if it is usable; on failure the last good copy
    /// stays.
    ///
    /// # Errors
    ///
    /// Why the fetch failed.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        let mut last = self.last_attempt.lock().await;
        self.refresh_locked(&mut last).await
    }

    async fn refresh_locked(&self, last: &mut Option<Instant>) -> Result<(), FetchError> {
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(ring) => {
                let kids: Vec<String> = ring.keys().map(|k| k.kid.to_string()).collect();
                tracing::debug!(?kids, "loaded the JWKS");
                *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(ring));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, source = ?std::error::Error::source(&e).map(ToString::to_string), "cannot load the keys; keeping the last copy");
                Err(e)
            }
        }
    }

    /// After an unknown `kid`: refetches unless the last attempt is more recent than the
    /// cooldown (so forged kids cannot make the verifier hammer the JWKS). Whether a new copy
    /// was loaded.
    async fn refetch_for_unknown_kid(&self) -> bool {
        let Ok(mut last) = self.last_attempt.try_lock() else {
            // Someone is fetching right now: wait for that copy instead of fetching again.
            let _ = self.last_attempt.lock().await;
            return true;
        };
        if last.is_some_and(|t| t.elapsed() < self.cooldown) {
            return false;
        }
        self.refresh_locked(&mut last).await.is_ok()
    }
}

impl KeySource {
    fn with_ring<R>(&self, f: impl FnOnce(&Keyring) -> R) -> Option<R> {
        match self {
            Self::Local(ring) => Some(f(&ring.read())),
            Self::Remote(remote) => remote.current().map(|r| f(&r)),
        }
    }

    fn has_usable_key(&self) -> bool {
        match self {
            Self::Local(_) => self.with_ring(|r| r.keys().next().is_some()) == Some(true),
            Self::Remote(remote) => remote.has_usable_key(),
        }
    }
}

/// `tessera_verifier_keys` and `tessera_verifier_keys_skipped{reason}` of a key set, read at
/// every scrape.
#[derive(Debug)]
pub(crate) struct KeySetMetrics(pub(crate) Arc<RemoteKeys>);

impl prometheus_client::collector::Collector for KeySetMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        use prometheus_client::metrics::TypedMetric as _;
        use prometheus_client::metrics::gauge::ConstGauge;
        let (usable, skipped) = {
            let r = self.0.report.lock().unwrap_or_else(PoisonError::into_inner);
            let loaded = self.0.has_usable_key();
            (if loaded { r.usable } else { 0 }, r.skipped.clone())
        };
        let g = ConstGauge::new(i64::try_from(usable).unwrap_or(i64::MAX));
        g.encode(encoder.encode_descriptor(
            "tessera_verifier_keys",
            "Usable keys in the verifier's trusted set (JWKS and PEM files)",
            None,
            ConstGauge::<i64>::TYPE,
        )?)?;
        let mut family = encoder.encode_descriptor(
            "tessera_verifier_keys_skipped",
            "Keys of the trusted set that cannot be used and were skipped, by reason",
            None,
            ConstGauge::<i64>::TYPE,
        )?;
        for reason in SkipReason::ALL {
            let n = skipped.get(&reason).copied().unwrap_or(0);
            let labels = [("reason", reason.as_str())];
            let g = ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
            g.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The verifier's copy of the revocations.
#[derive(Debug, Default)]
struct Copy {
    list: RevocationList,
    /// When it was last brought up to date (or last tried, once a copy exists).
    fetched: Option<Instant>,
}

/// Where the copy stands in the source.
#[derive(Debug, Default)]
struct Cursor {
    next: u64,
    etag: Option<String>,
}

/// One entry of the feed, as `/v1/revocations` publishes it.
#[derive(Debug, Deserialize)]
struct FeedEntry {
    seq: u64,
    kind: String,
    id: String,
    at: i64,
}

#[derive(Debug, Deserialize)]
struct Feed {
    revocations: Vec<FeedEntry>,
    next: u64,
}

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
}

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
                h.insert(HeaderName::from_static(SUBJECT_HEADER), sub);
                // MediaWiki's own tokens bind no session: no header then.
                if !sid.is_empty() {
                    h.insert(HeaderName::from_static(SESSION_HEADER), sid);
                }
                h.insert(
                    HeaderName::from_static(STATUS_HEADER),
                    HeaderValue::from_static(id.code),
                );
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
        self.validations
            .get_or_create(&TokenOutcomeLabels { outcome: code })
            .inc();
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

    fn is_stale(&self) -> Option<bool> {
        let c = self.copy.read().unwrap_or_else(PoisonError::into_inner);
        c.fetched
            .map(|t| self.refresh.is_zero() || t.elapsed() >= self.refresh)
    }

    /// Brings the revocation copy up to date when it is older than the refresh interval.
    /// With a copy, a failure keeps the verifier on that copy (DESIGN §9) and the next try
    /// waits for the interval; without any, it fails closed.
    async fn bring_up_to_date(&self, now: i64) -> Result<(), &'static str> {
        if matches!(self.source, RevocationSource::None) {
            return Ok(());
        }
        let had_copy = match self.is_stale() {
            Some(false) => return Ok(()),
            Some(true) => true,
            None => false,
        };
        let mut cursor = if had_copy && !self.refresh.is_zero() {
            match self.cursor.try_lock() {
                Ok(c) => c,
                // Another request is reading the new entries: use the copy meanwhile.
                Err(_) => return Ok(()),
            }
        } else {
            let c = self.cursor.lock().await;
            if !self.refresh.is_zero() && self.is_stale() == Some(false) {
                return Ok(());
            }
            c
        };
        match self.pull(&mut cursor).await {
            Ok(entries) => {
                self.apply(entries, now);
                Ok(())
            }
            Err(e) if had_copy => {
                tracing::warn!(error = %e, "verifying against the last copy of the revocations");
                self.copy
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .fetched = Some(Instant::now());
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "no copy of the revocations yet; refusing tokens");
                Err("revocations_unavailable")
            }
        }
    }

    /// Reads the new revocations now. The service runs this every `refresh` in the
    /// background, so requests find the copy fresh and never wait; they fall back to
    /// reading it themselves only when it is older than that.
    ///
    /// # Errors
    ///
    /// Why the log or the feed could not be read (the copy stays as it was).
    pub async fn refresh_revocations(&self, now: i64) -> Result<(), FetchError> {
        if matches!(self.source, RevocationSource::None) {
            return Ok(());
        }
        let mut cursor = self.cursor.lock().await;
        let entries = self.pull(&mut cursor).await?;
        self.apply(entries, now);
        Ok(())
    }

    fn apply(&self, entries: Vec<(Revoked, String, i64)>, now: i64) {
        let mut copy = self.copy.write().unwrap_or_else(PoisonError::into_inner);
        for (kind, id, at) in entries {
            match kind {
                Revoked::User => copy.list.revoke_user_before(id, at),
                Revoked::Session => copy.list.revoke_session_at(id, at),
            }
        }
        copy.list.retain_since(now.saturating_sub(self.keep));
        copy.fetched = Some(Instant::now());
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

    /// The entries after the cursor, moving it: `(kind, id, at)` where a user entry's `at`
    /// revokes tokens issued strictly before it.
    async fn pull(&self, cursor: &mut Cursor) -> Result<Vec<(Revoked, String, i64)>, FetchError> {
        let mut out = Vec::new();
        match &self.source {
            RevocationSource::None => {}
            RevocationSource::Store(store, subject) => {
                let Some(log) = store.as_revocation_log() else {
                    return Ok(out);
                };
                loop {
                    let entries = log
                        .revocations_since(cursor.next, FEED_BATCH)
                        .await
                        .map_err(FetchError::Store)?;
                    let n = entries.len();
                    for (seq, r) in entries {
                        cursor.next = cursor.next.max(seq);
                        match r.subject {
                            // `iat` has whole seconds and the list revokes `iat < at`: the
                            // next whole second catches every token issued in the
                            // revocation's second (also one issued just after it, in that
                            // second: the safe side).
                            RevokedSubject::User(u) => out.push((
                                Revoked::User,
                                subject.subject(&u),
                                r.at.unix_millis().div_euclid(1000).saturating_add(1),
                            )),
                            RevokedSubject::Session(sid) => {
                                out.push((Revoked::Session, sid, r.at.unix_secs()));
                            }
                        }
                    }
                    if n < FEED_BATCH {
                        return Ok(out);
                    }
                }
            }
            RevocationSource::Feed(url) => loop {
                let sep = if url.contains('?') { '&' } else { '?' };
                let page = format!("{url}{sep}after={}&limit={FEED_BATCH}", cursor.next);
                let Some((body, etag)) =
                    get_bounded(&self.client, &page, cursor.etag.as_deref()).await?
                else {
                    return Ok(out);
                };
                let feed: Feed = serde_json::from_slice(&body).map_err(FetchError::Feed)?;
                let n = feed.revocations.len();
                for e in feed.revocations {
                    cursor.next = cursor.next.max(e.seq);
                    match e.kind.as_str() {
                        // The feed's `at` is whole seconds, "issued at or before".
                        "user" => out.push((Revoked::User, e.id, e.at.saturating_add(1))),
                        "session" => out.push((Revoked::Session, e.id, e.at)),
                        other => tracing::warn!(kind = other, "unknown revocation kind; ignored"),
                    }
                }
                cursor.next = cursor.next.max(feed.next);
                cursor.etag = etag;
                if n < FEED_BATCH {
                    return Ok(out);
                }
                cursor.etag = None;
            },
        }
        Ok(out)
    }
}

/// The answer without a valid token: 401 in required mode, else 200 as `anon`; with the
/// outcome code either way.
pub(crate) fn refusal(required: bool, code: &'static str) -> Response {
    let status = (
        HeaderName::from_static(STATUS_HEADER),
        HeaderValue::from_static(code),
    );
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
        [
            (
                HeaderName::from_static(SUBJECT_HEADER),
                HeaderValue::from_static("anon"),
            ),
            status,
        ],
    )
        .into_response()
}

#[derive(Debug, Clone, Copy)]
enum Revoked {
    User,
    Session,
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
