//! Signing: [`Keyring::sign_at`].

use crate::claims::Claims;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::jws;
use crate::keyring::Keyring;

impl Keyring {
    /// Signs `claims` into a compact JWS with the key that signs at `now`: header
    /// `{"alg":…,"kid":…,"typ":…}`, then the claims, each base64url without padding.
    ///
    /// # Examples
    ///
    /// ```
    /// use tessera_token::{Claims, Config, Keyring, NoRevocations, OsKeySource, RotationPolicy};
    ///
    /// let now = 1_800_000_000;
    /// let ring = Keyring::generate_at(now, RotationPolicy::default(), &mut OsKeySource::default())?;
    /// let config = Config::new("https://wiki.example");
    /// let claims = Claims::new("https://wiki.example", "mw:CentralAuth::123", "sid", "jti", now, now + 3600, now + 14_400);
    /// let token = ring.sign_at(&config, &claims, now)?;
    /// let verified = ring.verify_at(&config, &token, now + 60, &NoRevocations)?;
    /// assert_eq!(*verified.claims, claims);
    /// assert_eq!(verified.outcome(), "ok");
    /// # Ok::<(), tessera_token::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::NoSigningKey`] if no key signs at `now`;
    /// - [`Error::InvalidClaims`] unless `iat <= sxp <= exp`, `iat < exp`,
    ///   `exp - iat` is within [`Config::with_max_lifetime`], `iss` is the configured issuer,
    ///   no custom claim shadows a registered one, and the token fits
    ///   [`Config::with_max_token_bytes`];
    /// - [`Error::Signing`] if an RSA signature fails.
    pub fn sign_at(&self, config: &Config, claims: &Claims, now: i64) -> Result<String> {
        if !(claims.iat <= claims.sxp && claims.sxp <= claims.exp && claims.iat < claims.exp) {
            return Err(Error::InvalidClaims(
                "times must satisfy iat <= sxp <= exp, iat < exp",
            ));
        }
        if claims.exp.saturating_sub(claims.iat) > config.max_lifetime {
            return Err(Error::InvalidClaims(
                "exp - iat exceeds the longest token lifetime",
            ));
        }
        if claims.iss != config.issuer {
            return Err(Error::InvalidClaims("iss is not the configured issuer"));
        }
        let key = self.signing_key_at(now)?;
        let header = jws::HeaderOut {
            alg: config.header_alg(key.algorithm()).name(),
            kid: key.kid().as_str(),
            typ: &config.typ,
        };
        let token = jws::encode(&header, &claims.to_json()?, |input| key.sign(input))?;
        if token.len() > config.max_token_bytes {
            return Err(Error::InvalidClaims("the token would exceed the size cap"));
        }
        Ok(token)
    }
}
