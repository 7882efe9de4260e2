//! `tessera token mint` and `tessera token inspect`, and how keys and times are printed.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_token::{Claims, KeyInfo, Keyring, Verified};

use super::{KeyDir, KeysError};

/// A UTC time as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339), for people reading `keys list` and
/// `token inspect`.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What `keys list` shows of one key.
pub fn key_json(k: &KeyInfo, signing: bool) -> Value {
    serde_json::json!({
        "kid": k.kid.as_str(),
        "algorithm": k.algorithm.name(),
        "state": k.state.name(),
        "valid_from": k.valid_from,
        "valid_from_utc": utc(k.valid_from),
        "retired_at": k.retired_at,
        "revoked_at": k.revoked_at,
        "has_private_key": k.has_private_key,
        "signing": signing,
    })
}

fn random_id() -> Result<String, KeysError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(KeysError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// `token mint`: a token for `sub` with the default claims of `[tokens]` and `claims` on
/// top, signed at `now` with the active key, valid for `ttl` (default and maximum
/// `tokens.exp`; the soft expiry is `tokens.sxp` or `ttl` if shorter), bound to a random
/// `sid` like `POST /v1/tokens`.
///
/// # Errors
///
/// [`KeysError::InvalidInput`] for a bad `sub` or claims (the rules of the API's mint:
/// [`tessera_token::validate_custom_claims`]) or a `ttl` out of range; [`KeysError::Token`] if nothing can sign.
pub fn mint(
    dir: &KeyDir,
    ring: &Keyring,
    sub: &str,
    claims: BTreeMap<String, Value>,
    ttl: Option<Duration>,
    now: i64,
) -> Result<String, KeysError> {
    let t = dir.tokens();
    // The rules of `POST /v1/tokens`, from the one place they live.
    tessera_token::validate_subject(sub)
        .and_then(|()| tessera_token::validate_custom_claims(&claims))
        .map_err(|e| KeysError::InvalidInput(e.to_string()))?;
    let ttl = ttl.unwrap_or(t.exp);
    if ttl < Duration::from_secs(1) || ttl > t.exp {
        return Err(KeysError::InvalidInput(format!(
            "--ttl must be between 1s and tokens.exp ({}s)",
            t.exp.as_secs()
        )));
    }
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let exp = now.saturating_add(secs(ttl));
    let sxp = now.saturating_add(secs(t.sxp)).min(exp);
    let mut c = Claims::new(
        t.issuer.clone(),
        sub,
        random_id()?,
        random_id()?,
        now,
        sxp,
        exp,
    );
    c.custom.extend(t.default_claims.clone());
    c.custom.extend(claims);
    ring.sign_at(&dir.codec(ring), &c, now)
        .map_err(|e| dir.err(e))
}

/// What `token inspect` found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// The header, decoded for display. **Unverified** unless `result` is `Ok`.
    pub header: Option<Value>,
    /// The claims, decoded for display. **Unverified** unless `result` is `Ok`.
    pub claims: Option<Value>,
    /// The verification at `now` with the keyring (revocations are not checked: they live
    /// in the store).
    pub result: Result<Verified, tessera_token::Error>,
}

/// `token inspect`: verifies `token` at `now` and decodes its header and claims for
/// display whatever the outcome.
///
/// # Security
///
/// The decoding is for an operator's eyes only and never feeds a decision: every
/// decision uses `result`, from the strict codec.
pub fn inspect(dir: &KeyDir, ring: &Keyring, token: &str, now: i64) -> Inspection {
    let result = ring.verify_at(&dir.codec(ring), token, now, &tessera_token::NoRevocations);
    let mut parts = token.split('.');
    let mut decode = || {
        parts
            .next()
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let header = decode();
    let claims = decode();
    Inspection {
        header,
        claims,
        result,
    }
}
