//! Key names. See the crate documentation for the layout and why it suits a Cluster.

use tessera_core::{KvKey, KvNamespace, StoreKey, push_hex};

/// Builds every key name from one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` has been checked: no `{` or `}`, so it never changes a key's hash tag.
    pub(crate) fn new(prefix: String) -> Self {
        Self { prefix }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>s:{<hex store key>}`: one session's record or tombstone, in its own slot.
    pub(crate) fn session(&self, key: &StoreKey) -> String {
        let mut name = String::with_capacity(self.prefix.len() + 4 + 64);
        name.push_str(&self.prefix);
        name.push_str("s:{");
        push_hex(&mut name, key.as_bytes());
        name.push('}');
        name
    }

    pub(crate) fn session_hex(&self, hex: &str) -> String {
        format!("{}s:{{{hex}}}", self.prefix)
    }

    /// `<prefix>u:{<user id>}:i`: the user's index (a sorted set of hex store keys, scored by
    /// expiry), in the user's slot.
    pub(crate) fn user_index(&self, user: &str) -> String {
        format!("{}u:{{{user}}}:i", self.prefix)
    }

    /// `<prefix>u:{<user id>}:r`: the user's revocation time (ms), in the user's slot.
    pub(crate) fn user_revoked(&self, user: &str) -> String {
        format!("{}u:{{{user}}}:r", self.prefix)
    }

    /// `<prefix>k:{<hex of the key>}`: one entry of the key-value namespace, in its own slot.
    /// The key is hex-encoded so that its bytes (braces included) never pick the slot.
    pub(crate) fn kv(&self, key: &[u8]) -> String {
        let mut name = String::with_capacity(self.prefix.len() + 4 + 2 * key.len());
        name.push_str(&self.prefix);
        name.push_str("k:{");
        push_hex(&mut name, key);
        name.push('}');
        name
    }

    /// A `SCAN MATCH` pattern for every key-value entry.
    pub(crate) fn kv_pattern(&self) -> String {
        format!("{}k:{{*}}", glob_escape(&self.prefix))
    }

    /// `<prefix>n:{<namespace>}:g`: a namespace of the keyed store's generation. A namespace
    /// name has no braces ([`KvNamespace`]), so the tag is exactly the name: every key of one
    /// namespace is in one slot.
    pub(crate) fn ns_generation(&self, ns: &KvNamespace) -> String {
        format!("{}n:{{{}}}:g", self.prefix, ns.as_str())
    }

    /// `<prefix>n:{<namespace>}:i`: the namespace's index, a sorted set of the hex digests of
    /// its keys scored by expiry (ms).
    pub(crate) fn ns_index(&self, ns: &KvNamespace) -> String {
        format!("{}n:{{{}}}:i", self.prefix, ns.as_str())
    }

    /// `<prefix>n:{<namespace>}:v:<hex digest>`: one value of the keyed store.
    pub(crate) fn ns_value(&self, ns: &KvNamespace, key: &KvKey) -> String {
        self.ns_value_hex(ns, &key.to_hex())
    }

    pub(crate) fn ns_value_hex(&self, ns: &KvNamespace, hex: &str) -> String {
        format!("{}n:{{{}}}:v:{hex}", self.prefix, ns.as_str())
    }

    /// `<prefix>nl:{namespaces}`: the set of namespaces that have an index, for the purge
    /// (so it needs no `SCAN`).
    pub(crate) fn ns_registry(&self) -> String {
        format!("{}nl:{{namespaces}}", self.prefix)
    }

    /// `<prefix>rv:{revocations}:n`: the revocation log's last sequence number.
    pub(crate) fn revocation_seq(&self) -> String {
        format!("{}rv:{{revocations}}:n", self.prefix)
    }

    /// `<prefix>rv:{revocations}:l`: the revocation log, a sorted set scored by sequence
    /// number, members `<seq>:<JSON>`.
    pub(crate) fn revocation_log(&self) -> String {
        format!("{}rv:{{revocations}}:l", self.prefix)
    }

    /// `<prefix>rv:{revocations}:t`: sequence numbers scored by revocation time, for purge.
    pub(crate) fn revocation_times(&self) -> String {
        format!("{}rv:{{revocations}}:t", self.prefix)
    }

    /// What [`scripts::LOAD_STANDALONE`](crate::scripts::LOAD_STANDALONE) puts before a user
    /// id to name its revocation key.
    pub(crate) fn user_key_start(&self) -> String {
        format!("{}u:{{", self.prefix)
    }

    /// The hex store key inside a session key name, if it is one of ours.
    pub(crate) fn hex_of_session<'a>(&self, name: &'a str) -> Option<&'a str> {
        let hex = name
            .strip_prefix(&self.prefix)?
            .strip_prefix("s:{")?
            .strip_suffix('}')?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
    }

    /// A `SCAN MATCH` pattern for every session key.
    pub(crate) fn session_pattern(&self) -> String {
        format!("{}s:{{*}}", glob_escape(&self.prefix))
    }

    /// A `SCAN MATCH` pattern for every user index.
    pub(crate) fn user_index_pattern(&self) -> String {
        format!("{}u:{{*}}:i", glob_escape(&self.prefix))
    }
}

/// Parses the lowercase hex of a store key (as written by [`StoreKey::to_hex`]).
pub(crate) fn store_key_from_hex(hex: &str) -> Option<StoreKey> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(s, 16).ok()?;
    }
    Some(StoreKey::from_bytes(out))
}

/// Escapes the characters Redis glob patterns treat specially.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The Redis Cluster hash slot of a key name (CRC16/XMODEM of its hash tag, mod 16384).
/// Used by the tests to check the layout.
pub fn hash_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = key.get(open + 1..)?;
            let close = rest.iter().position(|&b| b == b'}')?;
            // An empty tag `{}` does not count: the whole key is hashed.
            (close > 0).then(|| rest.get(..close)).flatten()
        })
        .unwrap_or(key);
    crc16_xmodem(tagged) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_redis_cluster_specification() {
        // Examples from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(hash_slot(b"foo"), 12182);
        assert_eq!(hash_slot(b"{user1000}.following"), hash_slot(b"user1000"));
        assert_eq!(hash_slot(b"foo{}{bar}"), hash_slot(b"foo{}{bar}"));
        assert_ne!(hash_slot(b"foo{}{bar}"), hash_slot(b"bar"));
        assert_eq!(hash_slot(b"foo{{bar}}zap"), hash_slot(b"{bar"));
    }

    #[test]
    fn a_users_keys_share_a_slot_whatever_the_id() {
        let k = Keys::new("tessera:".into());
        for user in ["alice", "a}b", "a{b", "{}", "mw:CentralAuth::123", "ünï"] {
            assert_eq!(
                hash_slot(k.user_index(user).as_bytes()),
                hash_slot(k.user_revoked(user).as_bytes()),
                "{user}"
            );
        }
    }

    #[test]
    fn session_names_spell_the_key_in_lowercase_hex() {
        for seed in 0u8..=255 {
            let bytes: [u8; 32] =
                std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7));
            let key = StoreKey::from_bytes(bytes);
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let k = Keys::new("p:".into());
            assert_eq!(k.session(&key), format!("p:s:{{{hex}}}"));
            assert_eq!(k.session(&key), k.session_hex(&key.to_hex()));
        }
    }

    #[test]
    fn kask_names_spell_the_key_in_lowercase_hex_whatever_its_bytes() {
        let k = Keys::new("p:".into());
        assert_eq!(k.kv(b""), "p:k:{}");
        assert_eq!(k.kv(b"w:{a}\xff"), "p:k:{773a7b617dff}");
        let all: Vec<u8> = (0..=u8::MAX).collect();
        let hex: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(k.kv(&all), format!("p:k:{{{hex}}}"));
    }

    #[test]
    fn session_names_round_trip() {
        let k = Keys::new("t:".into());
        let key = StoreKey::from_bytes([0xab; 32]);
        let name = k.session(&key);
        assert_eq!(name, format!("t:s:{{{}}}", "ab".repeat(32)));
        assert_eq!(k.hex_of_session(&name), Some("ab".repeat(32).as_str()));
        assert_eq!(k.hex_of_session("t:s:{zz}"), None);
        assert_eq!(k.hex_of_session("x:s:{ab}"), None);
        assert_eq!(store_key_from_hex(&key.to_hex()), Some(key));
        assert_eq!(store_key_from_hex("zz"), None);
        assert_eq!(store_key_from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn a_namespaces_keys_share_a_slot() {
        let k = Keys::new("tessera:".into());
        for name in ["sess", "express-sessions", "a.b_c-D", "namespaces"] {
            let ns = KvNamespace::try_new(name).unwrap();
            let slot = hash_slot(k.ns_generation(&ns).as_bytes());
            assert_eq!(slot, hash_slot(name.as_bytes()), "{name}");
            assert_eq!(slot, hash_slot(k.ns_index(&ns).as_bytes()), "{name}");
            for key in [b"a".as_slice(), b"{x}", b"}"] {
                let v = k.ns_value(&ns, &KvKey::digest(key));
                assert_eq!(slot, hash_slot(v.as_bytes()), "{name} {v}");
            }
        }
    }

    #[test]
    fn patterns_escape_the_prefix() {
        let k = Keys::new("a*b?[c]\\:".into());
        assert_eq!(k.session_pattern(), "a\\*b\\?\\[c\\]\\\\:s:{*}");
        assert_eq!(k.user_index_pattern(), "a\\*b\\?\\[c\\]\\\\:u:{*}:i");
    }
}
