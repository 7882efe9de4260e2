//! `tessera verifier`: the edge verifier alone, with no store and no private key (DESIGN §1).
//!
//! It serves `GET /v1/verify` (the same answers as inside `tessera serve`), `/healthz`,
//! `/readyz` (ready once a usable key and a first copy of the revocations are in) and
//! `/metrics`. Keys come from `[verify] jwks` (a URL, refetched every `jwks_refresh` and on an
//! unknown `kid` at most once per `unknown_kid_cooldown`, or a file) and/or `[verify]
//! public_keys` (PEM files, read again on the same schedule, which also verify tokens without
//! a `kid`, such as MediaWiki's), revocations from `[verify] revocations`, the feed of the
//! service that issues the tokens, or `"none"`. What a token must be (issuer, lifetime,
//! cookie name, MediaWiki's claims with `profile = "mediawiki"`) comes from `[tokens]` and
//! `[cookie]`, as for the service.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tessera::metrics::TokenOutcomeLabels;
use tessera_core::Clock;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::problem::ApiError;
use crate::startup::StartupError;
use crate::verifier::{
    JwksLocation, KeySource, RemoteKeys, RevocationSource, Verifier, VerifierSettings,
};

/// The verifier-only service's state.
#[derive(Debug, Clone)]
pub struct EdgeState {
    verifier: Arc<Verifier>,
    clock: Arc<dyn Clock>,
    registry: Arc<Registry>,
    jwks_refresh: std::time::Duration,
}

impl EdgeState {
    /// The verifier.
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }
}

/// The verifier-only router.
pub fn edge_app(state: EdgeState) -> Router {
    Router::new()
        .route("/v1/verify", get(verify))
        .route("/healthz", get(crate::api::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}

async fn verify(State(s): State<EdgeState>, headers: HeaderMap) -> Response {
    s.verifier
        .respond(&headers, s.clock.now().unix_secs())
        .await
}

async fn readyz(State(s): State<EdgeState>) -> Response {
    if s.verifier.ready() {
        "ready\n".into_response()
    } else {
        ApiError::verifier_not_ready().into_response()
    }
}

async fn metrics(State(s): State<EdgeState>) -> Response {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &s.registry).is_err() {
        return ApiError::internal().into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// What a token must be at the edge: the service's `[tokens]` settings (issuer, lifetime,
/// `typ`, and MediaWiki's claim set with the MediaWiki profile), accepting every algorithm
/// whose keys the trusted set holds. The header `alg` must still be the algorithm of the key
/// its `kid` names (or, without a `kid`, of a PEM key), and keys come only from that set, so
/// this allows exactly what the service's own allow-list (its algorithm plus those of the
/// keys it keeps) allows, without knowing its keyring.
fn edge_codec(config: &Config) -> tessera_token::Config {
    use tessera_token::Algorithm;
    let codec = config
        .tokens
        .codec([Algorithm::Ed25519, Algorithm::Es256, Algorithm::Rs256]);
    codec.with_claim_set(verify_claim_set(config))
}

/// The claims `GET /v1/verify` requires: MediaWiki's (no `exp` or `sid` needed, `sub`
/// `mw:<scope>:<central id>`, `rlc` text) with `[tokens] profile = "mediawiki"`, else
/// Tessera's.
pub(crate) fn verify_claim_set(config: &Config) -> tessera_token::ClaimSet {
    use crate::config::TokenProfile;
    use tessera::token::SubjectFormat;
    match (config.tokens.profile, &config.tokens.subject) {
        (Some(TokenProfile::MediaWiki), SubjectFormat::Prefixed(p)) => {
            tessera_token::ClaimSet::mediawiki(p.clone())
        }
        (Some(TokenProfile::MediaWiki), _) => tessera_token::ClaimSet::mediawiki(""),
        _ => tessera_token::ClaimSet::Tessera,
    }
}

/// The verifier for `config`'s `[verify] jwks` and `revocations`, with a first attempt at
/// loading both (a failure is reported in the notes and retried while serving).
///
/// # Errors
///
/// [`StartupError::Verifier`] when `[verify] jwks` is not set or the settings are unusable.
pub async fn prepare_edge(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<(EdgeState, Vec<String>), StartupError> {
    let fail = |m: String| StartupError::Verifier(m);
    let v = &config.verify;
    if v.jwks.is_none() && v.public_keys.is_empty() {
        return Err(fail("set [verify] jwks (TESSERA_VERIFY_JWKS) to the JWKS URL or file of the service that issues the tokens, or [verify] public_keys (TESSERA_VERIFY_PUBLIC_KEYS) to the issuer's PEM public keys".to_owned()));
    }
    if v.revocations.is_none() {
        return Err(fail("set [verify] revocations (TESSERA_VERIFY_REVOCATIONS) to the revocation feed of the service that issues the tokens (…/v1/revocations), or to \"none\" to check no revocations (MediaWiki publishes none)".to_owned()));
    }
    let mut notes = Vec::new();
    let client = crate::verifier::http_client().map_err(|e| fail(e.to_string()))?;
    let remote = Arc::new(RemoteKeys::new(
        v.jwks.clone(),
        v.public_keys.clone(),
        client,
        v.unknown_kid_cooldown,
    ));
    let revocations = match v.revocations.clone().flatten() {
        Some(url) => RevocationSource::Feed(url),
        None => {
            notes.push(
                "WARNING: no revocation feed ([verify] revocations = \"none\"): tokens of ended sessions pass until they expire".to_owned(),
            );
            RevocationSource::None
        }
    };
    let mut registry = Registry::default();
    // Only the token checks: the engine's other counters (sessions, stores) would show here
    // as zeros for things a verifier never does.
    let validations = Family::<TokenOutcomeLabels, Counter>::default();
    registry.register(
        "tessera_token_validations",
        "Session token checks by outcome code",
        validations.clone(),
    );
    let cookie_name = config
        .tokens
        .cookie_name
        .clone()
        .unwrap_or_else(|| tessera::token::default_cookie_name(&config.cookie));
    let verifier = Verifier::new(
        VerifierSettings {
            config: edge_codec(config),
            cookie_name,
            keys: KeySource::Remote(remote.clone()),
            pem_keys: None,
            revocations,
            refresh: config.verify_refresh,
            keep: config.revocation_keep,
            required: config.verify_required,
            claim_headers: v.claims.clone(),
            cache: Arc::new(tessera_token::VerifiedCache::new(v.cache)),
        },
        validations,
    )
    .map_err(fail)?;
    let verifier = Arc::new(verifier);
    registry.register_collector(Box::new(crate::verifier::CacheMetrics(
        verifier.cache_arc(),
    )));
    registry.register_collector(Box::new(crate::verifier::KeySetMetrics(remote.clone())));
    crate::logs::register_suppressed(&mut registry);
    let shown = v
        .jwks
        .iter()
        .map(|j| match j {
            JwksLocation::Url(u) => u.clone(),
            JwksLocation::File(p) => p.display().to_string(),
        })
        .chain(v.public_keys.iter().map(|p| p.display().to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(p) = config.tokens.profile {
        notes.push(format!("token profile {}", p.name()));
    }
    match remote.refresh().await {
        Ok(()) => notes.push(format!("keys from {shown}")),
        Err(e) => notes.push(format!(
            "WARNING: cannot load the keys from {shown} yet ({e}); retrying"
        )),
    }
    if let Err(e) = verifier.refresh_revocations(clock.now().unix_secs()).await {
        notes.push(format!(
            "WARNING: cannot read the revocation feed yet ({e}); tokens are refused until it answers"
        ));
    }
    Ok((
        EdgeState {
            verifier,
            clock,
            registry: Arc::new(registry),
            jwks_refresh: v.jwks_refresh,
        },
        notes,
    ))
}

/// Serves the verifier on `listener` until `shutdown`, refetching the JWKS every
/// `jwks_refresh` and the revocations every `[verify] refresh` in the background; requests
/// in flight get the default shutdown grace ([`serve_edge_with_grace`]).
///
/// # Errors
///
/// An I/O error from the listener.
pub async fn serve_edge(
    listener: TcpListener,
    state: EdgeState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_edge_with_grace(
        listener,
        state,
        shutdown,
        crate::config::DEFAULT_SHUTDOWN_GRACE,
    )
    .await
}

/// [`serve_edge`] with `grace` for the requests in flight at shutdown.
///
/// # Errors
///
/// An I/O error from the listener.
pub async fn serve_edge_with_grace(
    listener: TcpListener,
    state: EdgeState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    if let Some(remote) = state.verifier.remote_keys().cloned() {
        tasks.push(crate::startup::spawn_key_refresh(
            remote,
            state.jwks_refresh,
        ));
    }
    let clock = state.clock.clone();
    tasks.extend(crate::startup::spawn_revocation_refresh(
        state.verifier.clone(),
        move || clock.now().unix_secs(),
    ));
    let result = crate::startup::serve_router(listener, edge_app(state), shutdown, grace).await;
    for t in tasks {
        t.abort();
    }
    result
}
