//! The Lua scripts that make each step atomic. Every script touches the keys of one hash slot
//! only (one session key, or one user's two keys), so each runs unchanged on a standalone
//! server and on a Cluster. The exceptions, [`LOAD_STANDALONE`], [`CREATE_STANDALONE`],
//! [`SAVE_STANDALONE`] and [`DELETE_STANDALONE`], are used only when the server is not a
//! Cluster: each does in one round trip what takes two on a Cluster, because it also reads
//! or writes the keys of the record's user, which are in another slot.
//!
//! A session key is a hash with these fields:
//!
//! | field | record | tombstone |
//! |-------|--------|-----------|
//! | `r`   | the record, JSON | — |
//! | `v`   | its version | — |
//! | `e`   | its expiry (earlier of idle and absolute), ms since the epoch | — |
//! | `c`   | its creation time, ms | — |
//! | `u`   | its user id (authenticated sessions only) | — |
//! | `t`   | — | the tombstone's end, ms |
//!
//! Times are the engine's ("logical") clock, passed in by the caller, never Redis's clock;
//! timestamps in milliseconds are exact in Lua's doubles (below 2^53).

use std::sync::LazyLock;

use redis::Script;

/// Creates a record unless anything (record or tombstone) is under the key.
///
/// KEYS: session. ARGV: record JSON, version, expiry, created, user (`''` for none), TTL ms.
/// Returns 1 if created, 0 if the key was taken.
pub(crate) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'v', ARGV[2], 'e', ARGV[3], 'c', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'u', ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
",
    )
});

/// Lua that indexes a session under a user as [`TOUCH_USER`] does: `prefix` (a Lua local)
/// is the user's key prefix `<prefix>u:{<user>}:`; the arguments name the session's expiry,
/// its store key (hex) and the TTL.
macro_rules! index_user {
    ($expiry:literal, $hex:literal, $ttl:literal) => {
        concat!(
            "redis.call('ZADD', prefix .. 'i', 'GT', ",
            $expiry,
            ", ",
            $hex,
            ")\nif redis.call('PTTL', prefix .. 'i') < tonumber(",
            $ttl,
            ") then redis.call('PEXPIRE', prefix .. 'i', ",
            $ttl,
            ") end\n"
        )
    };
}

/// Standalone servers only: [`CREATE`] and the user's index in one step, the index written
/// only when the record is.
///
/// KEYS: session. ARGV: as [`CREATE`] (the user not `''`), then the store key (hex) and the
/// user-key prefix (`<prefix>u:{`). Returns 1 if created, 0 if the key was taken.
pub(crate) static CREATE_STANDALONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local prefix = ARGV[8] .. ARGV[5] .. '}:'
",
        index_user!("ARGV[3]", "ARGV[7]", "ARGV[6]"),
        r"
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'v', ARGV[2], 'e', ARGV[3], 'c', ARGV[4], 'u', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"
    ))
});

/// Standalone servers only: compare-and-set of a live record, the stored owner's revocation
/// time read and both users' indexes kept in the same step (the new owner's index written,
/// the old owner's entry removed when the owner changes).
///
/// KEYS: session. ARGV: expected version, now, then the new record: JSON, version, expiry,
/// created, user (`''` for none), TTL ms; then the store key (hex) and the user-key prefix
/// (`<prefix>u:{`). Returns `'ok'`, `'missing'` (no live record: absent, tombstone, expired,
/// or revoked) or `'conflict'`; the liveness test is [`SAVE`]'s.
///
/// A save that keeps the stored expiry and owner (a data edit, the common case) writes the
/// record's fields alone: the owner's index entry (score: that expiry), the `u` field and the
/// two keys' TTLs were set when that expiry and owner were written, and setting them again
/// would set what they are. Each `redis.call` costs Redis about as much as a whole `GET`
/// (BENCHMARKS.md), and this saves four of seven. The two TTLs stay as one step set them (the
/// index's at least the record's), so the index still outlives the record it lists.
pub(crate) static SAVE_STANDALONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        r"
local h = redis.call('HMGET', KEYS[1], 'v', 'e', 'c', 'u')
if not h[1] then return 'missing' end
if tonumber(h[2]) <= tonumber(ARGV[2]) then return 'missing' end
local owner = h[4]
if owner then
  local revoked = redis.call('GET', ARGV[10] .. owner .. '}:r')
  if revoked and tonumber(h[3]) <= tonumber(revoked) then return 'missing' end
end
if h[1] ~= ARGV[1] then return 'conflict' end
local same = h[2] == ARGV[5] and (owner or '') == ARGV[7]
if ARGV[7] ~= '' and not same then
  local prefix = ARGV[10] .. ARGV[7] .. '}:'
",
        index_user!("ARGV[5]", "ARGV[9]", "ARGV[8]"),
        r"
end
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'v', ARGV[4], 'e', ARGV[5], 'c', ARGV[6])
if same then return 'ok' end
if ARGV[7] == '' then
  redis.call('HDEL', KEYS[1], 'u')
else
  redis.call('HSET', KEYS[1], 'u', ARGV[7])
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if owner and owner ~= ARGV[7] then
  redis.call('ZREM', ARGV[10] .. owner .. '}:i', ARGV[9])
end
return 'ok'
"
    ))
});

/// Compare-and-set of a live record.
///
/// KEYS: session. ARGV: expected version, now, the user the caller believes owns the record
/// (`''` for none), that user's revocation time (`''` for none), then the new record: JSON,
/// version, expiry, created, user (`''` for none), TTL ms.
///
/// Returns `{'ok'}`, `{'missing'}` (no live record: absent, tombstone, expired, or revoked),
/// `{'conflict'}`, or `{'user', <stored user>}` when the caller guessed the owner wrong and
/// must fetch that user's revocation time and call again.
///
/// The liveness test here restates [`SessionRecord::is_live`](tessera_core::SessionRecord::is_live)
/// (expiry `e <= now` is dead, creation `c <= revoked` is dead) so that the check and the
/// write are one atomic step; for `save` this script is authoritative, and it must agree with
/// `is_live` (the conformance suite checks that it does).
pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'v', 'e', 'c', 'u')
if not h[1] then return {'missing'} end
if tonumber(h[2]) <= tonumber(ARGV[2]) then return {'missing'} end
local user = h[4] or ''
if user ~= ARGV[3] then return {'user', user} end
if user ~= '' and ARGV[4] ~= '' and tonumber(h[3]) <= tonumber(ARGV[4]) then
  return {'missing'}
end
if h[1] ~= ARGV[1] then return {'conflict'} end
redis.call('HSET', KEYS[1], 'r', ARGV[5], 'v', ARGV[6], 'e', ARGV[7], 'c', ARGV[8])
if ARGV[9] == '' then
  redis.call('HDEL', KEYS[1], 'u')
else
  redis.call('HSET', KEYS[1], 'u', ARGV[9])
end
redis.call('PEXPIRE', KEYS[1], ARGV[10])
return {'ok'}
",
    )
});

/// The body of [`DELETE`] and [`DELETE_STANDALONE`] up to the tombstone's write; `h` holds the
/// replaced hash's `e`, `u` and `t`.
macro_rules! tombstone {
    () => {
        r"
local h = redis.call('HMGET', KEYS[1], 'e', 'u', 't')
local untl = tonumber(ARGV[1])
local pttl = redis.call('PTTL', KEYS[1])
local ttl
if h[3] then
  local old = tonumber(h[3])
  if old >= untl then return false end
  if pttl > 0 then ttl = pttl + (untl - old) end
elseif h[1] and pttl > 0 then
  ttl = untl - (tonumber(h[1]) - pttl)
end
if not ttl then
  local t = redis.call('TIME')
  ttl = untl - (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
ttl = math.floor(math.max(ttl, tonumber(ARGV[2])))
ttl = math.min(ttl, tonumber(ARGV[3]))
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
"
    };
}

/// Replaces whatever is under the key with a tombstone until `ARGV[1]`; an existing later
/// tombstone is kept.
///
/// Redis expires keys on its own clock, while `until` is on the engine's clock, so the
/// tombstone's TTL is measured from an estimate of the engine's "now": a record written with
/// the TTL `expiry - now` has `PTTL` left, so "now" is about `expiry - PTTL`. With no record to
/// measure from, the TTL is `until` minus Redis's clock, and at least `ARGV[2]` ms.
///
/// KEYS: session. ARGV: until, minimum TTL ms, maximum TTL ms.
/// Returns the user id of the record it replaced, if that record had one, else nil.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        tombstone!(),
        r"
if h[1] and h[2] then return h[2] end
return false
"
    ))
});

/// Standalone servers only: [`DELETE`] and the removal of the session from its user's index in
/// one step.
///
/// KEYS: session. ARGV: as [`DELETE`], then the store key (hex) and the user-key prefix
/// (`<prefix>u:{`). Returns nil.
pub(crate) static DELETE_STANDALONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        tombstone!(),
        r"
if h[1] and h[2] then redis.call('ZREM', ARGV[5] .. h[2] .. '}:i', ARGV[4]) end
return false
"
    ))
});

/// Removes the key if its record expired or its tombstone ended at `now`.
///
/// KEYS: session. ARGV: now. Returns nil when nothing was due, else the removed record's user
/// id (`''` for none or for a tombstone).
pub(crate) static PURGE_ONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'e', 't', 'u')
local now = tonumber(ARGV[1])
local due = (h[1] and tonumber(h[1]) <= now) or (h[2] and tonumber(h[2]) <= now)
if not due then return false end
redis.call('DEL', KEYS[1])
if h[1] and h[3] then return h[3] end
return ''
",
    )
});

/// Indexes a session under its user (raising its score, never lowering it), stretches the
/// index's TTL to cover it, and returns the user's revocation time.
///
/// KEYS: user index, user revocation (one slot: both are tagged with the user id).
/// ARGV: store key (hex), the session's expiry, TTL ms.
pub(crate) static TOUCH_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return redis.call('GET', KEYS[2])
",
    )
});

/// Sets a user's revocation time unless it is already later.
///
/// KEYS: user revocation. ARGV: time.
pub(crate) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local c = redis.call('GET', KEYS[1])
if (not c) or tonumber(c) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
",
    )
});

/// Standalone servers only: reads a record and its user's revocation time in one round trip.
/// It reads a key it was not given in `KEYS` (the user's, known only once the record is
/// read), which a Cluster does not allow; there, `load` takes two round trips instead.
///
/// KEYS: session. ARGV: the user-key prefix (`<prefix>u:{`).
/// Returns nil (no record) or `{record, revocation time}`, the time nil when the record
/// has no user or the user was never revoked.
pub(crate) static LOAD_STANDALONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'r', 'u')
if not h[1] then return false end
if not h[2] then return {h[1], false} end
return {h[1], redis.call('GET', ARGV[1] .. h[2] .. '}:r')}
",
    )
});

/// Deletes a key-value entry if it is due at `now`.
///
/// KEYS: entry. ARGV: now. Returns 1 if it went, else 0.
pub(crate) static KV_PURGE_ONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
",
    )
});

// === the keyed store (`ns_*`) ===
//
// A namespace's keys share the hash tag `{<namespace>}`: its generation (`g`, a string), its
// index (`i`, a sorted set of the hex digests of its live keys, scored by expiry) and one hash
// per value (`v` the value, `e` its expiry in ms, `g` the generation it was written in). Every
// script below names only keys of one namespace, so it runs whole on one shard of a Cluster.
// A value of another generation than its namespace's was cleared: it is never read, and
// Redis drops it at its TTL.

/// Reads a live value of the current generation.
///
/// KEYS: generation, value. ARGV: now. Returns `{value, expiry}` or nil.
pub(crate) static NS_GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[2], 'v', 'e', 'g')
if not h[1] then return false end
local gen = redis.call('GET', KEYS[1]) or '0'
if h[3] ~= gen or tonumber(h[2]) <= tonumber(ARGV[1]) then return false end
return {h[1], h[2]}
",
    )
});

/// Stores a value in the current generation, indexes it by expiry (which is what the count
/// counts), and drops the index entries due at `now`.
///
/// KEYS: generation, value, index. ARGV: value, expiry, TTL ms, hex digest, now.
/// Returns 1 if the index was created by this write (the namespace goes into the registry),
/// else 0.
pub(crate) static NS_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local gen = redis.call('GET', KEYS[1]) or '0'
redis.call('HSET', KEYS[2], 'v', ARGV[1], 'e', ARGV[2], 'g', gen)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local fresh = redis.call('EXISTS', KEYS[3]) == 0
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
if fresh then return 1 end
return 0
",
    )
});

/// Moves the expiry of a live value of the current generation.
///
/// KEYS: generation, value, index. ARGV: expiry, TTL ms, hex digest, now. Returns 1 if it
/// was live, else 0 (and nothing written).
pub(crate) static NS_TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[2], 'e', 'g')
if not h[1] then return 0 end
local gen = redis.call('GET', KEYS[1]) or '0'
if h[2] ~= gen or tonumber(h[1]) <= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[2], 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[3])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return 1
",
    )
});

/// Deletes a value, and its index entry.
///
/// KEYS: generation, value, index. ARGV: hex digest, now. Returns 1 if a live value of the
/// current generation went, else 0.
pub(crate) static NS_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[2], 'e', 'g')
if not h[1] then return 0 end
redis.call('DEL', KEYS[2])
local gen = redis.call('GET', KEYS[1]) or '0'
if h[2] ~= gen then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
if tonumber(h[1]) <= tonumber(ARGV[2]) then return 0 end
return 1
",
    )
});

/// Clears a namespace: the generation moves on (every value stored is now of an older one)
/// and the index goes (`UNLINK`: freed off the main thread, however large).
///
/// KEYS: generation, index. Returns the new generation.
pub(crate) static NS_CLEAR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
redis.call('UNLINK', KEYS[2])
return n
",
    )
});

/// Removes the values due at `now` among those named, and their index entries (also the
/// entries of values already gone).
///
/// KEYS: generation, index, then the values. ARGV: now, then each value's hex digest, in the
/// order of KEYS. Returns how many values went.
pub(crate) static NS_PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local gen = redis.call('GET', KEYS[1]) or '0'
local n = 0
for j = 3, #KEYS do
  local h = redis.call('HMGET', KEYS[j], 'e', 'g')
  local due = h[1] and tonumber(h[1]) <= now
  if due then
    redis.call('DEL', KEYS[j])
    n = n + 1
  end
  if due or not h[1] or h[2] ~= gen then redis.call('ZREM', KEYS[2], ARGV[j - 1]) end
end
return n
",
    )
});

/// Appends a revocation: the next sequence number, the entry in the log (scored by sequence
/// number, the member `<seq>:<JSON>`), and the sequence number in the time index (scored by
/// the revocation's time, for purge).
///
/// KEYS: sequence, log, time index (one slot: all tagged `{revocations}`).
/// ARGV: the revocation as JSON, its time (ms). Returns the sequence number.
pub(crate) static LOG_REVOCATION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], n, string.format('%d', n) .. ':' .. ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], string.format('%d', n))
return n
",
    )
});

/// Removes the revocations whose time is before `before`.
///
/// KEYS: log, time index. ARGV: before (ms). Returns how many went.
pub(crate) static PURGE_REVOCATIONS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local seqs = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
for _, n in ipairs(seqs) do
  redis.call('ZREMRANGEBYSCORE', KEYS[1], n, n)
  redis.call('ZREM', KEYS[2], n)
end
return #seqs
",
    )
});

/// Every script, to load them all at connection time.
pub(crate) fn all() -> [&'static Script; 19] {
    [
        &CREATE,
        &CREATE_STANDALONE,
        &SAVE,
        &SAVE_STANDALONE,
        &DELETE,
        &DELETE_STANDALONE,
        &PURGE_ONE,
        &TOUCH_USER,
        &REVOKE,
        &LOAD_STANDALONE,
        &KV_PURGE_ONE,
        &LOG_REVOCATION,
        &PURGE_REVOCATIONS,
        &NS_GET,
        &NS_PUT,
        &NS_TOUCH,
        &NS_DELETE,
        &NS_CLEAR,
        &NS_PURGE,
    ]
}
