//! Configuration: the environment variables of the contract, a `.env` file, and a builder.
//!
//! Every value is checked once, at startup; a bad one is a [`ConfigError`] that names the variable
//! and the expected form. Passwords are kept out of `Debug`, `Display`, logs and errors.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::codec::CodecKind;
use crate::error::ConfigError;
use crate::registry::KeyCheck;

/// Where values are kept.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendConfig {
    /// A Redis server, cluster or sentinel group, reached through this URL.
    Redis(RedisUrl),
    /// The in-process backend: a bounded map in this process' memory.
    Memory {
        /// The most bytes (keys plus values) kept before the least recently used are evicted.
        max_bytes: u64,
    },
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendConfig::Redis(url) => f.debug_tuple("Redis").field(url).finish(),
            BackendConfig::Memory { max_bytes } => f
                .debug_struct("Memory")
                .field("max_bytes", max_bytes)
                .finish(),
        }
    }
}

/// A Redis URL whose password never shows: `Debug` and `Display` print `***` in its place.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

/// The URL schemes fred understands, with whether they need TLS.
const SCHEMES: [(&str, bool); 12] = [
    ("redis", false),
    ("rediss", true),
    ("redis-cluster", false),
    ("rediss-cluster", true),
    ("redis-sentinel", false),
    ("rediss-sentinel", true),
    ("valkey", false),
    ("valkeys", true),
    ("valkey-cluster", false),
    ("valkeys-cluster", true),
    ("valkey-sentinel", false),
    ("valkeys-sentinel", true),
];

impl RedisUrl {
    /// Checks `url` against the forms fred accepts and wraps it.
    ///
    /// `variable` names the setting in the error.
    fn parse(variable: &'static str, url: &str) -> Result<Self, ConfigError> {
        const FORM: &str =
            "a URL such as redis://[[user]:password@]host[:port][/db], rediss://.., \
                            redis-cluster://host:port?node=host:port or \
                            redis-sentinel://host:26379/0?sentinelServiceName=name";
        // Every message below is ours, or the url crate's (which never quotes its input): the
        // URL, or any part of it that may hold a password, is never in it.
        let parsed = url::Url::parse(url).map_err(|e| {
            ConfigError::new(variable, format!("{FORM} (it does not parse: {e})"), None)
        })?;
        let Some(&(_, tls)) = SCHEMES.iter().find(|(s, _)| *s == parsed.scheme()) else {
            // The scheme is named only when written as one (`http://`): a password alone
            // parses as a URL whose "scheme" is the password up to its first colon.
            let written = url
                .get(..parsed.scheme().len() + 3)
                .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}://", parsed.scheme())));
            let why = if written {
                format!("unknown scheme {:?}", parsed.scheme())
            } else {
                "it does not start with a scheme such as redis://".to_owned()
            };
            return Err(ConfigError::new(variable, format!("{FORM} ({why})"), None));
        };
        if tls && !cfg!(feature = "tls") {
            return Err(ConfigError::new(
                variable,
                format!(
                    "a plain-text URL, or a build of cache-core with the `tls` feature: {:?} needs TLS \
                     and connecting without it would send data in the clear",
                    parsed.scheme()
                ),
                None,
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::new(
                variable,
                format!("{FORM} (no host)"),
                None,
            ));
        }
        // fred quotes a `node` it cannot read in its error, and a node written with credentials
        // holds a password: nodes are checked here, without quoting them.
        let bad_node = parsed.query_pairs().any(|(k, v)| {
            k == "node"
                && !matches!(v.split(':').collect::<Vec<_>>()[..],
                    [host, port] if !host.is_empty() && !host.contains(['@', '/'])
                        && port.parse::<u16>().is_ok())
        });
        if bad_node {
            return Err(ConfigError::new(
                variable,
                format!(
                    "{FORM} (each node=host:port, without credentials: those of the URL apply to \
                     every node)"
                ),
                None,
            ));
        }
        fred::types::config::Config::from_url(url).map_err(|e| {
            // fred's own words, unless they quote something that may be a credential.
            let secrets = url_secrets(&parsed);
            let details = e.details();
            let why = if details.contains('@') || secrets.iter().any(|s| details.contains(s)) {
                "the Redis client does not accept it"
            } else {
                details
            };
            ConfigError::new(variable, format!("{FORM} ({why})"), None)
        })?;
        // Cluster / sentinel settings (deployment guide): `?readFromReplicas=true`.
        read_from_replicas(&parsed).map_err(|e| ConfigError::new(variable, e, None))?;
        Ok(RedisUrl(url.to_owned()))
    }

    /// The URL with its secrets replaced by `***`, for logs and messages: the password, a user
    /// name with no password beside it (`redis://s3cret@host`, a password written without its
    /// colon), and query parameters whose name holds `password` (`sentinelPassword`).
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(url) => redact(&url),
            Err(_) => UNSHOWN_URL.to_owned(),
        }
    }

    /// The URL as given, password included: for handing to the Redis client only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The URL query parameter that sends reads to cluster replicas (feature `replicas`).
pub(crate) const READ_FROM_REPLICAS: &str = "readFromReplicas";

/// Whether `url` asks for reads from replicas (`?readFromReplicas=true`); an error that says
/// what is expected when the value is not a boolean, or when this build or this kind of
/// deployment cannot do it.
pub(crate) fn read_from_replicas(url: &url::Url) -> Result<bool, String> {
    let Some((_, value)) = url.query_pairs().find(|(k, _)| k == READ_FROM_REPLICAS) else {
        return Ok(false);
    };
    let wanted = match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        _ => return Err(format!("{READ_FROM_REPLICAS}=true or false")),
    };
    if wanted && !cfg!(feature = "replicas") {
        return Err(format!(
            "{READ_FROM_REPLICAS}=true only in a build of cache-core with the `replicas` feature"
        ));
    }
    if wanted && !url.scheme().ends_with("-cluster") {
        return Err(format!(
            "{READ_FROM_REPLICAS}=true only with a cluster URL (redis-cluster://, rediss-cluster://): \
             the Redis client reads from replicas of a cluster only"
        ));
    }
    Ok(wanted)
}

/// What is shown in place of a URL that cannot be redacted.
const UNSHOWN_URL: &str = "<a URL that is not shown>";

/// True for a query parameter that carries a password (`password`, `sentinelPassword`).
fn is_secret_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// The secrets `url` carries (see [`RedisUrl::redacted`]), each as written and decoded.
fn url_secrets(url: &url::Url) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !s.is_empty() && !secrets.contains(&s) {
            secrets.push(s);
        }
    };
    let userinfo = url.password().unwrap_or(url.username());
    add(userinfo.to_owned());
    add(percent_decode(userinfo));
    for (key, value) in url.query_pairs() {
        if is_secret_key(&key) {
            add(value.into_owned());
        }
    }
    for pair in url.query().unwrap_or_default().split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            if is_secret_key(&percent_decode(key)) {
                add(value.to_owned());
            }
        }
    }
    secrets
}

/// `text` with its `%XX` escapes decoded, as fred decodes the user name and password of a URL.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        let escaped = match tail {
            [hi, lo, ..] if b == b'%' && hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                std::str::from_utf8(&[*hi, *lo])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            }
            _ => None,
        };
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with its secrets (see [`RedisUrl::redacted`]) replaced by `***`; a placeholder when
/// that cannot be done.
fn redact(url: &url::Url) -> String {
    let mut url = url.clone();
    let hidden = if url.password().is_some() {
        url.set_password(Some("***"))
    } else if !url.username().is_empty() {
        url.set_username("***")
    } else {
        Ok(())
    };
    if hidden.is_err() {
        return UNSHOWN_URL.to_owned();
    }
    // Rewritten pair by pair, so that the others stay as they were written.
    if let Some(query) = url.query() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(&percent_decode(key)) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        let query = pairs.join("&");
        url.set_query(Some(&query));
    }
    url.to_string()
}

/// `text` with every byte but the unreserved ones of RFC 3986 percent-encoded, for the user name
/// or password of a URL. The url crate leaves `%` as it is in them, so `a%41` would reach Redis
/// as `aA`; fred percent-decodes what this writes back to `text`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The settings of a [`Cache`](crate::Cache), read once at startup.
///
/// Build it from the environment with [`CacheConfig::from_env`] or in code with
/// [`CacheConfig::builder`]:
///
/// ```
/// use std::time::Duration;
/// use cache_core::CacheConfig;
///
/// let config = CacheConfig::builder()
///     .url("redis://:s3cret@cache.internal:6379/2")
///     .pool_size(4)
///     .default_ttl(Duration::from_secs(600))
///     .build()?;
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), cache_core::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CacheConfig {
    backend: BackendConfig,
    pool_size: NonZeroUsize,
    socket_timeout: Duration,
    enabled: bool,
    default_ttl: Duration,
    fail_silently: bool,
    codec: CodecKind,
    breaker_threshold: u32,
    breaker_probe_interval: Duration,
    lease_ttl: Duration,
    clear_timeout: Duration,
    max_value_bytes: usize,
    compress_min_bytes: usize,
    offload_min_bytes: usize,
    verify_keys: KeyCheck,
    tls: TlsFiles,
}

/// Files for TLS beyond the system defaults (`REDIS_TLS_CA`, `REDIS_TLS_CERT`, `REDIS_TLS_KEY`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM bundle of the CA certificates to trust instead of the system's.
    pub(crate) ca: Option<std::path::PathBuf>,
    /// PEM client certificate chain, for servers that require client certificates.
    pub(crate) cert: Option<std::path::PathBuf>,
    /// PEM private key of the client certificate.
    pub(crate) key: Option<std::path::PathBuf>,
}

impl TlsFiles {
    /// Each named file must be readable, the certificate and key come together, TLS must be
    /// compiled in, and the URL must be a TLS one (`uses_tls`).
    fn check(&self, uses_tls: bool) -> Result<(), ConfigError> {
        let named = [
            ("REDIS_TLS_CA", &self.ca),
            ("REDIS_TLS_CERT", &self.cert),
            ("REDIS_TLS_KEY", &self.key),
        ];
        for (variable, path) in named {
            let Some(path) = path else { continue };
            if !uses_tls {
                return Err(ConfigError::new(
                    variable,
                    "a TLS URL (rediss://...) beside it: the connection would not use this file",
                    None,
                ));
            }
            if !cfg!(feature = "tls") {
                return Err(ConfigError::new(
                    variable,
                    "a build of cache-core with the `tls` feature, to use TLS files",
                    None,
                ));
            }
            if let Err(e) = std::fs::File::open(path) {
                return Err(ConfigError::new(
                    variable,
                    format!("a readable PEM file ({}: {e})", path.display()),
                    None,
                ));
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(ConfigError::new(
                "REDIS_TLS_CERT",
                "REDIS_TLS_KEY beside it (the certificate's private key)",
                None,
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "REDIS_TLS_KEY",
                "REDIS_TLS_CERT beside it (the certificate of this key)",
                None,
            )),
            _ => Ok(()),
        }
    }
}

/// The defaults of the contract.
mod defaults {
    pub const URL: &str = "redis://localhost:6379/0";
    /// The most connections the default pool opens (the guide's figure).
    pub const POOL_SIZE: usize = 10;

    /// The default pool: one connection per CPU core, at most [`POOL_SIZE`].
    ///
    /// fred pipelines every command in flight on a connection: one connection carrying 64
    /// concurrent GETs writes them in a few syscalls and reads the replies in a few more, while 10
    /// connections each wake their own reader and writer tasks for a handful of commands. On the
    /// 2-core machine of `docs/src/benchmarks.md` a pool of 10 served about half the hits per
    /// second of a pool of 1 or 2 at 16 and 64 concurrent callers; more connections than cores
    /// only add wake-ups that compete with the callers for the same cores.
    pub fn pool_size() -> usize {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, POOL_SIZE)
    }
    pub const SOCKET_TIMEOUT_SECS: f64 = 5.0;
    pub const TTL_SECS: u64 = 300;
    pub const MEMORY_MAX_BYTES: u64 = 256 * 1024 * 1024;
    pub const BREAKER_THRESHOLD: u32 = 5;
    pub const BREAKER_PROBE_INTERVAL_MS: u64 = 500;
    pub const LEASE_TTL_SECS: u64 = 10;
    pub const CLEAR_TIMEOUT_SECS: u64 = 60;
    pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
    /// With the `compression` feature; 0 (never) without it.
    pub const COMPRESS_MIN_BYTES: usize = if cfg!(feature = "compression") {
        8 * 1024
    } else {
        0
    };
    pub const OFFLOAD_MIN_BYTES: usize = 256 * 1024;
}

impl Default for CacheConfig {
    /// The contract's defaults: Redis at `redis://localhost:6379/0`, one connection per CPU core
    /// (at most 10), 5 s timeout,
    /// enabled, 300 s TTL, failing silently, bincode.
    fn default() -> Self {
        CacheConfig {
            backend: BackendConfig::Redis(RedisUrl(defaults::URL.to_owned())),
            pool_size: NonZeroUsize::MIN.saturating_add(defaults::pool_size() - 1),
            socket_timeout: Duration::from_secs_f64(defaults::SOCKET_TIMEOUT_SECS),
            enabled: true,
            default_ttl: Duration::from_secs(defaults::TTL_SECS),
            fail_silently: true,
            codec: CodecKind::Bincode,
            breaker_threshold: defaults::BREAKER_THRESHOLD,
            breaker_probe_interval: Duration::from_millis(defaults::BREAKER_PROBE_INTERVAL_MS),
            lease_ttl: Duration::from_secs(defaults::LEASE_TTL_SECS),
            clear_timeout: Duration::from_secs(defaults::CLEAR_TIMEOUT_SECS),
            max_value_bytes: defaults::MAX_VALUE_BYTES,
            compress_min_bytes: defaults::COMPRESS_MIN_BYTES,
            offload_min_bytes: defaults::OFFLOAD_MIN_BYTES,
            verify_keys: KeyCheck::Warn,
            tls: TlsFiles::default(),
        }
    }
}

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

    /// A builder starting from the contract's defaults, for code that does not use the environment.
    pub fn builder() -> CacheConfigBuilder {
        CacheConfigBuilder::default()
    }

    /// Where values are kept.
    pub fn backend(&self) -> &BackendConfig {
        &self.backend
    }

    /// Connections in the Redis pool (`REDIS_POOL_SIZE`).
    pub fn pool_size(&self) -> usize {
        self.pool_size.get()
    }

    /// The longest any Redis command may take (`REDIS_SOCKET_TIMEOUT`).
    pub fn socket_timeout(&self) -> Duration {
        self.socket_timeout
    }

    /// False when caching is switched off (`CACHE_ENABLED=false`): every operation is a no-op/miss.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The TTL used when none is given (`CACHE_TTL_DEFAULT`).
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// True when Redis errors become misses and no-ops instead of errors (`CACHE_FAIL_SILENTLY`).
    pub fn fail_silently(&self) -> bool {
        self.fail_silently
    }

    /// The codec new values are written with (`CACHE_CODEC`); values are read with the codec their
    /// header names.
    pub fn codec(&self) -> CodecKind {
        self.codec
    }

    /// What `init` does with the findings of the key-space registry (`CACHE_VERIFY_KEYS`).
    pub fn verify_keys(&self) -> KeyCheck {
        self.verify_keys
    }

    /// Consecutive connection failures that open the circuit breaker; 0 when it is disabled
    /// (`CACHE_BREAKER_THRESHOLD`).
    pub fn breaker_threshold(&self) -> u32 {
        self.breaker_threshold
    }

    /// Time between background probes while the circuit is open (`CACHE_BREAKER_PROBE_INTERVAL`).
    pub fn breaker_probe_interval(&self) -> Duration {
        self.breaker_probe_interval
    }

    /// How long a miss holds its lease on the key (`CACHE_LEASE_TTL`).
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// The most one `clear_pattern` may take in all (`CACHE_CLEAR_TIMEOUT`).
    pub fn clear_timeout(&self) -> Duration {
        self.clear_timeout
    }

    /// The largest encoded value `set` accepts (`CACHE_MAX_VALUE_BYTES`).
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// Encoded values of at least this many bytes are LZ4-compressed (`CACHE_COMPRESS_MIN_BYTES`,
    /// feature `compression`); 0 never compresses.
    pub fn compress_min_bytes(&self) -> usize {
        self.compress_min_bytes
    }

    /// Values of at least this many bytes are encoded and decoded off the async executor's
    /// worker (`CACHE_OFFLOAD_MIN_BYTES`, multi-thread runtimes); 0 never offloads.
    pub fn offload_min_bytes(&self) -> usize {
        self.offload_min_bytes
    }

    pub(crate) fn tls(&self) -> &TlsFiles {
        &self.tls
    }
}

impl fmt::Display for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            BackendConfig::Redis(url) => write!(f, "redis {url}")?,
            BackendConfig::Memory { max_bytes } => write!(f, "memory (max {max_bytes} bytes)")?,
        }
        write!(
            f,
            ", pool {}, timeout {:?}, ttl {:?}, enabled {}, fail silently {}, codec {}",
            self.pool_size,
            self.socket_timeout,
            self.default_ttl,
            self.enabled,
            self.fail_silently,
            self.codec.name()
        )
    }
}

/// Every variable [`CacheConfig::from_lookup`] reads (a test checks that none is missing).
const VARIABLES: [&str; 25] = [
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

/// Builds a [`CacheConfig`] in code; [`build`](CacheConfigBuilder::build) checks the values.
///
/// `Debug` shows the URL as [`RedisUrl::redacted`] does, or not at all while it is not valid.
#[derive(Default, Clone)]
pub struct CacheConfigBuilder {
    backend: Option<BackendConfig>,
    url: Option<String>,
    pool_size: Option<usize>,
    socket_timeout: Option<Duration>,
    enabled: Option<bool>,
    default_ttl: Option<Duration>,
    fail_silently: Option<bool>,
    codec: Option<CodecKind>,
    breaker_threshold: Option<u32>,
    breaker_probe_interval: Option<Duration>,
    lease_ttl: Option<Duration>,
    clear_timeout: Option<Duration>,
    max_value_bytes: Option<usize>,
    compress_min_bytes: Option<usize>,
    offload_min_bytes: Option<usize>,
    verify_keys: Option<KeyCheck>,
    tls: TlsFiles,
}

impl fmt::Debug for CacheConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a URL that passes the checks is known to be redacted right: a malformed one may
        // hold its password anywhere (`redis://pa/ss@host` puts `pa` in the host).
        let url = self.url.as_deref().map(|url| {
            RedisUrl::parse("url", url).map_or_else(|_| UNSHOWN_URL.to_owned(), |u| u.redacted())
        });
        f.debug_struct("CacheConfigBuilder")
            .field("backend", &self.backend)
            .field("url", &url)
            .field("pool_size", &self.pool_size)
            .field("socket_timeout", &self.socket_timeout)
            .field("enabled", &self.enabled)
            .field("default_ttl", &self.default_ttl)
            .field("fail_silently", &self.fail_silently)
            .field("codec", &self.codec)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_probe_interval", &self.breaker_probe_interval)
            .field("lease_ttl", &self.lease_ttl)
            .field("clear_timeout", &self.clear_timeout)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("compress_min_bytes", &self.compress_min_bytes)
            .field("offload_min_bytes", &self.offload_min_bytes)
            .field("verify_keys", &self.verify_keys)
            .field("tls", &self.tls)
            .finish()
    }
}

impl CacheConfigBuilder {
    /// Use Redis at this URL (any form fred accepts; see [`CacheConfig::from_env`]).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self.backend = None;
        self
    }

    /// Use the in-process backend, keeping at most `max_bytes` of keys and values.
    pub fn memory(mut self, max_bytes: u64) -> Self {
        self.backend = Some(BackendConfig::Memory { max_bytes });
        self.url = None;
        self
    }

    /// Connections in the Redis pool; at least 1.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = Some(size);
        self
    }

    /// The longest any Redis command may take; above zero.
    pub fn socket_timeout(mut self, timeout: Duration) -> Self {
        self.socket_timeout = Some(timeout);
        self
    }

    /// Switch caching on or off.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    /// The TTL used when none is given; at least one millisecond.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Whether Redis errors become misses and no-ops (true) or errors (false).
    pub fn fail_silently(mut self, fail_silently: bool) -> Self {
        self.fail_silently = Some(fail_silently);
        self
    }

    /// The codec new values are written with.
    pub fn codec(mut self, codec: CodecKind) -> Self {
        self.codec = Some(codec);
        self
    }

    /// What `init` does with the findings of the key-space registry.
    pub fn verify_keys(mut self, check: KeyCheck) -> Self {
        self.verify_keys = Some(check);
        self
    }

    /// Consecutive connection failures that open the circuit breaker; 0 disables it.
    pub fn breaker_threshold(mut self, failures: u32) -> Self {
        self.breaker_threshold = Some(failures);
        self
    }

    /// Time between background probes while the circuit is open; above zero.
    pub fn breaker_probe_interval(mut self, interval: Duration) -> Self {
        self.breaker_probe_interval = Some(interval);
        self
    }

    /// The most one `clear_pattern` may take in all (`CACHE_CLEAR_TIMEOUT`); above zero.
    pub fn clear_timeout(mut self, timeout: Duration) -> Self {
        self.clear_timeout = Some(timeout);
        self
    }

    /// How long a miss holds its lease on the key (`CACHE_LEASE_TTL`); above zero. A body that
    /// runs longer is not stored, and callers in other processes wait at most this long for it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// The largest encoded value `set` accepts; at least 1.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = Some(bytes);
        self
    }

    /// LZ4-compress encoded values of at least `bytes` (feature `compression`); 0 never does.
    pub fn compress_min_bytes(mut self, bytes: usize) -> Self {
        self.compress_min_bytes = Some(bytes);
        self
    }

    /// (De)serialize values of at least `bytes` off the executor's worker; 0 never does.
    pub fn offload_min_bytes(mut self, bytes: usize) -> Self {
        self.offload_min_bytes = Some(bytes);
        self
    }

    /// Trust the CA certificates in this PEM file for `rediss://` instead of the system's roots.
    pub fn tls_ca(mut self, pem_file: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca = Some(pem_file.into());
        self
    }

    /// Present this client certificate chain and key (PEM files), for mutual TLS.
    pub fn tls_client_cert(
        mut self,
        cert_pem_file: impl Into<std::path::PathBuf>,
        key_pem_file: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls.cert = Some(cert_pem_file.into());
        self.tls.key = Some(key_pem_file.into());
        self
    }

    /// Checks the values and returns the configuration.
    pub fn build(self) -> Result<CacheConfig, ConfigError> {
        let d = CacheConfig::default();
        let backend = match (self.backend, self.url) {
            (Some(backend), _) => backend,
            (None, Some(url)) => BackendConfig::Redis(RedisUrl::parse("url", &url)?),
            (None, None) => d.backend,
        };
        let pool_size = match self.pool_size {
            Some(n) => NonZeroUsize::new(n).ok_or_else(|| {
                ConfigError::new("REDIS_POOL_SIZE", "a whole number of at least 1", Some("0"))
            })?,
            None => d.pool_size,
        };
        let socket_timeout = self.socket_timeout.unwrap_or(d.socket_timeout);
        if socket_timeout.is_zero() {
            return Err(ConfigError::new(
                "REDIS_SOCKET_TIMEOUT",
                "a positive number of seconds, such as 5 or 0.25",
                Some("0"),
            ));
        }
        let default_ttl = self.default_ttl.unwrap_or(d.default_ttl);
        if default_ttl < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "CACHE_TTL_DEFAULT",
                "a TTL of at least one millisecond",
                Some(&format!("{default_ttl:?}")),
            ));
        }
        let breaker_probe_interval = self
            .breaker_probe_interval
            .unwrap_or(d.breaker_probe_interval);
        if breaker_probe_interval.is_zero() {
            return Err(ConfigError::new(
                "CACHE_BREAKER_PROBE_INTERVAL",
                "a positive number of seconds, such as 5 or 0.25",
                Some("0"),
            ));
        }
        let lease_ttl = self.lease_ttl.unwrap_or(d.lease_ttl);
        if lease_ttl < Duration::from_millis(1) {
            return Err(ConfigError::new(
                "CACHE_LEASE_TTL",
                "a positive number of seconds, such as 10 or 0.5",
                Some("0"),
            ));
        }
        let clear_timeout = self.clear_timeout.unwrap_or(d.clear_timeout);
        if clear_timeout.is_zero() {
            return Err(ConfigError::new(
                "CACHE_CLEAR_TIMEOUT",
                "a positive number of seconds, such as 60 or 0.5",
                Some("0"),
            ));
        }
        let uses_tls = match &backend {
            BackendConfig::Redis(url) => url::Url::parse(url.expose())
                .is_ok_and(|u| SCHEMES.iter().any(|&(s, tls)| tls && s == u.scheme())),
            BackendConfig::Memory { .. } => false,
        };
        self.tls.check(uses_tls)?;
        let max_value_bytes = self.max_value_bytes.unwrap_or(d.max_value_bytes);
        if max_value_bytes == 0 {
            return Err(ConfigError::new(
                "CACHE_MAX_VALUE_BYTES",
                "a whole number of at least 1",
                Some("0"),
            ));
        }
        let compress_min_bytes = self.compress_min_bytes.unwrap_or(d.compress_min_bytes);
        if compress_min_bytes > 0 && !cfg!(feature = "compression") {
            return Err(ConfigError::new(
                "CACHE_COMPRESS_MIN_BYTES",
                "0, or a build of cache-core with the `compression` feature",
                Some(&compress_min_bytes.to_string()),
            ));
        }
        Ok(CacheConfig {
            backend,
            pool_size,
            socket_timeout,
            enabled: self.enabled.unwrap_or(d.enabled),
            default_ttl,
            fail_silently: self.fail_silently.unwrap_or(d.fail_silently),
            codec: self.codec.unwrap_or(d.codec),
            breaker_threshold: self.breaker_threshold.unwrap_or(d.breaker_threshold),
            breaker_probe_interval,
            lease_ttl,
            clear_timeout,
            max_value_bytes,
            compress_min_bytes,
            offload_min_bytes: self.offload_min_bytes.unwrap_or(d.offload_min_bytes),
            verify_keys: self.verify_keys.unwrap_or(d.verify_keys),
            tls: self.tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
            ("CACHE_OFFLOAD_MIN_BYTES", "0"),
        ])
        .unwrap();
        let parsed = url::Url::parse(url_of(&c)).unwrap();
        assert_eq!(parsed.host_str(), Some("cache.internal"));
        assert_eq!(parsed.port(), Some(6380));
        assert_eq!(parsed.path(), "/3");
        assert_eq!(parsed.username(), "app");
        assert_eq!(
            url::form_urlencoded::parse(parsed.password().unwrap().as_bytes())
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
        assert_eq!(c.offload_min_bytes(), 0);
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
            ("CACHE_MAX_VALUE_BYTES", "0", "at least 1"),
            ("CACHE_MAX_VALUE_BYTES", "16MB", "at least 1"),
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
                VARIABLES.contains(&name.as_str()),
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
}
