//! The environment: the variables of the contract, `.env`, and the parsers that name the variable
//! in their errors.

use std::time::Duration;

use super::url::{percent_encode, url_secrets};
use super::{defaults, BackendConfig, CacheConfig, RedisUrl, TlsFiles};
use crate::codec::CodecKind;
use crate::error::ConfigError;
use crate::registry::KeyCheck;

impl CacheConfig {
    /// Reads the configuration from the process environment, after loading a `.env` file from the
    /// working directory if there is one (variables already set win over the file).
    ///
    /// | variable | default | form |
    /// |---|---|---|
    /// | `REDIS_URL` | `redis://localhost:6379/0` | any URL fred accepts; wins over the four below |
    /// | `REDIS_HOST` / `REDIS_PORT` / `REDIS_DB` | `localhost` / `6379` / `0` | host, 1-65535, 0-255 |
    /// | `REDIS_USERNAME` / `REDIS_PASSWORD` | none | ACL user and password |
    /// | `REDIS_POOL_SIZE` | CPU cores, at most `10` | connections, at least 1 |
    /// | `REDIS_SOCKET_TIMEOUT` | `5` | seconds, fractions allowed, above 0 |
    /// | `CACHE_ENABLED` | `true` | true/false/1/0/yes/no |
    /// | `CACHE_TTL_DEFAULT` | `300` | whole seconds, at least 1 |
    /// | `CACHE_FAIL_SILENTLY` | `true` | true/false/1/0/yes/no |
    /// | `CACHE_BACKEND` | `redis` | `redis` or `memory` |
    /// | `CACHE_MEMORY_MAX_BYTES` | `268435456` | bytes kept by the memory backend |
    /// | `CACHE_CODEC` | `bincode` | `bincode` or `json` (feature `json`) |
    /// | `CACHE_VERIFY_KEYS` | `warn` | what `init` does with the findings of [`registry::verify`](crate::registry::verify): `warn` (log them), `error` (fail), `off` |
    /// | `CACHE_BREAKER_THRESHOLD` | `5` | consecutive connection failures that open the circuit; 0 disables it |
    /// | `CACHE_BREAKER_PROBE_INTERVAL` | `0.5` | seconds between probes while the circuit is open |
    /// | `CACHE_LEASE_TTL` | `10` | seconds a miss holds its lease: a body that runs longer is not stored, and callers elsewhere wait at most this long for it |
    /// | `CACHE_CLEAR_TIMEOUT` | `60` | seconds one `clear_pattern` (or invalidation by pattern) may take in all; past it, it stops and says how many keys it removed |
    /// | `CACHE_MAX_VALUE_BYTES` | `16777216` | the largest encoded value `set` accepts |
    /// | `CACHE_COMPRESS_MIN_BYTES` | `8192` (feature `compression`), else `0` | LZ4 for values at least this large; 0 never |
    /// | `CACHE_OFFLOAD_MIN_BYTES` | `262144` | (de)serialize values at least this large off the executor; 0 never |
    /// | `REDIS_TLS_CA` | system roots | PEM file of the CAs to trust for `rediss://` (feature `tls`) |
    /// | `REDIS_TLS_CERT` / `REDIS_TLS_KEY` | none | PEM client certificate and key, for mutual TLS |
    ///
    /// An empty variable counts as unset; a variable that is not UTF-8 is an error (a password
    /// would not survive being made text).
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dot_env()?;
        for variable in VARIABLES {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(variable) {
                return Err(ConfigError::new(variable, "valid UTF-8 text", None));
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from any source of variables, for example a map in a test.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use cache_core::CacheConfig;
    ///
    /// let vars = HashMap::from([("REDIS_PORT", "http")]);
    /// let err = CacheConfig::from_lookup(|name| vars.get(name).map(|v| v.to_string())).unwrap_err();
    /// assert_eq!(err.variable, "REDIS_PORT");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Self::read(&var).map_err(|e| e.withholding(&known_secrets(&var)))
    }

    /// [`from_lookup`](Self::from_lookup) before errors are cleared of secrets.
    fn read(var: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut b = CacheConfig::builder();
        b.backend = match var("CACHE_BACKEND").as_deref().map(str::trim) {
            None | Some("redis") => Some(redis_from_vars(var)?),
            Some("memory") => Some(BackendConfig::Memory {
                max_bytes: match var("CACHE_MEMORY_MAX_BYTES") {
                    Some(v) => parse_positive("CACHE_MEMORY_MAX_BYTES", &v)?,
                    None => defaults::MEMORY_MAX_BYTES,
                },
            }),
            Some(other) => {
                return Err(ConfigError::new(
                    "CACHE_BACKEND",
                    "`redis` or `memory`",
                    Some(other),
                ))
            }
        };
        if let Some(v) = var("REDIS_POOL_SIZE") {
            let n = parse_positive("REDIS_POOL_SIZE", &v)?;
            b = b.pool_size(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(v) = var("REDIS_SOCKET_TIMEOUT") {
            b = b.socket_timeout(parse_seconds("REDIS_SOCKET_TIMEOUT", &v)?);
        }
        if let Some(v) = var("CACHE_ENABLED") {
            b = b.enabled(parse_bool("CACHE_ENABLED", &v)?);
        }
        if let Some(v) = var("CACHE_TTL_DEFAULT") {
            b = b.default_ttl(Duration::from_secs(parse_positive(
                "CACHE_TTL_DEFAULT",
                &v,
            )?));
        }
        if let Some(v) = var("CACHE_FAIL_SILENTLY") {
            b = b.fail_silently(parse_bool("CACHE_FAIL_SILENTLY", &v)?);
        }
        if let Some(v) = var("CACHE_BREAKER_THRESHOLD") {
            let n = v.trim().parse::<u32>().map_err(|_| {
                ConfigError::new(
                    "CACHE_BREAKER_THRESHOLD",
                    "a whole number of failures (0 disables the breaker)",
                    Some(&v),
                )
            })?;
            b = b.breaker_threshold(n);
        }
        if let Some(v) = var("CACHE_BREAKER_PROBE_INTERVAL") {
            b = b.breaker_probe_interval(parse_seconds("CACHE_BREAKER_PROBE_INTERVAL", &v)?);
        }
        if let Some(v) = var("CACHE_LEASE_TTL") {
            b = b.lease_ttl(parse_seconds("CACHE_LEASE_TTL", &v)?);
        }
        if let Some(v) = var("CACHE_CLEAR_TIMEOUT") {
            b = b.clear_timeout(parse_seconds("CACHE_CLEAR_TIMEOUT", &v)?);
        }
        if let Some(v) = var("CACHE_MAX_VALUE_BYTES") {
            let n = parse_positive("CACHE_MAX_VALUE_BYTES", &v)?;
            b = b.max_value_bytes(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(v) = var("CACHE_COMPRESS_MIN_BYTES") {
            b = b.compress_min_bytes(parse_bytes("CACHE_COMPRESS_MIN_BYTES", &v)?);
        }
        if let Some(v) = var("CACHE_VERIFY_KEYS") {
            let check = match v.trim().to_ascii_lowercase().as_str() {
                "warn" => KeyCheck::Warn,
                "error" => KeyCheck::Error,
                "off" => KeyCheck::Off,
                _ => {
                    return Err(ConfigError::new(
                        "CACHE_VERIFY_KEYS",
                        "warn, error or off",
                        Some(&v),
                    ))
                }
            };
            b = b.verify_keys(check);
        }
        if let Some(v) = var("CACHE_OFFLOAD_MIN_BYTES") {
            b = b.offload_min_bytes(parse_bytes("CACHE_OFFLOAD_MIN_BYTES", &v)?);
        }
        b.tls = TlsFiles {
            ca: var("REDIS_TLS_CA").map(Into::into),
            cert: var("REDIS_TLS_CERT").map(Into::into),
            key: var("REDIS_TLS_KEY").map(Into::into),
        };
        if let Some(v) = var("CACHE_CODEC") {
            b =
                b.codec(CodecKind::from_name(v.trim()).ok_or_else(|| {
                    ConfigError::new("CACHE_CODEC", CodecKind::EXPECTED, Some(&v))
                })?);
        }
        b.build()
    }
}

/// Every variable [`CacheConfig::from_lookup`] reads (a test checks that none is missing).
pub(super) const VARIABLES: [&str; 25] = [
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_DB",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_POOL_SIZE",
    "REDIS_SOCKET_TIMEOUT",
    "CACHE_ENABLED",
    "CACHE_TTL_DEFAULT",
    "CACHE_FAIL_SILENTLY",
    "CACHE_BACKEND",
    "CACHE_MEMORY_MAX_BYTES",
    "CACHE_CODEC",
    "CACHE_BREAKER_THRESHOLD",
    "CACHE_BREAKER_PROBE_INTERVAL",
    "CACHE_LEASE_TTL",
    "CACHE_CLEAR_TIMEOUT",
    "CACHE_MAX_VALUE_BYTES",
    "CACHE_COMPRESS_MIN_BYTES",
    "CACHE_OFFLOAD_MIN_BYTES",
    "CACHE_VERIFY_KEYS",
    "REDIS_TLS_CA",
    "REDIS_TLS_CERT",
    "REDIS_TLS_KEY",
];

/// The passwords among the variables: `REDIS_PASSWORD`, and those in `REDIS_URL`.
fn known_secrets(var: &impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut secrets: Vec<String> = var("REDIS_PASSWORD").into_iter().collect();
    if let Some(url) = var("REDIS_URL").and_then(|u| url::Url::parse(u.trim()).ok()) {
        secrets.extend(url_secrets(&url));
    }
    secrets
}

/// Loads `.env` from the working directory, or the nearest parent that has one, as
/// `dotenvy::dotenv` does; variables already set win over the file.
///
/// dotenvy's parse error quotes the line at fault, password included: the error says which line
/// it is instead.
fn load_dot_env() -> Result<(), ConfigError> {
    let unreadable = |path: &std::path::Path, e: &std::io::Error| {
        ConfigError::new(
            ".env",
            format!("a readable file ({}: {})", path.display(), e.kind()),
            None,
        )
    };
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unreadable(std::path::Path::new("."), &e)),
    };
    let mut found = None;
    for dir in cwd.ancestors() {
        let candidate = dir.join(".env");
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                found = Some(candidate);
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unreadable(&candidate, &e)),
        }
    }
    let Some(path) = found else { return Ok(()) };
    dotenvy::from_path(&path).map_err(|e| match e {
        dotenvy::Error::LineParse(text, _) => {
            let line = std::fs::read_to_string(&path).ok().and_then(|all| {
                all.find(text.as_str())
                    .map(|at| all[..at].matches('\n').count() + 1)
            });
            let at = line.map_or_else(|| "a line".to_owned(), |n| format!("line {n}"));
            ConfigError::new(
                ".env",
                format!(
                    "lines of the form NAME=value ({at} of {} is not; its text is not shown, as it \
                     may hold a password)",
                    path.display()
                ),
                None,
            )
        }
        dotenvy::Error::Io(e) => unreadable(&path, &e),
        // `EnvVar` quotes a value; later variants may too.
        _ => ConfigError::new(
            ".env",
            format!("a readable file of NAME=value lines ({})", path.display()),
            None,
        ),
    })
}

fn redis_from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<BackendConfig, ConfigError> {
    if let Some(url) = var("REDIS_URL") {
        return Ok(BackendConfig::Redis(RedisUrl::parse(
            "REDIS_URL",
            url.trim(),
        )?));
    }
    // The host is never quoted in an error: a URL pasted here holds a password.
    let host = var("REDIS_HOST").unwrap_or_else(|| "localhost".to_owned());
    let host = host.trim();
    let host = if let Ok(ip) = host.parse::<std::net::Ipv6Addr>() {
        format!("[{ip}]")
    } else if host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        || host
            .chars()
            .all(|c| c.is_alphanumeric() || "-._".contains(c))
    {
        host.to_owned()
    } else if host.contains("://") || host.contains('@') {
        return Err(ConfigError::new(
            "REDIS_HOST",
            "a host name or IP address, not a URL (a URL goes in REDIS_URL, a password in \
             REDIS_PASSWORD); the value is not shown, as it may hold a password",
            None,
        ));
    } else {
        return Err(ConfigError::new(
            "REDIS_HOST",
            "a host name or IP address: letters, digits, '-', '.' and '_', or an IPv6 address \
             (the value is not shown, as it may hold a password)",
            None,
        ));
    };
    let port = match var("REDIS_PORT") {
        Some(v) => v
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                ConfigError::new("REDIS_PORT", "a port number from 1 to 65535", Some(&v))
            })?,
        None => 6379,
    };
    let db = match var("REDIS_DB") {
        Some(v) => v.trim().parse::<u8>().map_err(|_| {
            ConfigError::new("REDIS_DB", "a database number from 0 to 255", Some(&v))
        })?,
        None => 0,
    };
    let mut url = url::Url::parse(&format!("redis://{host}:{port}/{db}")).map_err(|e| {
        ConfigError::new(
            "REDIS_HOST",
            format!("a host name or IP address ({e})"),
            None,
        )
    })?;
    // Both setters only fail for URLs without a host, and this one has one. Encoded in full,
    // so that any password reaches Redis as it was given (`%`, `@`, `/`, spaces).
    if let Some(user) = var("REDIS_USERNAME") {
        let _ = url.set_username(&percent_encode(&user));
    }
    if let Some(password) = var("REDIS_PASSWORD") {
        let _ = url.set_password(Some(&percent_encode(&password)));
    }
    Ok(BackendConfig::Redis(RedisUrl::parse(
        "REDIS_HOST",
        url.as_str(),
    )?))
}

fn parse_bool(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::new(
            variable,
            "one of true, false, 1, 0, yes, no",
            Some(value),
        )),
    }
}

fn parse_positive(variable: &'static str, value: &str) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError::new(variable, "a whole number of at least 1", Some(value)))
}

fn parse_bytes(variable: &'static str, value: &str) -> Result<usize, ConfigError> {
    value
        .trim()
        .parse::<usize>()
        .map_err(|_| ConfigError::new(variable, "a whole number of bytes (0: never)", Some(value)))
}

fn parse_seconds(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError::new(
                variable,
                "a positive number of seconds, such as 5 or 0.25",
                Some(value),
            )
        })
}
