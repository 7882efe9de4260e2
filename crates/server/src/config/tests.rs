use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn empty_config_is_the_documented_default() {
    let c = Config::from_toml("", no_env).unwrap();
    assert_eq!(c.listen, "127.0.0.1:7300".parse().unwrap());
    assert_eq!(
        c.store,
        StoreUrl::Redb(PathBuf::from("./tessera-data/sessions.redb"))
    );
    assert_eq!(c.cookie, CookieConfig::default());
    assert_eq!(c.session, SessionConfig::default());
    assert_eq!(c.session.anonymous, tessera::AnonymousMode::Client);
}

#[test]
fn environment_overrides_the_file() {
    let env = |k: &str| match k {
        "TESSERA_LISTEN" => Some("127.0.0.1:9999".to_owned()),
        "TESSERA_STORE" => Some("memory:".to_owned()),
        "TESSERA_IDLE_TIMEOUT" => Some("5m".to_owned()),
        _ => None,
    };
    let c = Config::from_toml(
        "listen = \"127.0.0.1:1\"\n[store]\nurl = \"redb:/x\"\n[session]\nidle_timeout = \"1h\"\n",
        env,
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9999);
    assert_eq!(c.store, StoreUrl::Memory);
    assert_eq!(c.session.idle_timeout, Duration::from_secs(300));
}

#[test]
fn errors_name_the_field() {
    let cases = [
        ("listen = \"nope\"", "listen"),
        ("[store]\nurl = \"ftp://x\"", "store.url"),
        ("[session]\nidle_timeout = \"30\"", "session.idle_timeout"),
        (
            "[session]\nidle_timeout = \"13h\"",
            "idle_timeout must not exceed",
        ),
        ("[cookie]\nname = \"__Host-x\"\nsecure = false", "cookie"),
        ("api_keys = [\"short\"]", "api_keys[0]"),
        ("[limits]\nmax_body_bytes = 1", "limits.max_body_bytes"),
        ("[store]\ntimeout = \"5ms\"", "store.timeout"),
        ("[kask]\nttl = \"0s\"", "kask.ttl"),
        ("[kv]\nmax_ttl = \"0s\"", "kv.max_ttl"),
        ("[kv]\nmax_value_bytes = 0", "kv.max_value_bytes"),
        (
            "[cookie]\ndevelopment = true\nname = \"x\"",
            "cookie.development",
        ),
        ("[tokens]\nsxp = \"5h\"", "tokens.sxp"),
        ("[tokens]\nexp = \"30s\"", "tokens.exp"),
        ("[tokens]\nissuer = \"\"", "tokens.issuer"),
        ("[tokens]\nexp = \"8h\"", "revocations.keep"),
        ("[verify]\nmode = \"maybe\"", "verify.mode"),
        ("[verify]\nrefresh = \"2m\"", "verify.refresh"),
        ("[session]\nanonymous = \"cookie\"", "session.anonymous"),
        (
            "[session]\nanonymous_cookie_bytes = 4096",
            "anonymous_cookie_bytes must be between 512 and 3800",
        ),
    ];
    for (toml, want) in cases {
        let err = Config::from_toml(toml, no_env).unwrap_err().to_string();
        assert!(err.contains(want), "{toml:?} gave {err:?}");
    }
    let err = Config::from_toml("bogus = 1", no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field"), "{err}");
    let env = |k: &str| (k == "TESSERA_STORE").then(|| "redis+cluster://a:1/3".to_owned());
    let err = Config::from_toml("", env).unwrap_err().to_string();
    assert!(err.starts_with("TESSERA_STORE:"), "{err}");
    let env =
        |k: &str| (k == "TESSERA_ANON_STORE").then(|| "postgres://h/db?sslmode=require".to_owned());
    let err = Config::from_toml("", env).unwrap_err().to_string();
    assert!(err.starts_with("TESSERA_ANON_STORE:"), "{err}");
}

#[test]
fn every_store_url_form_parses() {
    let redis = |s: &str| match StoreUrl::parse(s) {
        Ok(StoreUrl::Redis(u)) => u,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(
        redis("redis://127.0.0.1:6379").expose(),
        "redis://127.0.0.1:6379"
    );
    redis("redis://127.0.0.1:6379/2");
    redis("rediss://cache.internal:6380");
    redis("redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000");
    redis("rediss+cluster://10.0.0.1:7000,10.0.0.2:7000");
    for s in [
        "postgres://u:p@db/sessions",
        "postgresql://db:5433/sessions?user=u",
    ] {
        assert!(
            matches!(StoreUrl::parse(s), Ok(StoreUrl::Postgres(_))),
            "{s}"
        );
    }
    for bad in [
        "redis+cluster://a:1,,b:2",
        "redis+cluster://a:1/3",
        "redis://h:notaport",
        "postgres://h/db?sslmode=require",
        "mysql://u:p@h/db",
    ] {
        assert!(StoreUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn store_passwords_never_show() {
    let env = |k: &str| match k {
        "TESSERA_STORE" => Some("postgres://app:hunter2@db:5432/sessions".to_owned()),
        "TESSERA_ANON_STORE" => Some("redis://:hunter2@cache:6379/1".to_owned()),
        _ => None,
    };
    let c = Config::from_toml("", env).unwrap();
    let shown = format!(
        "{:?} {} {:?} {}",
        c.store,
        c.store,
        c.anon_store,
        c.anon_store.as_ref().unwrap()
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://app:***@db:5432/sessions"),
        "{shown}"
    );
    assert!(shown.contains("redis://:***@cache:6379/1"), "{shown}");
    match &c.store {
        StoreUrl::Postgres(u) => assert!(u.expose().contains("hunter2")),
        other => panic!("{other:?}"),
    }
    for bad in [
        "redis+cluster://:hunter2@a:1/3",
        "postgres://u:hunter2@h/db?sslmode=require",
        "ftp://u:hunter2@h",
        "redis://:hunter2@h:port",
    ] {
        let err = StoreUrl::parse(bad).unwrap_err();
        assert!(!err.contains("hunter2"), "{bad}: {err}");
    }
    let file = "[store]\nurl = \"redis+cluster://:hunter2@a:1,b:2\"\n\
                [store.anonymous]\nurl = \"rediss://:hunter2@c:1\"\n";
    let c = Config::from_toml(file, no_env).unwrap();
    assert!(matches!(c.store, StoreUrl::Redis(_)));
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn token_sections_parse() {
    let c = Config::from_toml("", no_env).unwrap();
    assert_eq!(c.tokens, TokensConfig::default());
    assert!(c.tokens.enabled && !c.verify_required);
    let c = Config::from_toml(
        "[tokens]\nenabled = false\nissuer = \"https://wiki.example\"\nexp = \"2h\"\nsxp = \"30m\"\ncookie_name = \"__Host-jwt\"\n[verify]\nmode = \"required\"\n",
        no_env,
    )
    .unwrap();
    assert!(!c.tokens.enabled && c.verify_required);
    assert_eq!(c.tokens.issuer, "https://wiki.example");
    assert_eq!(c.tokens.exp, Duration::from_secs(7200));
    assert_eq!(c.tokens.sxp, Duration::from_secs(1800));
    assert_eq!(c.tokens.cookie_name.as_deref(), Some("__Host-jwt"));
}

#[test]
fn the_anonymous_mode_switch_parses_with_its_environment_override() {
    let c = Config::from_toml(
        "[session]\nanonymous = \"server\"\nanonymous_cookie_bytes = 2048\n",
        no_env,
    )
    .unwrap();
    assert_eq!(c.session.anonymous, tessera::AnonymousMode::Server);
    assert_eq!(c.session.anonymous_cookie_bytes, 2048);
    let env = |k: &str| match k {
        "TESSERA_ANONYMOUS" => Some("client".to_owned()),
        "TESSERA_ANONYMOUS_COOKIE_BYTES" => Some("1024".to_owned()),
        _ => None,
    };
    let c = Config::from_toml("[session]\nanonymous = \"server\"\n", env).unwrap();
    assert_eq!(c.session.anonymous, tessera::AnonymousMode::Client);
    assert_eq!(c.session.anonymous_cookie_bytes, 1024);
    let env = |k: &str| (k == "TESSERA_ANONYMOUS").then(|| "both".to_owned());
    let err = Config::from_toml("", env).unwrap_err().to_string();
    assert!(err.starts_with("TESSERA_ANONYMOUS:"), "{err}");
    let env = |k: &str| (k == "TESSERA_ANONYMOUS_COOKIE_BYTES").then(|| "3k".to_owned());
    let err = Config::from_toml("", env).unwrap_err().to_string();
    assert!(err.starts_with("TESSERA_ANONYMOUS_COOKIE_BYTES:"), "{err}");
}

#[test]
fn durations_parse_strictly() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    for bad in ["", "m", "5", "5x", "-5m", "1.5h", "99999999999999999999d"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn every_kask_setting_has_a_variable() {
    let env = |k: &str| match k {
        "TESSERA_KASK_TTL" => Some("2h".to_owned()),
        "TESSERA_KASK_MAX_VALUE_BYTES" => Some("1000".to_owned()),
        "TESSERA_KASK_REQUIRE_API_KEY" => Some("false".to_owned()),
        _ => None,
    };
    let file = "[kask]\nttl = \"1h\"\nmax_value_bytes = 5\nrequire_api_key = true\n";
    let k = Config::from_toml(file, env).unwrap().kask;
    assert_eq!(k.ttl, Duration::from_secs(7200));
    assert_eq!(k.max_value_bytes, 1000);
    assert!(!k.require_api_key);
    let k = Config::from_toml(file, no_env).unwrap().kask;
    assert_eq!((k.max_value_bytes, k.require_api_key), (5, true));

    for (name, value, want) in [
        ("TESSERA_KASK_MAX_VALUE_BYTES", "lots", "not a whole number"),
        (
            "TESSERA_KASK_MAX_VALUE_BYTES",
            "0",
            "between 1 byte and 64 MiB",
        ),
        ("TESSERA_KASK_REQUIRE_API_KEY", "maybe", "not a boolean"),
    ] {
        let env = |k: &str| (k == name).then(|| value.to_owned());
        let err = Config::from_toml("", env).unwrap_err().to_string();
        assert!(err.contains(want), "{name}={value}: {err}");
    }
}
