use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Random bytes in a handle: 256 bits from the OS CSPRNG.
const HANDLE_RANDOM_BYTES: usize = 32;
/// Base64url characters for [`HANDLE_RANDOM_BYTES`] without padding.
const HANDLE_RANDOM_CHARS: usize = 43;
/// The length of a handle's text form: one kind character and the random part.
pub const HANDLE_LEN: usize = 1 + HANDLE_RANDOM_CHARS;

/// Which kind of session a handle names. The kind is part of the handle so that a lookup
/// goes to exactly one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// No user is bound to the session.
    Anonymous,
    /// A user logged in.
    Authenticated,
}

impl SessionKind {
    /// The stable lowercase name, as used in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Authenticated => "authenticated",
        }
    }

    fn tag(self) -> u8 {
        match self {
            Self::Anonymous => b'a',
            Self::Authenticated => b'u',
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            b'a' => Some(Self::Anonymous),
            b'u' => Some(Self::Authenticated),
            _ => None,
        }
    }
}

/// A session handle: the secret value of the session cookie.
///
/// Its text form is one kind character (`a` anonymous, `u` authenticated) followed by 256
/// random bits in unpadded base64url, [`HANDLE_LEN`] characters in all. Parsing is strict:
/// exact length, exact alphabet, canonical trailing bits.
///
/// # Security
///
/// The handle is a bearer secret. It has no `Display` and a redacted `Debug`; its text
/// leaves through [`Handle::expose`] only, which the cookie writer calls. Equality is in
/// constant time. The bytes are zeroized on drop.
#[derive(Clone)]
pub struct Handle {
    text: Zeroizing<String>,
    kind: SessionKind,
}

impl Handle {
    /// A fresh handle of `kind` from the OS CSPRNG.
    ///
    /// # Errors
    ///
    /// Fails only if the operating system's random source fails.
    pub fn generate(kind: SessionKind) -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; HANDLE_RANDOM_BYTES]);
        getrandom::fill(bytes.as_mut())?;
        let mut text = Zeroizing::new(String::with_capacity(HANDLE_LEN));
        text.push(char::from(kind.tag()));
        URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut text);
        Ok(Self { text, kind })
    }

    /// The kind of session this handle names.
    pub fn kind(&self) -> SessionKind {
        self.kind
    }

    /// The text to put in the cookie.
    ///
    /// # Security
    ///
    /// This is the bearer secret; write it into a `Set-Cookie` header and nowhere else.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The store key: SHA-256 of the handle's text.
    pub fn store_key(&self) -> StoreKey {
        StoreKey(Sha256::digest(self.text.as_bytes()).into())
    }
}

/// Why a string is not a handle. One opaque reason: callers must not tell an attacker more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed session handle")]
pub struct MalformedHandle;

impl MalformedHandle {
    /// Every code [`MalformedHandle::code`] returns.
    pub const CODES: &'static [&'static str] = &["handle-malformed"];

    /// A stable identifier for this error, for logs and runbooks.
    pub fn code(&self) -> &'static str {
        "handle-malformed"
    }
}

impl FromStr for Handle {
    type Err = MalformedHandle;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != HANDLE_LEN {
            return Err(MalformedHandle);
        }
        let (tag, random) = bytes.split_first().ok_or(MalformedHandle)?;
        let kind = SessionKind::from_tag(*tag).ok_or(MalformedHandle)?;
        // The base64 engine rejects padding, stray characters and non-zero trailing bits.
        let mut out = Zeroizing::new([0u8; HANDLE_RANDOM_BYTES + 3]);
        let n = URL_SAFE_NO_PAD
            .decode_slice(random, out.as_mut())
            .map_err(|_| MalformedHandle)?;
        if n != HANDLE_RANDOM_BYTES {
            return Err(MalformedHandle);
        }
        Ok(Self {
            text: Zeroizing::new(s.to_owned()),
            kind,
        })
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Self) -> bool {
        self.text.as_bytes().ct_eq(other.text.as_bytes()).into()
    }
}
impl Eq for Handle {}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The key a session is stored under: SHA-256 of its handle. Not a secret: it cannot be
/// turned back into a cookie. Its base64url form is the session's public reference in the
/// management API.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// A key from its raw bytes (as read back from a backend).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The unpadded base64url form (43 characters), used as the session reference.
    pub fn to_ref(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses a reference made by [`StoreKey::to_ref`], strictly.
    pub fn from_ref(s: &str) -> Option<Self> {
        if s.len() != 43 {
            return None;
        }
        let mut out = [0u8; 35];
        let n = URL_SAFE_NO_PAD.decode_slice(s, &mut out).ok()?;
        let bytes: [u8; 32] = out.get(..n)?.try_into().ok()?;
        Some(Self(bytes))
    }

    /// Lowercase hex, for backends whose keys are text.
    pub fn to_hex(&self) -> String {
        crate::hex::to_hex(&self.0)
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        write!(f, "StoreKey({}…)", hex.get(..12).unwrap_or(&hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn malformed_handle_code() {
        tessera_test_support::assert_error_codes(MalformedHandle::CODES, [MalformedHandle.code()]);
    }

    #[test]
    fn generated_handles_parse_back_and_keep_their_kind() {
        for kind in [SessionKind::Anonymous, SessionKind::Authenticated] {
            let h = Handle::generate(kind).unwrap();
            assert_eq!(h.expose().len(), HANDLE_LEN);
            let parsed: Handle = h.expose().parse().unwrap();
            assert_eq!(parsed, h);
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.store_key(), h.store_key());
        }
    }

    #[test]
    fn handles_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let h = Handle::generate(SessionKind::Anonymous).unwrap();
            assert!(seen.insert(h.expose().to_owned()));
        }
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let h = Handle::generate(SessionKind::Authenticated).unwrap();
        let dbg = format!("{h:?}");
        assert!(!dbg.contains(&h.expose()[1..10]), "{dbg}");
    }

    #[test]
    fn malformed_handles_are_refused() {
        let good = Handle::generate(SessionKind::Anonymous).unwrap();
        let g = good.expose();
        let cases = [
            String::new(),
            g[..HANDLE_LEN - 1].to_owned(),
            format!("{g}A"),
            format!("x{}", &g[1..]),
            format!("a{}=", &g[1..HANDLE_LEN - 1]),
            format!("a{}+", &g[1..HANDLE_LEN - 1]),
            format!("a{}/", &g[1..HANDLE_LEN - 1]),
            format!("a {}", &g[2..]),
            format!("a{}é", &g[1..HANDLE_LEN - 2]),
        ];
        for c in cases {
            assert!(c.parse::<Handle>().is_err(), "accepted {c:?}");
        }
    }

    #[test]
    fn non_canonical_trailing_bits_are_refused() {
        // 43 base64 chars carry 258 bits; the last 2 must be zero. 'B' sets one of them.
        let s = format!("a{}B", "A".repeat(42));
        assert!(s.parse::<Handle>().is_err());
        let ok = format!("a{}A", "A".repeat(42));
        assert!(ok.parse::<Handle>().is_ok());
    }

    #[test]
    fn store_key_refs_round_trip_strictly() {
        let k = Handle::generate(SessionKind::Anonymous)
            .unwrap()
            .store_key();
        assert_eq!(StoreKey::from_ref(&k.to_ref()), Some(k));
        assert_eq!(StoreKey::from_ref(""), None);
        assert_eq!(StoreKey::from_ref(&format!("{}=", &k.to_ref()[..42])), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_only_accepts_canonical(s in "\\PC{0,64}") {
            if let Ok(h) = s.parse::<Handle>() {
                prop_assert_eq!(h.expose(), s.as_str());
            }
        }

        #[test]
        fn any_random_bytes_round_trip(bytes in proptest::array::uniform32(any::<u8>()), anon in any::<bool>()) {
            let tag = if anon { 'a' } else { 'u' };
            let s = format!("{tag}{}", URL_SAFE_NO_PAD.encode(bytes));
            let h: Handle = s.parse().unwrap();
            prop_assert_eq!(h.expose(), s.as_str());
        }
    }
}
