//! The claims of a session token, and the rules custom claims follow wherever they come
//! from (a login, `POST /v1/tokens`, `tessera token mint`, `[tokens] default_claims`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::ClaimSet;
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
/// Times are Unix seconds (RFC 7519 NumericDate). Tessera writes integers; it reads a
/// fractional NumericDate too, as RFC 7519 §2 allows, each rounded in the direction that
/// refuses sooner: `exp` and `sxp` down (expired, soft-expired a fraction early), `nbf` up
/// (valid a fraction late), `iat` down here (older: its lifetime and revocation checks are
/// the stricter for it) while the "issued in the future" check uses it rounded up. A time
/// that is a string, `null`, not finite or beyond ±2^53 is refused, never read as "no
/// expiry".
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
    /// Hard expiry (`exp`): verifiers refuse the token from then on. A MediaWiki token
    /// ([`ClaimSet::MediaWiki`]) may have none; then this is `iat` plus the longest token
    /// lifetime, when this verifier stops accepting it.
    pub exp: i64,
    /// Soft expiry (`sxp`): from then on the token still verifies, as `soft_expired`, and the
    /// engine issues a new one. A MediaWiki token without one is soft-expired from `iat` on
    /// (MediaWiki refreshes such a token at once).
    pub sxp: i64,
    /// Token id (`jti`); empty for a MediaWiki token without one.
    pub jti: String,
    /// Session binding (`sid`): a short keyed digest naming the session. MediaWiki's tokens
    /// carry none: empty then.
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

    /// Reads claims from a duplicate-free JSON object, with exact types, as `set` says
    /// (which claims are required); `max_lifetime` (seconds) stands in for a MediaWiki
    /// token's missing `exp`.
    pub(crate) fn from_map(
        mut map: Map<String, Value>,
        set: &ClaimSet,
        max_lifetime: i64,
    ) -> Result<(Self, Latest)> {
        let mediawiki = matches!(set, ClaimSet::MediaWiki { .. });
        fn optional_string(map: &mut Map<String, Value>, name: &str) -> Result<Option<String>> {
            match map.remove(name) {
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(bad("a string claim has another type")),
                None => Ok(None),
            }
        }
        fn string(map: &mut Map<String, Value>, name: &str) -> Result<String> {
            optional_string(map, name)?.ok_or(bad("a required claim is missing"))
        }
        fn required(map: &mut Map<String, Value>, name: &str) -> Result<NumericDate> {
            NumericDate::read(map.remove(name).ok_or(bad("a required claim is missing"))?)
        }
        fn optional(map: &mut Map<String, Value>, name: &str) -> Result<Option<NumericDate>> {
            map.remove(name).map(NumericDate::read).transpose()
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
        let nbf = optional(&mut map, "nbf")?;
        let iss = string(&mut map, "iss")?;
        let sub = string(&mut map, "sub")?;
        let iat = required(&mut map, "iat")?;
        let (exp, sxp, jti, sid) = if mediawiki {
            // MediaWiki's `sessionJwt` has no `exp` and no `sid` (reference §7.3); `sxp` and
            // `jti` it always writes, but MediaWiki's own check requires neither.
            (
                optional(&mut map, "exp")?,
                optional(&mut map, "sxp")?,
                optional_string(&mut map, "jti")?.unwrap_or_default(),
                optional_string(&mut map, "sid")?.unwrap_or_default(),
            )
        } else {
            (
                Some(required(&mut map, "exp")?),
                Some(required(&mut map, "sxp")?),
                string(&mut map, "jti")?,
                string(&mut map, "sid")?,
            )
        };
        // Wikimedia's edge reads `rlc` as a rate-limit class name: text only.
        if mediawiki && map.get("rlc").is_some_and(|v| !v.is_string()) {
            return Err(bad("rlc is not a string"));
        }
        let exp = exp.unwrap_or(NumericDate::whole(iat.down.saturating_add(max_lifetime)));
        let latest = Latest {
            iat: iat.up,
            exp: exp.up,
        };
        let claims = Self {
            iss,
            sub,
            aud,
            iat: iat.down,
            nbf: nbf.map(|t| t.up),
            exp: exp.down,
            sxp: sxp.map_or(iat.down, |t| t.down),
            jti,
            sid,
            custom: map,
        };
        Ok((claims, latest))
    }
}

/// A token's `iat` and `exp` rounded up, beside the rounded-down values kept in [`Claims`]
/// (equal for integer times).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Latest {
    pub(crate) iat: i64,
    pub(crate) exp: i64,
}

/// A NumericDate (RFC 7519 §2) as the whole seconds around it.
#[derive(Clone, Copy)]
struct NumericDate {
    down: i64,
    up: i64,
}

/// 2^53: beyond it an `f64` no longer holds every integer, and no honest time is there
/// (year 285 million).
const MAX_FRACTIONAL_TIME: f64 = 9_007_199_254_740_992.0;

impl NumericDate {
    fn whole(t: i64) -> Self {
        Self { down: t, up: t }
    }

    fn read(v: Value) -> Result<Self> {
        let Value::Number(n) = v else {
            return Err(bad("a time claim is not a number"));
        };
        if let Some(t) = n.as_i64() {
            return Ok(Self::whole(t));
        }
        // Integers beyond i64 (`as_i64` None, `as_u64` Some) are refused as ever; so are
        // fractions too large to be a time (the security checklist's G6: never ignored).
        match n.as_f64() {
            Some(f) if n.as_u64().is_none() && f.is_finite() && f.abs() < MAX_FRACTIONAL_TIME => {
                // In range, so the casts are exact.
                Ok(Self {
                    down: f.floor() as i64,
                    up: f.ceil() as i64,
                })
            }
            _ => Err(bad("a time claim is out of range")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_object;

    fn parse(s: &str) -> Result<Claims> {
        Claims::from_map(parse_object(s.as_bytes()).unwrap(), &ClaimSet::Tessera, 100).map(|c| c.0)
    }

    fn parse_mw(s: &str) -> Result<(Claims, Latest)> {
        let set = ClaimSet::mediawiki("mw:CentralAuth::");
        Claims::from_map(parse_object(s.as_bytes()).unwrap(), &set, 100)
    }

    const OK: &str = r#"{"iss":"i","sub":"s","iat":1,"exp":3,"sxp":2,"jti":"j","sid":"d"}"#;

    #[test]
    fn exact_types() {
        assert!(parse(OK).is_ok());
        for (from, to) in [
            (r#""exp":3"#, r#""exp":"3""#),
            (r#""exp":3"#, r#""exp":null"#),
            (r#""exp":3"#, r#""exp":9223372036854775808"#),
            (r#""exp":3"#, r#""exp":1e300"#),
            (r#""exp":3"#, r#""exp":-1e300"#),
            (r#""exp":3"#, r#""exp":9007199254740993.5"#),
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
        // MediaWiki's `sid` and `exp` are optional only under its claim set.
        assert!(parse(r#"{"iss":"i","sub":"s","iat":1,"sxp":2,"jti":"j"}"#).is_err());
        let with_nbf = OK.replacen('}', r#","nbf":"1"}"#, 1);
        assert!(parse(&with_nbf).is_err());
        let with_aud = OK.replacen('}', r#","aud":["a",1]}"#, 1);
        assert!(parse(&with_aud).is_err());
    }

    /// RFC 7519 §2 allows fractions; each is rounded the way that refuses sooner.
    #[test]
    fn fractional_times_round_toward_refusal() {
        let c = parse(r#"{"iss":"i","sub":"s","iat":1.5,"nbf":1.25,"exp":3.75,"sxp":2.5,"jti":"j","sid":"d"}"#)
            .unwrap();
        assert_eq!((c.iat, c.nbf, c.exp, c.sxp), (1, Some(2), 3, 2));
        let (_, latest) = Claims::from_map(
            parse_object(
                br#"{"iss":"i","sub":"s","iat":1.5,"exp":3.75,"sxp":2,"jti":"j","sid":"d"}"#,
            )
            .unwrap(),
            &ClaimSet::Tessera,
            100,
        )
        .unwrap();
        assert_eq!(latest, Latest { iat: 2, exp: 4 });
        // Whole numbers written as floats are those numbers; negative fractions round too.
        let c =
            parse(r#"{"iss":"i","sub":"s","iat":-1.5,"exp":3.0,"sxp":2e0,"jti":"j","sid":"d"}"#)
                .unwrap();
        assert_eq!((c.iat, c.exp, c.sxp), (-2, 3, 2));
    }

    /// MediaWiki's `sessionJwt` claims, in MediaWiki's order (reference §7.3).
    #[test]
    fn mediawiki_claims() {
        let mw = r#"{"iss":"https://meta.wikimedia.org","sxp":1773972946,"jti":"RGO1bBxGZtR1atOrs5B3PQ==","sub":"mw:CentralAuth::123","iat":1773958546,"rlc":"test"}"#;
        let (c, latest) = parse_mw(mw).unwrap();
        assert_eq!(c.sub, "mw:CentralAuth::123");
        assert_eq!(c.sxp, 1_773_972_946);
        assert_eq!(
            c.exp,
            1_773_958_546 + 100,
            "no exp: iat + the longest lifetime"
        );
        assert_eq!(
            (c.sid.as_str(), c.jti.as_str()),
            ("", "RGO1bBxGZtR1atOrs5B3PQ==")
        );
        assert_eq!(c.custom["rlc"], "test");
        assert_eq!(latest.exp, c.exp);
        // Tessera's claim set requires what MediaWiki leaves out.
        assert!(parse(mw).is_err());
        // Optional members keep their types; `rlc` is a class name.
        assert!(parse_mw(&mw.replace(r#""rlc":"test""#, r#""rlc":7"#)).is_err());
        assert!(
            parse_mw(&mw.replace(r#""jti":"RGO1bBxGZtR1atOrs5B3PQ==""#, r#""jti":1"#)).is_err()
        );
        assert!(
            parse_mw(&mw.replace(r#","iat":1773958546"#, "")).is_err(),
            "iat is required"
        );
        let (c, _) = parse_mw(&mw.replace(r#""sxp":1773972946,"#, r#""exp":1773972000,"#)).unwrap();
        assert_eq!(
            (c.exp, c.sxp),
            (1_773_972_000, 1_773_958_546),
            "no sxp: soft-expired at once"
        );
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
        assert_eq!(
            Claims::from_map(parse_object(&json).unwrap(), &ClaimSet::Tessera, 10)
                .unwrap()
                .0,
            c
        );
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
