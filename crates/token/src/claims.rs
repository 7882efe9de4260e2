//! The claims of a session token.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, Part, Result};

/// Claim names with a meaning of their own; a custom claim may not use them.
pub const REGISTERED_CLAIMS: [&str; 9] = [
    "iss", "sub", "aud", "iat", "nbf", "exp", "sxp", "jti", "sid",
];

/// The claims of a session token (DESIGN §5).
///
/// Times are Unix seconds (RFC 7519 NumericDate), always integers: a token whose `exp` is a
/// string or a fraction is refused, never read as "no expiry".
///
/// # Examples
///
/// ```
/// use tessera_token::Claims;
///
/// let now = 1_800_000_000;
/// let mut claims = Claims::new("https://wiki.example", "mw:CentralAuth::123", "sid-1", "jti-1", now, now + 3600, now + 4 * 3600);
/// claims.custom.insert("rlc".into(), serde_json::json!("bot"));
/// assert_eq!(claims.sxp, now + 3600);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Claims {
    /// Issuer (`iss`): who signed it; checked for exact equality.
    pub iss: String,
    /// Subject (`sub`): the user id, e.g. `mw:CentralAuth::123`.
    pub sub: String,
    /// Audience (`aud`), optional: written as a string when it has one element.
    pub aud: Option<Vec<String>>,
    /// Issued at (`iat`).
    pub iat: i64,
    /// Not before (`nbf`), optional.
    pub nbf: Option<i64>,
    /// Hard expiry (`exp`): verifiers refuse the token from then on.
    pub exp: i64,
    /// Soft expiry (`sxp`): from then on the token still verifies, as `soft_expired`, and the
    /// engine issues a new one.
    pub sxp: i64,
    /// Token id (`jti`).
    pub jti: String,
    /// Session binding (`sid`): a short keyed digest naming the session.
    pub sid: String,
    /// The session's custom claims (e.g. MediaWiki's `rlc`), beside the registered ones.
    pub custom: Map<String, Value>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum AudOut<'a> {
    One(&'a str),
    Many(&'a [String]),
}

#[derive(Serialize)]
struct ClaimsOut<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<AudOut<'a>>,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    exp: i64,
    sxp: i64,
    jti: &'a str,
    sid: &'a str,
    #[serde(flatten)]
    custom: &'a Map<String, Value>,
}

fn bad(reason: &'static str) -> Error {
    Error::BadJson {
        part: Part::Claims,
        reason,
    }
}

impl Claims {
    /// Claims with the required members, no `aud`, no `nbf` and no custom claims. Times in
    /// the order they fall: issued, soft expiry, hard expiry.
    pub fn new(
        iss: impl Into<String>,
        sub: impl Into<String>,
        sid: impl Into<String>,
        jti: impl Into<String>,
        iat: i64,
        sxp: i64,
        exp: i64,
    ) -> Self {
        Self {
            iss: iss.into(),
            sub: sub.into(),
            aud: None,
            iat,
            nbf: None,
            exp,
            sxp,
            jti: jti.into(),
            sid: sid.into(),
            custom: Map::new(),
        }
    }

    /// The JSON text of the claims: registered members in a fixed order, then the custom
    /// ones sorted by name.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>> {
        if self
            .custom
            .keys()
            .any(|k| REGISTERED_CLAIMS.contains(&k.as_str()))
        {
            return Err(Error::InvalidClaims(
                "a custom claim has the name of a registered claim",
            ));
        }
        let aud = self.aud.as_deref().map(|a| match a {
            [one] => AudOut::One(one),
            many => AudOut::Many(many),
        });
        serde_json::to_vec(&ClaimsOut {
            iss: &self.iss,
            sub: &self.sub,
            aud,
            iat: self.iat,
            nbf: self.nbf,
            exp: self.exp,
            sxp: self.sxp,
            jti: &self.jti,
            sid: &self.sid,
            custom: &self.custom,
        })
        .map_err(|_| Error::Unreachable("claims serialization failed"))
    }

    /// Reads claims from a duplicate-free JSON object, with exact types.
    pub(crate) fn from_map(mut map: Map<String, Value>) -> Result<Self> {
        fn string(map: &mut Map<String, Value>, name: &str) -> Result<String> {
            match map.remove(name) {
                Some(Value::String(s)) => Ok(s),
                Some(_) => Err(bad("a string claim has another type")),
                None => Err(bad("a required claim is missing")),
            }
        }
        fn time(v: Value) -> Result<i64> {
            // Integers only (security checklist G6): `as_i64` is None for fractions, for
            // integers beyond i64 and for every non-number.
            v.as_i64().ok_or(bad("a time claim is not an integer"))
        }
        fn required_time(map: &mut Map<String, Value>, name: &str) -> Result<i64> {
            time(map.remove(name).ok_or(bad("a required claim is missing"))?)
        }
        let aud = match map.remove("aud") {
            None => None,
            Some(Value::String(s)) => Some(vec![s]),
            Some(Value::Array(items)) => Some(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(bad("aud holds a non-string")),
                    })
                    .collect::<Result<_>>()?,
            ),
            Some(_) => return Err(bad("aud is neither a string nor an array")),
        };
        let nbf = map.remove("nbf").map(time).transpose()?;
        Ok(Self {
            iss: string(&mut map, "iss")?,
            sub: string(&mut map, "sub")?,
            aud,
            iat: required_time(&mut map, "iat")?,
            nbf,
            exp: required_time(&mut map, "exp")?,
            sxp: required_time(&mut map, "sxp")?,
            jti: string(&mut map, "jti")?,
            sid: string(&mut map, "sid")?,
            custom: map,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_object;

    fn parse(s: &str) -> Result<Claims> {
        Claims::from_map(parse_object(s.as_bytes()).unwrap())
    }

    const OK: &str = r#"{"iss":"i","sub":"s","iat":1,"exp":3,"sxp":2,"jti":"j","sid":"d"}"#;

    #[test]
    fn exact_types() {
        assert!(parse(OK).is_ok());
        for (from, to) in [
            (r#""exp":3"#, r#""exp":"3""#),
            (r#""exp":3"#, r#""exp":3.0"#),
            (r#""exp":3"#, r#""exp":3e0"#),
            (r#""exp":3"#, r#""exp":null"#),
            (r#""exp":3"#, r#""exp":9223372036854775808"#),
            (r#""iat":1"#, r#""iat":true"#),
            (r#""sxp":2"#, r#""sxp":[2]"#),
            (r#""iss":"i""#, r#""iss":1"#),
            (r#""sub":"s""#, r#""sub":null"#),
            (r#""exp":3,"#, ""),
            (r#""sid":"d""#, r#""sid":{}"#),
        ] {
            let s = OK.replacen(from, to, 1);
            assert!(matches!(parse(&s), Err(Error::BadJson { .. })), "{s}");
        }
        let with_nbf = OK.replacen('}', r#","nbf":"1"}"#, 1);
        assert!(parse(&with_nbf).is_err());
        let with_aud = OK.replacen('}', r#","aud":["a",1]}"#, 1);
        assert!(parse(&with_aud).is_err());
    }

    #[test]
    fn round_trip_with_custom_claims() {
        let mut c = Claims::new("i", "s", "d", "j", 1, 2, 3);
        c.aud = Some(vec!["a".into()]);
        c.nbf = Some(1);
        c.custom.insert("rlc".into(), Value::from("x"));
        let json = c.to_json().unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"iss":"i","sub":"s","aud":"a","iat":1,"nbf":1,"exp":3,"sxp":2,"jti":"j","sid":"d","rlc":"x"}"#
        );
        assert_eq!(Claims::from_map(parse_object(&json).unwrap()).unwrap(), c);
    }

    #[test]
    fn custom_claims_cannot_shadow_registered_ones() {
        let mut c = Claims::new("i", "s", "d", "j", 1, 2, 3);
        c.custom.insert("exp".into(), Value::from(99));
        assert!(matches!(c.to_json(), Err(Error::InvalidClaims(_))));
    }
}
