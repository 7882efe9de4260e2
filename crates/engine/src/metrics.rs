//! Prometheus metrics of the engine. The families are registered into a caller's registry,
//! so tests and several engines in one process never share global state.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of `tessera_store_operations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreOpLabels {
    /// `memory`, `redb`, ...
    pub backend: &'static str,
    /// `anonymous` or `authenticated`.
    pub kind: &'static str,
    /// `read`, `write` or `delete`.
    pub op: &'static str,
    /// `ok`, `miss`, `conflict`, `not_found`, `exists` or `error`.
    pub outcome: &'static str,
}

/// Labels of `tessera_session_writes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `anonymous` or `authenticated`.
    pub kind: &'static str,
    /// Why the engine wrote: `create`, `update`, `renew`, `login`, `logout`, `revoke`,
    /// `spill` (an anonymous session moved from its cookie to the store).
    pub reason: &'static str,
}

/// Labels of `tessera_session_operations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// `resolve`, `update`, `login`, `logout`, `csrf_check`, `list`, `revoke`, `revoke_all`.
    pub op: &'static str,
    /// What happened, e.g. `loaded`, `renewed`, `created`, `none`, `ended`, or an error code.
    pub outcome: &'static str,
}

/// Labels of `tessera_token_validations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenOutcomeLabels {
    /// The outcome code of DESIGN §5 (`ok`, `soft_expired`, `bad_signature`, ...).
    pub outcome: &'static str,
}

/// Labels of `tessera_anonymous_cookies_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnonLabels {
    /// `sealed` (a cookie issued: new, edited or renewed), `opened`, `refused` (did not
    /// open: tampered, expired, another name, a dropped key), `spilled` (moved to the store),
    /// `promoted` (carried into a login).
    pub event: &'static str,
}

/// Labels of `tessera_tokens_issued_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlgLabels {
    /// The signing key's algorithm.
    pub alg: &'static str,
}

/// The engine's counters: made by [`Metrics::register`], so they are always in a registry
/// (an engine built without them registers its own, [`Engine::registry`](crate::Engine::registry)).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `tessera_store_operations_total{backend,kind,op,outcome}`.
    pub store_operations: Family<StoreOpLabels, Counter>,
    /// `tessera_session_writes_total{kind,reason}`.
    pub session_writes: Family<WriteLabels, Counter>,
    /// `tessera_session_operations_total{op,outcome}`.
    pub session_operations: Family<OpLabels, Counter>,
    /// `tessera_session_conflict_retries_total`.
    pub conflict_retries: Counter,
    /// `tessera_token_validations_total{outcome}`.
    pub token_validations: Family<TokenOutcomeLabels, Counter>,
    /// `tessera_tokens_issued_total{alg}`.
    pub tokens_issued: Family<AlgLabels, Counter>,
    /// `tessera_anonymous_cookies_total{event}`: client-side anonymous sessions, which
    /// never show in the store counters.
    pub anonymous_cookies: Family<AnonLabels, Counter>,
}

impl Metrics {
    /// Fresh counters, registered into `registry` under the `tessera` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            store_operations: Family::default(),
            session_writes: Family::default(),
            session_operations: Family::default(),
            conflict_retries: Counter::default(),
            token_validations: Family::default(),
            tokens_issued: Family::default(),
            anonymous_cookies: Family::default(),
        };
        registry.register(
            "tessera_store_operations",
            "Store operations by backend, session kind, operation and outcome",
            m.store_operations.clone(),
        );
        registry.register(
            "tessera_session_writes",
            "Session writes by session kind and reason",
            m.session_writes.clone(),
        );
        registry.register(
            "tessera_session_operations",
            "Session API operations by operation and outcome",
            m.session_operations.clone(),
        );
        registry.register(
            "tessera_session_conflict_retries",
            "Compare-and-set conflicts the engine retried",
            m.conflict_retries.clone(),
        );
        registry.register(
            "tessera_token_validations",
            "Session token checks by outcome code",
            m.token_validations.clone(),
        );
        registry.register(
            "tessera_tokens_issued",
            "Session tokens issued by algorithm",
            m.tokens_issued.clone(),
        );
        registry.register(
            "tessera_anonymous_cookies",
            "Client-side anonymous session cookies by event",
            m.anonymous_cookies.clone(),
        );
        m
    }

    pub(crate) fn anon(&self, event: &'static str) {
        self.anonymous_cookies
            .get_or_create(&AnonLabels { event })
            .inc();
    }

    pub(crate) fn op(&self, op: &'static str, outcome: &'static str) {
        self.session_operations
            .get_or_create(&OpLabels { op, outcome })
            .inc();
    }
}
