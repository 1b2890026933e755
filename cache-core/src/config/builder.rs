//! A configuration built in code.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use super::url::{SCHEMES, UNSHOWN_URL};
use super::{BackendConfig, CacheConfig, RedisUrl, TlsFiles};
use crate::codec::CodecKind;
use crate::error::ConfigError;
use crate::registry::KeyCheck;

/// Builds a [`CacheConfig`] in code; [`build`](CacheConfigBuilder::build) checks the values.
///
/// `Debug` shows the URL as [`RedisUrl::redacted`] does, or not at all while it is not valid.
#[derive(Default, Clone)]
pub struct CacheConfigBuilder {
    pub(super) backend: Option<BackendConfig>,
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
    lease_liveness: Option<Duration>,
    clear_timeout: Option<Duration>,
    replay_window: Option<Duration>,
    replay_hold: Option<Duration>,
    invalidation_replicas: Option<u32>,
    invalidation_fsync: Option<bool>,
    read_batch: Option<usize>,
    max_value_bytes: Option<usize>,
    max_decoded_bytes: Option<usize>,
    compress_min_bytes: Option<usize>,
    offload_min_bytes: Option<usize>,
    verify_keys: Option<KeyCheck>,
    pub(super) tls: TlsFiles,
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
            .field("lease_liveness", &self.lease_liveness)
            .field("clear_timeout", &self.clear_timeout)
            .field("replay_window", &self.replay_window)
            .field("replay_hold", &self.replay_hold)
            .field("invalidation_replicas", &self.invalidation_replicas)
            .field("invalidation_fsync", &self.invalidation_fsync)
            .field("read_batch", &self.read_batch)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_decoded_bytes", &self.max_decoded_bytes)
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

    /// How long acknowledged invalidations are remembered, to be made again when a Redis node
    /// restarted or failed over (`CACHE_REPLAY_WINDOW`); zero remembers none.
    pub fn replay_window(mut self, window: Duration) -> Self {
        self.replay_window = Some(window);
        self
    }

    /// How long reads are misses after a Redis node restarted or failed over, while every
    /// process replays its recent invalidations (`CACHE_REPLAY_HOLD`); zero holds nothing off.
    pub fn replay_hold(mut self, hold: Duration) -> Self {
        self.replay_hold = Some(hold);
        self
    }

    /// How many replicas of each primary an invalidation waits for before it returns
    /// (`CACHE_INVALIDATION_REPLICAS`); 0 waits for none.
    pub fn invalidation_replicas(mut self, replicas: u32) -> Self {
        self.invalidation_replicas = Some(replicas);
        self
    }

    /// Whether an invalidation waits for each primary's fsync of its append-only file before it
    /// returns (`CACHE_INVALIDATION_FSYNC`; Redis 7.2 or later).
    pub fn invalidation_fsync(mut self, fsync: bool) -> Self {
        self.invalidation_fsync = Some(fsync);
        self
    }

    /// The most concurrent reads one `MGET` gathers under load (`CACHE_READ_BATCH`); at least
    /// 1, and 1 turns gathering off (the guide's Benchmarks chapter measures it).
    pub fn read_batch(mut self, keys: usize) -> Self {
        self.read_batch = Some(keys);
        self
    }

    /// How long a miss holds its lease on the key (`CACHE_LEASE_TTL`); above zero. A body that
    /// runs longer is not stored, and callers in other processes wait at most this long for it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// How long a lease marker lives unless its holder renews it (`CACHE_LEASE_LIVENESS`);
    /// above zero and below [`lease_ttl`](Self::lease_ttl). The holder renews it every third of
    /// this while its body runs, so a holder that died (a killed process) stalls the other
    /// processes' callers of its key for at most this long. Unset: 1 s, or half the lease TTL
    /// when that is shorter.
    pub fn lease_liveness(mut self, liveness: Duration) -> Self {
        self.lease_liveness = Some(liveness);
        self
    }

    /// The largest encoded value `set` accepts; at least 1.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = Some(bytes);
        self
    }

    /// The most memory a value read from the cache may take once decoded, counted as the size
    /// of each element of its sequences and maps plus the length of its strings; at least
    /// [`max_value_bytes`](Self::max_value_bytes). A value over it is a corrupt miss.
    pub fn max_decoded_bytes(mut self, bytes: usize) -> Self {
        self.max_decoded_bytes = Some(bytes);
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
        let lease_liveness = match self.lease_liveness {
            Some(liveness) if liveness.is_zero() || liveness >= lease_ttl => {
                return Err(ConfigError::new(
                    "CACHE_LEASE_LIVENESS",
                    "a positive number of seconds below CACHE_LEASE_TTL, such as 1 or 0.5",
                    Some(&format!("{}", liveness.as_secs_f64())),
                ));
            }
            Some(liveness) => liveness,
            None => d.lease_liveness.min(lease_ttl / 2),
        };
        let clear_timeout = self.clear_timeout.unwrap_or(d.clear_timeout);
        if clear_timeout.is_zero() {
            return Err(ConfigError::new(
                "CACHE_CLEAR_TIMEOUT",
                "a positive number of seconds, such as 60 or 0.5",
                Some("0"),
            ));
        }
        let read_batch = self.read_batch.unwrap_or(d.read_batch);
        if read_batch == 0 {
            return Err(ConfigError::new(
                "CACHE_READ_BATCH",
                "a whole number of at least 1 (1: no batching)",
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
        // Unset, it follows a largest value above its default.
        let max_decoded_bytes = self
            .max_decoded_bytes
            .unwrap_or(d.max_decoded_bytes.max(max_value_bytes));
        if max_decoded_bytes < max_value_bytes {
            return Err(ConfigError::new(
                "CACHE_MAX_DECODED_BYTES",
                "a whole number of bytes, at least CACHE_MAX_VALUE_BYTES",
                Some(&max_decoded_bytes.to_string()),
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
            lease_liveness,
            clear_timeout,
            replay_window: self.replay_window.unwrap_or(d.replay_window),
            replay_hold: self.replay_hold.unwrap_or(d.replay_hold),
            invalidation_replicas: self
                .invalidation_replicas
                .unwrap_or(d.invalidation_replicas),
            invalidation_fsync: self.invalidation_fsync.unwrap_or(d.invalidation_fsync),
            read_batch,
            max_value_bytes,
            max_decoded_bytes,
            compress_min_bytes,
            offload_min_bytes: self.offload_min_bytes.unwrap_or(d.offload_min_bytes),
            verify_keys: self.verify_keys.unwrap_or(d.verify_keys),
            tls: self.tls,
        })
    }
}
