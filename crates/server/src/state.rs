use std::fmt;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tessera::cookie::CookieConfig;
use tessera::csrf::CsrfKeySet;
use tessera::metrics::Metrics;
use tessera::{Engine, SessionConfig, Stores};
use tessera_core::{Clock, SessionKind};

use crate::config::Limits;
use crate::http_metrics::HttpMetrics;
use crate::kask::KaskSettings;
use crate::verifier::{KeySource, RemoteKeys, RevocationSource, Verifier, VerifierSettings};

/// The management API keys, kept as SHA-256 digests and compared in constant time, so
/// neither the key's content nor its length leaks through timing.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<[u8; 32]>);

impl ApiKeys {
    /// Keys from their text.
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        Self(
            keys.into_iter()
                .map(|k| Sha256::digest(k.as_ref().as_bytes()).into())
                .collect(),
        )
    }

    /// Whether `presented` is one of the keys. Every key is compared, always.
    pub fn accepts(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut ok = subtle::Choice::from(0);
        for k in &self.0 {
            ok |= k.ct_eq(&d);
        }
        ok.into()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (then every management request is refused).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys, REDACTED)", self.0.len())
    }
}

/// Everything a request handler needs, shared by all requests.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    clock: Arc<dyn Clock>,
    api_keys: ApiKeys,
    limits: Limits,
    registry: Registry,
    http: HttpMetrics,
    access_log: bool,
    kask: KaskSettings,
    kv: crate::kv::KvSettings,
    revocation_keep: std::time::Duration,
    verify_required: bool,
    /// The edge verifier over the engine's keyring (and `[verify] public_keys`) and store
    /// (none without tokens or public keys).
    verifier: Option<Arc<Verifier>>,
    /// The redb stores by label, for `GET /v1/admin/backup`.
    redb: Vec<(&'static str, Arc<tessera_store_redb::RedbStore>)>,
    /// One backup at a time: each copy takes the store's size on disk until it is sent.
    backup_slot: Arc<tokio::sync::Semaphore>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("engine", &self.engine)
            .field("api_keys", &self.api_keys)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What [`AppState::new`] needs besides the stores.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Session lifetimes and limits.
    pub session: SessionConfig,
    /// The session cookie.
    pub cookie: CookieConfig,
    /// Request limits.
    pub limits: Limits,
    /// The Kask-compatible API.
    pub kask: KaskSettings,
    /// The keyed store on `/v1/kv`.
    pub kv: crate::kv::KvSettings,
    /// How long revocations stay in the feed: the longest token lifetime plus skew.
    pub revocation_keep: std::time::Duration,
    /// Session tokens, if on.
    pub tokens: Option<tessera::token::TokenSettings>,
    /// Whether `GET /v1/verify` answers 401 without a valid token.
    pub verify_required: bool,
    /// How long `GET /v1/verify` reuses its copy of the revocation log before reading the
    /// new entries (zero: on every request).
    pub verify_refresh: std::time::Duration,
    /// Custom claims `GET /v1/verify` passes upstream, as `X-Tessera-Claim-<name>`.
    pub verify_claims: Vec<String>,
    /// The claims `GET /v1/verify` requires ([`tessera_token::ClaimSet::MediaWiki`] with
    /// the MediaWiki profile).
    pub verify_claim_set: tessera_token::ClaimSet,
    /// Keys given as PEM files that `GET /v1/verify` also accepts (`[verify] public_keys`).
    pub verify_pem: Option<VerifyPem>,
    /// The sealing keys of anonymous cookies and secrets (`None`: fresh keys in memory,
    /// lost at restart).
    pub seal_keys: Option<tessera::keys::SealKeys>,
    /// The redb stores whose group commit `/metrics` shows and that `GET /v1/admin/backup`
    /// copies, each with its `store` label (`session`, `anonymous`).
    /// [`crate::startup::prepare`] fills it.
    pub redb_stores: Vec<(&'static str, Arc<tessera_store_redb::RedbStore>)>,
    /// Whether every request gets an access line (`[server] access_log`, default on).
    pub access_log: bool,
    /// Whether the token keys rotate on a schedule (`[tokens] rotate`): `/metrics` then
    /// shows the time to the signing key's next rotation.
    pub token_rotation: bool,
}

/// `[verify] public_keys` inside the service: the keys, and what `GET /v1/verify` needs when
/// the service issues no tokens of its own (`[tokens] enabled = false`).
#[derive(Debug, Clone)]
pub struct VerifyPem {
    /// The keys, loaded (and reloaded) from their files.
    pub keys: Arc<RemoteKeys>,
    /// What a token must be when tokens are off (else the engine's codec is used).
    pub codec: tessera_token::Config,
    /// The token cookie's name when tokens are off.
    pub cookie_name: String,
    /// How user ids of the revocation log become `sub`, when tokens are off.
    pub subject: tessera::token::SubjectFormat,
    /// The verified-token cache's size, when tokens are off.
    pub cache: usize,
}

impl AppState {
    /// Builds the engine and the metrics registry.
    ///
    /// # Errors
    ///
    /// [`tessera::Error::Config`] if the session configuration is inconsistent.
    pub fn new(
        stores: Stores,
        settings: Settings,
        csrf: impl Into<CsrfKeySet>,
        api_keys: ApiKeys,
        clock: Arc<dyn Clock>,
    ) -> tessera::Result<Self> {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let http = HttpMetrics::register(&mut registry);
        let validations = metrics.token_validations.clone();
        let authenticated = stores.for_kind(SessionKind::Authenticated).clone();
        let mut builder = Engine::builder(stores)
            .with_config(settings.session)
            .with_cookie(settings.cookie)
            .with_csrf_keys(csrf.into())
            .with_metrics(metrics)
            .with_clock(clock.clone());
        if let Some(t) = settings.tokens {
            builder = builder.with_tokens(t);
        }
        builder = match settings.seal_keys {
            Some(k) => builder.with_seal_keys(k),
            None => builder.ephemeral_keys(),
        };
        let engine = builder.build()?;
        let pem = settings.verify_pem.clone();
        let verifier_settings = match (engine.tokens(), pem) {
            (Some(t), pem) => Some(VerifierSettings {
                config: t
                    .config
                    .clone()
                    .with_claim_set(settings.verify_claim_set.clone()),
                cookie_name: t.cookie.name().to_owned(),
                keys: KeySource::Local(t.keyring.clone()),
                pem_keys: pem.map(|p| p.keys),
                revocations: RevocationSource::Store(authenticated, t.subject.clone()),
                refresh: settings.verify_refresh,
                keep: settings.revocation_keep,
                required: settings.verify_required,
                claim_headers: settings.verify_claims.clone(),
                cache: t.cache.clone(),
            }),
            // Tokens off, public keys on: a verifier of the issuer's tokens only.
            (None, Some(p)) => Some(VerifierSettings {
                config: p.codec.with_claim_set(settings.verify_claim_set.clone()),
                cookie_name: p.cookie_name,
                keys: KeySource::Remote(p.keys),
                pem_keys: None,
                revocations: RevocationSource::Store(authenticated, p.subject),
                refresh: settings.verify_refresh,
                keep: settings.revocation_keep,
                required: settings.verify_required,
                claim_headers: settings.verify_claims.clone(),
                cache: Arc::new(tessera_token::VerifiedCache::new(p.cache)),
            }),
            (None, None) => None,
        };
        let verifier = verifier_settings
            .map(|s| Verifier::new(s, validations))
            .transpose()
            .map_err(|e| tessera::Error::Config(format!("verify: {e}")))?
            .map(Arc::new);
        if let Some(v) = &verifier {
            registry.register_collector(Box::new(crate::verifier::CacheMetrics(v.cache_arc())));
        }
        if let Some(p) = &settings.verify_pem {
            registry.register_collector(Box::new(crate::verifier::KeySetMetrics(p.keys.clone())));
        }
        registry.register_collector(Box::new(crate::key_metrics::KeyAgeMetrics {
            clock: clock.clone(),
            signing: engine
                .tokens()
                .map(|t| (t.keyring.clone(), settings.token_rotation)),
            sealing: engine.seal_keys().clone(),
        }));
        let redb = settings.redb_stores.clone();
        if !settings.redb_stores.is_empty() {
            registry.register_collector(Box::new(crate::store_metrics::CommitMetrics(
                settings.redb_stores,
            )));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                clock,
                api_keys,
                limits: settings.limits,
                registry,
                http,
                access_log: settings.access_log,
                kask: settings.kask,
                kv: settings.kv,
                revocation_keep: settings.revocation_keep,
                verify_required: settings.verify_required,
                verifier,
                redb,
                backup_slot: Arc::new(tokio::sync::Semaphore::new(1)),
            }),
        })
    }

    /// The session engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The clock requests read "now" from.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The same clock, for a background task.
    pub(crate) fn shared_clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    pub(crate) fn api_keys(&self) -> &ApiKeys {
        &self.inner.api_keys
    }

    pub(crate) fn limits(&self) -> Limits {
        self.inner.limits
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn http(&self) -> &HttpMetrics {
        &self.inner.http
    }

    pub(crate) fn revocation_keep(&self) -> std::time::Duration {
        self.inner.revocation_keep
    }

    pub(crate) fn verify_required(&self) -> bool {
        self.inner.verify_required
    }

    /// The edge verifier, when tokens are on.
    pub fn verifier(&self) -> Option<&Arc<Verifier>> {
        self.inner.verifier.as_ref()
    }

    /// The redb store labelled `label` (`session`, `anonymous`), if that store is redb.
    pub(crate) fn redb_store(&self, label: &str) -> Option<Arc<tessera_store_redb::RedbStore>> {
        self.inner
            .redb
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, s)| s.clone())
    }

    /// The permit to make a backup, if no other backup is being made or sent.
    pub(crate) fn backup_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.inner.backup_slot.clone().try_acquire_owned().ok()
    }

    pub(crate) fn access_log(&self) -> bool {
        self.inner.access_log
    }

    pub(crate) fn kask(&self) -> KaskSettings {
        self.inner.kask
    }

    pub(crate) fn kv(&self) -> crate::kv::KvSettings {
        self.inner.kv
    }

    /// Whether the headers carry a valid management API key (`Authorization: Bearer`).
    pub(crate) fn bearer_ok(&self, headers: &axum::http::HeaderMap) -> bool {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| self.api_keys().accepts(k.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_match_exactly() {
        let keys = ApiKeys::new(["k".repeat(32), "z".repeat(40)]);
        assert!(keys.accepts(&"k".repeat(32)));
        assert!(keys.accepts(&"z".repeat(40)));
        assert!(!keys.accepts(&"k".repeat(31)));
        assert!(!keys.accepts(""));
        assert!(!ApiKeys::default().accepts(""));
        assert!(!format!("{keys:?}").contains("kkkk"));
    }
}
