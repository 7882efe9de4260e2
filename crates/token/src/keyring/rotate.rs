//! Rotation: the schedule ([`Keyring::rotate_at`]), publishing and promoting the next key by
//! hand, and revocation; [`Rotation`] says what changed.

use super::{Entry, KeySource, KeyState, Keyring};
use crate::error::{Error, Result};
use crate::key::{KeyId, SigningKey};

/// What a [`Keyring::rotate_at`] or [`Keyring::revoke_at`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rotation {
    /// The key that became active.
    pub promoted: Option<KeyId>,
    /// Keys that stopped signing and now only verify.
    pub retired: Vec<KeyId>,
    /// The key that was revoked.
    pub revoked: Option<KeyId>,
    /// The key that was generated (as `next`, or as `active` if nothing could sign).
    pub generated: Option<KeyId>,
    /// Retired or revoked keys whose retention ended, now gone.
    pub dropped: Vec<KeyId>,
}

impl Rotation {
    /// Whether anything changed (and the keyring should be saved).
    pub fn changed(&self) -> bool {
        self.promoted.is_some()
            || self.generated.is_some()
            || self.revoked.is_some()
            || !self.retired.is_empty()
            || !self.dropped.is_empty()
    }
}

impl Keyring {
    /// Runs the rotation schedule at `now`:
    ///
    /// 1. drops retired and revoked keys whose retention (longest token lifetime plus skew
    ///    after they stopped signing or were revoked) has ended;
    /// 2. promotes the newest `next` key whose `valid_from` has come to `active`, and
    ///    retires every other active key (discarding its private half);
    /// 3. when the active key is due to be replaced within
    ///    [`RotationPolicy::with_publish_ahead`](crate::RotationPolicy::with_publish_ahead) and no `next` key exists, generates one,
    ///    valid from `max(now + publish_ahead, active.valid_from + rotate_every)`; if no key
    ///    can sign at all, generates an `active` one valid from `now`.
    ///
    /// Call it on a schedule (more often than `publish_ahead`) and save the keyring when
    /// [`Rotation::changed`].
    ///
    /// # Errors
    ///
    /// If `keys` fails, the error is returned and **the keyring is unchanged**: the current
    /// active key keeps signing, and the next call tries again (rustls: "remains usable
    /// over temporary ticketer creation failure").
    pub fn rotate_at(&mut self, now: i64, keys: &mut dyn KeySource) -> Result<Rotation> {
        let retention = self.policy.retention();
        let expired = |e: &Entry| match e.state {
            KeyState::Retired => e.retired_at.unwrap_or(i64::MIN).saturating_add(retention) <= now,
            KeyState::Revoked => e.revoked_at.unwrap_or(i64::MIN).saturating_add(retention) <= now,
            KeyState::Next | KeyState::Active => false,
        };
        // Entries are newest first, so the first due `next` key is the newest one.
        let promote = self
            .entries
            .iter()
            .position(|e| e.state == KeyState::Next && e.valid_from <= now && e.secret.is_some());
        let signer_after = promote.or_else(|| {
            self.entries.iter().position(|e| {
                e.state == KeyState::Active && e.valid_from <= now && e.secret.is_some()
            })
        });
        let next_remains =
            self.entries.iter().enumerate().any(|(i, e)| {
                e.state == KeyState::Next && e.valid_from > now && Some(i) != promote
            });

        // Decide on and generate any new key before changing anything.
        let new_key = match signer_after.and_then(|i| self.entries.get(i)) {
            None => Some((
                keys.generate(self.policy.algorithm())?,
                KeyState::Active,
                now,
            )),
            Some(signer) if !next_remains => {
                let due = signer.valid_from.saturating_add(self.policy.rotate_every);
                if now >= due.saturating_sub(self.policy.publish_ahead) {
                    let valid_from = due.max(now.saturating_add(self.policy.publish_ahead));
                    Some((
                        keys.generate(self.policy.algorithm())?,
                        KeyState::Next,
                        valid_from,
                    ))
                } else {
                    None
                }
            }
            Some(_) => None,
        };
        if let Some((key, _, _)) = &new_key
            && self.lookup(key.kid().as_str()).is_some()
        {
            return Err(Error::InvalidKey {
                reason: "the generated key is already in the keyring",
            });
        }

        let mut out = Rotation::default();
        let promoted_kid = promote
            .and_then(|i| self.entries.get(i))
            .map(|e| e.public.kid().clone());
        for e in &mut self.entries {
            let is_promoted = promoted_kid.as_ref() == Some(e.public.kid());
            if is_promoted {
                e.state = KeyState::Active;
                out.promoted = Some(e.public.kid().clone());
            } else if promoted_kid.is_some()
                && (e.state == KeyState::Active
                    || (e.state == KeyState::Next && e.valid_from <= now))
            {
                // An older due `next` key never signed here, but another instance may have
                // promoted it: retire it rather than drop it.
                e.retire(now);
                out.retired.push(e.public.kid().clone());
            }
        }
        self.entries.retain(|e| {
            let gone = expired(e);
            if gone {
                out.dropped.push(e.public.kid().clone());
            }
            !gone
        });
        if let Some((key, state, valid_from)) = new_key {
            out.generated = Some(key.kid().clone());
            self.insert(key, state, valid_from)?;
        }
        Ok(out)
    }

    /// Starts a rotation ahead of the schedule: generates a `next` key valid from
    /// `now + publish_ahead` ([`RotationPolicy::with_publish_ahead`](crate::RotationPolicy::with_publish_ahead)) and publishes it, so
    /// verifiers that cache the JWKS learn it before it signs. [`Keyring::rotate_at`]
    /// promotes it when its `valid_from` comes, and the schedule continues from there.
    ///
    /// Nothing changes if a `next` key (with its private half) is already in the keyring:
    /// that key is the rotation in progress.
    ///
    /// # Errors
    ///
    /// What `keys` returns when it fails; the keyring is then unchanged.
    pub fn publish_next_at(&mut self, now: i64, keys: &mut dyn KeySource) -> Result<Rotation> {
        let mut out = Rotation::default();
        let pending = self
            .entries
            .iter()
            .any(|e| e.state == KeyState::Next && e.secret.is_some());
        if pending {
            return Ok(out);
        }
        let key = keys.generate(self.policy.algorithm())?;
        out.generated = Some(key.kid().clone());
        self.insert(
            key,
            KeyState::Next,
            now.saturating_add(self.policy.publish_ahead),
        )?;
        Ok(out)
    }

    /// Makes the `next` key that is due first sign now: its `valid_from` moves to `now`
    /// (if it was later), it becomes `active`, and every other active key retires (its
    /// private half discarded), as in [`Keyring::rotate_at`]. Later `next` keys stay as
    /// they are. Without a `next` key nothing changes ([`Rotation::promoted`] is `None`).
    ///
    /// # ⚠️ Warning
    ///
    /// A verifier that fetched the JWKS before the key was published does not know it and
    /// refuses the tokens it signs (`unknown_kid`) until it fetches the JWKS again. Let
    /// the schedule promote keys; promote by hand only when the old key must stop signing
    /// now (for a compromised key, [`Keyring::revoke_at`] is the right tool).
    pub fn promote_next_at(&mut self, now: i64) -> Rotation {
        let mut out = Rotation::default();
        // Entries are newest first: the last `next` key is the one due first.
        let Some(kid) = self
            .entries
            .iter()
            .rev()
            .find(|e| e.state == KeyState::Next && e.secret.is_some())
            .map(|e| e.public.kid().clone())
        else {
            return out;
        };
        for e in &mut self.entries {
            if e.public.kid() == &kid {
                e.state = KeyState::Active;
                e.valid_from = e.valid_from.min(now);
            } else if e.state == KeyState::Active
                || (e.state == KeyState::Next && e.valid_from <= now)
            {
                e.retire(now);
                out.retired.push(e.public.kid().clone());
            }
        }
        out.promoted = Some(kid);
        self.sort();
        out
    }

    fn insert(&mut self, key: SigningKey, state: KeyState, valid_from: i64) -> Result<()> {
        if self.lookup(key.kid().as_str()).is_some() {
            return Err(Error::InvalidKey {
                reason: "two keys with the same key id",
            });
        }
        self.entries
            .push(Entry::with_secret(key, state, valid_from));
        self.sort();
        Ok(())
    }

    /// Revokes key `kid` at `now`: tokens it signed fail with [`Error::KeyRevoked`] from
    /// now on, and its private half is discarded. If it was the signing key, the newest
    /// `next` key takes over at once (it is already published), or else `keys` makes a new
    /// active key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKeyId`] if there is no such key. If a replacement is needed and
    /// `keys` fails, its error is returned, **and the key is revoked all the same**:
    /// a compromised key must stop verifying even if nothing can sign until the next
    /// successful [`Keyring::rotate_at`].
    pub fn revoke_at(
        &mut self,
        kid: &KeyId,
        now: i64,
        keys: &mut dyn KeySource,
    ) -> Result<Rotation> {
        let mut out = Rotation::default();
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.public.kid() == kid)
            .ok_or(Error::UnknownKeyId)?;
        if entry.state == KeyState::Revoked {
            return Ok(out);
        }
        entry.state = KeyState::Revoked;
        entry.revoked_at = Some(now);
        entry.secret = None;
        out.revoked = Some(kid.clone());
        if self.signing_key_at(now).is_ok() {
            return Ok(out);
        }
        let next = self
            .entries
            .iter_mut()
            .find(|e| e.state == KeyState::Next && e.secret.is_some());
        if let Some(next) = next {
            next.state = KeyState::Active;
            next.valid_from = next.valid_from.min(now);
            out.promoted = Some(next.public.kid().clone());
            self.sort();
            return Ok(out);
        }
        let key = keys.generate(self.policy.algorithm())?;
        out.generated = Some(key.kid().clone());
        self.insert(key, KeyState::Active, now)?;
        Ok(out)
    }
}
