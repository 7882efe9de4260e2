//! The envelope of a record: sealed with XChaCha20-Poly1305 under the master key, with its
//! name, kind, version and master key id as associated data.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{AAD_LABEL, FORMAT, KIND, MasterKey, StoredKeysError, invalid};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Envelope {
    pub(super) format: u32,
    pub(super) kind: String,
    pub(super) kek: String,
    pub(super) nonce: String,
    pub(super) ciphertext: String,
}

fn aad(name: &str, version: u64, kek: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + name.len() + KIND.len() + 11 + kek.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(KIND.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(kek.as_bytes());
    aad
}

/// Seals `plaintext` as the record `name` will hold at `version`.
pub(super) fn seal_record(
    master: &MasterKey,
    name: &str,
    version: u64,
    plaintext: &[u8],
) -> Result<Vec<u8>, StoredKeysError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(StoredKeysError::Random)?;
    let cipher = XChaCha20Poly1305::new(master.key.as_ref().into());
    let aad = aad(name, version, &master.id);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| invalid("cannot seal"))?;
    let envelope = Envelope {
        format: FORMAT,
        kind: KIND.to_owned(),
        kek: master.id.clone(),
        nonce: URL_SAFE_NO_PAD.encode(nonce),
        ciphertext: URL_SAFE_NO_PAD.encode(ciphertext),
    };
    serde_json::to_vec(&envelope).map_err(|e| invalid(format!("cannot encode: {e}")))
}

/// Opens the record read from `name` at `version`.
pub(super) fn open_record(
    master: &MasterKey,
    name: &'static str,
    version: u64,
    bytes: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StoredKeysError> {
    let tampered = || StoredKeysError::Tampered { name, version };
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|_| tampered())?;
    if envelope.format != FORMAT || envelope.kind != KIND {
        return Err(tampered());
    }
    if envelope.kek != master.id {
        return Err(StoredKeysError::WrongMasterKey {
            stored: envelope.kek,
            given: master.id.clone(),
        });
    }
    let nonce: [u8; 24] = URL_SAFE_NO_PAD
        .decode(envelope.nonce.as_bytes())
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(tampered)?;
    let ciphertext = URL_SAFE_NO_PAD
        .decode(envelope.ciphertext.as_bytes())
        .map_err(|_| tampered())?;
    let cipher = XChaCha20Poly1305::new(master.key.as_ref().into());
    let aad = aad(name, version, &master.id);
    cipher
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| tampered())
}

/// The id of the master key a record names, if it is an envelope at all.
pub(super) fn kek(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<Envelope>(bytes)
        .ok()
        .map(|e| e.kek)
}
