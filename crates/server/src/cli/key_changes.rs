//! What `tessera keys generate | rotate | revoke | list` do to each kind of key, in memory:
//! the same for a key directory (`keys.rs`, under its lock) and for the store
//! (`stored_keys.rs`, under the rotation lease, written by compare-and-set).

use std::path::Path;

use serde_json::{Value, json};
use tessera::csrf::{CsrfKeyring, CsrfPolicy};
use tessera_token::seal::{SealKey, SealKeyring, SealPolicy};
use tessera_token::{KeyId, KeySource, Keyring, RotationPolicy};

use super::{KeyKind, Result, print_json};
use crate::keys::{self, KeysError, RotateOptions};

/// Every kind of key of a node or a fleet, as one command changes them.
pub(super) struct KeySet<'a> {
    /// The token signing keys (`None` in a directory, where `KeyDir` changes them).
    pub(super) tokens: Option<&'a mut Keyring>,
    /// The sealing keys.
    pub(super) seal: &'a mut SealKeyring,
    /// The CSRF keys.
    pub(super) csrf: &'a mut CsrfKeyring,
}

/// What a change did: whether the keys must be written, and what to print.
#[derive(Debug, Default)]
pub(super) struct Changed {
    pub(super) changed: bool,
    pub(super) lines: Vec<String>,
    /// Said on standard error after the lines.
    pub(super) warning: Option<&'static str>,
}

impl Changed {
    #[allow(clippy::print_stdout)]
    pub(super) fn print(&self) {
        for l in &self.lines {
            println!("{l}");
        }
        if let Some(w) = self.warning {
            eprintln!("warning: {w}");
        }
    }
}

/// The policies the keys are made under.
pub(super) struct Policies<'a> {
    pub(super) tokens: RotationPolicy,
    pub(super) seal: SealPolicy,
    pub(super) csrf: CsrfPolicy,
    pub(super) key_source: &'a mut dyn KeySource,
}

fn signing<'b>(tokens: &'b mut Option<&mut Keyring>) -> Result<&'b mut Keyring> {
    // In a directory the signing keys go through `KeyDir`, never here.
    tokens
        .as_deref_mut()
        .ok_or_else(|| KeysError::InvalidInput("no signing keys here".into()).into())
}

fn random<T>(r: std::result::Result<T, getrandom::Error>) -> Result<T> {
    r.map_err(|e| KeysError::Random(e).into())
}

/// `keys generate --kind sealing|csrf`: one fresh key used from `now`, replacing the others.
pub(super) fn generate(
    kind: KeyKind,
    set: &mut KeySet<'_>,
    p: &mut Policies<'_>,
    now: i64,
    place: &Path,
) -> Result<Changed> {
    let mut out = Changed {
        changed: true,
        ..Changed::default()
    };
    match kind {
        KeyKind::Signing => {
            let tokens = signing(&mut set.tokens)?;
            *tokens =
                Keyring::generate_at(now, p.tokens.clone(), p.key_source).map_err(|source| {
                    KeysError::Token {
                        path: place.to_owned(),
                        source,
                    }
                })?;
            let key = tokens.signing_key_at(now)?;
            out.lines.push(format!(
                "generated the signing keys: {} ({}), signing from {}",
                key.kid(),
                key.algorithm().name(),
                keys::utc(now)
            ));
            out.warning = Some(
                "any previous signing keys are gone; tokens they signed no longer verify \
                 (publish the new JWKS to your edge: `tessera keys jwks`)",
            );
        }
        KeyKind::Sealing => {
            *set.seal = SealKeyring::generate_at(now, p.seal.clone())?;
            out.lines.push(format!(
                "generated the sealing keys: {}, sealing from {}",
                set.seal.sealing_kid().unwrap_or_default(),
                keys::utc(now)
            ));
            out.warning = Some(
                "the previous sealing keys are gone: client-side anonymous sessions start \
                 afresh and stored secrets no longer open",
            );
        }
        KeyKind::Csrf => {
            *set.csrf = random(CsrfKeyring::generate_at(now, p.csrf.clone()))?;
            out.lines.push(format!(
                "generated the CSRF keys: {}, issuing from {} (the sid key is unchanged)",
                set.csrf.issuing_kid(now).unwrap_or_default(),
                keys::utc(now)
            ));
            out.warning = Some(
                "the previous CSRF keys are gone: CSRF tokens handed out before fail once \
                 (the next page brings a new one)",
            );
        }
    }
    Ok(out)
}

/// `keys rotate [--force] [--promote] --kind …` at `now`.
pub(super) fn rotate(
    kind: KeyKind,
    options: RotateOptions,
    set: &mut KeySet<'_>,
    p: &mut Policies<'_>,
    now: i64,
    place: &Path,
) -> Result<Changed> {
    let mut out = Changed::default();
    match kind {
        KeyKind::Signing => {
            let tokens = signing(&mut set.tokens)?;
            let r = keys::rotate_ring(tokens, now, options, p.key_source, place)?;
            out.changed = r.changed();
            out.lines = super::keys::report_rotation(tokens, &r, options);
            if options.promote {
                out.warning = Some(
                    "the promoted key signs now; verifiers that fetched the JWKS before it was \
                     published refuse its tokens (unknown_kid) until they fetch it again",
                );
            }
        }
        KeyKind::Sealing => {
            if options.promote {
                return Err(KeysError::InvalidInput(
                    "sealing keys seal from the moment they are made: --promote has nothing \
                     to do (use --force)"
                        .into(),
                )
                .into());
            }
            if options.force {
                let key = random(SealKey::generate())?;
                out.lines
                    .push(format!("made {}: it seals from now on", key.kid()));
                set.seal.rotate(key);
                out.changed = true;
            }
            let r = set.seal.rotate_at(now)?;
            if let Some(kid) = &r.generated {
                out.lines.push(format!("made {kid}: it seals from now on"));
            }
            for kid in &r.dropped {
                out.lines
                    .push(format!("dropped {kid} (its retention ended)"));
            }
            out.changed |= r.changed();
        }
        KeyKind::Csrf => {
            if options.force {
                match random(set.csrf.publish_next_at(now))? {
                    Some(kid) => {
                        let from = set.csrf.keys().find(|k| k.kid == kid).map(|k| k.created_at);
                        out.lines.push(format!(
                            "added {kid}: it issues from {} (every node has it first)",
                            keys::utc(from.unwrap_or(now))
                        ));
                        out.changed = true;
                    }
                    None => out
                        .lines
                        .push("a new CSRF key is already pending".to_owned()),
                }
            }
            let r = random(set.csrf.rotate_at(now))?;
            if let Some(kid) = &r.generated {
                out.lines
                    .push(format!("added {kid} (the schedule's rotation was due)"));
            }
            for kid in &r.dropped {
                out.lines
                    .push(format!("dropped {kid} (its retention ended)"));
            }
            out.changed |= r.changed();
            if options.promote {
                let kid = set.csrf.promote_next_at(now).ok_or(KeysError::NoNextKey)?;
                out.lines
                    .push(format!("promoted {kid}: it issues from now on"));
                out.warning = Some(
                    "the promoted CSRF key issues now; a node that has not read the keys again \
                     yet refuses its tokens until it does (within a minute, or [keys] refresh)",
                );
                out.changed = true;
            }
        }
    }
    if !out.changed && out.lines.is_empty() {
        out.lines.push("nothing to do: no key is due".to_owned());
    }
    Ok(out)
}

/// `keys revoke KID --kind …` at `now`.
pub(super) fn revoke(
    kind: KeyKind,
    kid: &str,
    set: &mut KeySet<'_>,
    p: &mut Policies<'_>,
    now: i64,
) -> Result<Changed> {
    let unknown = || KeysError::UnknownKey {
        kind: kind.name(),
        kid: kid.to_owned(),
    };
    let mut out = Changed {
        changed: true,
        ..Changed::default()
    };
    match kind {
        KeyKind::Signing => {
            let tokens = signing(&mut set.tokens)?;
            let id = tokens
                .keys()
                .map(|k| k.kid)
                .find(|k| k.as_str() == kid)
                .ok_or_else(unknown)?;
            let r = revoke_signing(tokens, &id, now, p.key_source)?;
            out.changed = r.changed();
            out.lines.push(if r.revoked.is_some() {
                format!("revoked {kid}: its tokens are refused (revoked) from now on")
            } else {
                format!("{kid} was revoked already")
            });
            if let Some(k) = r.promoted.as_ref().or(r.generated.as_ref()) {
                out.lines.push(format!("{k} signs from now on"));
            }
        }
        KeyKind::Sealing => {
            if set.seal.keys().all(|k| k.kid != kid) {
                return Err(unknown().into());
            }
            if set.seal.sealing_kid() == Some(kid) {
                let key = random(SealKey::generate())?;
                out.lines
                    .push(format!("made {}: it seals from now on", key.kid()));
                set.seal.rotate(key);
            }
            set.seal.remove(kid);
            out.lines.push(format!(
                "removed {kid}: what it sealed no longer opens (anonymous sessions start afresh)"
            ));
        }
        KeyKind::Csrf => {
            if set.csrf.keys().all(|k| k.kid != kid) {
                return Err(unknown().into());
            }
            if set.csrf.issuing_kid(now).as_deref() == Some(kid) {
                random(set.csrf.publish_next_at(now))?;
                if let Some(k) = set.csrf.promote_next_at(now) {
                    out.lines.push(format!("{k} issues from now on"));
                }
            }
            set.csrf.remove(kid);
            out.lines.push(format!(
                "removed {kid}: CSRF tokens it issued fail from now on"
            ));
        }
    }
    Ok(out)
}

fn revoke_signing(
    ring: &mut Keyring,
    kid: &KeyId,
    now: i64,
    keys: &mut dyn KeySource,
) -> Result<tessera_token::Rotation> {
    Ok(ring.revoke_at(kid, now, keys)?)
}

/// `keys list --kind sealing|csrf`, as a table or JSON.
#[allow(clippy::print_stdout)]
pub(super) fn list(kind: KeyKind, set: &KeySet<'_>, now: i64, json: bool) -> Result<()> {
    match kind {
        KeyKind::Signing => match &set.tokens {
            Some(t) => super::keys::print_list(t, now, json),
            None => Err(KeysError::InvalidInput("no signing keys here".into()).into()),
        },
        KeyKind::Sealing => {
            let rows: Vec<Value> = set
                .seal
                .keys()
                .map(|k| json!({"kid": k.kid, "created_at": k.created_at, "sealing": k.sealing}))
                .collect();
            if json {
                return print_json(&json!({ "keys": rows }));
            }
            println!("{:<16}  {:<20}  NOTE", "KID", "SEALS FROM (UTC)");
            for k in set.seal.keys() {
                let note = if k.sealing { "seals now" } else { "opens only" };
                println!("{:<16}  {:<20}  {note}", k.kid, keys::utc(k.created_at));
            }
            Ok(())
        }
        KeyKind::Csrf => {
            let issuing = set.csrf.issuing_kid(now);
            let rows: Vec<(String, i64, &str)> = set
                .csrf
                .keys()
                .map(|k| {
                    let state = if Some(&k.kid) == issuing.as_ref() {
                        "issuing"
                    } else if k.created_at > now {
                        "next"
                    } else {
                        "verifying"
                    };
                    (k.kid, k.created_at, state)
                })
                .collect();
            if json {
                let keys: Vec<Value> = rows
                    .iter()
                    .map(|(kid, t, s)| json!({"kid": kid, "issues_from": t, "state": s}))
                    .collect();
                return print_json(&json!({ "keys": keys }));
            }
            println!(
                "{:<16}  {:<9}  {:<20}  NOTE",
                "KID", "STATE", "ISSUES FROM (UTC)"
            );
            for (kid, t, state) in rows {
                let note = match state {
                    "issuing" => "issues now",
                    "next" => "verifies; issues from its time",
                    _ => "verifies only, for the tokens' maximum age",
                };
                println!("{kid:<16}  {state:<9}  {:<20}  {note}", keys::utc(t));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn set_up() -> (Keyring, SealKeyring, CsrfKeyring) {
        let tokens = Keyring::generate_at(
            T0,
            RotationPolicy::default(),
            &mut tessera_token::OsKeySource::default(),
        )
        .unwrap();
        let seal = SealKeyring::generate_at(T0, SealPolicy::default()).unwrap();
        let csrf = CsrfKeyring::generate_at(T0, CsrfPolicy::default()).unwrap();
        (tokens, seal, csrf)
    }

    #[test]
    fn a_forced_promoted_csrf_rotation_issues_at_once() {
        let (mut tokens, mut seal, mut csrf) = set_up();
        let first = csrf.issuing_kid(T0).unwrap();
        let mut source = tessera_token::OsKeySource::default();
        let mut p = Policies {
            tokens: RotationPolicy::default(),
            seal: SealPolicy::default(),
            csrf: CsrfPolicy::default(),
            key_source: &mut source,
        };
        let mut set = KeySet {
            tokens: Some(&mut tokens),
            seal: &mut seal,
            csrf: &mut csrf,
        };
        let options = RotateOptions {
            force: true,
            promote: true,
        };
        let out = rotate(
            KeyKind::Csrf,
            options,
            &mut set,
            &mut p,
            T0 + 5,
            Path::new("x"),
        )
        .unwrap();
        assert!(out.changed, "{out:?}");
        let now = csrf.issuing_kid(T0 + 5).unwrap();
        assert_ne!(now, first, "{:?}", csrf.keys().collect::<Vec<_>>());
        // Revoking the issuing key makes another issue at once.
        let mut set = KeySet {
            tokens: Some(&mut tokens),
            seal: &mut seal,
            csrf: &mut csrf,
        };
        revoke(KeyKind::Csrf, &now, &mut set, &mut p, T0 + 6).unwrap();
        assert!(csrf.keys().all(|k| k.kid != now));
        assert!(csrf.issuing_kid(T0 + 6).is_some());
        // A sealing key revoked: it opens nothing any more; a new one seals.
        let old = seal.sealing_kid().unwrap().to_owned();
        let v = seal.seal("c", "p", b"x", T0 + 100).unwrap();
        let mut set = KeySet {
            tokens: Some(&mut tokens),
            seal: &mut seal,
            csrf: &mut csrf,
        };
        revoke(KeyKind::Sealing, &old, &mut set, &mut p, T0 + 7).unwrap();
        assert_ne!(seal.sealing_kid(), Some(old.as_str()));
        assert!(seal.open("c", "p", &v, T0 + 8).is_err());
        // A signing key revoked: its tokens fail as revoked; another key signs.
        let kid = tokens.signing_key_at(T0 + 9).unwrap().kid().to_string();
        let mut set = KeySet {
            tokens: Some(&mut tokens),
            seal: &mut seal,
            csrf: &mut csrf,
        };
        revoke(KeyKind::Signing, &kid, &mut set, &mut p, T0 + 9).unwrap();
        assert_ne!(
            tokens.signing_key_at(T0 + 10).unwrap().kid().to_string(),
            kid
        );
        let mut set = KeySet {
            tokens: Some(&mut tokens),
            seal: &mut seal,
            csrf: &mut csrf,
        };
        assert!(revoke(KeyKind::Csrf, "nope", &mut set, &mut p, T0).is_err());
    }
}
