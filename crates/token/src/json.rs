//! JSON objects with no duplicate member names, at any depth.
//!
//! serde_json keeps the last of duplicate members when it deserializes into a map or a
//! `Value`. RFC 7515 §5.2 and RFC 7519 §4 allow parsers to do that, or to reject; a verifier
//! and a proxy that pick differently read different claims from the same token (RFC 8725
//! §2.6). Tessera rejects.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value in which no object has two members with the same name.
pub(crate) struct StrictValue(pub(crate) Value);

/// A JSON object (at the top level) in which no object has duplicate member names.
pub(crate) struct StrictObject(pub(crate) Map<String, Value>);

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(StrictVisitor)? {
            Value::Object(m) => Ok(Self(m)),
            _ => Err(de::Error::custom("not a JSON object")),
        }
    }
}

/// Parses `bytes` as exactly one UTF-8 JSON object with no duplicate member names at any
/// depth. serde_json also refuses a byte-order mark, `NaN`, invalid UTF-8, trailing
/// non-whitespace data and nesting deeper than 128.
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<StrictObject>(bytes)
        .ok()
        .map(|o| o.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_json_alone_keeps_the_last_duplicate() {
        // The reason this module exists.
        let v: Map<String, Value> = serde_json::from_str(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(v["a"], 2);
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_none());
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"a":{"b":1,"b":1}}"#).is_none());
        assert!(parse_object(br#"{"a":[{"b":1,"b":2}]}"#).is_none());
        // The same name at different depths is fine.
        assert!(parse_object(br#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#).is_some());
        // An escaped name is the same name.
        assert!(parse_object(br#"{"exp":1,"\u0065xp":2}"#).is_none());
    }

    #[test]
    fn only_one_object() {
        assert!(parse_object(b"[]").is_none());
        assert!(parse_object(b"1").is_none());
        assert!(parse_object(b"{} {}").is_none());
        assert!(parse_object(b"{}x").is_none());
        assert!(parse_object(b"\xef\xbb\xbf{}").is_none());
        assert!(parse_object(br#"{"a":NaN}"#).is_none());
        assert!(parse_object(b"{\"a\":\"\xff\"}").is_none());
        assert!(parse_object(b" {} \n").is_some());
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(parse_object(deep.as_bytes()).is_none());
    }

    #[test]
    fn keeps_values_exactly() {
        let m =
            parse_object(br#"{"i":-3,"u":18446744073709551615,"f":1.5,"s":"x","n":null,"b":true}"#)
                .unwrap();
        assert_eq!(m["i"].as_i64(), Some(-3));
        assert_eq!(m["u"].as_u64(), Some(u64::MAX));
        assert_eq!(m["f"].as_f64(), Some(1.5));
        assert!(m["n"].is_null());
    }
}
