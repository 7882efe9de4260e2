//! Keys fetched from elsewhere: a JWK Set (URL or file) and/or PEM files, the last good copy
//! kept when a fetch fails, refetched on an unknown `kid` at most once per cooldown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::http::{StatusCode, header};
use tessera::keys::TokenKeys;
use tessera_token::{Error as TokenError, Keyring, SkipReason, TrustedKeys};
use tokio::time::Instant;

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

pub(super) async fn get_bounded(
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
    pub(super) async fn refetch_for_unknown_kid(&self) -> bool {
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
    pub(super) fn with_ring<R>(&self, f: impl FnOnce(&Keyring) -> R) -> Option<R> {
        match self {
            Self::Local(ring) => Some(f(&ring.read())),
            Self::Remote(remote) => remote.current().map(|r| f(&r)),
        }
    }

    pub(super) fn has_usable_key(&self) -> bool {
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
