//! `tessera verifier`: the edge verifier alone, with no store and no private key (DESIGN §1).
//!
//! It serves `GET /v1/verify` (the same answers as inside `tessera serve`), `/healthz`,
//! `/readyz` (ready once the keys and a first copy of the revocations are in) and `/metrics`.
//! Keys come from `[verify] jwks` (a URL, refetched every `jwks_refresh` and on an unknown
//! `kid` at most once per `unknown_kid_cooldown`, or a file), revocations from `[verify]
//! revocations`, the feed of the service that issues the tokens. What a token must be
//! (issuer, lifetime, cookie name) comes from `[tokens]` and `[cookie]`, as for the service.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tessera::metrics::Metrics;
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
/// `typ`), accepting every algorithm whose keys the trusted JWK Set holds. The header `alg`
/// must still be the algorithm of the key its `kid` names, and keys come only from that set,
/// so this allows exactly what the service's own allow-list (its algorithm plus those of the
/// keys it keeps) allows, without knowing its keyring.
fn edge_codec(config: &Config) -> tessera_token::Config {
    use tessera_token::Algorithm;
    config
        .tokens
        .codec([Algorithm::Ed25519, Algorithm::Es256, Algorithm::Rs256])
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
    let jwks = v.jwks.clone().ok_or_else(|| {
        fail("set [verify] jwks (TESSERA_VERIFY_JWKS) to the JWKS URL or file of the service that issues the tokens".to_owned())
    })?;
    let mut notes = Vec::new();
    let client = crate::verifier::http_client().map_err(|e| fail(e.to_string()))?;
    let remote = Arc::new(RemoteKeys::new(
        jwks.clone(),
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
    let metrics = Metrics::register(&mut registry);
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
            revocations,
            refresh: config.verify_refresh,
            keep: config.revocation_keep,
            required: config.verify_required,
            claim_headers: v.claims.clone(),
            cache: Arc::new(tessera_token::VerifiedCache::new(v.cache)),
        },
        metrics.token_validations.clone(),
    )
    .map_err(fail)?;
    let verifier = Arc::new(verifier);
    registry.register_collector(Box::new(crate::verifier::CacheMetrics(
        verifier.cache_arc(),
    )));
    let shown = match &jwks {
        JwksLocation::Url(u) => u.clone(),
        JwksLocation::File(p) => p.display().to_string(),
    };
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
/// `jwks_refresh` and the revocations every `[verify] refresh` in the background.
///
/// # Errors
///
/// An I/O error from the listener.
pub async fn serve_edge(
    listener: TcpListener,
    state: EdgeState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    if let Some(remote) = state.verifier.remote_keys().cloned() {
        let every = state.jwks_refresh;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                // A failure keeps the last good copy and is logged by `refresh`.
                let _ = remote.refresh().await;
            }
        }));
    }
    let clock = state.clock.clone();
    tasks.extend(crate::startup::spawn_revocation_refresh(
        state.verifier.clone(),
        move || clock.now().unix_secs(),
    ));
    let result = axum::serve(listener, edge_app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    for t in tasks {
        t.abort();
    }
    result
}
