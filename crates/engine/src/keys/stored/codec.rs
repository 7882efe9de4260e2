//! The plaintext of a record: the keys in and out of JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tessera_token::Keyring;
use tessera_token::seal::{SealKey, SealKeyring};
use zeroize::Zeroizing;

use super::{FORMAT, PLAINTEXT_CAPACITY, StoredKeys, StoredKeysError, StoredPolicies};
use super::{invalid, keyring_error};
use crate::csrf::{CsrfKey, CsrfKeyring, SidKey};
use crate::keys::Secret;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    format: u32,
    signing: Value,
    signing_keys: BTreeMap<String, Secret>,
    seal: Vec<PlainKey>,
    /// The sid key; `csrf` in a record of before the CSRF keys rotated, where it was the
    /// CSRF key too.
    #[serde(alias = "csrf")]
    sid: Secret,
    /// Absent in a record of before: the sid key is then the one CSRF key.
    #[serde(default)]
    csrf_keys: Vec<PlainKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainKey {
    kid: String,
    created_at: i64,
    key: Secret,
}

fn origin() -> &'static Path {
    Path::new("store:tessera/keys")
}

fn key32(secret: &Secret, what: &str) -> Result<Zeroizing<[u8; 32]>, StoredKeysError> {
    let raw = secret
        .bytes()
        .ok_or_else(|| invalid(format!("{what} is not base64url")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    if raw.len() != 32 {
        return Err(invalid(format!("{what} is not 32 bytes")));
    }
    out.copy_from_slice(&raw);
    Ok(out)
}

/// The plaintext of a record holding these keys.
pub(super) fn encode(keys: &StoredKeys) -> Result<Zeroizing<Vec<u8>>, StoredKeysError> {
    let manifest = keys.tokens.manifest_json(origin()).map_err(keyring_error)?;
    let signing: Value = serde_json::from_slice(&manifest)
        .map_err(|e| invalid(format!("cannot encode the manifest: {e}")))?;
    let mut signing_keys = BTreeMap::new();
    for sk in keys.tokens.secret_keys() {
        let der = sk.to_pkcs8_der().map_err(keyring_error)?;
        signing_keys.insert(sk.kid().to_string(), Secret::of(&der));
    }
    let plain = Plain {
        format: FORMAT,
        signing,
        signing_keys,
        seal: keys
            .seal
            .secret_keys()
            .map(|(k, created_at)| PlainKey {
                kid: k.kid().to_owned(),
                created_at,
                key: Secret::of(k.expose_bytes()),
            })
            .collect(),
        sid: Secret::of(keys.sid.expose_bytes()),
        csrf_keys: keys
            .csrf
            .secret_keys()
            .map(|(k, created_at)| PlainKey {
                kid: k.kid(),
                created_at,
                key: Secret::of(k.expose_bytes()),
            })
            .collect(),
    };
    let mut out = Zeroizing::new(Vec::with_capacity(PLAINTEXT_CAPACITY));
    serde_json::to_writer(&mut *out, &plain).map_err(|e| invalid(format!("cannot encode: {e}")))?;
    Ok(out)
}

/// The keys in a record's plaintext.
pub(super) fn decode(
    bytes: &[u8],
    version: u64,
    policies: &StoredPolicies,
) -> Result<StoredKeys, StoredKeysError> {
    let plain: Plain =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("unexpected shape: {e}")))?;
    if plain.format != FORMAT {
        return Err(invalid(format!("unknown format {}", plain.format)));
    }
    let manifest = serde_json::to_vec(&plain.signing)
        .map_err(|e| invalid(format!("cannot read the manifest: {e}")))?;
    let tokens =
        Keyring::from_manifest_json(&manifest, origin(), policies.tokens.clone(), &mut |kid| {
            plain
                .signing_keys
                .get(kid)
                .and_then(Secret::bytes)
                .ok_or_else(|| tessera_token::Error::Manifest {
                    path: origin().to_owned(),
                    reason: format!("no private key for {kid}"),
                    source: None,
                })
        })
        .map_err(keyring_error)?;
    if plain.seal.is_empty() {
        return Err(invalid("no sealing key"));
    }
    let mut seal = SealKeyring::with_policy(policies.seal.clone());
    // In the written order (newest first): `with_key` sorts by time and keeps the order of
    // keys of equal times, as a directory load does.
    for s in &plain.seal {
        let key = SealKey::from_bytes(*key32(&s.key, "a sealing key")?);
        if key.kid() != s.kid {
            return Err(invalid(format!("sealing key {} is another key", s.kid)));
        }
        seal = seal.with_key(key, s.created_at);
    }
    let sid_bytes = key32(&plain.sid, "the sid key")?;
    let sid = SidKey::from_bytes(*sid_bytes);
    // A record of before: its one key keeps issuing until the schedule adds another (it is
    // as old as can be, so the first run does).
    let mut csrf = CsrfKeyring::new(CsrfKey::from_bytes(*sid_bytes), 0, policies.csrf.clone());
    for (i, c) in plain.csrf_keys.iter().enumerate() {
        let key = CsrfKey::from_bytes(*key32(&c.key, "a CSRF key")?);
        if key.kid() != c.kid {
            return Err(invalid(format!("CSRF key {} is another key", c.kid)));
        }
        csrf = if i == 0 {
            CsrfKeyring::new(key, c.created_at, policies.csrf.clone())
        } else {
            csrf.with_key(key, c.created_at)
        };
    }
    Ok(StoredKeys {
        tokens,
        seal,
        sid,
        csrf,
        version,
    })
}
