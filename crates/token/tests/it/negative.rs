//! A negative test for every validation branch of `verify_at`, in the documented order, and
//! tests that a token with several faults reports the first.

use std::time::Duration;

use tessera_token::{
    Algorithm, Error, ErrorKind, JwsAlgorithm, KeyState, Keyring, NoRevocations, Part, PublicKey,
    RevocationList, RotationPolicy, SigningKey, Status,
};

use crate::common::{NOW, active_key, b64, claims, config, forge, header, payload, ring};

fn verify(token: &str) -> Result<tessera_token::Verified, Error> {
    ring().verify_at(&config(), token, NOW, &NoRevocations)
}

fn code(token: &str) -> &'static str {
    match verify(token) {
        Ok(v) => v.outcome(),
        Err(e) => e.outcome(),
    }
}

/// `payload()` with `from` replaced by `to`, signed with the standard header.
fn with_payload(from: &str, to: &str) -> String {
    let p = payload();
    assert!(p.contains(from), "{from}");
    forge(
        &active_key(),
        &header(&active_key()),
        &p.replacen(from, to, 1),
    )
}

fn with_header(h: &str) -> String {
    forge(&active_key(), h, &payload())
}

fn good() -> String {
    ring().sign_at(&config(), &claims(), NOW).unwrap()
}

#[test]
fn the_good_token_verifies_and_forge_matches_sign() {
    let v = verify(&good()).unwrap();
    assert_eq!(v.status, Status::Fresh);
    assert_eq!(*v.claims, claims());
    assert_eq!(v.algorithm, JwsAlgorithm::EdDsa);
    assert_eq!(code(&with_payload("", "")), "ok");
}

// === 1. size cap: malformed ===

#[test]
fn malformed_empty_or_too_large() {
    assert!(matches!(verify(""), Err(Error::Malformed { .. })));
    let big = "A".repeat(tessera_token::DEFAULT_MAX_TOKEN_BYTES + 1);
    assert_eq!(code(&big), "malformed");
    // The cap is checked before anything else: a huge valid-looking token is malformed.
    let padded = with_payload(
        r#""rlc":"bot""#,
        &format!(r#""rlc":"{}""#, "x".repeat(4000)),
    );
    assert_eq!(code(&padded), "malformed");
    // A smaller configured cap applies.
    let small = config().with_max_token_bytes(100);
    let err = ring()
        .verify_at(&small, &good(), NOW, &NoRevocations)
        .unwrap_err();
    assert_eq!(err.outcome(), "malformed");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

// === 2. segments and base64url: bad_encoding (and JWE: unsupported) ===

#[test]
fn bad_encoding_segments() {
    let t = good();
    let (h, rest) = t.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    for bad in [
        "abc".to_owned(),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}.{s}.{s}.{s}.{s}"),
        format!("{h}.{p}.{s}."),
        format!("{h}..{p}.{s}"),
        "..".repeat(3),
    ] {
        assert_eq!(code(&bad), "bad_encoding", "{bad}");
    }
}

#[test]
fn jwe_five_segments_is_unsupported() {
    let jwe_header = b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
    let t = format!("{jwe_header}.AAAA.AAAA.AAAA.AAAA");
    assert!(matches!(
        verify(&t),
        Err(Error::Unsupported { what: "JWE" })
    ));
}

#[test]
fn bad_encoding_characters_padding_and_non_canonical() {
    let t = good();
    let (h, rest) = t.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let mut cases = vec![
        format!("{h}=.{p}.{s}"),
        format!("{h}.{p}==.{s}"),
        format!("{h}.{p}.{s}="),
        format!(" {t}"),
        format!("{t}\n"),
        format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/")),
        format!("{h}.{p}.{s}%"),
        format!("{h}.{p}é.{s}"),
        format!("{h}.{p}.{}", &s[..s.len() - 1]),
    ];
    // Non-canonical: the same bytes with non-zero unused bits in the last character. A
    // 64-byte signature is 86 characters with 4 unused bits; the header may differ too.
    let last = s.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    let sibling = alphabet.as_bytes()[idx ^ 1] as char;
    cases.push(format!("{h}.{p}.{}{sibling}", &s[..s.len() - 1]));
    for bad in cases {
        assert_eq!(code(&bad), "bad_encoding", "{bad:?}");
    }
}

// === 3. header JSON: bad_json ===

#[test]
fn bad_json_header() {
    let kid = active_key().kid().to_string();
    for h in [
        "not json".to_owned(),
        "[]".to_owned(),
        format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"session+jwt","alg":"EdDSA"}}"#),
        format!(r#"{{"alg":"EdDSA","kid":"{kid}","kid":"{kid}","typ":"session+jwt"}}"#),
        format!(r#"{{"alg":["EdDSA"],"kid":"{kid}","typ":"session+jwt"}}"#),
        r#"{"alg":"EdDSA","kid":7,"typ":"session+jwt"}"#.to_owned(),
        format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":1}}"#),
        format!(r#"{{"kid":"{kid}","typ":"session+jwt"}}"#),
        r#"{"alg":"EdDSA","typ":"session+jwt"}"#.to_owned(),
        format!("\u{feff}{}", header(&active_key())),
        format!("{} trailing", header(&active_key())),
    ] {
        let err = verify(&with_header(&h)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadJson {
                    part: Part::Header,
                    ..
                }
            ),
            "{h}: {err:?}"
        );
    }
}

// === 4. alg allow-list: alg_not_allowed ===

#[test]
fn alg_not_allowed() {
    let kid = active_key().kid().to_string();
    for alg in [
        "none", "None", "HS256", "eddsa", "EDDSA", "ES256K", "PS256", "RS256", "ES256", "",
    ] {
        let h = format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"session+jwt"}}"#);
        let err = verify(&with_header(&h)).unwrap_err();
        assert!(
            matches!(err, Error::AlgorithmNotAllowed { mismatch: false }),
            "{alg}"
        );
    }
    // alg none with an empty signature, the classic.
    let none = format!(
        "{}.{}.",
        b64(format!(r#"{{"alg":"none","kid":"{kid}","typ":"session+jwt"}}"#).as_bytes()),
        b64(payload().as_bytes())
    );
    assert_eq!(code(&none), "alg_not_allowed");
}

#[test]
fn ed25519_header_name_is_accepted_only_when_allowed() {
    let kid = active_key().kid().to_string();
    let t = with_header(&format!(
        r#"{{"alg":"Ed25519","kid":"{kid}","typ":"session+jwt"}}"#
    ));
    assert_eq!(code(&t), "ok");
    let only_eddsa = config().with_algorithms([JwsAlgorithm::EdDsa]);
    let err = ring()
        .verify_at(&only_eddsa, &t, NOW, &NoRevocations)
        .unwrap_err();
    assert_eq!(err.outcome(), "alg_not_allowed");
    // And it is emittable.
    let emit = config().with_ed25519_header(JwsAlgorithm::Ed25519);
    let t = ring().sign_at(&emit, &claims(), NOW).unwrap();
    let v = ring().verify_at(&emit, &t, NOW, &NoRevocations).unwrap();
    assert_eq!(v.algorithm, JwsAlgorithm::Ed25519);
    assert!(ring().jwks(&emit).contains(r#""alg":"Ed25519""#));
}

#[test]
fn alg_confusion_is_refused() {
    // An RSA key and an Ed25519 key in one ring, every algorithm allowed.
    let rsa = crate::common::rfc7515_rsa_key();
    let ring = Keyring::builder(RotationPolicy::default())
        .key(active_key(), KeyState::Active, NOW - 10)
        .public_key(
            rsa.public_key().clone(),
            KeyState::Retired,
            NOW - 100,
            NOW - 10,
        )
        .build()
        .unwrap();
    let all = config().with_algorithms([
        JwsAlgorithm::EdDsa,
        JwsAlgorithm::Ed25519,
        JwsAlgorithm::Es256,
        JwsAlgorithm::Rs256,
    ]);
    let check = |t: &str| ring.verify_at(&all, t, NOW, &NoRevocations).unwrap_err();
    // RS256 header naming the Ed25519 key, signed by the RSA key.
    let h = format!(
        r#"{{"alg":"RS256","kid":"{}","typ":"session+jwt"}}"#,
        active_key().kid()
    );
    assert!(matches!(
        check(&forge(&rsa, &h, &payload())),
        Error::AlgorithmNotAllowed { mismatch: true }
    ));
    // EdDSA header naming the RSA key.
    let h = format!(
        r#"{{"alg":"EdDSA","kid":"{}","typ":"session+jwt"}}"#,
        rsa.kid()
    );
    assert!(matches!(
        check(&forge(&active_key(), &h, &payload())),
        Error::AlgorithmNotAllowed { mismatch: true }
    ));
    // HS256 with the RSA public key as the HMAC secret: HS256 does not exist here.
    let h = format!(
        r#"{{"alg":"HS256","kid":"{}","typ":"session+jwt"}}"#,
        rsa.kid()
    );
    let t = format!(
        "{}.{}.{}",
        b64(h.as_bytes()),
        b64(payload().as_bytes()),
        b64(&[0; 32])
    );
    assert!(matches!(
        check(&t),
        Error::AlgorithmNotAllowed { mismatch: false }
    ));
}

// === 5. crit, b64, cty (nested): unsupported ===

#[test]
fn crit_b64_and_nested_are_unsupported() {
    let kid = active_key().kid().to_string();
    for (extra, what) in [
        (r#","crit":["exp"]"#, "crit"),
        (r#","crit":[]"#, "crit"),
        (r#","crit":"b64","b64":false"#, "crit"),
        (r#","b64":false"#, "b64"),
        (r#","cty":"JWT""#, "cty"),
        (r#","cty":"jwt""#, "cty"),
    ] {
        let h = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"session+jwt"{extra}}}"#);
        let err = verify(&with_header(&h)).unwrap_err();
        assert!(
            matches!(err, Error::Unsupported { what: w } if w == what),
            "{extra}: {err:?}"
        );
    }
    // A nested token: the payload is itself a JWS.
    let inner = good();
    let h = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"session+jwt","cty":"JWT"}}"#);
    let nested = forge(&active_key(), &h, &inner);
    assert_eq!(code(&nested), "unsupported");
    // Token-supplied keys are ignored, never fetched or used.
    let h = format!(
        r#"{{"alg":"EdDSA","kid":"{kid}","typ":"session+jwt","jku":"https://evil.example/jwks","jwk":{{"kty":"OKP"}}}}"#
    );
    assert_eq!(code(&with_header(&h)), "ok");
}

// === 6. kid: unknown_kid ===

#[test]
fn unknown_kid_including_injection_attempts() {
    let attacker = SigningKey::ed25519_from_seed(&[9; 32]);
    assert_eq!(
        code(&forge(&attacker, &header(&attacker), &payload())),
        "unknown_kid"
    );
    for kid in [
        "",
        "../../../../dev/null",
        "' OR '1'='1",
        "kPrK_qmxVWaYVA9w\u{0}",
        "a\"b",
        &active_key().kid().as_str()[..15],
        &active_key().kid().as_str().to_lowercase(),
    ] {
        let h = serde_json::json!({"alg":"EdDSA","kid":kid,"typ":"session+jwt"}).to_string();
        let t = forge(&active_key(), &h, &payload());
        if kid == active_key().kid().as_str() {
            continue;
        }
        assert_eq!(code(&t), "unknown_kid", "{kid:?}");
    }
}

// === 7. key state: key_revoked, key_not_yet_valid ===

#[test]
fn revoked_key_and_key_not_yet_valid() {
    let revoked = SigningKey::ed25519_from_seed(&[3; 32]);
    let next = SigningKey::ed25519_from_seed(&[4; 32]);
    let t_revoked = forge(&revoked, &header(&revoked), &payload());
    let t_next = forge(&next, &header(&next), &payload());
    let ring = Keyring::builder(RotationPolicy::default())
        .key(active_key(), KeyState::Active, NOW - 10)
        .public_key(
            revoked.public_key().clone(),
            KeyState::Revoked,
            NOW - 100,
            NOW - 5,
        )
        .key(next, KeyState::Next, NOW + 120)
        .build()
        .unwrap();
    let err = ring
        .verify_at(&config(), &t_revoked, NOW, &NoRevocations)
        .unwrap_err();
    assert_eq!(
        (err.outcome(), err.kind()),
        ("key_revoked", ErrorKind::Revoked)
    );
    let err = ring
        .verify_at(&config(), &t_next, NOW, &NoRevocations)
        .unwrap_err();
    assert_eq!(
        (err.outcome(), err.kind()),
        ("key_not_yet_valid", ErrorKind::Invalid)
    );
    // Within the leeway of its valid_from it verifies (another instance's clock may lead),
    // and once valid, a `next` key verifies even before this instance promotes it.
    assert!(
        ring.verify_at(&config(), &t_next, NOW + 60, &NoRevocations)
            .is_ok()
    );
    assert!(
        ring.verify_at(&config(), &t_next, NOW + 120, &NoRevocations)
            .is_ok()
    );
}

// === 8. signature: bad_signature ===

#[test]
fn bad_signature() {
    let t = good();
    let (input, s) = t.rsplit_once('.').unwrap();
    let mut sig = crate::common::unb64(s);
    sig[10] ^= 1;
    assert_eq!(code(&format!("{input}.{}", b64(&sig))), "bad_signature");
    // Truncated, extended, empty.
    assert_eq!(
        code(&format!("{input}.{}", b64(&sig[..63]))),
        "bad_signature"
    );
    assert_eq!(
        code(&format!(
            "{input}.{}",
            b64(&[sig.clone(), vec![0]].concat())
        )),
        "bad_signature"
    );
    assert_eq!(code(&format!("{input}.")), "bad_signature");
    // Another key's signature under our kid.
    let other = SigningKey::ed25519_from_seed(&[5; 32]);
    let sig = other.sign(input.as_bytes()).unwrap();
    assert_eq!(code(&format!("{input}.{}", b64(&sig))), "bad_signature");
    // A payload changed after signing.
    let (h, _) = input.split_once('.').unwrap();
    let p = payload().replace("mw:CentralAuth::123", "mw:CentralAuth::1");
    assert_eq!(
        code(&format!("{h}.{}.{s}", b64(p.as_bytes()))),
        "bad_signature"
    );
    // Non-canonical S (S + L) is refused by verify_strict: malleability.
    let mut sig = crate::common::unb64(s);
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
        sig[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(code(&format!("{input}.{}", b64(&sig))), "bad_signature");
}

#[test]
fn es256_psychic_signature_is_bad_signature() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let ring = Keyring::builder(RotationPolicy::default())
        .key(key, KeyState::Active, NOW - 10)
        .build()
        .unwrap();
    let es = config().with_algorithms([JwsAlgorithm::Es256]);
    let t = ring.sign_at(&es, &claims(), NOW).unwrap();
    assert!(ring.verify_at(&es, &t, NOW, &NoRevocations).is_ok());
    let (input, _) = t.rsplit_once('.').unwrap();
    let psychic = format!("{input}.{}", b64(&[0u8; 64]));
    let err = ring
        .verify_at(&es, &psychic, NOW, &NoRevocations)
        .unwrap_err();
    assert_eq!(err.outcome(), "bad_signature");
    // r = s = n (the group order) is equally refused.
    let n = crate::common::unb64("_____wAAAAD__________7zm-q2nF56E87nKwvxjJVE");
    let sig = [n.clone(), n].concat();
    let err = ring
        .verify_at(&es, &format!("{input}.{}", b64(&sig)), NOW, &NoRevocations)
        .unwrap_err();
    assert_eq!(err.outcome(), "bad_signature");
}

// === 9. claims JSON: bad_json ===

#[test]
fn bad_json_claims_exact_types() {
    let exp = (NOW + 4 * 3600).to_string();
    let e = format!(r#""exp":{exp}"#);
    for (from, to) in [
        (e.as_str(), format!(r#""exp":"{exp}""#)),
        (e.as_str(), format!(r#""exp":{exp}.5"#)),
        (e.as_str(), format!(r#""exp":{exp}.0"#)),
        (e.as_str(), r#""exp":null"#.to_owned()),
        (e.as_str(), r#""exp":99999999999999999999"#.to_owned()),
        (e.as_str(), format!(r#""exp":{exp},"exp":{exp}"#)),
        (e.as_str(), r#""nexp":1"#.to_owned()),
        (
            r#""iss":"https://wiki.example""#,
            r#""iss":["https://wiki.example"]"#.to_owned(),
        ),
        (r#""sid":"s""#, r#""sid":1"#.to_owned()),
        (r#""rlc":"bot""#, r#""rlc":{"a":1,"a":2}"#.to_owned()),
        (r#""rlc":"bot""#, r#""aud":["a",1]"#.to_owned()),
        (r#""rlc":"bot""#, r#""nbf":"0""#.to_owned()),
    ] {
        let err = verify(&with_payload(from, &to)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BadJson {
                    part: Part::Claims,
                    ..
                }
            ),
            "{to}: {err:?}"
        );
    }
    // Not an object at all.
    let t = forge(&active_key(), &header(&active_key()), "[1]");
    assert_eq!(code(&t), "bad_json");
    let t = forge(
        &active_key(),
        &header(&active_key()),
        "Example of Ed25519 signing",
    );
    assert_eq!(code(&t), "bad_json");
}

// === 10. times: expired, not_yet_valid ===

#[test]
fn expired_and_not_yet_valid_with_bounded_leeway() {
    let t = good();
    let exp = NOW + 4 * 3600;
    let at = |now| match ring().verify_at(&config(), &t, now, &NoRevocations) {
        Ok(v) => v.outcome(),
        Err(e) => e.outcome(),
    };
    assert_eq!(at(exp + 59), "soft_expired");
    assert_eq!(at(exp + 60), "expired");
    assert_eq!(
        ring()
            .verify_at(&config(), &t, exp + 60, &NoRevocations)
            .unwrap_err()
            .kind(),
        ErrorKind::Expired
    );
    // iat in the future beyond the leeway.
    assert_eq!(at(NOW - 60), "ok");
    assert_eq!(at(NOW - 61), "not_yet_valid");
    // nbf in the future.
    let nbf = with_payload(r#""rlc":"bot""#, &format!(r#""nbf":{}"#, NOW + 61));
    assert_eq!(code(&nbf), "not_yet_valid");
    let nbf_ok = with_payload(r#""rlc":"bot""#, &format!(r#""nbf":{}"#, NOW + 60));
    assert_eq!(code(&nbf_ok), "ok");
    // An iat older than the longest lifetime is expired whatever exp says.
    let old = with_payload(
        &format!(r#""iat":{NOW}"#),
        &format!(r#""iat":{}"#, NOW - 4 * 3600 - 61),
    );
    assert_eq!(code(&old), "expired");
    // The leeway is capped at 60 s.
    let lax = config().with_leeway(Duration::from_secs(86_400));
    assert_eq!(
        ring()
            .verify_at(&lax, &t, exp + 60, &NoRevocations)
            .unwrap_err()
            .outcome(),
        "expired"
    );
    // A tighter leeway applies.
    let strict = config().with_leeway(Duration::ZERO);
    assert_eq!(
        ring()
            .verify_at(&strict, &t, exp, &NoRevocations)
            .unwrap_err()
            .outcome(),
        "expired"
    );
    // Extreme times do not overflow.
    for now in [i64::MIN, i64::MAX] {
        assert!(
            ring()
                .verify_at(&config(), &t, now, &NoRevocations)
                .is_err()
        );
    }
    let far = with_payload(
        &format!(r#""iat":{NOW}"#),
        &format!(r#""iat":{}"#, i64::MIN),
    );
    assert_eq!(code(&far), "expired");
}

// === 11–13. iss, aud, typ ===

#[test]
fn wrong_issuer() {
    for iss in [
        "https://evil.example",
        "https://wiki.example/",
        "HTTPS://WIKI.EXAMPLE",
        "",
    ] {
        let t = with_payload(
            r#""iss":"https://wiki.example""#,
            &format!(r#""iss":"{iss}""#),
        );
        assert_eq!(code(&t), "wrong_issuer", "{iss}");
    }
}

#[test]
fn wrong_audience() {
    // An aud when none is configured.
    let t = with_payload(r#""rlc":"bot""#, r#""aud":"wiki""#);
    assert_eq!(code(&t), "wrong_audience");
    let with_aud = config().with_audience("wiki");
    let at = |t: &str| match ring().verify_at(&with_aud, t, NOW, &NoRevocations) {
        Ok(v) => v.outcome(),
        Err(e) => e.outcome(),
    };
    assert_eq!(at(&t), "ok");
    assert_eq!(
        at(&with_payload(r#""rlc":"bot""#, r#""aud":["api","wiki"]"#)),
        "ok"
    );
    for aud in [
        r#""api""#,
        r#""wik""#,
        r#""wiki2""#,
        r#"["api"]"#,
        r#"[]"#,
        r#""WIKI""#,
    ] {
        let t = with_payload(r#""rlc":"bot""#, &format!(r#""aud":{aud}"#));
        assert_eq!(at(&t), "wrong_audience", "{aud}");
    }
    // Configured, absent from the token.
    assert_eq!(at(&good()), "wrong_audience");
}

#[test]
fn wrong_type() {
    let kid = active_key().kid().to_string();
    for typ in [
        None,
        Some("JWT"),
        Some("at+jwt"),
        Some(""),
        Some("session+jwt2"),
    ] {
        let h = match typ {
            None => format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#),
            Some(t) => format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"{t}"}}"#),
        };
        assert_eq!(code(&with_header(&h)), "wrong_type", "{typ:?}");
    }
    for ok in ["application/session+jwt", "SESSION+JWT"] {
        let h = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"{ok}"}}"#);
        assert_eq!(code(&with_header(&h)), "ok", "{ok}");
    }
    // Another configured type refuses ours.
    let refresh = config().with_typ("refresh+jwt");
    assert_eq!(
        ring()
            .verify_at(&refresh, &good(), NOW, &NoRevocations)
            .unwrap_err()
            .outcome(),
        "wrong_type"
    );
}

// === 14. revocation hook: revoked ===

#[test]
fn revoked_by_session_or_user_time() {
    let t = good();
    let c = claims();
    let mut list = RevocationList::default();
    assert!(ring().verify_at(&config(), &t, NOW, &list).is_ok());
    list.revoke_session("other-sid");
    assert!(ring().verify_at(&config(), &t, NOW, &list).is_ok());
    list.revoke_session(c.sid.clone());
    let err = ring().verify_at(&config(), &t, NOW, &list).unwrap_err();
    assert_eq!((err.outcome(), err.kind()), ("revoked", ErrorKind::Revoked));

    let mut list = RevocationList::default();
    list.revoke_user_before(c.sub.clone(), c.iat);
    assert!(
        ring().verify_at(&config(), &t, NOW, &list).is_ok(),
        "issued at the revocation time"
    );
    list.revoke_user_before(c.sub.clone(), c.iat + 1);
    assert_eq!(
        ring()
            .verify_at(&config(), &t, NOW, &list)
            .unwrap_err()
            .outcome(),
        "revoked"
    );
    // An earlier time does not un-revoke.
    list.revoke_user_before(c.sub, 0);
    assert_eq!(
        ring()
            .verify_at(&config(), &t, NOW, &list)
            .unwrap_err()
            .outcome(),
        "revoked"
    );
    list.revoke_user_before("mw:CentralAuth::1234", NOW + 100);
    let mut other = RevocationList::default();
    other.revoke_user_before("mw:CentralAuth::1234", NOW + 100);
    assert!(ring().verify_at(&config(), &t, NOW, &other).is_ok());
}

// === 15. soft expiry: a successful, stale outcome ===

#[test]
fn soft_expired_is_success() {
    let t = good();
    let v = ring()
        .verify_at(&config(), &t, NOW + 3599, &NoRevocations)
        .unwrap();
    assert_eq!(v.status, Status::Fresh);
    let v = ring()
        .verify_at(&config(), &t, NOW + 3600, &NoRevocations)
        .unwrap();
    assert_eq!(
        (v.status, v.outcome()),
        (Status::SoftExpired, "soft_expired")
    );
    assert_eq!(*v.claims, claims());
}

// === order: the first failing step is reported ===

#[test]
fn the_first_failure_in_the_documented_order_wins() {
    let key = active_key();
    let kid = key.kid().to_string();
    let expired_payload =
        payload().replace(&(NOW + 4 * 3600).to_string(), &(NOW - 100).to_string());
    // Bad signature beats expired, wrong issuer, wrong type and bad claims JSON.
    let bad_all = format!(
        r#"{{"iss":"x","sub":"s","iat":{NOW},"exp":"{}","sxp":1,"jti":"j","sid":"s"}}"#,
        NOW - 100
    );
    let h = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"JWT"}}"#);
    let t = forge(&key, &h, &bad_all);
    let (input, _) = t.rsplit_once('.').unwrap();
    assert_eq!(code(&format!("{input}.{}", b64(&[1; 64]))), "bad_signature");
    // bad_json (claims) beats expired etc. once the signature is good.
    assert_eq!(code(&t), "bad_json");
    // expired beats wrong issuer and wrong type.
    let t = forge(
        &key,
        &h,
        &expired_payload.replace("https://wiki.example", "https://x"),
    );
    assert_eq!(code(&t), "expired");
    // wrong issuer beats wrong audience beats wrong type.
    let t = forge(
        &key,
        &h,
        &payload()
            .replace("https://wiki.example", "https://x")
            .replace(r#""rlc":"bot""#, r#""aud":"zz""#),
    );
    assert_eq!(code(&t), "wrong_issuer");
    let t = forge(
        &key,
        &h,
        &payload().replace(r#""rlc":"bot""#, r#""aud":"zz""#),
    );
    assert_eq!(code(&t), "wrong_audience");
    // alg_not_allowed beats unsupported (crit) beats unknown_kid.
    let h = r#"{"alg":"HS256","kid":"nope","crit":["x"]}"#;
    assert_eq!(code(&with_header(h)), "alg_not_allowed");
    let h = r#"{"alg":"EdDSA","kid":"nope","crit":["x"]}"#;
    assert_eq!(code(&with_header(h)), "unsupported");
    // bad_json (header) beats alg_not_allowed.
    let h = r#"{"alg":"none","alg":"none","kid":"nope"}"#;
    assert_eq!(code(&with_header(h)), "bad_json");
    // unknown_kid beats a bad signature and bad claims.
    let t = forge(
        &SigningKey::ed25519_from_seed(&[8; 32]),
        r#"{"alg":"EdDSA","kid":"AAAAAAAAAAAAAAAA"}"#,
        "[]",
    );
    assert_eq!(code(&t), "unknown_kid");
    // bad_encoding beats malformed JSON everywhere.
    assert_eq!(code("e30.e30.A"), "bad_encoding");
    // Revocation comes after typ.
    let mut list = RevocationList::default();
    list.revoke_session("s");
    let h = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"JWT"}}"#);
    let t = forge(&key, &h, &payload());
    assert_eq!(
        ring()
            .verify_at(&config(), &t, NOW, &list)
            .unwrap_err()
            .outcome(),
        "wrong_type"
    );
}

// === signing refusals ===

#[test]
fn signing_refuses_claims_it_would_not_verify() {
    let r = ring();
    let cfg = config();
    let mut c = claims();
    c.sxp = c.exp + 1;
    assert_eq!(
        r.sign_at(&cfg, &c, NOW).unwrap_err().outcome(),
        "invalid_claims"
    );
    let mut c = claims();
    c.exp = c.iat;
    c.sxp = c.iat;
    assert_eq!(
        r.sign_at(&cfg, &c, NOW).unwrap_err().outcome(),
        "invalid_claims"
    );
    let mut c = claims();
    c.exp = c.iat + 4 * 3600 + 1;
    assert_eq!(
        r.sign_at(&cfg, &c, NOW).unwrap_err().outcome(),
        "invalid_claims"
    );
    let mut c = claims();
    c.iss = "https://other.example".into();
    assert_eq!(
        r.sign_at(&cfg, &c, NOW).unwrap_err().outcome(),
        "invalid_claims"
    );
    let mut c = claims();
    c.custom.insert("sid".into(), serde_json::json!("x"));
    assert_eq!(
        r.sign_at(&cfg, &c, NOW).unwrap_err().outcome(),
        "invalid_claims"
    );
    let mut c = claims();
    c.custom
        .insert("big".into(), serde_json::json!("x".repeat(5000)));
    assert_eq!(
        r.sign_at(&cfg, &c, NOW).unwrap_err().outcome(),
        "invalid_claims"
    );
    // No key signs before the active key's valid_from.
    let err = r.sign_at(&cfg, &claims(), NOW - 86_401).unwrap_err();
    assert_eq!(
        (err.outcome(), err.kind()),
        ("no_signing_key", ErrorKind::Unavailable)
    );
}

#[test]
fn public_key_import_refuses_weak_and_wrong_keys() {
    // Small-order points of Ed25519 (security checklist I4).
    for hex in [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    ] {
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert!(
            matches!(
                PublicKey::ed25519(&bytes),
                Err(Error::WeakKey | Error::InvalidKey { .. })
            ),
            "{hex}"
        );
    }
    // A non-canonical encoding (y + p, for y < 19) of a valid, large-order point is
    // refused, so one key never has two encodings and two kids.
    let mut tried = 0;
    for y in 0u8..19 {
        let mut canonical = [0u8; 32];
        canonical[0] = y;
        if PublicKey::ed25519(&canonical).is_err() {
            continue;
        }
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xed + y;
        non_canonical[31] = 0x7f;
        assert!(PublicKey::ed25519(&non_canonical).is_err(), "y = {y}");
        tried += 1;
    }
    assert!(tried > 0);
    // RSA: too small, wrong exponent, leading zero.
    let n = vec![0xc5; 128];
    assert!(PublicKey::rs256(&n, &[1, 0, 1]).is_err());
    let n = vec![0xc5; 256];
    assert!(PublicKey::rs256(&n, &[3]).is_err());
    assert!(PublicKey::rs256(&[vec![0], n].concat(), &[1, 0, 1]).is_err());
}

#[test]
fn fuzz_corpus_files_have_their_expected_outcomes() {
    use tessera_token::fuzzing::{NOW as FUZZ_NOW, fixture};
    let (ring, config) = fixture();
    let mut list = RevocationList::default();
    list.revoke_session("revoked-sid");
    let dir = format!(
        "{}/../../fuzz/corpus/token_verify",
        env!("CARGO_MANIFEST_DIR")
    );
    for (file, expected) in [
        ("valid-eddsa", "ok"),
        ("valid-ed25519-name", "ok"),
        ("valid-rs256-retired", "ok"),
        ("aud-and-nbf", "wrong_audience"),
        ("soft-expired", "soft_expired"),
        ("es256-bad-signature", "bad_signature"),
        ("alg-none", "alg_not_allowed"),
        ("alg-hs256", "alg_not_allowed"),
        ("alg-mismatch", "alg_not_allowed"),
        ("jwe", "unsupported"),
        ("crit", "unsupported"),
        ("nested-cty", "unsupported"),
        ("dup-header", "bad_json"),
        ("string-exp", "bad_json"),
        ("dup-claims-deep", "bad_json"),
        ("key-revoked", "key_revoked"),
        ("key-not-yet-valid", "key_not_yet_valid"),
        ("session-revoked", "revoked"),
        ("padded", "bad_encoding"),
        ("non-canonical", "bad_encoding"),
        ("huge", "malformed"),
        ("empty", "malformed"),
        ("dots", "bad_json"),
    ] {
        let token = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        let got = match ring.verify_at(config, &token, FUZZ_NOW, &list) {
            Ok(v) => v.outcome(),
            Err(e) => e.outcome(),
        };
        assert_eq!(got, expected, "{file}");
    }
}
