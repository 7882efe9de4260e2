//! Limits on what requests may ask for and what cookies may carry, and the checks that
//! enforce them.

use std::collections::BTreeMap;

use serde_json::Value;
use tessera_token::json_depth;

use crate::engine::request::Edits;
use crate::{Error, Result};

/// The most keys one request may set or remove.
pub const MAX_EDITS: usize = 256;
/// The longest data key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// The deepest JSON nesting accepted in a value.
pub const MAX_JSON_DEPTH: usize = 32;
/// The default budget of the anonymous cookie's `name=value`, in bytes: about 3 KB, so the
/// whole `Set-Cookie` (attributes add under 100 bytes) stays well under browsers' 4096.
pub const DEFAULT_COOKIE_BUDGET: usize = 3072;
/// The smallest budget accepted: an empty session must fit.
pub const MIN_COOKIE_BUDGET: usize = 512;
/// The largest budget accepted: the `Set-Cookie` must stay under 4096 bytes with its
/// attributes.
pub const MAX_COOKIE_BUDGET: usize = 3800;
/// The claim rules live in the token crate, beside [`Claims`](tessera_token::Claims).
pub use tessera_token::{MAX_CLAIMS_BYTES, RESERVED_CLAIMS};

fn validate_key(k: &str) -> Result<()> {
    if k.is_empty() || k.len() > MAX_KEY_LEN || k.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "data keys must be 1 to {MAX_KEY_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

/// Checks the size of an edit, its keys and the nesting of its values.
pub(crate) fn validate_edits(edits: &Edits) -> Result<()> {
    if edits.expiry == Some(tessera_core::Expiry::Idle(0)) {
        return Err(Error::InvalidInput(
            "an idle expiry must be at least 1 second".to_owned(),
        ));
    }
    let count =
        edits.set.len() + edits.remove.len() + edits.secrets.len() + edits.remove_secrets.len();
    if count > MAX_EDITS {
        return Err(Error::InvalidInput(format!(
            "at most {MAX_EDITS} keys and secrets may be set or removed at once"
        )));
    }
    for k in edits
        .set
        .keys()
        .chain(edits.remove.iter())
        .chain(edits.secrets.keys())
        .chain(edits.remove_secrets.iter())
    {
        validate_key(k)?;
    }
    if edits
        .set
        .values()
        .chain(edits.secrets.values())
        .any(|v| json_depth(v) > MAX_JSON_DEPTH)
    {
        return Err(Error::InvalidInput(format!(
            "values may nest at most {MAX_JSON_DEPTH} levels"
        )));
    }
    if edits.remove.iter().any(|k| edits.set.contains_key(k))
        || edits
            .remove_secrets
            .iter()
            .any(|k| edits.secrets.contains_key(k))
    {
        return Err(Error::InvalidInput(
            "a key may not be both set and removed".to_owned(),
        ));
    }
    Ok(())
}

/// Checks custom claims (login, mint): the token crate's rule, the one `tessera token mint`
/// follows too.
pub(crate) fn validate_claims(claims: &BTreeMap<String, Value>) -> Result<()> {
    tessera_token::validate_custom_claims(claims).map_err(|e| Error::InvalidInput(e.to_string()))
}

/// Checks a token subject (mint), by the token crate's rule.
pub(crate) fn validate_subject(sub: &str) -> Result<()> {
    tessera_token::validate_subject(sub).map_err(|e| Error::InvalidInput(e.to_string()))
}

/// Data and (sealed) secrets together stay within `limit` bytes.
pub(crate) fn check_size(
    data: &BTreeMap<String, Value>,
    secrets: &BTreeMap<String, String>,
    limit: usize,
) -> Result<()> {
    let size = serde_json::to_vec(data)
        .map_err(|e| Error::InvalidInput(format!("data is not serialisable: {e}")))?
        .len()
        + secrets
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>();
    if size > limit {
        return Err(Error::DataTooLarge { size, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_bounded() {
        let mut e = Edits::default();
        e.set.insert(String::new(), Value::Null);
        assert!(validate_edits(&e).is_err());
        let mut e = Edits::default();
        e.set.insert("a".into(), Value::Null);
        e.remove.push("a".into());
        assert!(validate_edits(&e).is_err());
        let mut e = Edits::default();
        let mut v = Value::Null;
        for _ in 0..=MAX_JSON_DEPTH {
            v = Value::Array(vec![v]);
        }
        e.set.insert("a".into(), v);
        assert!(validate_edits(&e).is_err());
        let e = Edits {
            remove: (0..=MAX_EDITS).map(|i| i.to_string()).collect(),
            ..Edits::default()
        };
        assert!(validate_edits(&e).is_err());
    }

    #[test]
    fn reserved_claims_are_refused() {
        let mut c = BTreeMap::new();
        c.insert("rlc".to_owned(), serde_json::json!("bot"));
        assert!(validate_claims(&c).is_ok());
        c.insert("exp".to_owned(), serde_json::json!(1));
        assert!(validate_claims(&c).is_err());
    }
}
