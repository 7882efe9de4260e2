//! The value stored under a session key: one format byte, then the body.
//!
//! | format byte | body |
//! |-------------|------|
//! | `1`         | the [`SessionRecord`] as JSON |
//! | `2`         | a tombstone: its `until`, 8 bytes, big-endian milliseconds since the epoch |
//!
//! A new record encoding gets a new byte; old bytes stay readable. Anything else decodes to
//! [`Error::Decode`], never a panic.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use tessera_core::{Error, Expiry, SessionKind, SessionRecord, Timestamp, User};

const FORMAT_RECORD_JSON: u8 = 1;
const FORMAT_TOMBSTONE: u8 = 2;

/// What a session key holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stored {
    /// A record, live or expired but not yet purged.
    Live(SessionRecord),
    /// A deleted session, kept until `until` so it cannot be resurrected or re-created.
    Tombstone { until: Timestamp },
}

impl Stored {
    /// When the entry may be purged: the record's expiry, or the tombstone's end.
    pub(crate) fn deadline(&self) -> Timestamp {
        match self {
            Self::Live(r) => r.expires_at(),
            Self::Tombstone { until } => *until,
        }
    }
}

/// Why stored bytes are not a valid entry. Kept as the source of [`Error::Decode`].
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("unknown format byte {0}")]
    UnknownFormat(u8),
    #[error("tombstone body is {0} bytes, not 8")]
    TombstoneLength(usize),
    #[error("record body is not valid JSON for a session record")]
    Json(#[source] serde_json::Error),
}

/// Encodes a live record.
pub(crate) fn encode_record(record: &SessionRecord) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT_RECORD_JSON);
    serde_json::to_writer(&mut out, record).map_err(|e| Error::Encode(Box::new(e)))?;
    Ok(out)
}

/// Encodes a tombstone.
pub(crate) fn encode_tombstone(until: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(FORMAT_TOMBSTONE);
    out.extend_from_slice(&until.unix_millis().to_be_bytes());
    out
}

/// The fields of a stored record's JSON that [`decode_head`] keeps; serde skips the others
/// (`data`, `claims`, `secrets`, `remember`, the user's name and provider) as serde's
/// `IgnoredAny` does, which checks they are JSON but builds nothing. The names and defaults are [`SessionRecord`]'s.
#[derive(Deserialize)]
struct Head<'a> {
    kind: SessionKind,
    #[serde(default, borrow)]
    user: Option<HeadUser<'a>>,
    created_at: Timestamp,
    renewed_at: Timestamp,
    idle_expires_at: Timestamp,
    absolute_expires_at: Timestamp,
    #[serde(default)]
    expiry: Expiry,
    version: u64,
}

#[derive(Deserialize)]
struct HeadUser<'a> {
    // Borrowed unless the id has escapes.
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// Decodes what [`encode_record`] or [`encode_tombstone`] wrote, but of a record only its
/// head: for the writer's compare-and-set and delete, which need the stored record's version,
/// expiry, creation time and user, not its data. The record in [`Stored::Live`] is the stored
/// one with empty `data`, `claims` and `secrets`, `remember` false and no user name or
/// provider, so what is decided on it ([`SessionRecord::is_live`],
/// [`SessionRecord::expires_at`]) is decided by [`SessionRecord`]'s own rules.
pub(crate) fn decode_head(bytes: &[u8]) -> Result<Stored, Error> {
    let fail = |e: DecodeError| Error::Decode(Box::new(e));
    let (format, body) = bytes
        .split_first()
        .ok_or_else(|| fail(DecodeError::Empty))?;
    match *format {
        FORMAT_RECORD_JSON => {
            let h: Head<'_> =
                serde_json::from_slice(body).map_err(|e| fail(DecodeError::Json(e)))?;
            Ok(Stored::Live(SessionRecord {
                kind: h.kind,
                user: h.user.map(|u| User {
                    id: u.id.into_owned(),
                    name: None,
                    provider: None,
                }),
                claims: BTreeMap::new(),
                created_at: h.created_at,
                renewed_at: h.renewed_at,
                idle_expires_at: h.idle_expires_at,
                absolute_expires_at: h.absolute_expires_at,
                remember: false,
                data: BTreeMap::new(),
                secrets: BTreeMap::new(),
                expiry: h.expiry,
                version: h.version,
            }))
        }
        // A tombstone, or an error: nothing to skip there.
        _ => decode(bytes),
    }
}

/// Decodes what [`encode_record`] or [`encode_tombstone`] wrote.
pub(crate) fn decode(bytes: &[u8]) -> Result<Stored, Error> {
    let fail = |e: DecodeError| Error::Decode(Box::new(e));
    let (format, body) = bytes
        .split_first()
        .ok_or_else(|| fail(DecodeError::Empty))?;
    match *format {
        FORMAT_RECORD_JSON => serde_json::from_slice(body)
            .map(Stored::Live)
            .map_err(|e| fail(DecodeError::Json(e))),
        FORMAT_TOMBSTONE => {
            let millis: [u8; 8] = body
                .try_into()
                .map_err(|_| fail(DecodeError::TombstoneLength(body.len())))?;
            Ok(Stored::Tombstone {
                until: Timestamp::from_unix_millis(i64::from_be_bytes(millis)),
            })
        }
        other => Err(fail(DecodeError::UnknownFormat(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tessera_core::testing::{T0, fresh_user, record};

    fn assert_decode_error(bytes: &[u8]) {
        match decode(bytes) {
            Err(Error::Decode(_)) => {}
            other => panic!("{bytes:?} decoded to {other:?}"),
        }
    }

    #[test]
    fn records_round_trip() {
        for r in [record(None, T0), record(Some(&fresh_user()), T0)] {
            let bytes = encode_record(&r).unwrap();
            assert_eq!(bytes[0], FORMAT_RECORD_JSON);
            assert_eq!(decode(&bytes).unwrap(), Stored::Live(r));
        }
    }

    /// What [`decode_head`] keeps of `r`.
    fn head(r: &SessionRecord) -> SessionRecord {
        SessionRecord {
            user: r.user.as_ref().map(|u| User {
                id: u.id.clone(),
                name: None,
                provider: None,
            }),
            claims: BTreeMap::new(),
            remember: false,
            data: BTreeMap::new(),
            secrets: BTreeMap::new(),
            ..r.clone()
        }
    }

    #[test]
    fn a_head_is_the_record_without_its_data() {
        let mut authed = record(Some("al\\ice \"q\" \u{e9}"), T0);
        authed
            .claims
            .insert("rlc".into(), serde_json::json!(["a", {"b": 1}]));
        authed.remember = true;
        authed.expiry = Expiry::At(T0.saturating_add(std::time::Duration::from_secs(60)));
        authed.version = 7;
        if let Some(u) = authed.user.as_mut() {
            u.provider = Some("idp".into());
        }
        let mut idle = record(None, T0);
        idle.expiry = Expiry::Idle(90);
        for r in [record(None, T0), authed, idle] {
            let bytes = encode_record(&r).unwrap();
            let Stored::Live(h) = decode_head(&bytes).unwrap() else {
                panic!("not a record")
            };
            assert_eq!(h, head(&r));
            assert_eq!(h.expires_at(), r.expires_at());
            assert_eq!(h.user_id(), r.user_id());
            assert_eq!(h.version, r.version);
        }
        let until = T0;
        assert_eq!(
            decode_head(&encode_tombstone(until)).unwrap(),
            Stored::Tombstone { until }
        );
    }

    /// Bytes that are no entry: an unknown or missing format, JSON that is no record, a record
    /// cut short or followed by more, a tombstone without its time.
    fn garbage() -> Vec<Vec<u8>> {
        let good = encode_record(&record(None, T0)).unwrap();
        vec![
            vec![],
            vec![0],
            vec![3, b'{', b'}'],
            vec![FORMAT_RECORD_JSON],
            vec![FORMAT_RECORD_JSON, b'{', b'}'],
            [&[FORMAT_RECORD_JSON][..], b"not json"].concat(),
            good[..good.len() - 1].to_vec(),
            [&good[..], b" trailing"].concat(),
            vec![FORMAT_TOMBSTONE],
        ]
    }

    #[test]
    fn a_head_of_garbage_is_a_decode_error() {
        for c in garbage() {
            assert!(matches!(decode_head(&c), Err(Error::Decode(_))), "{c:?}");
        }
    }

    #[test]
    fn tombstones_round_trip_including_extremes() {
        for ms in [0, 1, -1, T0.unix_millis(), i64::MIN, i64::MAX] {
            let until = Timestamp::from_unix_millis(ms);
            let bytes = encode_tombstone(until);
            assert_eq!(bytes.len(), 9);
            assert_eq!(decode(&bytes).unwrap(), Stored::Tombstone { until });
        }
    }

    #[test]
    fn deadline_is_expiry_or_until() {
        let r = record(None, T0);
        assert_eq!(Stored::Live(r.clone()).deadline(), r.expires_at());
        let until = T0.saturating_add(std::time::Duration::from_secs(5));
        assert_eq!(Stored::Tombstone { until }.deadline(), until);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let mut cases = garbage();
        cases.extend([
            vec![0xff; 40],
            vec![FORMAT_TOMBSTONE; 8],
            vec![FORMAT_TOMBSTONE; 10],
        ]);
        for c in cases {
            assert_decode_error(&c);
        }
    }

    #[test]
    fn the_decode_error_keeps_its_cause() {
        let Err(e) = decode(&[7, 1, 2]) else {
            panic!("decoded garbage")
        };
        let source = std::error::Error::source(&e).unwrap();
        assert_eq!(source.to_string(), "unknown format byte 7");
        assert_eq!(e.code(), "store-decode");
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_json_bodies(body in "\\PC{0,256}") {
            let bytes = [&[FORMAT_RECORD_JSON][..], body.as_bytes()].concat();
            let _ = decode(&bytes);
            let _ = decode_head(&bytes);
        }

        /// Whatever decodes whole decodes to the same head.
        #[test]
        fn a_head_agrees_with_the_whole_decode(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(whole) = decode(&bytes) {
                let expect = match whole {
                    Stored::Live(r) => Stored::Live(head(&r)),
                    t => t,
                };
                prop_assert_eq!(decode_head(&bytes).unwrap(), expect);
            }
        }

        #[test]
        fn any_tombstone_round_trips(ms in any::<i64>()) {
            let until = Timestamp::from_unix_millis(ms);
            prop_assert_eq!(decode(&encode_tombstone(until)).unwrap(), Stored::Tombstone { until });
        }
    }
}
