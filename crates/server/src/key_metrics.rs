//! The key-age gauges of DESIGN §8, read from the keyrings at every scrape:
//!
//! - `tessera_key_age_seconds{purpose}`: how long the key in use has been in use: the
//!   active signing key (`purpose="signing"`, since its `valid_from`) and the sealing key of
//!   anonymous cookies and secrets (`purpose="sealing"`, since it started sealing);
//! - `tessera_key_next_rotation_seconds{purpose}`: how long until the schedule replaces it
//!   (negative when a rotation is overdue: the schedule has not run or keeps failing). The
//!   signing series is there only with `[tokens] rotate` on: without it nothing rotates
//!   the signing key but `tessera keys rotate`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::TypedMetric as _;
use prometheus_client::metrics::gauge::ConstGauge;
use tessera::keys::{SealKeys, TokenKeys};
use tessera_core::Clock;
use tessera_token::KeyState;

/// The keyrings whose ages `/metrics` shows.
#[derive(Debug)]
pub(crate) struct KeyAgeMetrics {
    pub(crate) clock: Arc<dyn Clock>,
    /// The token keys and whether the schedule rotates them; `None` with tokens off.
    pub(crate) signing: Option<(TokenKeys, bool)>,
    pub(crate) sealing: SealKeys,
}

/// What the gauges say about one purpose: the key's age and the time to its replacement.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Ages {
    age: Option<i64>,
    next: Option<i64>,
}

/// The signing key at `now`: the newest active key valid from `now` or earlier; the next
/// rotation is when a pending `next` key starts signing, or else when the schedule
/// publishes and later promotes one (`valid_from + rotate_every`).
fn signing_ages(ring: &tessera_token::Keyring, rotates: bool, now: i64) -> Ages {
    let mut keys: Vec<_> = ring.keys().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.valid_from));
    let Some(active) = keys
        .iter()
        .find(|k| k.state == KeyState::Active && k.valid_from <= now && k.has_private_key)
    else {
        return Ages::default();
    };
    let every = i64::try_from(ring.policy().rotate_every().as_secs()).unwrap_or(i64::MAX);
    let next_key = keys
        .iter()
        .filter(|k| k.state == KeyState::Next && k.has_private_key)
        .map(|k| k.valid_from)
        .min();
    let due = next_key.unwrap_or_else(|| active.valid_from.saturating_add(every));
    Ages {
        age: Some(now.saturating_sub(active.valid_from)),
        next: rotates.then(|| due.saturating_sub(now)),
    }
}

fn sealing_ages(ring: &tessera_token::seal::SealKeyring, now: i64) -> Ages {
    let Some(key) = ring.keys().find(|k| k.sealing) else {
        return Ages::default();
    };
    // A keyring made from bare keys does not know when they started: nothing to say.
    if key.created_at == i64::MIN {
        return Ages::default();
    }
    let every = i64::try_from(ring.policy().rotate_every().as_secs()).unwrap_or(i64::MAX);
    Ages {
        age: Some(now.saturating_sub(key.created_at)),
        next: Some(key.created_at.saturating_add(every).saturating_sub(now)),
    }
}

impl Collector for KeyAgeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let now = self.clock.now().unix_secs();
        let signing = self
            .signing
            .as_ref()
            .map(|(ring, rotates)| signing_ages(&ring.read(), *rotates, now))
            .unwrap_or_default();
        let sealing = sealing_ages(&self.sealing.read(), now);
        let all = [("signing", signing), ("sealing", sealing)];
        for (name, help, pick) in [
            (
                "tessera_key_age_seconds",
                "How long the key in use has been in use, by purpose (signing: session tokens; \
                 sealing: anonymous cookies and secrets)",
                (|a: &Ages| a.age) as fn(&Ages) -> Option<i64>,
            ),
            (
                "tessera_key_next_rotation_seconds",
                "Seconds until the rotation schedule replaces the key in use, by purpose \
                 (negative: overdue)",
                |a: &Ages| a.next,
            ),
        ] {
            let mut family =
                encoder.encode_descriptor(name, help, None, ConstGauge::<i64>::TYPE)?;
            for (purpose, ages) in &all {
                if let Some(v) = pick(ages) {
                    ConstGauge::new(v).encode(family.encode_family(&[("purpose", *purpose)])?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tessera_token::seal::{SealKeyring, SealPolicy};
    use tessera_token::{Keyring, RotationPolicy, SigningKey};

    use super::*;

    const T0: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    #[test]
    fn signing_age_and_next_rotation_follow_the_schedule() {
        let key = |b: u8| SigningKey::ed25519_from_seed(&[b; 32]);
        let ring = Keyring::builder(RotationPolicy::default())
            .key(key(1), KeyState::Active, T0)
            .build()
            .unwrap();
        let at = signing_ages(&ring, true, T0 + DAY);
        assert_eq!(at.age, Some(DAY));
        assert_eq!(at.next, Some(29 * DAY));
        assert_eq!(signing_ages(&ring, false, T0 + DAY).next, None);
        // Overdue: negative.
        assert_eq!(signing_ages(&ring, true, T0 + 31 * DAY).next, Some(-DAY));
        // A published next key: the rotation is when it starts signing.
        let ring = Keyring::builder(RotationPolicy::default())
            .key(key(1), KeyState::Active, T0)
            .key(key(2), KeyState::Next, T0 + 29 * DAY + 5)
            .build()
            .unwrap();
        let at = signing_ages(&ring, true, T0 + 29 * DAY);
        assert_eq!((at.age, at.next), (Some(29 * DAY), Some(5)));
        // A key that is not valid yet does not sign; nothing signs: no series.
        let ring = Keyring::builder(RotationPolicy::default())
            .key(key(1), KeyState::Active, T0 + 10)
            .build()
            .unwrap();
        assert_eq!(signing_ages(&ring, true, T0), Ages::default());
    }

    #[test]
    fn sealing_age_counts_from_when_the_key_started_sealing() {
        let policy = SealPolicy::default()
            .with_rotate_every(std::time::Duration::from_secs(10 * DAY as u64));
        let mut ring = SealKeyring::generate_at(T0, policy).unwrap();
        let at = sealing_ages(&ring, T0 + 3 * DAY);
        assert_eq!((at.age, at.next), (Some(3 * DAY), Some(7 * DAY)));
        ring.rotate_at(T0 + 10 * DAY).unwrap();
        let at = sealing_ages(&ring, T0 + 11 * DAY);
        assert_eq!((at.age, at.next), (Some(DAY), Some(9 * DAY)));
        let bare = SealKeyring::new(vec![tessera_token::seal::SealKey::from_bytes([7; 32])]);
        assert_eq!(sealing_ages(&bare, T0), Ages::default());
    }
}
