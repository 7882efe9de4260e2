//! The claims of a session token, and the rules custom claims follow wherever they come
//! from (a login, `POST /v1/tokens`, `tessera token mint`, `[tokens] default_claims`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, Part, Result};

/// Claim names with a meaning of their own: the members [`Claims`] writes itself.
pub const REGISTERED_CLAIMS: [&str; 9] = [
    "iss", "sub", "aud", "iat", "nbf", "exp", "sxp", "jti", "sid",
];

/// The names a custom claim may not take: the [`REGISTERED_CLAIMS`], then the header
/// names `typ` and `kid`, so a claim is never mistaken for one. The one list every caller
/// checks, through [`validate_custom_claims`].
pub const RESERVED_CLAIMS: [&str; 11] = [
    "iss", "sub", "aud", "iat", "nbf", "exp", "sxp", "jti", "sid", "typ", "kid",
];

/// The largest custom claims of one token, as JSON bytes: they travel in every token.
pub const MAX_CLAIMS_BYTES: usize = 1024;
/// The deepest nesting of a custom claim's value (`[[1]]` nests 2 levels).
pub const MAX_CLAIM_DEPTH: usize = 32;
/// The longest custom claim name, and the longest subject, in bytes.
pub const MAX_CLAIM_NAME_LEN: usize = 256;

/// Why custom claims or a subject are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// A custom claim has a [reserved name](RESERVED_CLAIMS).
    #[error("claim {0:?} is reserved: it is set by the token itself")]
    Reserved(String),
    /// A claim name is empty, too long or has control characters.
    #[error("claim names must be 1 to {MAX_CLAIM_NAME_LEN} bytes without control characters")]
    BadName,
    /// The claims take more than [`MAX_CLAIMS_BYTES`] of JSON.
    #[error("claims may take at most {MAX_CLAIMS_BYTES} bytes of JSON")]
    TooLarge,
    /// A value nests deeper than [`MAX_CLAIM_DEPTH`].
    #[error("claims may nest at most {MAX_CLAIM_DEPTH} levels")]
    TooDeep,
    /// The subject is empty, too long or has control characters.
    #[error("the subject must be 1 to {MAX_CLAIM_NAME_LEN} bytes without control characters")]
    BadSubject,
}

impl ClaimsError {
    /// Every code [`ClaimsError::code`] returns.
    pub const CODES: &'static [&'static str] = &[
        "claim-reserved",
        "claim-name-invalid",
        "claims-too-large",
        "claims-too-deep",
        "subject-invalid",
    ];

    /// A stable identifier for logs and runbooks.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Reserved(_) => "claim-reserved",
            Self::BadName => "claim-name-invalid",
            Self::TooLarge => "claims-too-large",
            Self::TooDeep => "claims-too-deep",
            Self::BadSubject => "subject-invalid",
        }
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_CLAIM_NAME_LEN && !s.chars().any(char::is_control)
}

/// How deep `v` nests: 0 for a scalar, 1 for `[]` or `{}`, 2 for `[[1]]`.
pub fn json_depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks custom claims the way every issuer of Tessera tokens does: no [reserved
/// name](RESERVED_CLAIMS), names of 1 to [`MAX_CLAIM_NAME_LEN`] bytes without control
/// characters, at most [`MAX_CLAIMS_BYTES`] of JSON, values nested at most
/// [`MAX_CLAIM_DEPTH`] levels.
///
/// # Errors
///
/// The first rule broken, as a [`ClaimsError`].
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use tessera_token::{ClaimsError, validate_custom_claims};
///
/// let mut claims = BTreeMap::new();
/// claims.insert("rlc".to_owned(), serde_json::json!("bot"));
/// assert!(validate_custom_claims(&claims).is_ok());
/// claims.insert("exp".to_owned(), serde_json::json!(1));
/// assert_eq!(validate_custom_claims(&claims), Err(ClaimsError::Reserved("exp".into())));
/// ```
pub fn validate_custom_claims(claims: &BTreeMap<String, Value>) -> Result<(), ClaimsError> {
    if let Some(k) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(ClaimsError::Reserved(k.clone()));
    }
    if !claims.keys().all(|k| name_ok(k)) {
        return Err(ClaimsError::BadName);
    }
    // A map of JSON values always serialises; an error would count as too large.
    let size = serde_json::to_vec(claims).map_or(usize::MAX, |v| v.len());
    if size > MAX_CLAIMS_BYTES {
        return Err(ClaimsError::TooLarge);
    }
    if claims.values().any(|v| json_depth(v) > MAX_CLAIM_DEPTH) {
        return Err(ClaimsError::TooDeep);
    }
    Ok(())
}

/// Checks a token subject (`sub`): 1 to [`MAX_CLAIM_NAME_LEN`] bytes without control
/// characters.
///
/// # Errors
///
/// [`ClaimsError::BadSubject`].
pub fn validate_subject(sub: &str) -> Result<(), ClaimsError> {
    if name_ok(sub) {
        Ok(())
    } else {
        Err(ClaimsError::BadSubject)
    }
}

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
    fn the_reserved_list_is_the_registered_one_and_the_header_names() {
        assert_eq!(
            RESERVED_CLAIMS[..REGISTERED_CLAIMS.len()],
            REGISTERED_CLAIMS
        );
        assert_eq!(RESERVED_CLAIMS[REGISTERED_CLAIMS.len()..], ["typ", "kid"]);
    }

    #[test]
    fn custom_claims_are_bounded() {
        let ok = |c: &[(&str, Value)]| {
            validate_custom_claims(
                &c.iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            )
        };
        assert_eq!(ok(&[("rlc", Value::from("bot"))]), Ok(()));
        for name in RESERVED_CLAIMS {
            assert_eq!(
                ok(&[(name, Value::from(1))]),
                Err(ClaimsError::Reserved(name.into()))
            );
        }
        assert_eq!(ok(&[("", Value::Null)]), Err(ClaimsError::BadName));
        assert_eq!(ok(&[("a\u{7}", Value::Null)]), Err(ClaimsError::BadName));
        let long = "x".repeat(MAX_CLAIM_NAME_LEN + 1);
        assert_eq!(
            ok(&[(long.as_str(), Value::Null)]),
            Err(ClaimsError::BadName)
        );
        let big = Value::from("x".repeat(MAX_CLAIMS_BYTES));
        assert_eq!(ok(&[("big", big)]), Err(ClaimsError::TooLarge));
        let mut deep = Value::Null;
        for _ in 0..MAX_CLAIM_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(ok(&[("deep", deep.clone())]), Ok(()));
        assert_eq!(
            ok(&[("deep", Value::Array(vec![deep]))]),
            Err(ClaimsError::TooDeep)
        );
        assert_eq!(validate_subject("mw:CentralAuth::1"), Ok(()));
        for bad in ["", "a\nb", &"s".repeat(MAX_CLAIM_NAME_LEN + 1)] {
            assert_eq!(
                validate_subject(bad),
                Err(ClaimsError::BadSubject),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn claims_error_codes_are_listed_and_unique() {
        let all = [
            ClaimsError::Reserved(String::new()),
            ClaimsError::BadName,
            ClaimsError::TooLarge,
            ClaimsError::TooDeep,
            ClaimsError::BadSubject,
        ];
        for e in &all {
            assert!(ClaimsError::CODES.contains(&e.code()), "{e:?}");
        }
        let mut codes = ClaimsError::CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ClaimsError::CODES.len());
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn json_depth_counts_nesting() {
        assert_eq!(json_depth(&serde_json::json!(1)), 0);
        assert_eq!(json_depth(&serde_json::json!([[1]])), 2);
        assert_eq!(json_depth(&serde_json::json!({"a": {"b": []}})), 3);
    }

    #[test]
    fn custom_claims_cannot_shadow_registered_ones() {
        let mut c = Claims::new("i", "s", "d", "j", 1, 2, 3);
        c.custom.insert("exp".into(), Value::from(99));
        assert!(matches!(c.to_json(), Err(Error::InvalidClaims(_))));
    }
}
