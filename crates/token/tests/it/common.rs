//! Fixtures shared by the test modules.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_token::{Claims, Config, KeyState, Keyring, RotationPolicy, SigningKey};

pub(crate) const NOW: i64 = 1_800_000_000;
pub(crate) const ISS: &str = "https://wiki.example";
pub(crate) const SEED: [u8; 32] = [7; 32];

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

pub(crate) fn vector(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub(crate) fn active_key() -> SigningKey {
    SigningKey::ed25519_from_seed(&SEED)
}

/// An Ed25519 keyring whose active key (from [`SEED`]) has signed for a day.
pub(crate) fn ring() -> Keyring {
    Keyring::builder(RotationPolicy::default())
        .key(active_key(), KeyState::Active, NOW - 86_400)
        .build()
        .unwrap()
}

pub(crate) fn config() -> Config {
    Config::new(ISS)
}

/// MediaWiki-like claims: issued now, soft expiry in 1 h, hard in 4 h, `rlc` custom claim.
pub(crate) fn claims() -> Claims {
    let mut c = Claims::new(
        ISS,
        "mw:CentralAuth::123",
        "Zb0bn0vh6c3cRtFm4m6z6A",
        "1bV8t4Yx4zS0l5lQ",
        NOW,
        NOW + 3600,
        NOW + 4 * 3600,
    );
    c.custom.insert("rlc".into(), Value::from("bot"));
    c
}

/// A token with exactly this header and payload JSON, signed by `key` (for tokens an honest
/// signer never makes).
pub(crate) fn forge(key: &SigningKey, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&sig))
}

/// The standard header for `key`.
pub(crate) fn header(key: &SigningKey) -> String {
    let alg = match key.algorithm() {
        tessera_token::Algorithm::Ed25519 => "EdDSA",
        tessera_token::Algorithm::Es256 => "ES256",
        _ => "RS256",
    };
    format!(
        r#"{{"alg":"{alg}","kid":"{}","typ":"session+jwt"}}"#,
        key.kid()
    )
}

/// The payload JSON of [`claims`].
pub(crate) fn payload() -> String {
    format!(
        r#"{{"iss":"{ISS}","sub":"mw:CentralAuth::123","iat":{NOW},"exp":{},"sxp":{},"jti":"j","sid":"s","rlc":"bot"}}"#,
        NOW + 4 * 3600,
        NOW + 3600
    )
}

/// The RFC 7515 A.2 RSA key, built from its JWK components through AWS-LC and loaded as
/// PKCS#8, as the keyring loads key files.
pub(crate) fn rfc7515_rsa_key() -> SigningKey {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeyPairComponents, PublicKeyComponents};
    let v = vector("rfc7515-a2-rs256.json");
    let part = |name: &str| unb64(v["jwk"][name].as_str().unwrap());
    let kp = KeyPair::from_components(&KeyPairComponents {
        public_key: PublicKeyComponents {
            n: part("n"),
            e: part("e"),
        },
        d: part("d"),
        p: part("p"),
        q: part("q"),
        dP: part("dp"),
        dQ: part("dq"),
        qInv: part("qi"),
    })
    .unwrap();
    let der = kp.as_der().unwrap();
    SigningKey::from_pkcs8_der(tessera_token::Algorithm::Rs256, der.as_ref()).unwrap()
}
