//! The environment: the variables of the contract, `.env`, and the parsers that name the variable
//! in their errors.

use std::time::Duration;

use super::url::{percent_encode, url_secrets};
use super::{defaults, BackendConfig, CacheConfig, CacheConfigBuilder, RedisUrl, TlsFiles};
use crate::codec::CodecKind;
use crate::error::ConfigError;
use crate::registry::KeyCheck;

impl CacheConfig {
    /// Reads the configuration from the process environment, after loading a `.env` file from the
    /// working directory if there is one (variables already set win over the file).
    ///
    /// The variables, their forms and their defaults are in the guide's configuration chapter
    /// (`docs/src/configuration.md`; a test holds it to the variables this reads).
    ///
    /// An empty variable counts as unset; a variable that is not UTF-8 is an error (a password
    /// would not survive being made text).
    pub fn from_env() -> Result<Self, ConfigError> {
        load_dot_env()?;
        for variable in &VARIABLES {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(variable.name) {
                return Err(ConfigError::new(variable.name, "valid UTF-8 text", None));
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
        Self::read(&var).map_err(|e| with_default(e.withholding(&known_secrets(&var))))
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
        b.tls = TlsFiles {
            ca: var("REDIS_TLS_CA").map(Into::into),
            cert: var("REDIS_TLS_CERT").map(Into::into),
            key: var("REDIS_TLS_KEY").map(Into::into),
        };
        for variable in &VARIABLES {
            if let (Read::Setting(apply), Some(value)) = (variable.read, var(variable.name)) {
                b = apply(b, variable.name, &value)?;
            }
        }
        b.build()
    }
}

/// One variable of the contract.
pub(super) struct Variable {
    pub(super) name: &'static str,
    /// The default, as the configuration chapter's table words it (a test holds them equal).
    pub(super) default: fn() -> String,
    pub(super) read: Read,
}

/// How the value of a [`Variable`] reaches the builder.
#[derive(Clone, Copy)]
pub(super) enum Read {
    /// On its own, into one setting; its errors name the variable it is given.
    Setting(fn(CacheConfigBuilder, &'static str, &str) -> Result<CacheConfigBuilder, ConfigError>),
    /// Together with others: the Redis address (`REDIS_URL`, or its five parts), the backend
    /// and its size, the TLS files.
    Together,
}

/// `text` as the chapter's table writes a value: in backticks.
fn code(text: impl std::fmt::Display) -> String {
    format!("`{text}`")
}

fn none() -> String {
    "none".to_owned()
}

/// Every variable [`CacheConfig::from_lookup`] reads: its name, default and reader.
pub(super) const VARIABLES: [Variable; 32] = [
    Variable {
        name: "REDIS_URL",
        default: || code(defaults::URL),
        read: Read::Together,
    },
    Variable {
        name: "REDIS_HOST",
        default: || code(defaults::HOST),
        read: Read::Together,
    },
    Variable {
        name: "REDIS_PORT",
        default: || code(defaults::PORT),
        read: Read::Together,
    },
    Variable {
        name: "REDIS_DB",
        default: || code(defaults::DB),
        read: Read::Together,
    },
    Variable {
        name: "REDIS_USERNAME",
        default: none,
        read: Read::Together,
    },
    Variable {
        name: "REDIS_PASSWORD",
        default: none,
        read: Read::Together,
    },
    Variable {
        name: "REDIS_POOL_SIZE",
        default: || format!("one per CPU core, at most {}", code(defaults::POOL_SIZE)),
        read: Read::Setting(|b, name, v| {
            let n = parse_positive(name, v)?;
            Ok(b.pool_size(usize::try_from(n).unwrap_or(usize::MAX)))
        }),
    },
    Variable {
        name: "REDIS_SOCKET_TIMEOUT",
        default: || code(defaults::SOCKET_TIMEOUT_SECS),
        read: Read::Setting(|b, name, v| Ok(b.socket_timeout(parse_seconds(name, v)?))),
    },
    Variable {
        name: "CACHE_ENABLED",
        default: || code(true),
        read: Read::Setting(|b, name, v| Ok(b.enabled(parse_bool(name, v)?))),
    },
    Variable {
        name: "CACHE_TTL_DEFAULT",
        default: || code(defaults::TTL_SECS),
        read: Read::Setting(|b, name, v| {
            Ok(b.default_ttl(Duration::from_secs(parse_positive(name, v)?)))
        }),
    },
    Variable {
        name: "CACHE_FAIL_SILENTLY",
        default: || code(true),
        read: Read::Setting(|b, name, v| Ok(b.fail_silently(parse_bool(name, v)?))),
    },
    Variable {
        name: "CACHE_BACKEND",
        default: || code("redis"),
        read: Read::Together,
    },
    Variable {
        name: "CACHE_MEMORY_MAX_BYTES",
        default: || code(defaults::MEMORY_MAX_BYTES),
        read: Read::Together,
    },
    Variable {
        name: "CACHE_CODEC",
        default: || code(CodecKind::Bincode.name()),
        read: Read::Setting(|b, name, v| {
            let codec = CodecKind::from_name(v.trim())
                .ok_or_else(|| ConfigError::new(name, CodecKind::EXPECTED, Some(v)))?;
            Ok(b.codec(codec))
        }),
    },
    Variable {
        name: "CACHE_BREAKER_THRESHOLD",
        default: || code(defaults::BREAKER_THRESHOLD),
        read: Read::Setting(|b, name, v| {
            let n = v.trim().parse::<u32>().map_err(|_| {
                ConfigError::new(
                    name,
                    "a whole number of failures (0 disables the breaker)",
                    Some(v),
                )
            })?;
            Ok(b.breaker_threshold(n))
        }),
    },
    Variable {
        name: "CACHE_BREAKER_PROBE_INTERVAL",
        default: || code(defaults::BREAKER_PROBE_INTERVAL_MS as f64 / 1000.0),
        read: Read::Setting(|b, name, v| Ok(b.breaker_probe_interval(parse_seconds(name, v)?))),
    },
    Variable {
        name: "CACHE_LEASE_TTL",
        default: || code(defaults::LEASE_TTL_SECS),
        read: Read::Setting(|b, name, v| Ok(b.lease_ttl(parse_seconds(name, v)?))),
    },
    Variable {
        name: "CACHE_LEASE_LIVENESS",
        default: || code(defaults::LEASE_LIVENESS_SECS),
        read: Read::Setting(|b, name, v| Ok(b.lease_liveness(parse_seconds(name, v)?))),
    },
    Variable {
        name: "CACHE_CLEAR_TIMEOUT",
        default: || code(defaults::CLEAR_TIMEOUT_SECS),
        read: Read::Setting(|b, name, v| Ok(b.clear_timeout(parse_seconds(name, v)?))),
    },
    Variable {
        name: "CACHE_REPLAY_WINDOW",
        default: || code(defaults::REPLAY_WINDOW_SECS),
        read: Read::Setting(|b, name, v| Ok(b.replay_window(parse_seconds_or_zero(name, v)?))),
    },
    Variable {
        name: "CACHE_REPLAY_HOLD",
        default: || code(defaults::REPLAY_HOLD_SECS),
        read: Read::Setting(|b, name, v| Ok(b.replay_hold(parse_seconds_or_zero(name, v)?))),
    },
    Variable {
        name: "CACHE_INVALIDATION_REPLICAS",
        default: || code(0),
        read: Read::Setting(|b, name, v| {
            let n = v.trim().parse::<u32>().map_err(|_| {
                ConfigError::new(
                    name,
                    "a whole number of replicas (0: an invalidation waits for none)",
                    Some(v),
                )
            })?;
            Ok(b.invalidation_replicas(n))
        }),
    },
    Variable {
        name: "CACHE_INVALIDATION_FSYNC",
        default: || code(false),
        read: Read::Setting(|b, name, v| Ok(b.invalidation_fsync(parse_bool(name, v)?))),
    },
    Variable {
        name: "CACHE_READ_BATCH",
        default: || code(defaults::READ_BATCH),
        read: Read::Setting(|b, name, v| {
            let n = parse_positive(name, v)?;
            Ok(b.read_batch(usize::try_from(n).unwrap_or(usize::MAX)))
        }),
    },
    Variable {
        name: "CACHE_MAX_VALUE_BYTES",
        default: || code(defaults::MAX_VALUE_BYTES),
        read: Read::Setting(|b, name, v| {
            let n = parse_positive(name, v)?;
            Ok(b.max_value_bytes(usize::try_from(n).unwrap_or(usize::MAX)))
        }),
    },
    Variable {
        name: "CACHE_MAX_DECODED_BYTES",
        default: || code(defaults::MAX_DECODED_BYTES),
        read: Read::Setting(|b, name, v| {
            let n = parse_positive(name, v)?;
            Ok(b.max_decoded_bytes(usize::try_from(n).unwrap_or(usize::MAX)))
        }),
    },
    Variable {
        name: "CACHE_COMPRESS_MIN_BYTES",
        default: || {
            format!(
                "{} with the feature, else {}",
                code(defaults::COMPRESS_MIN_BYTES_WITH_FEATURE),
                code(0)
            )
        },
        read: Read::Setting(|b, name, v| Ok(b.compress_min_bytes(parse_bytes(name, v)?))),
    },
    Variable {
        name: "CACHE_OFFLOAD_MIN_BYTES",
        default: || code(defaults::OFFLOAD_MIN_BYTES),
        read: Read::Setting(|b, name, v| Ok(b.offload_min_bytes(parse_bytes(name, v)?))),
    },
    Variable {
        name: "CACHE_VERIFY_KEYS",
        default: || code("warn"),
        read: Read::Setting(|b, name, v| {
            let check = match v.trim().to_ascii_lowercase().as_str() {
                "warn" => KeyCheck::Warn,
                "error" => KeyCheck::Error,
                "off" => KeyCheck::Off,
                _ => return Err(ConfigError::new(name, "warn, error or off", Some(v))),
            };
            Ok(b.verify_keys(check))
        }),
    },
    Variable {
        name: "REDIS_TLS_CA",
        default: none,
        read: Read::Together,
    },
    Variable {
        name: "REDIS_TLS_CERT",
        default: none,
        read: Read::Together,
    },
    Variable {
        name: "REDIS_TLS_KEY",
        default: none,
        read: Read::Together,
    },
];

/// `error`, saying what leaving its variable unset would give.
fn with_default(mut error: ConfigError) -> ConfigError {
    if let Some(variable) = VARIABLES.iter().find(|v| v.name == error.variable) {
        error.expected = format!("{} (or unset: {})", error.expected, (variable.default)());
    }
    error
}

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
    let host = var("REDIS_HOST").unwrap_or_else(|| defaults::HOST.to_owned());
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
        None => defaults::PORT,
    };
    let db = match var("REDIS_DB") {
        Some(v) => v.trim().parse::<u8>().map_err(|_| {
            ConfigError::new("REDIS_DB", "a database number from 0 to 255", Some(&v))
        })?,
        None => defaults::DB,
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

/// Seconds, fractions allowed, zero included (zero turns the setting's feature off).
fn parse_seconds_or_zero(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            ConfigError::new(
                variable,
                "a number of seconds, zero or more, such as 60 or 0.5",
                Some(value),
            )
        })
}
