//! Client-side anonymous sessions (DESIGN §4): the session lives in a cookie sealed with
//! XChaCha20-Poly1305, so reading, creating, editing and renewing it cost no store write.
//!
//! The cookie (default `__Host-tessera-anon`, the attributes of the session cookie) holds a
//! sealed value ([`tessera_token::seal`]): format version and key id in clear, the cookie's
//! name and [`PURPOSE`] as associated data, the expiry inside the plaintext. The payload is
//! JSON:
//!
//! ```text
//! {"h": <an anonymous handle>, "c": created, "r": renewed, "i": idle expiry,
//!  "a": absolute expiry (Unix milliseconds), "d": {the data}}
//! ```
//!
//! The handle is random and never leaves the seal: it is the session's identity, so CSRF
//! tokens (an HMAC over its store key) work as for stored sessions, and a session that
//! spills to the store is stored under it, so its CSRF tokens stay valid.
//!
//! Nothing is compressed before sealing (no length side channel), and every failure to open
//! (format, unknown or retired key, forgery, truncation, splice, another cookie name,
//! expiry) is one outcome: the cookie is cleared and a fresh anonymous state starts.
//! `docs/anonymous.md` has the decisions and the trade-offs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_core::{Handle, SessionKind, SessionRecord, Timestamp};
use tessera_token::seal::{SealKeyring, sealed_len};

use crate::SessionConfig;

/// The default name of the anonymous cookie (a development session cookie `tessera` gets
/// `tessera-anon` instead: `__Host-` needs `Secure`).
pub const DEFAULT_ANON_COOKIE: &str = "__Host-tessera-anon";
/// The purpose the anonymous cookie is sealed for (part of the associated data).
pub const PURPOSE: &str = "tessera-anon-v1";
/// The purpose prefix secrets are sealed for; the session's reference follows it.
pub(crate) const SECRET_PURPOSE: &str = "tessera-secret-v1:";

/// An anonymous session as its sealed cookie carries it.
#[derive(Debug, Clone)]
pub(crate) struct ClientState {
    pub(crate) handle: Handle,
    pub(crate) created_at: Timestamp,
    pub(crate) renewed_at: Timestamp,
    pub(crate) idle_expires_at: Timestamp,
    pub(crate) absolute_expires_at: Timestamp,
    pub(crate) data: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    h: String,
    c: i64,
    r: i64,
    i: i64,
    a: i64,
    d: BTreeMap<String, Value>,
}

impl ClientState {
    /// A new, empty anonymous state at `now`.
    pub(crate) fn fresh(config: &SessionConfig, now: Timestamp) -> Result<Self, getrandom::Error> {
        Ok(Self {
            handle: Handle::generate(SessionKind::Anonymous)?,
            created_at: now,
            renewed_at: now,
            idle_expires_at: now.saturating_add(config.idle_timeout),
            absolute_expires_at: now.saturating_add(config.absolute_timeout),
            data: BTreeMap::new(),
        })
    }

    /// The state as a record (version 0: it is in no store).
    pub(crate) fn record(&self) -> SessionRecord {
        SessionRecord {
            kind: SessionKind::Anonymous,
            user: None,
            claims: BTreeMap::new(),
            created_at: self.created_at,
            renewed_at: self.renewed_at,
            idle_expires_at: self.idle_expires_at,
            absolute_expires_at: self.absolute_expires_at,
            remember: false,
            data: self.data.clone(),
            secrets: BTreeMap::new(),
            expiry: tessera_core::Expiry::Default,
            version: 0,
        }
    }

    fn payload(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&Payload {
            h: self.handle.expose().to_owned(),
            c: self.created_at.unix_millis(),
            r: self.renewed_at.unix_millis(),
            i: self.idle_expires_at.unix_millis(),
            a: self.absolute_expires_at.unix_millis(),
            d: self.data.clone(),
        })
    }

    fn expires_at(&self) -> Timestamp {
        self.idle_expires_at.min(self.absolute_expires_at)
    }
}

/// Why a state was not sealed into a cookie.
#[derive(Debug)]
pub(crate) enum NotSealed {
    /// The cookie would be over the budget: the session spills to the store.
    OverBudget,
    /// Sealing failed: no sealing key, or the OS random source failed.
    Failed(crate::Error),
}

/// Seals `payload` for cookie `name` and `purpose` until `expires_at` (Unix seconds), with
/// the cause of a failure kept: no key, or the sealing itself (the OS random source).
pub(crate) fn seal_value(
    ring: &SealKeyring,
    name: &str,
    purpose: &str,
    payload: &[u8],
    expires_at: i64,
) -> crate::Result<String> {
    if ring.sealing_kid().is_none() {
        return Err(crate::Error::NoSealingKey);
    }
    ring.seal(name, purpose, payload, expires_at)
        .map_err(crate::Error::Seal)
}

/// Seals `state` into the value of cookie `name`, if `name=value` fits in `budget` bytes.
pub(crate) fn seal(
    ring: &SealKeyring,
    name: &str,
    state: &ClientState,
    budget: usize,
) -> Result<String, NotSealed> {
    let payload = zeroize::Zeroizing::new(state.payload().map_err(|_| {
        NotSealed::Failed(crate::Error::Unreachable(
            "an anonymous session's payload does not serialise",
        ))
    })?);
    if name.len() + 1 + sealed_len(payload.len()) > budget {
        return Err(NotSealed::OverBudget);
    }
    // Whole seconds, rounded up: the engine checks the exact expiry after opening.
    let exp_ms = state.expires_at().unix_millis();
    let exp = exp_ms.div_euclid(1000) + i64::from(exp_ms.rem_euclid(1000) != 0);
    seal_value(ring, name, PURPOSE, &payload, exp).map_err(NotSealed::Failed)
}

/// Opens the value of cookie `name` into a live state at `now`, with the timeouts of
/// `config` enforced (a cookie sealed under longer timeouts gets the current ones). `None`
/// for every failure alike.
pub(crate) fn open(
    ring: &SealKeyring,
    name: &str,
    value: &str,
    config: &SessionConfig,
    now: Timestamp,
) -> Option<ClientState> {
    let plain = zeroize::Zeroizing::new(ring.open(name, PURPOSE, value, now.unix_secs()).ok()?);
    let p: Payload = serde_json::from_slice(&plain).ok()?;
    let handle: Handle = p.h.parse().ok()?;
    if handle.kind() != SessionKind::Anonymous {
        return None;
    }
    let t = Timestamp::from_unix_millis;
    let (c, r, i, a) = (t(p.c), t(p.r), t(p.i), t(p.a));
    // We sealed it, so this holds unless the sealing code is wrong: refuse rather than trust.
    if !(c <= r && r <= i && i <= a) {
        return None;
    }
    let state = ClientState {
        handle,
        created_at: c,
        renewed_at: r,
        idle_expires_at: i.min(r.saturating_add(config.idle_timeout)),
        absolute_expires_at: a.min(c.saturating_add(config.absolute_timeout)),
        data: p.d,
    };
    (now < state.expires_at()).then_some(state)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tessera_token::seal::SealKey;

    use super::*;
    use crate::limits::{DEFAULT_COOKIE_BUDGET, MAX_COOKIE_BUDGET};

    const NOW: Timestamp = Timestamp::from_unix_secs(1_800_000_000);
    const NAME: &str = DEFAULT_ANON_COOKIE;

    fn ring() -> SealKeyring {
        SealKeyring::new(vec![SealKey::from_bytes([3; 32])])
    }

    #[test]
    fn a_state_round_trips_and_an_empty_one_is_small() {
        let config = SessionConfig::default();
        let mut s = ClientState::fresh(&config, NOW).unwrap();
        let v = seal(&ring(), NAME, &s, DEFAULT_COOKIE_BUDGET).unwrap();
        assert!(NAME.len() + 1 + v.len() < 300, "{}", v.len());
        s.data.insert("form".into(), serde_json::json!({"step": 2}));
        let v = seal(&ring(), NAME, &s, DEFAULT_COOKIE_BUDGET).unwrap();
        let o = open(&ring(), NAME, &v, &config, NOW).unwrap();
        assert_eq!(o.data, s.data);
        assert_eq!(o.handle, s.handle);
        assert_eq!(o.record().expires_at(), s.record().expires_at());
        assert!(open(&ring(), "other", &v, &config, NOW).is_none());
    }

    #[test]
    fn the_budget_counts_the_name_and_the_sealed_value() {
        let config = SessionConfig::default();
        let mut s = ClientState::fresh(&config, NOW).unwrap();
        s.data.insert("big".into(), Value::String("x".repeat(2500)));
        assert!(matches!(
            seal(&ring(), NAME, &s, DEFAULT_COOKIE_BUDGET),
            Err(NotSealed::OverBudget)
        ));
        let v = seal(&ring(), NAME, &s, MAX_COOKIE_BUDGET).unwrap();
        assert!(NAME.len() + 1 + v.len() <= MAX_COOKIE_BUDGET);
        assert!(matches!(
            seal(&SealKeyring::default(), NAME, &s, MAX_COOKIE_BUDGET),
            Err(NotSealed::Failed(crate::Error::NoSealingKey))
        ));
    }

    #[test]
    fn the_server_enforces_its_current_timeouts() {
        let long = SessionConfig {
            idle_timeout: Duration::from_secs(3 * 3600),
            ..SessionConfig::default()
        };
        let s = ClientState::fresh(&long, NOW).unwrap();
        let v = seal(&ring(), NAME, &s, DEFAULT_COOKIE_BUDGET).unwrap();
        let later = NOW.saturating_add(Duration::from_secs(3600));
        assert!(open(&ring(), NAME, &v, &long, later).is_some());
        // Under the default 30-minute idle timeout the same cookie is dead after an hour.
        assert!(open(&ring(), NAME, &v, &SessionConfig::default(), later).is_none());
        let end = NOW.saturating_add(Duration::from_secs(3 * 3600));
        assert!(open(&ring(), NAME, &v, &long, end).is_none(), "expired");
    }
}
