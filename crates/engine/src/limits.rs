//! Limits on what requests may ask for, and the checks that enforce them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Edits, Error, Result};

/// The most keys one request may set or remove.
pub const MAX_EDITS: usize = 256;
/// The longest data key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// The deepest JSON nesting accepted in a value.
pub const MAX_JSON_DEPTH: usize = 32;
/// The largest custom claims of one session, as JSON bytes: they travel in every token.
pub const MAX_CLAIMS_BYTES: usize = 1024;
/// Claim names the token codec owns (and header names, so a claim cannot be mistaken for
/// one); custom claims may not use them.
pub const RESERVED_CLAIMS: [&str; 11] = [
    "iss", "sub", "aud", "iat", "exp", "nbf", "sxp", "jti", "sid", "typ", "kid",
];

pub(crate) fn validate_key(k: &str) -> Result<()> {
    if k.is_empty() || k.len() > MAX_KEY_LEN || k.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "data keys must be 1 to {MAX_KEY_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

pub(crate) fn validate_edits(edits: &Edits) -> Result<()> {
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
        .any(|v| depth(v) > MAX_JSON_DEPTH)
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

pub(crate) fn validate_claims(claims: &BTreeMap<String, Value>) -> Result<()> {
    if let Some(k) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(Error::InvalidInput(format!(
            "claim {k:?} is reserved for the token itself"
        )));
    }
    for k in claims.keys() {
        validate_key(k)?;
    }
    let size = serde_json::to_vec(claims)
        .map_err(|e| Error::InvalidInput(format!("claims are not serialisable: {e}")))?
        .len();
    if size > MAX_CLAIMS_BYTES {
        return Err(Error::InvalidInput(format!(
            "claims may take at most {MAX_CLAIMS_BYTES} bytes of JSON"
        )));
    }
    if claims.values().any(|v| depth(v) > MAX_JSON_DEPTH) {
        return Err(Error::InvalidInput(format!(
            "claims may nest at most {MAX_JSON_DEPTH} levels"
        )));
    }
    Ok(())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!([[1]])), 2);
        assert_eq!(depth(&serde_json::json!({"a": {"b": []}})), 3);
    }

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
