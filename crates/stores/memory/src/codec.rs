//! The compact form of an entry: one allocation per session, its store key first.
//!
//! A [`SessionRecord`] as a struct costs far more than what it holds: about 200 bytes of
//! fields inline in the map, a B-tree node (over 600 bytes) for any non-empty `data` map,
//! and an allocation per string and per value. With 1 million sessions that is over 10× the
//! raw size (BENCHMARKS.md, "Memory"). So the store keeps each entry as bytes:
//!
//! | bytes | what |
//! |---|---|
//! | 32 | the store key (the set is hashed by it) |
//! | 1 | `1` a record, `2` a tombstone |
//! | 8 | tombstone: `until`, milliseconds, little-endian; nothing follows |
//! | 1 + 1 | record: kind (`0` anonymous, `1` authenticated), remember (`0`/`1`) |
//! | 8 | `created_at`, milliseconds, little-endian |
//! | 3 varints | `renewed_at`, `idle_expires_at`, `absolute_expires_at` minus `created_at` (milliseconds, zigzag) |
//! | varint | `version` |
//! | 1 (+ 8) | expiry: `0` default, `1` at (+ milliseconds), `2` idle (+ seconds), `3` browser, `4` JSON text (any later variant) |
//! | varint … | the user: `0` none, else id length + 1 and the id, then name and provider (`0` none, else length + 1 and the text) |
//! | varint … | `claims`, `data`, `secrets`: the length of their JSON text and the text (`0`: empty map) |
//!
//! Lengths and varints are LEB128; the times after `created_at` are differences, a few bytes
//! each (an hour is 22 bits). The entry is allocated at its exact length: with mimalloc's size
//! classes (…, 128, 160, 192, …), a typical login session fits in 128 bytes. The times and the user id come first, so liveness and the user index
//! are read without decoding the maps ([`Entry`]); `load` decodes the rest. The encoding lives
//! and dies with the process: no version byte.

use std::collections::BTreeMap;

use tessera_core::{Error, Expiry, SessionKind, SessionRecord, StoreKey, Timestamp, User};

const RECORD: u8 = 1;
const TOMBSTONE: u8 = 2;

/// Why bytes are not an entry. It cannot happen (the store decodes only what it encoded);
/// kept as the source of [`Error::Decode`] rather than a panic.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error("entry ends early")]
    Short,
    #[error("unknown tag {0}")]
    Tag(u8),
    #[error("text is not UTF-8")]
    Utf8(#[from] std::str::Utf8Error),
    #[error("map is not valid JSON")]
    Json(#[from] serde_json::Error),
}

fn fail(e: DecodeError) -> Error {
    Error::Decode(Box::new(e))
}

/// An entry read up to its maps: enough to decide liveness and to index it.
// A short-lived value on the stack, read and dropped within one operation: boxing the
// record would add an allocation to every liveness check.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Entry<'a> {
    /// A deleted session, kept until `until`.
    Tombstone { until: Timestamp },
    /// A record: `times` has its kind, times, remember, expiry and version, and no user and
    /// empty maps (so [`SessionRecord::is_live`] decides with it); `user_id` is its user's.
    Live {
        times: SessionRecord,
        user_id: Option<&'a str>,
    },
}

// === encoding ===

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// `b - a` as a zigzag varint (wrapping, so any two times round-trip).
fn delta(out: &mut Vec<u8>, a: Timestamp, b: Timestamp) {
    let d = b.unix_millis().wrapping_sub(a.unix_millis());
    varint(out, ((d << 1) ^ (d >> 63)) as u64);
}

fn text(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => varint(out, 0),
        Some(s) => {
            varint(out, s.len() as u64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn map<V: serde::Serialize>(out: &mut Vec<u8>, m: &BTreeMap<String, V>) -> Result<(), Error> {
    if m.is_empty() {
        varint(out, 0);
        return Ok(());
    }
    let json = serde_json::to_vec(m).map_err(|e| Error::Encode(Box::new(e)))?;
    varint(out, json.len() as u64);
    out.extend_from_slice(&json);
    Ok(())
}

/// The entry of a live record under `key`.
pub(crate) fn encode_record(key: &StoreKey, r: &SessionRecord) -> Result<Box<[u8]>, Error> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(key.as_bytes());
    out.push(RECORD);
    out.push(match r.kind {
        SessionKind::Anonymous => 0,
        SessionKind::Authenticated => 1,
    });
    out.push(u8::from(r.remember));
    out.extend_from_slice(&r.created_at.unix_millis().to_le_bytes());
    for t in [r.renewed_at, r.idle_expires_at, r.absolute_expires_at] {
        delta(&mut out, r.created_at, t);
    }
    varint(&mut out, r.version);
    match r.expiry {
        Expiry::Default => out.push(0),
        Expiry::At(t) => {
            out.push(1);
            out.extend_from_slice(&t.unix_millis().to_le_bytes());
        }
        Expiry::Idle(secs) => {
            out.push(2);
            out.extend_from_slice(&secs.to_le_bytes());
        }
        Expiry::Browser => out.push(3),
        // A variant added later: its JSON, so this store never has to lose it.
        ref other => {
            out.push(4);
            let json = serde_json::to_vec(other).map_err(|e| Error::Encode(Box::new(e)))?;
            varint(&mut out, json.len() as u64);
            out.extend_from_slice(&json);
        }
    }
    match &r.user {
        None => varint(&mut out, 0),
        Some(u) => {
            text(&mut out, Some(&u.id));
            text(&mut out, u.name.as_deref());
            text(&mut out, u.provider.as_deref());
        }
    }
    map(&mut out, &r.claims)?;
    map(&mut out, &r.data)?;
    map(&mut out, &r.secrets)?;
    // A copy at the exact length: `into_boxed_slice` would shrink in place, and mimalloc
    // keeps a block shrunk to half or more of its size, so the spare capacity would stay.
    Ok(Box::from(out.as_slice()))
}

/// The entry of a tombstone under `key`.
pub(crate) fn encode_tombstone(key: &StoreKey, until: Timestamp) -> Box<[u8]> {
    let mut out = Vec::with_capacity(41);
    out.extend_from_slice(key.as_bytes());
    out.push(TOMBSTONE);
    out.extend_from_slice(&until.unix_millis().to_le_bytes());
    out.into_boxed_slice()
}

// === decoding ===

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(fail(DecodeError::Short))?;
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        let (b, rest) = self.0.split_first().ok_or(fail(DecodeError::Short))?;
        self.0 = rest;
        Ok(*b)
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.bytes(8)?;
        let arr: [u8; 8] = b.try_into().map_err(|_| fail(DecodeError::Short))?;
        Ok(u64::from_le_bytes(arr))
    }

    fn time(&mut self) -> Result<Timestamp, Error> {
        Ok(Timestamp::from_unix_millis(self.u64()? as i64))
    }

    fn after(&mut self, a: Timestamp) -> Result<Timestamp, Error> {
        let z = self.varint()?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        Ok(Timestamp::from_unix_millis(a.unix_millis().wrapping_add(d)))
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(fail(DecodeError::Short))
    }

    fn len(&mut self) -> Result<usize, Error> {
        usize::try_from(self.varint()?).map_err(|_| fail(DecodeError::Short))
    }

    fn text(&mut self) -> Result<Option<&'a str>, Error> {
        match self.len()? {
            0 => Ok(None),
            n => {
                let b = self.bytes(n - 1)?;
                Ok(Some(
                    std::str::from_utf8(b).map_err(|e| fail(DecodeError::Utf8(e)))?,
                ))
            }
        }
    }

    fn map<V: serde::de::DeserializeOwned>(&mut self) -> Result<BTreeMap<String, V>, Error> {
        match self.len()? {
            0 => Ok(BTreeMap::new()),
            n => serde_json::from_slice(self.bytes(n)?).map_err(|e| fail(DecodeError::Json(e))),
        }
    }
}

/// Reads an entry up to its user id; with the reader left at the user's name (records).
fn header(entry: &[u8]) -> Result<(Entry<'_>, Reader<'_>), Error> {
    let mut r = Reader(entry);
    r.bytes(32)?;
    match r.u8()? {
        TOMBSTONE => {
            let until = r.time()?;
            Ok((Entry::Tombstone { until }, r))
        }
        RECORD => {
            let kind = match r.u8()? {
                0 => SessionKind::Anonymous,
                1 => SessionKind::Authenticated,
                t => return Err(fail(DecodeError::Tag(t))),
            };
            let remember = r.u8()? != 0;
            let created_at = r.time()?;
            let renewed_at = r.after(created_at)?;
            let idle_expires_at = r.after(created_at)?;
            let absolute_expires_at = r.after(created_at)?;
            let version = r.varint()?;
            let expiry = match r.u8()? {
                0 => Expiry::Default,
                1 => Expiry::At(r.time()?),
                2 => Expiry::Idle(r.u64()?),
                3 => Expiry::Browser,
                4 => {
                    let n = r.len()?;
                    serde_json::from_slice(r.bytes(n)?).map_err(|e| fail(DecodeError::Json(e)))?
                }
                t => return Err(fail(DecodeError::Tag(t))),
            };
            let user_id = r.text()?;
            let times = SessionRecord {
                kind,
                user: None,
                claims: BTreeMap::new(),
                created_at,
                renewed_at,
                idle_expires_at,
                absolute_expires_at,
                remember,
                data: BTreeMap::new(),
                secrets: BTreeMap::new(),
                expiry,
                version,
            };
            Ok((Entry::Live { times, user_id }, r))
        }
        t => Err(fail(DecodeError::Tag(t))),
    }
}

/// An entry read up to its maps ([`Entry`]).
pub(crate) fn entry(entry: &[u8]) -> Result<Entry<'_>, Error> {
    header(entry).map(|(e, _)| e)
}

/// The whole record of a record entry; `None` for a tombstone.
pub(crate) fn decode_record(entry: &[u8]) -> Result<Option<SessionRecord>, Error> {
    let (Entry::Live { mut times, user_id }, mut r) = header(entry)? else {
        return Ok(None);
    };
    if let Some(id) = user_id {
        times.user = Some(User {
            id: id.to_owned(),
            name: r.text()?.map(str::to_owned),
            provider: r.text()?.map(str::to_owned),
        });
    }
    times.claims = r.map()?;
    times.data = r.map()?;
    times.secrets = r.map()?;
    Ok(Some(times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> SessionRecord {
        SessionRecord {
            kind: SessionKind::Authenticated,
            user: Some(User {
                id: "mw:CentralAuth::123".into(),
                name: Some("Émile".into()),
                provider: None,
            }),
            claims: [("rlc".to_owned(), json!("established-user"))].into(),
            created_at: Timestamp::from_unix_millis(-5),
            renewed_at: Timestamp::from_unix_millis(1_800_000_000_123),
            idle_expires_at: Timestamp::from_unix_millis(i64::MAX),
            absolute_expires_at: Timestamp::from_unix_millis(i64::MIN),
            remember: true,
            data: [
                ("k".to_owned(), json!(1.5)),
                ("big".to_owned(), json!(u64::MAX)),
                ("nested".to_owned(), json!({"a": [1, null, "x"], "b": -3})),
            ]
            .into(),
            secrets: [("state".to_owned(), "sealed".to_owned())].into(),
            expiry: Expiry::At(Timestamp::from_unix_millis(77)),
            version: u64::MAX,
        }
    }

    #[test]
    fn records_round_trip_exactly() {
        let key = StoreKey::from_bytes([7; 32]);
        let full = record();
        let expiries = [
            Expiry::Default,
            Expiry::At(Timestamp::from_unix_millis(-1)),
            Expiry::Idle(60),
            Expiry::Browser,
        ];
        for expiry in expiries {
            for user in [full.user.clone(), None] {
                let r = SessionRecord {
                    expiry,
                    user: user.clone(),
                    ..full.clone()
                };
                let bytes = encode_record(&key, &r).unwrap();
                assert_eq!(bytes.get(..32), Some(&[7; 32][..]));
                assert_eq!(decode_record(&bytes).unwrap().as_ref(), Some(&r));
                let Entry::Live { times, user_id } = entry(&bytes).unwrap() else {
                    panic!("not a record");
                };
                assert_eq!(user_id, user.as_ref().map(|u| u.id.as_str()));
                assert_eq!(times.expires_at(), r.expires_at());
                assert_eq!((times.version, times.created_at), (r.version, r.created_at));
            }
        }
        let empty = SessionRecord {
            claims: BTreeMap::new(),
            data: BTreeMap::new(),
            secrets: BTreeMap::new(),
            ..full
        };
        let bytes = encode_record(&key, &empty).unwrap();
        assert_eq!(decode_record(&bytes).unwrap(), Some(empty));
    }

    /// The login session of `bench-memory` (module docs of crates/bench/src/bin/bench-memory.rs)
    /// fits mimalloc's 128-byte class; BENCHMARKS.md's figure depends on it.
    #[test]
    fn a_login_session_is_compact() {
        let now = Timestamp::from_unix_millis(1_800_000_000_000);
        let r = SessionRecord {
            kind: SessionKind::Authenticated,
            user: Some(User {
                id: "mw:CentralAuth::123456".into(),
                name: None,
                provider: None,
            }),
            claims: BTreeMap::new(),
            created_at: now,
            renewed_at: now,
            idle_expires_at: Timestamp::from_unix_millis(1_800_003_600_000),
            absolute_expires_at: Timestamp::from_unix_millis(1_802_592_000_000),
            remember: false,
            data: [
                ("theme".to_owned(), json!("dark")),
                ("lang".to_owned(), json!("en")),
                ("k".to_owned(), json!(123_456)),
            ]
            .into(),
            secrets: BTreeMap::new(),
            expiry: Expiry::Default,
            version: 1,
        };
        let bytes = encode_record(&StoreKey::from_bytes([0; 32]), &r).unwrap();
        assert!(bytes.len() <= 128, "{}", bytes.len());
        assert_eq!(decode_record(&bytes).unwrap(), Some(r));
    }

    #[test]
    fn tombstones_round_trip() {
        let key = StoreKey::from_bytes([1; 32]);
        let bytes = encode_tombstone(&key, Timestamp::from_unix_millis(42));
        assert!(matches!(
            entry(&bytes).unwrap(),
            Entry::Tombstone { until } if until == Timestamp::from_unix_millis(42)
        ));
        assert_eq!(decode_record(&bytes).unwrap(), None);
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let key = StoreKey::from_bytes([3; 32]);
        let good = encode_record(&key, &record()).unwrap();
        for n in 0..good.len() {
            assert!(decode_record(&good[..n]).is_err(), "truncated at {n}");
        }
        let mut bad = good.to_vec();
        bad[32] = 9;
        assert!(entry(&bad).is_err());
        assert!(entry(&[0xff; 40]).is_err());
    }

    #[test]
    fn varints_round_trip() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = vec![];
            varint(&mut out, n);
            assert_eq!(Reader(&out).varint().unwrap(), n);
        }
    }
}
