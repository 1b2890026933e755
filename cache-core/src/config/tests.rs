//! The configuration as a whole: environment, builder, URL and TLS together.

use std::collections::HashMap;

use super::env::VARIABLES;
use super::*;
use crate::error::ConfigError;

fn from(vars: &[(&str, &str)]) -> Result<CacheConfig, ConfigError> {
    let map: HashMap<&str, &str> = vars.iter().copied().collect();
    CacheConfig::from_lookup(|name| map.get(name).map(|v| v.to_string()))
}

fn url_of(config: &CacheConfig) -> &str {
    match config.backend() {
        BackendConfig::Redis(url) => url.expose(),
        BackendConfig::Memory { .. } => "memory",
    }
}

#[test]
fn defaults_follow_the_contract() {
    let c = from(&[]).unwrap();
    assert_eq!(url_of(&c), "redis://localhost:6379/0");
    assert_eq!(c.pool_size(), defaults::pool_size());
    assert!((1..=10).contains(&c.pool_size()));
    assert_eq!(c.socket_timeout(), Duration::from_secs(5));
    assert!(c.enabled());
    assert_eq!(c.default_ttl(), Duration::from_secs(300));
    assert!(c.fail_silently());
    assert_eq!(c.codec(), CodecKind::Bincode);
}

#[test]
fn every_variable_is_read() {
    let c = from(&[
        ("REDIS_HOST", "cache.internal"),
        ("REDIS_PORT", "6380"),
        ("REDIS_DB", "3"),
        ("REDIS_PASSWORD", "p@ss:word/"),
        ("REDIS_USERNAME", "app"),
        ("REDIS_POOL_SIZE", "4"),
        ("REDIS_SOCKET_TIMEOUT", "0.25"),
        ("CACHE_ENABLED", "no"),
        ("CACHE_TTL_DEFAULT", "600"),
        ("CACHE_FAIL_SILENTLY", "FALSE"),
        ("CACHE_BREAKER_THRESHOLD", "0"),
        ("CACHE_BREAKER_PROBE_INTERVAL", "0.1"),
        ("CACHE_MAX_VALUE_BYTES", "1024"),
        ("CACHE_MAX_DECODED_BYTES", "4096"),
        ("CACHE_OFFLOAD_MIN_BYTES", "0"),
        ("CACHE_READ_BATCH", "1"),
        ("CACHE_LEASE_TTL", "4"),
        ("CACHE_LEASE_LIVENESS", "0.3"),
    ])
    .unwrap();
    let parsed = ::url::Url::parse(url_of(&c)).unwrap();
    assert_eq!(parsed.host_str(), Some("cache.internal"));
    assert_eq!(parsed.port(), Some(6380));
    assert_eq!(parsed.path(), "/3");
    assert_eq!(parsed.username(), "app");
    assert_eq!(
        ::url::form_urlencoded::parse(parsed.password().unwrap().as_bytes())
            .next()
            .map(|(k, _)| k.into_owned()),
        Some("p@ss:word/".to_owned())
    );
    assert_eq!(c.pool_size(), 4);
    assert_eq!(c.socket_timeout(), Duration::from_millis(250));
    assert!(!c.enabled());
    assert_eq!(c.default_ttl(), Duration::from_secs(600));
    assert!(!c.fail_silently());
    assert_eq!(c.breaker_threshold(), 0);
    assert_eq!(c.breaker_probe_interval(), Duration::from_millis(100));
    assert_eq!(c.max_value_bytes(), 1024);
    assert_eq!(c.max_decoded_bytes(), 4096);
    assert_eq!(c.offload_min_bytes(), 0);
    assert_eq!(c.read_batch(), 1);
    assert_eq!(c.lease_ttl(), Duration::from_secs(4));
    assert_eq!(c.lease_liveness(), Duration::from_millis(300));
}

#[test]
fn lease_liveness_defaults_to_a_second_below_the_lease_ttl() {
    let c = from(&[]).unwrap();
    assert_eq!(c.lease_liveness(), Duration::from_secs(1));
    let c = from(&[("CACHE_LEASE_TTL", "0.5")]).unwrap();
    assert_eq!(c.lease_liveness(), Duration::from_millis(250));
}

#[test]
fn url_wins_over_parts() {
    let c = from(&[
        ("REDIS_URL", "redis://other:7000/1"),
        ("REDIS_HOST", "ignored"),
        ("REDIS_PORT", "not even checked"),
    ])
    .unwrap();
    assert_eq!(url_of(&c), "redis://other:7000/1");
}

#[test]
fn every_url_form_fred_accepts_is_accepted() {
    for url in [
        "redis://localhost",
        "redis://localhost:6380/15",
        "redis://:secret@localhost:6379/0",
        "redis://user:secret@127.0.0.1:6379",
        "redis://[::1]:6379",
        "redis-cluster://localhost:30001?node=localhost:30002&node=localhost:30003",
        "redis-sentinel://localhost:26379/0?sentinelServiceName=mymaster",
        "valkey://localhost:6379",
    ] {
        let c = from(&[("REDIS_URL", url)]).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(url_of(&c), url);
    }
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_urls_without_tls_support_are_refused() {
    let e = from(&[("REDIS_URL", "rediss://:pw@localhost:6380")]).unwrap_err();
    assert_eq!(e.variable, "REDIS_URL");
    assert!(e.to_string().contains("`tls` feature"), "{e}");
    assert!(!e.to_string().contains("pw"));
}

/// What a TLS file error says, with and without TLS compiled in.
const TLS_FILE: &str = if cfg!(feature = "tls") {
    "readable PEM file"
} else {
    "`tls` feature"
};

#[test]
fn tls_files_are_checked() {
    let tls = [("REDIS_URL", "rediss://localhost:6380")];
    if !cfg!(feature = "tls") {
        // The URL itself is refused first.
        assert_eq!(from(&tls).unwrap_err().variable, "REDIS_URL");
        return;
    }
    let e = from(&[tls[0], ("REDIS_TLS_CA", "/nonexistent/ca.pem")]).unwrap_err();
    assert_eq!(e.variable, "REDIS_TLS_CA");
    assert!(e.to_string().contains(TLS_FILE), "{e}");
    let e = from(&[tls[0], ("REDIS_TLS_KEY", "Cargo.toml")]).unwrap_err();
    assert_eq!(e.variable, "REDIS_TLS_KEY");
    assert!(e.to_string().contains("REDIS_TLS_CERT beside it"), "{e}");
    let e = from(&[tls[0], ("REDIS_TLS_CERT", "Cargo.toml")]).unwrap_err();
    assert_eq!(e.variable, "REDIS_TLS_CERT");
    let ok = from(&[tls[0], ("REDIS_TLS_CA", "Cargo.toml")]).unwrap();
    assert_eq!(
        ok.tls().ca.as_deref(),
        Some(std::path::Path::new("Cargo.toml"))
    );
}

#[test]
fn every_bad_value_names_its_variable() {
    let cases: &[(&str, &str, &str)] = &[
        ("REDIS_PORT", "http", "port number"),
        ("REDIS_PORT", "0", "port number"),
        ("REDIS_PORT", "70000", "port number"),
        ("REDIS_DB", "-1", "database number"),
        ("REDIS_DB", "256", "database number"),
        ("REDIS_HOST", "a host", "host name"),
        ("REDIS_POOL_SIZE", "0", "at least 1"),
        ("REDIS_POOL_SIZE", "ten", "at least 1"),
        ("REDIS_SOCKET_TIMEOUT", "0", "positive number of seconds"),
        ("REDIS_SOCKET_TIMEOUT", "-1", "positive number of seconds"),
        ("REDIS_SOCKET_TIMEOUT", "soon", "positive number of seconds"),
        ("REDIS_SOCKET_TIMEOUT", "inf", "positive number of seconds"),
        ("CACHE_TTL_DEFAULT", "-5", "at least 1"),
        ("CACHE_TTL_DEFAULT", "0", "at least 1"),
        ("CACHE_TTL_DEFAULT", "1.5", "at least 1"),
        ("CACHE_TTL_DEFAULT", "forever", "at least 1"),
        ("CACHE_ENABLED", "maybe", "true, false"),
        ("CACHE_FAIL_SILENTLY", "2", "true, false"),
        ("CACHE_BACKEND", "postgres", "`redis` or `memory`"),
        ("CACHE_MEMORY_MAX_BYTES", "lots", "at least 1"),
        ("CACHE_CODEC", "yaml", "bincode"),
        ("CACHE_BREAKER_THRESHOLD", "-1", "whole number of failures"),
        (
            "CACHE_BREAKER_THRESHOLD",
            "often",
            "whole number of failures",
        ),
        (
            "CACHE_BREAKER_PROBE_INTERVAL",
            "0",
            "positive number of seconds",
        ),
        ("CACHE_LEASE_LIVENESS", "0", "positive number of seconds"),
        ("CACHE_LEASE_LIVENESS", "10", "below CACHE_LEASE_TTL"),
        ("CACHE_LEASE_LIVENESS", "12.5", "below CACHE_LEASE_TTL"),
        ("CACHE_MAX_VALUE_BYTES", "0", "at least 1"),
        ("CACHE_MAX_VALUE_BYTES", "16MB", "at least 1"),
        (
            "CACHE_MAX_DECODED_BYTES",
            "1000",
            "at least CACHE_MAX_VALUE_BYTES",
        ),
        ("CACHE_MAX_DECODED_BYTES", "0", "at least 1"),
        ("CACHE_READ_BATCH", "0", "at least 1"),
        ("CACHE_READ_BATCH", "many", "at least 1"),
        ("CACHE_OFFLOAD_MIN_BYTES", "-1", "whole number of bytes"),
        ("CACHE_COMPRESS_MIN_BYTES", "big", "whole number of bytes"),
        ("REDIS_TLS_CA", "/nonexistent/ca.pem", "a TLS URL"),
        ("REDIS_URL", "http://localhost", "unknown scheme"),
        ("REDIS_URL", "not a url", "does not parse"),
        ("REDIS_URL", "redis://", "no host"),
    ];
    for &(variable, value, expected) in cases {
        let mut vars = vec![(variable, value)];
        if variable == "CACHE_MEMORY_MAX_BYTES" {
            vars.push(("CACHE_BACKEND", "memory"));
        }
        let err = from(&vars).expect_err(value);
        assert_eq!(err.variable, variable, "{variable}={value}: {err}");
        let text = err.to_string();
        assert!(text.starts_with(variable), "{text}");
        assert!(text.contains(expected), "{variable}={value}: {text}");
    }
}

#[test]
fn booleans_accept_the_usual_spellings() {
    for (v, want) in [
        ("true", true),
        ("1", true),
        ("YES", true),
        ("False", false),
        ("0", false),
        ("no", false),
    ] {
        assert_eq!(
            from(&[("CACHE_ENABLED", v)]).unwrap().enabled(),
            want,
            "{v}"
        );
    }
}

#[test]
fn empty_variables_count_as_unset() {
    let c = from(&[
        ("REDIS_PASSWORD", ""),
        ("REDIS_URL", " "),
        ("CACHE_TTL_DEFAULT", ""),
    ])
    .unwrap();
    assert_eq!(url_of(&c), "redis://localhost:6379/0");
}

#[test]
fn passwords_never_show() {
    let secret = "hunter2-very-secret";
    let configs = [
        from(&[("REDIS_URL", &format!("redis://user:{secret}@h:1/0"))]).unwrap(),
        from(&[("REDIS_PASSWORD", secret)]).unwrap(),
        from(&[(
            "REDIS_URL",
            &format!("redis-sentinel://:{secret}@h:26379/0?sentinelServiceName=m&sentinelPassword={secret}"),
        )])
        .unwrap(),
    ];
    for c in configs {
        for text in [
            format!("{c:?}"),
            format!("{c}"),
            format!("{:#?}", c.backend()),
        ] {
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("***"), "{text}");
        }
    }
    let bad = from(&[("REDIS_URL", &format!("redis://:{secret}@h:notaport"))]).unwrap_err();
    assert!(!bad.to_string().contains(secret), "{bad}");
    assert!(!format!("{bad:?}").contains(secret), "{bad:?}");
}

#[test]
fn every_variable_read_is_listed() {
    let asked = std::cell::RefCell::new(Vec::new());
    for backend in ["redis", "memory"] {
        let _ = CacheConfig::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            (name == "CACHE_BACKEND").then(|| backend.to_owned())
        });
    }
    let asked = asked.into_inner();
    assert!(asked.len() >= VARIABLES.len(), "{asked:?}");
    for name in asked {
        assert!(
            VARIABLES.iter().any(|v| v.name == name),
            "{name} is not in VARIABLES"
        );
    }
}

/// The user name and password fred hands to Redis for `config`.
fn credentials_sent(config: &CacheConfig) -> (Option<String>, Option<String>) {
    let fred = fred::types::config::Config::from_url(url_of(config)).unwrap();
    (fred.username, fred.password)
}

#[test]
fn passwords_and_users_reach_redis_as_given() {
    for given in [
        "a%41",
        "Canary-5ecret/%@:x",
        "with space+plus",
        "#?[]\\&=;,é",
        "%",
    ] {
        let c = from(&[("REDIS_PASSWORD", given), ("REDIS_USERNAME", given)]).unwrap();
        let given = Some(given.to_owned());
        assert_eq!(credentials_sent(&c), (given.clone(), given));
    }
}

#[test]
fn redis_host_takes_ipv6_and_refuses_urls_without_quoting_them() {
    for (host, url) in [
        ("::1", "redis://[::1]:6379/0"),
        ("[::1]", "redis://[::1]:6379/0"),
        ("cache_1.internal", "redis://cache_1.internal:6379/0"),
    ] {
        assert_eq!(url_of(&from(&[("REDIS_HOST", host)]).unwrap()), url);
    }
    for host in ["redis://:pw@h:6379", "user:pw@h", "h:6379", "h/0", "a host"] {
        let e = from(&[("REDIS_HOST", host)]).unwrap_err();
        assert_eq!(e.variable, "REDIS_HOST");
        assert_eq!(e.got, None, "{e}");
        assert!(e.to_string().contains("host name or IP address"), "{e}");
    }
}

#[test]
fn redaction_keeps_everything_else_as_written() {
    let given = "redis-sentinel://app:pw@s1:26379/0?sentinelServiceName=m&node=s2:26379\
                 &sentinelPassword=pw2";
    let c = from(&[("REDIS_URL", given)]).unwrap();
    assert_eq!(url_of(&c), given);
    assert_eq!(
        c.to_string().split(',').next(),
        Some(
            "redis redis-sentinel://app:***@s1:26379/0?sentinelServiceName=m&node=s2:26379\
             &sentinelPassword=***"
        )
    );
    // A user name alone is a password written without its colon.
    let lone = RedisUrl::parse("url", "redis://s3cret@h:6379").unwrap();
    assert_eq!(lone.redacted(), "redis://***@h:6379");
}

#[test]
fn values_holding_a_password_are_not_quoted() {
    // Quoted as before when they cannot hold one.
    let e = from(&[("REDIS_PORT", "http")]).unwrap_err();
    assert_eq!(e.got.as_deref(), Some("http"));
    for vars in [
        &[("REDIS_PORT", "redis://:pw@h")][..],
        &[("REDIS_PASSWORD", "hunter2"), ("REDIS_PORT", "hunter2")],
        &[
            ("REDIS_URL", "redis://:hunter%32@h"),
            ("CACHE_TTL_DEFAULT", "hunter2"),
        ],
        &[
            ("REDIS_URL", "redis://:hunter%32@h"),
            ("CACHE_TTL_DEFAULT", "hunter%32"),
        ],
        &[
            ("REDIS_URL", "redis://h?password=hunter2"),
            ("CACHE_CODEC", "hunter2"),
        ],
    ] {
        let e = from(vars).unwrap_err();
        assert_eq!(e.got, None, "{vars:?}: {e}");
        assert!(!e.to_string().contains("hunter"), "{e}");
    }
}

#[test]
fn memory_backend_is_selectable() {
    let c = from(&[
        ("CACHE_BACKEND", "memory"),
        ("CACHE_MEMORY_MAX_BYTES", "1024"),
    ])
    .unwrap();
    assert_eq!(c.backend(), &BackendConfig::Memory { max_bytes: 1024 });
}

#[test]
fn builder_checks_its_values() {
    assert_eq!(
        CacheConfig::builder()
            .pool_size(0)
            .build()
            .unwrap_err()
            .variable,
        "REDIS_POOL_SIZE"
    );
    assert_eq!(
        CacheConfig::builder()
            .socket_timeout(Duration::ZERO)
            .build()
            .unwrap_err()
            .variable,
        "REDIS_SOCKET_TIMEOUT"
    );
    assert_eq!(
        CacheConfig::builder()
            .read_batch(0)
            .build()
            .unwrap_err()
            .variable,
        "CACHE_READ_BATCH"
    );
    assert_eq!(
        CacheConfig::builder()
            .url("ftp://x")
            .build()
            .unwrap_err()
            .variable,
        "url"
    );
    assert_eq!(
        CacheConfig::builder().build().unwrap(),
        CacheConfig::default()
    );
}

#[test]
fn the_configuration_chapter_lists_every_variable_with_its_default_and_no_other() {
    let chapter = include_str!("../../../docs/src/configuration.md");
    // The rows of the chapter's variable table: names (several to a row), meaning, default.
    let mut documented: Vec<(&str, &str)> = Vec::new();
    for row in chapter.lines().filter_map(|line| line.strip_prefix("| ")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let [names, _meaning, default] = cells[..] else {
            continue;
        };
        let default = default.trim_end_matches(" |");
        for name in names.split(", ").map(|name| name.trim_matches('`')) {
            if name.starts_with("REDIS_") || name.starts_with("CACHE_") {
                documented.push((name, default));
            }
        }
    }
    for variable in &VARIABLES {
        let Some((_, default)) = documented.iter().find(|(name, _)| *name == variable.name) else {
            panic!(
                "{} is read but not in docs/src/configuration.md",
                variable.name
            );
        };
        let expected = (variable.default)();
        assert!(
            default.starts_with(&expected),
            "{}: the chapter says the default is {default}, the code {expected}",
            variable.name
        );
    }
    for (name, _) in &documented {
        assert!(
            VARIABLES.iter().any(|v| v.name == *name),
            "{name} is in docs/src/configuration.md but not read"
        );
    }
}

#[test]
fn the_decoded_bound_is_never_below_the_largest_value() {
    let c = from(&[]).unwrap();
    assert_eq!(c.max_decoded_bytes(), 256 << 20);
    // Unset, it follows a largest value above its default; set below it, it is refused.
    let c = from(&[("CACHE_MAX_VALUE_BYTES", "1073741824")]).unwrap();
    assert_eq!(c.max_decoded_bytes(), 1 << 30);
    let err = from(&[
        ("CACHE_MAX_VALUE_BYTES", "1073741824"),
        ("CACHE_MAX_DECODED_BYTES", "268435456"),
    ])
    .unwrap_err();
    assert_eq!(err.variable, "CACHE_MAX_DECODED_BYTES");
}
