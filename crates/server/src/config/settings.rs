//! Every setting in one table: its file key, its `TESSERA_*` variable, its type and its
//! default. The section builders read values only through these [`Setting`]s (see
//! `Sources` in `source.rs`), so this table is the parser's list; a test checks it against
//! the file schema and against docs/configuration.md.

use std::time::Duration;

use super::Config;
use super::source::Source;

/// What a setting's value is, as docs/configuration.md names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// `address:port`.
    Address,
    /// A file or directory path.
    Path,
    /// A store URL, or an http(s) URL.
    Url,
    /// A duration: one whole number and a unit (`ms`, `s`, `m`, `h`, `d`).
    Duration,
    /// `true` or `false` (in the environment also `1`/`0`, `yes`/`no`).
    Bool,
    /// A whole number.
    Integer,
    /// A string (some take one of a few words).
    String,
    /// A list of strings (in the environment: separated by `,`, paths by `:`).
    List,
    /// A table (in the environment: a JSON object).
    Table,
}

impl Kind {
    /// The name in docs/configuration.md's type column.
    pub fn name(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Path => "path",
            Self::Url => "URL",
            Self::Duration => "duration",
            Self::Bool => "boolean",
            Self::Integer => "integer",
            Self::String => "string",
            Self::List => "list",
            Self::Table => "table",
        }
    }
}

/// One setting: where it is written in the file and in the environment.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Setting {
    /// The file key, `section.key` (`listen` for the top level).
    pub key: &'static str,
    /// The environment variable, which wins over the file.
    pub env: &'static str,
    /// The type of its value.
    pub kind: Kind,
    /// The default, as `tessera config check --print` shows it with no file and no variable.
    pub default: &'static str,
    /// Whether the value is a secret (never shown) or may hold one (URLs: shown redacted).
    pub secret: bool,
}

macro_rules! settings {
    ($($id:ident = $key:literal, $env:literal, $kind:ident, $default:literal $(, $secret:ident)?;)*) => {
        $(
            #[doc = concat!("`", $key, "` (`", $env, "`).")]
            pub const $id: Setting = Setting {
                key: $key,
                env: $env,
                kind: Kind::$kind,
                default: $default,
                secret: settings!(@secret $($secret)?),
            };
        )*
        /// Every setting, in the order of docs/configuration.md.
        pub const SETTINGS: &[Setting] = &[$($id),*];
    };
    (@secret secret) => { true };
    (@secret) => { false };
}

settings! {
    LISTEN = "listen", "TESSERA_LISTEN", Address, "127.0.0.1:7300";
    DATA_DIR = "data_dir", "TESSERA_DATA_DIR", Path, "./tessera-data";
    API_KEYS = "api_keys", "TESSERA_API_KEY", List, "[]", secret;
    API_KEY_FILE = "api_key_file", "TESSERA_API_KEY_FILE", Path, "none";

    STORE_URL = "store.url", "TESSERA_STORE", Url, "redb:./tessera-data/sessions.redb", secret;
    STORE_TIMEOUT = "store.timeout", "TESSERA_STORE_TIMEOUT", Duration, "1s";
    STORE_ANONYMOUS_URL = "store.anonymous.url", "TESSERA_ANON_STORE", Url, "none", secret;

    SESSION_IDLE_TIMEOUT = "session.idle_timeout", "TESSERA_IDLE_TIMEOUT", Duration, "30m";
    SESSION_ABSOLUTE_TIMEOUT = "session.absolute_timeout", "TESSERA_ABSOLUTE_TIMEOUT", Duration, "12h";
    SESSION_REMEMBER_IDLE_TIMEOUT = "session.remember_idle_timeout", "TESSERA_REMEMBER_IDLE_TIMEOUT", Duration, "7d";
    SESSION_REMEMBER_ABSOLUTE_TIMEOUT = "session.remember_absolute_timeout", "TESSERA_REMEMBER_ABSOLUTE_TIMEOUT", Duration, "30d";
    SESSION_TOMBSTONE_TTL = "session.tombstone_ttl", "TESSERA_TOMBSTONE_TTL", Duration, "10m";
    SESSION_CSRF_MAX_AGE = "session.csrf_max_age", "TESSERA_CSRF_MAX_AGE", Duration, "12h";
    SESSION_CSRF_ROTATE_EVERY = "session.csrf_rotate_every", "TESSERA_CSRF_ROTATE_EVERY", Duration, "7d";
    SESSION_MAX_DATA_BYTES = "session.max_data_bytes", "TESSERA_MAX_DATA_BYTES", Integer, "65536";
    SESSION_PURGE_INTERVAL = "session.purge_interval", "TESSERA_PURGE_INTERVAL", Duration, "5m";
    SESSION_ANONYMOUS = "session.anonymous", "TESSERA_ANONYMOUS", String, "client";
    SESSION_ANONYMOUS_COOKIE_BYTES = "session.anonymous_cookie_bytes", "TESSERA_ANONYMOUS_COOKIE_BYTES", Integer, "3072";

    COOKIE_NAME = "cookie.name", "TESSERA_COOKIE_NAME", String, "__Host-tessera";
    COOKIE_SECURE = "cookie.secure", "TESSERA_COOKIE_SECURE", Bool, "true";
    COOKIE_SAME_SITE = "cookie.same_site", "TESSERA_COOKIE_SAME_SITE", String, "lax";
    COOKIE_DEVELOPMENT = "cookie.development", "TESSERA_COOKIE_DEVELOPMENT", Bool, "false";

    LIMITS_MAX_BODY_BYTES = "limits.max_body_bytes", "TESSERA_MAX_BODY_BYTES", Integer, "65536";
    LIMITS_MAX_HEADER_BYTES = "limits.max_header_bytes", "TESSERA_MAX_HEADER_BYTES", Integer, "16384";

    KASK_TTL = "kask.ttl", "TESSERA_KASK_TTL", Duration, "1d";
    KASK_MAX_VALUE_BYTES = "kask.max_value_bytes", "TESSERA_KASK_MAX_VALUE_BYTES", Integer, "262144";
    KASK_REQUIRE_API_KEY = "kask.require_api_key", "TESSERA_KASK_REQUIRE_API_KEY", Bool, "true";

    KV_MAX_VALUE_BYTES = "kv.max_value_bytes", "TESSERA_KV_MAX_VALUE_BYTES", Integer, "262144";
    KV_MAX_TTL = "kv.max_ttl", "TESSERA_KV_MAX_TTL", Duration, "30d";

    SERVER_ACCESS_LOG = "server.access_log", "TESSERA_ACCESS_LOG", Bool, "true";
    SERVER_SHUTDOWN_GRACE = "server.shutdown_grace", "TESSERA_SHUTDOWN_GRACE", Duration, "10s";

    KEYS_STORAGE = "keys.storage", "TESSERA_KEYS", String, "dir";
    KEYS_MASTER_KEY_FILE = "keys.master_key_file", "TESSERA_MASTER_KEY_FILE", Path, "none";
    KEYS_OTHER_MASTER_KEY_FILE = "keys.other_master_key_file", "TESSERA_OTHER_MASTER_KEY_FILE", Path, "none";
    KEYS_REFRESH = "keys.refresh", "TESSERA_KEYS_REFRESH", Duration, "10s";

    REVOCATIONS_KEEP = "revocations.keep", "TESSERA_REVOCATIONS_KEEP", Duration, "245m";

    TOKENS_ENABLED = "tokens.enabled", "TESSERA_TOKEN_ENABLED", Bool, "true";
    TOKENS_ISSUER = "tokens.issuer", "TESSERA_TOKEN_ISSUER", String, "tessera";
    TOKENS_EXP = "tokens.exp", "TESSERA_TOKEN_EXP", Duration, "4h";
    TOKENS_SXP = "tokens.sxp", "TESSERA_TOKEN_SXP", Duration, "1h";
    TOKENS_COOKIE_NAME = "tokens.cookie_name", "TESSERA_TOKEN_COOKIE_NAME", String, "__Host-tessera-token";
    TOKENS_PROFILE = "tokens.profile", "TESSERA_TOKEN_PROFILE", String, "none";
    TOKENS_ALGORITHM = "tokens.algorithm", "TESSERA_TOKEN_ALGORITHM", String, "EdDSA";
    TOKENS_RSA_BITS = "tokens.rsa_bits", "TESSERA_TOKEN_RSA_BITS", Integer, "3072";
    TOKENS_ED25519_ALG = "tokens.ed25519_alg", "TESSERA_TOKEN_ED25519_ALG", String, "EdDSA";
    TOKENS_TYP = "tokens.typ", "TESSERA_TOKEN_TYP", String, "session+jwt";
    TOKENS_SUBJECT_PREFIX = "tokens.subject_prefix", "TESSERA_TOKEN_SUBJECT_PREFIX", String, "none";
    TOKENS_MEDIAWIKI_SCOPE = "tokens.mediawiki_scope", "TESSERA_TOKEN_MEDIAWIKI_SCOPE", String, "none";
    TOKENS_DEFAULT_CLAIMS = "tokens.default_claims", "TESSERA_TOKEN_DEFAULT_CLAIMS", Table, "{}";
    TOKENS_ROTATE = "tokens.rotate", "TESSERA_TOKEN_ROTATE", Bool, "true";
    TOKENS_ROTATE_EVERY = "tokens.rotate_every", "TESSERA_TOKEN_ROTATE_EVERY", Duration, "30d";
    TOKENS_PUBLISH_AHEAD = "tokens.publish_ahead", "TESSERA_TOKEN_PUBLISH_AHEAD", Duration, "1d";

    VERIFY_MODE = "verify.mode", "TESSERA_VERIFY_MODE", String, "optional";
    VERIFY_REFRESH = "verify.refresh", "TESSERA_VERIFY_REFRESH", Duration, "2s";
    VERIFY_CLAIMS = "verify.claims", "TESSERA_VERIFY_CLAIMS", List, "[]";
    VERIFY_CACHE = "verify.cache", "TESSERA_VERIFY_CACHE", Integer, "65536";
    VERIFY_JWKS = "verify.jwks", "TESSERA_VERIFY_JWKS", Url, "none", secret;
    VERIFY_PUBLIC_KEYS = "verify.public_keys", "TESSERA_VERIFY_PUBLIC_KEYS", List, "[]";
    VERIFY_REVOCATIONS = "verify.revocations", "TESSERA_VERIFY_REVOCATIONS", Url, "none", secret;
    VERIFY_JWKS_REFRESH = "verify.jwks_refresh", "TESSERA_VERIFY_JWKS_REFRESH", Duration, "5m";
    VERIFY_UNKNOWN_KID_COOLDOWN = "verify.unknown_kid_cooldown", "TESSERA_VERIFY_UNKNOWN_KID_COOLDOWN", Duration, "30s";
}

/// Variables with no file key: read before the file is (`TESSERA_CONFIG` names it) or by the
/// log set-up.
pub const ENV_ONLY: &[&str] = &["TESSERA_CONFIG", "TESSERA_LOG", "TESSERA_LOG_FORMAT"];

/// One line of `tessera config check --print`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Effective {
    /// The setting.
    pub setting: &'static Setting,
    /// Its value as in effect, secrets hidden and URLs redacted.
    pub value: String,
    /// Where the value came from.
    pub source: Source,
}

/// A duration as a setting is written: the largest unit that divides it exactly.
pub(crate) fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 || d.is_zero() {
        return format!("{}ms", d.as_millis());
    }
    match d.as_secs() {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|i| format!("{:?}", i.to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

fn or_none(v: Option<String>) -> String {
    v.unwrap_or_else(|| "none".to_owned())
}

/// Every setting's value in `c`, in [`SETTINGS`] order; secrets hidden, URLs redacted.
pub(super) fn values(c: &Config) -> Vec<(&'static Setting, String)> {
    use tessera_core::redact_url;
    let s = &c.session;
    let t = &c.tokens;
    let v = &c.verify;
    let api_keys = match c.api_keys.len() {
        0 => "[]".to_owned(),
        1 => "*** (1 key)".to_owned(),
        n => format!("*** ({n} keys)"),
    };
    let subject_prefix = match &t.subject {
        tessera::token::SubjectFormat::Prefixed(p) if t.profile.is_none() => Some(p.clone()),
        _ => None,
    };
    let mediawiki_scope = match &t.subject {
        tessera::token::SubjectFormat::Prefixed(p) if t.profile.is_some() => p
            .strip_prefix("mw:")
            .and_then(|p| p.strip_suffix(':'))
            .map(str::to_owned),
        _ => None,
    };
    let claims = serde_json::to_string(&t.default_claims).unwrap_or_default();
    let revocations = match &v.revocations {
        None => "none".to_owned(),
        Some(None) => "\"none\" (no revocation check)".to_owned(),
        Some(Some(u)) => redact_url(u),
    };
    let jwks = v.jwks.as_ref().map(|j| match j {
        crate::verifier::JwksLocation::Url(u) => redact_url(u),
        crate::verifier::JwksLocation::File(p) => p.display().to_string(),
    });
    let d = |d: Duration| show_duration(d);
    vec![
        (&LISTEN, c.listen.to_string()),
        (&DATA_DIR, c.data_dir.display().to_string()),
        (&API_KEYS, api_keys),
        (
            &API_KEY_FILE,
            or_none(c.api_key_file.as_ref().map(|p| p.display().to_string())),
        ),
        // Display redacts passwords (user:***@, ?password=***).
        (&STORE_URL, c.store.to_string()),
        (&STORE_TIMEOUT, d(c.store_timeout)),
        (
            &STORE_ANONYMOUS_URL,
            or_none(c.anon_store.as_ref().map(ToString::to_string)),
        ),
        (&SESSION_IDLE_TIMEOUT, d(s.idle_timeout)),
        (&SESSION_ABSOLUTE_TIMEOUT, d(s.absolute_timeout)),
        (&SESSION_REMEMBER_IDLE_TIMEOUT, d(s.remember_idle_timeout)),
        (
            &SESSION_REMEMBER_ABSOLUTE_TIMEOUT,
            d(s.remember_absolute_timeout),
        ),
        (&SESSION_TOMBSTONE_TTL, d(s.tombstone_ttl)),
        (&SESSION_CSRF_MAX_AGE, d(s.csrf_max_age)),
        (&SESSION_CSRF_ROTATE_EVERY, d(s.csrf_rotate_every)),
        (&SESSION_MAX_DATA_BYTES, s.max_data_bytes.to_string()),
        (&SESSION_PURGE_INTERVAL, d(c.purge_interval)),
        (
            &SESSION_ANONYMOUS,
            match s.anonymous {
                tessera::AnonymousMode::Server => "server",
                _ => "client",
            }
            .to_owned(),
        ),
        (
            &SESSION_ANONYMOUS_COOKIE_BYTES,
            s.anonymous_cookie_bytes.to_string(),
        ),
        (&COOKIE_NAME, c.cookie.name().to_owned()),
        (&COOKIE_SECURE, c.cookie.secure().to_string()),
        (
            &COOKIE_SAME_SITE,
            c.cookie.same_site().as_str().to_ascii_lowercase(),
        ),
        (&COOKIE_DEVELOPMENT, c.cookie_development.to_string()),
        (&LIMITS_MAX_BODY_BYTES, c.limits.max_body_bytes.to_string()),
        (
            &LIMITS_MAX_HEADER_BYTES,
            c.limits.max_header_bytes.to_string(),
        ),
        (&KASK_TTL, d(c.kask.ttl)),
        (&KASK_MAX_VALUE_BYTES, c.kask.max_value_bytes.to_string()),
        (&KASK_REQUIRE_API_KEY, c.kask.require_api_key.to_string()),
        (&KV_MAX_VALUE_BYTES, c.kv.max_value_bytes.to_string()),
        (&KV_MAX_TTL, d(c.kv.max_ttl)),
        (&SERVER_ACCESS_LOG, c.server.access_log.to_string()),
        (&SERVER_SHUTDOWN_GRACE, d(c.server.shutdown_grace)),
        (&KEYS_STORAGE, c.keys.storage.name().to_owned()),
        (
            &KEYS_MASTER_KEY_FILE,
            or_none(
                c.keys
                    .master_key_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
        ),
        (
            &KEYS_OTHER_MASTER_KEY_FILE,
            or_none(
                c.keys
                    .other_master_key_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
        ),
        (&KEYS_REFRESH, d(c.keys.refresh)),
        (&REVOCATIONS_KEEP, d(c.revocation_keep)),
        (&TOKENS_ENABLED, t.enabled.to_string()),
        (&TOKENS_ISSUER, t.issuer.clone()),
        (&TOKENS_EXP, d(t.exp)),
        (&TOKENS_SXP, d(t.sxp)),
        (
            &TOKENS_COOKIE_NAME,
            t.cookie_name
                .clone()
                .unwrap_or_else(|| tessera::token::default_cookie_name(&c.cookie)),
        ),
        (
            &TOKENS_PROFILE,
            or_none(t.profile.map(|p| p.name().to_owned())),
        ),
        (&TOKENS_ALGORITHM, algorithm_name(t.algorithm).to_owned()),
        (&TOKENS_RSA_BITS, rsa_bits(t.rsa_bits).to_owned()),
        (&TOKENS_ED25519_ALG, t.ed25519_alg.name().to_owned()),
        (&TOKENS_TYP, t.typ.clone()),
        (&TOKENS_SUBJECT_PREFIX, or_none(subject_prefix)),
        (&TOKENS_MEDIAWIKI_SCOPE, or_none(mediawiki_scope)),
        (&TOKENS_DEFAULT_CLAIMS, claims),
        (&TOKENS_ROTATE, t.rotate.to_string()),
        (&TOKENS_ROTATE_EVERY, d(t.rotate_every)),
        (&TOKENS_PUBLISH_AHEAD, d(t.publish_ahead)),
        (
            &VERIFY_MODE,
            if c.verify_required {
                "required"
            } else {
                "optional"
            }
            .to_owned(),
        ),
        (&VERIFY_REFRESH, d(c.verify_refresh)),
        (&VERIFY_CLAIMS, list(&v.claims)),
        (&VERIFY_CACHE, v.cache.to_string()),
        (&VERIFY_JWKS, or_none(jwks)),
        (
            &VERIFY_PUBLIC_KEYS,
            list(v.public_keys.iter().map(|p| p.display())),
        ),
        (&VERIFY_REVOCATIONS, revocations),
        (&VERIFY_JWKS_REFRESH, d(v.jwks_refresh)),
        (&VERIFY_UNKNOWN_KID_COOLDOWN, d(v.unknown_kid_cooldown)),
    ]
}

/// The name `tokens.algorithm` takes for the algorithm of generated keys.
fn algorithm_name(a: tessera_token::Algorithm) -> &'static str {
    match a {
        tessera_token::Algorithm::Es256 => "ES256",
        tessera_token::Algorithm::Rs256 => "RS256",
        _ => "EdDSA",
    }
}

fn rsa_bits(b: tessera_token::RsaBits) -> &'static str {
    match b {
        tessera_token::RsaBits::B2048 => "2048",
        tessera_token::RsaBits::B4096 => "4096",
        _ => "3072",
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    use std::rc::Rc;

    use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
    use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
    use serde::{Deserialize, forward_to_deserialize_any};

    use super::super::file::File;
    use super::*;

    #[test]
    fn a_duration_is_shown_in_the_largest_unit_that_divides_it() {
        for (d, shown) in [
            (Duration::from_secs(45), "45s"),
            (Duration::from_secs(5400), "90m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(86_400 * 3), "3d"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0ms"),
        ] {
            assert_eq!(show_duration(d), shown);
        }
    }

    /// A deserializer that feeds a schema every field it names, with an empty value of the
    /// field's type, and writes down the path of every leaf: the file keys, from the schema.
    struct Walk {
        prefix: String,
        out: Rc<RefCell<Vec<String>>>,
    }

    impl Walk {
        fn leaf(&self) {
            self.out.borrow_mut().push(self.prefix.clone());
        }
    }

    impl<'de> de::Deserializer<'de> for Walk {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(de::Error::custom(format!(
                "{}: a type the walk does not know",
                self.prefix
            )))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_map(Fields {
                walk: self,
                fields: fields.iter(),
                current: "",
            })
        }
        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_some(self)
        }
        fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf();
            visitor.visit_bool(false)
        }
        fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf();
            visitor.visit_u32(0)
        }
        fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf();
            visitor.visit_u64(0)
        }
        fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf();
            visitor.visit_str("")
        }
        fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.deserialize_str(visitor)
        }
        fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf();
            visitor.visit_seq(SeqDeserializer::<_, Error>::new(std::iter::empty::<()>()))
        }
        fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf();
            visitor.visit_map(MapDeserializer::<_, Error>::new(
                std::iter::empty::<((), ())>(),
            ))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.leaf();
            let first: &str = variants.first().copied().unwrap_or_default();
            visitor.visit_enum(first.into_deserializer())
        }
        forward_to_deserialize_any! {
            i8 i16 i32 i64 i128 u8 u16 u128 f32 f64 char bytes byte_buf unit unit_struct
            newtype_struct tuple tuple_struct identifier ignored_any
        }
    }

    struct Fields {
        walk: Walk,
        fields: std::slice::Iter<'static, &'static str>,
        current: &'static str,
    }

    impl<'de> MapAccess<'de> for Fields {
        type Error = Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Error> {
            let Some(field) = self.fields.next() else {
                return Ok(None);
            };
            self.current = field;
            seed.deserialize(field.into_deserializer()).map(Some)
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
            let prefix = if self.walk.prefix.is_empty() {
                self.current.to_owned()
            } else {
                format!("{}.{}", self.walk.prefix, self.current)
            };
            seed.deserialize(Walk {
                prefix,
                out: Rc::clone(&self.walk.out),
            })
        }
    }

    /// Every key of the file schema, from the schema itself.
    pub(in crate::config) fn schema_keys() -> BTreeSet<String> {
        let out = Rc::new(RefCell::new(Vec::new()));
        File::deserialize(Walk {
            prefix: String::new(),
            out: Rc::clone(&out),
        })
        .unwrap();
        out.take().into_iter().collect()
    }

    #[test]
    fn the_table_is_the_file_schema() {
        let table: BTreeSet<String> = SETTINGS.iter().map(|s| s.key.to_owned()).collect();
        assert_eq!(table.len(), SETTINGS.len(), "a key twice in SETTINGS");
        assert_eq!(table, schema_keys(), "SETTINGS and the file schema differ");
        let vars: BTreeSet<&str> = SETTINGS
            .iter()
            .map(|s| s.env)
            .chain(ENV_ONLY.iter().copied())
            .collect();
        assert_eq!(
            vars.len(),
            SETTINGS.len() + ENV_ONLY.len(),
            "a variable twice"
        );
        assert!(vars.iter().all(|v| v.starts_with("TESSERA_")), "{vars:?}");
    }

    #[test]
    fn the_defaults_are_what_the_table_says() {
        let c = Config::from_toml("", |_| None).unwrap();
        let shown = c.effective();
        let keys: Vec<&str> = shown.iter().map(|e| e.setting.key).collect();
        let table: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        assert_eq!(keys, table, "effective() is not in SETTINGS order");
        for e in shown {
            assert_eq!(e.value, e.setting.default, "{}", e.setting.key);
            assert_eq!(e.source, Source::Default, "{}", e.setting.key);
        }
    }

    /// A valid value of each setting other than its default where the default is "none",
    /// as the environment and as the file write it, with what else it needs.
    fn sample(s: &Setting) -> (String, String, Vec<(&'static str, &'static str)>) {
        let mw = vec![
            (TOKENS_PROFILE.env, "mediawiki"),
            (TOKENS_ISSUER.env, "https://meta.example"),
        ];
        let quoted = |v: &str| format!("{v:?}");
        match s.key {
            "api_keys" => {
                let k = "k".repeat(40);
                (k.clone(), format!("[{k:?}]"), vec![])
            }
            "api_key_file" => (
                "/etc/tessera/api-keys".into(),
                quoted("/etc/tessera/api-keys"),
                vec![],
            ),
            "store.anonymous.url" => ("memory:".into(), quoted("memory:"), vec![]),
            "tokens.profile" => ("mediawiki".into(), quoted("mediawiki"), vec![mw[1]]),
            "tokens.subject_prefix" => ("u:".into(), quoted("u:"), vec![]),
            "tokens.mediawiki_scope" => ("local:wiki".into(), quoted("local:wiki"), mw),
            "tokens.rsa_bits" => (
                "4096".into(),
                "4096".into(),
                vec![(TOKENS_ALGORITHM.env, "RS256")],
            ),
            "tokens.default_claims" => (r#"{"rlc":"x"}"#.into(), r#"{ rlc = "x" }"#.into(), vec![]),
            "verify.claims" => ("rlc".into(), r#"["rlc"]"#.into(), vec![]),
            "verify.public_keys" => ("/etc/mw.pem".into(), r#"["/etc/mw.pem"]"#.into(), vec![]),
            "verify.jwks" => (
                "https://idp.example/jwks.json".into(),
                quoted("https://idp.example/jwks.json"),
                vec![(VERIFY_REVOCATIONS.env, "none")],
            ),
            "verify.revocations" => (
                "none".into(),
                quoted("none"),
                vec![(VERIFY_JWKS.env, "/etc/jwks.json")],
            ),
            _ => match s.kind {
                Kind::Bool | Kind::Integer => (s.default.into(), s.default.into(), vec![]),
                _ => (s.default.into(), quoted(s.default), vec![]),
            },
        }
    }

    #[test]
    fn every_setting_is_read_from_its_variable_and_from_the_file() {
        for s in SETTINGS {
            let (env_value, toml_value, extra) = sample(s);
            let mut vars: BTreeMap<&str, String> =
                extra.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
            vars.insert(s.env, env_value);
            let c = Config::from_toml("", |k| vars.get(k).cloned())
                .unwrap_or_else(|e| panic!("{}: {e}", s.env));
            let e = c.effective().into_iter().find(|e| e.setting == s).unwrap();
            assert_eq!(e.source, Source::Environment, "{}", s.env);

            vars.remove(s.env);
            let file = format!("{} = {toml_value}\n", s.key);
            let c = Config::from_toml(&file, |k| vars.get(k).cloned())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let e = c.effective().into_iter().find(|e| e.setting == s).unwrap();
            assert_eq!(e.source, Source::File, "{file}");
        }
    }

    #[test]
    fn secrets_are_never_shown() {
        let env = |k: &str| match k {
            "TESSERA_API_KEY" => Some("s3cret-s3cret-s3cret-s3cret-s3cret-1".to_owned()),
            "TESSERA_STORE" => Some("postgres://app:hunter2@db/sessions".to_owned()),
            "TESSERA_ANON_STORE" => Some("redis://:hunter2@cache:6379".to_owned()),
            "TESSERA_VERIFY_JWKS" => Some("https://u:hunter2@idp.example/jwks".to_owned()),
            "TESSERA_VERIFY_REVOCATIONS" => {
                Some("https://u:hunter2@idp.example/v1/revocations".to_owned())
            }
            _ => None,
        };
        let c = Config::from_toml(
            "api_keys = [\"file-s3cret-file-s3cret-file-s3cret-1\"]",
            env,
        )
        .unwrap();
        let all = format!("{:?}", c.effective());
        assert!(!all.contains("hunter2") && !all.contains("s3cret"), "{all}");
        assert!(all.contains("*** (2 keys)"), "{all}");
        assert!(all.contains("https://u:***@idp.example/jwks"), "{all}");
    }
}
