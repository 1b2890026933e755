//! Configuration: the environment variables of the contract, a `.env` file, and a builder.
//!
//! Every value is checked once, at startup; a bad one is a [`ConfigError`](crate::ConfigError) that names the variable
//! (or, for a configuration built in code, the builder method) and the expected form. Passwords
//! are kept out of `Debug`, `Display`, logs and errors.
//!
//! - [`env`]: the variables, their parsers and defaults, and `.env`;
//! - [`builder`]: the configuration built in code;
//! - [`url`]: the Redis URL, parsed once, and its redacted form;
//! - [`tls`]: the TLS files.

mod builder;
mod env;
mod tls;
mod url;

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::codec::{CodecKind, Envelope};
use crate::registry::KeyCheck;

pub use builder::CacheConfigBuilder;
pub(crate) use tls::TlsFiles;
pub(crate) use url::read_from_replicas;
pub use url::RedisUrl;

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
    lease_liveness: Duration,
    clear_timeout: Duration,
    replay_window: Duration,
    replay_hold: Duration,
    invalidation_replicas: u32,
    invalidation_fsync: bool,
    read_batch: usize,
    max_value_bytes: usize,
    max_decoded_bytes: usize,
    compress_min_bytes: usize,
    offload_min_bytes: usize,
    verify_keys: KeyCheck,
    tls: TlsFiles,
}

/// The defaults of the contract.
mod defaults {
    pub const URL: &str = "redis://localhost:6379/0";
    /// The parts of [`URL`], for `REDIS_HOST`, `REDIS_PORT` and `REDIS_DB`.
    pub const HOST: &str = "localhost";
    pub const PORT: u16 = 6379;
    pub const DB: u8 = 0;
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
    pub const LEASE_LIVENESS_SECS: u64 = 1;
    pub const CLEAR_TIMEOUT_SECS: u64 = 60;
    pub const REPLAY_WINDOW_SECS: u64 = 60;
    pub const REPLAY_HOLD_SECS: u64 = 2;
    /// The most reads one `MGET` gathers: the highest concurrency of cache-bench, where one
    /// batch carried about 30 keys on average.
    pub const READ_BATCH: usize = 64;
    pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
    pub const MAX_DECODED_BYTES: usize = crate::codec::DEFAULT_MAX_DECODED_BYTES;
    pub const COMPRESS_MIN_BYTES_WITH_FEATURE: usize = 8 * 1024;
    /// 0 (never) without the `compression` feature.
    pub const COMPRESS_MIN_BYTES: usize = if cfg!(feature = "compression") {
        COMPRESS_MIN_BYTES_WITH_FEATURE
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
            lease_liveness: Duration::from_secs(defaults::LEASE_LIVENESS_SECS),
            clear_timeout: Duration::from_secs(defaults::CLEAR_TIMEOUT_SECS),
            replay_window: Duration::from_secs(defaults::REPLAY_WINDOW_SECS),
            replay_hold: Duration::from_secs(defaults::REPLAY_HOLD_SECS),
            invalidation_replicas: 0,
            invalidation_fsync: false,
            read_batch: defaults::READ_BATCH,
            max_value_bytes: defaults::MAX_VALUE_BYTES,
            max_decoded_bytes: defaults::MAX_DECODED_BYTES,
            compress_min_bytes: defaults::COMPRESS_MIN_BYTES,
            offload_min_bytes: defaults::OFFLOAD_MIN_BYTES,
            verify_keys: KeyCheck::Warn,
            tls: TlsFiles::default(),
        }
    }
}

impl CacheConfig {
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

    /// How long a lease marker lives unless its holder renews it (`CACHE_LEASE_LIVENESS`).
    pub fn lease_liveness(&self) -> Duration {
        self.lease_liveness
    }

    /// The most one `clear_pattern` may take in all (`CACHE_CLEAR_TIMEOUT`).
    pub fn clear_timeout(&self) -> Duration {
        self.clear_timeout
    }

    /// How long acknowledged invalidations are remembered, to be made again when a Redis node
    /// turns out to have restarted or failed over (`CACHE_REPLAY_WINDOW`; zero: never).
    pub fn replay_window(&self) -> Duration {
        self.replay_window
    }

    /// How long reads are misses after a Redis node turned out to have restarted or failed
    /// over, while every process replays its recent invalidations (`CACHE_REPLAY_HOLD`).
    pub fn replay_hold(&self) -> Duration {
        self.replay_hold
    }

    /// How many replicas of each primary an invalidation waits for (`WAIT`) before it returns
    /// (`CACHE_INVALIDATION_REPLICAS`; 0: none). An invalidation they do not all acknowledge
    /// within three quarters of the socket timeout is [`CacheError::NotDurable`](crate::CacheError)
    /// and kept for replay.
    pub fn invalidation_replicas(&self) -> u32 {
        self.invalidation_replicas
    }

    /// Whether an invalidation also waits for each primary to write it to its append-only file
    /// and fsync it (`WAITAOF`, Redis 7.2 or later with `appendonly yes`;
    /// `CACHE_INVALIDATION_FSYNC`).
    pub fn invalidation_fsync(&self) -> bool {
        self.invalidation_fsync
    }

    /// The most concurrent reads one `MGET` gathers under load (`CACHE_READ_BATCH`); 1: none
    /// are gathered, each read is a GET of its own.
    pub fn read_batch(&self) -> usize {
        self.read_batch
    }

    /// The largest encoded value `set` accepts (`CACHE_MAX_VALUE_BYTES`).
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// The most memory a value read from the cache may take once decoded
    /// (`CACHE_MAX_DECODED_BYTES`); at least [`max_value_bytes`](Self::max_value_bytes).
    pub fn max_decoded_bytes(&self) -> usize {
        self.max_decoded_bytes
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

    /// How values are written and read under this configuration.
    pub(crate) fn envelope(&self) -> Envelope {
        let envelope = Envelope::new(self.codec, self.max_value_bytes)
            .max_decoded_bytes(self.max_decoded_bytes);
        #[cfg(feature = "compression")]
        let envelope = envelope.compress_from(self.compress_min_bytes);
        envelope
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

#[cfg(test)]
mod tests;
