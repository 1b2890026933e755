//! The [`Cache`] handle: the public operations, with the policy (enabled, fail silently,
//! counting, logging) between callers and the backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::memory::MemoryBackend;
use crate::backend::redis::RedisBackend;
use crate::backend::Backend;
use crate::breaker::Breaker;
use crate::codec::{decode_value, encode_value};
use crate::config::BackendConfig;
use crate::stats::{Counters, Event};
use crate::{fingerprint, offload};
use crate::{CacheConfig, CacheError, CacheStats, HealthReport};

/// Deletes are idempotent, and a lost one leaves stale values behind (an invalidation during a
/// slot migration, say): a failed one is tried again after these pauses before the failure
/// policy applies. A retried `clear_pattern` counts only what its last attempt removed.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(100)];

/// Whether a failed delete is worth another try: not while the circuit is open, and not for a
/// refused pattern.
fn retryable<T>(result: &Result<T, CacheError>) -> bool {
    matches!(result, Err(e) if !matches!(e, CacheError::CircuitOpen | CacheError::InvalidPattern { .. }))
}

/// How long to keep quiet about backend failures after logging one at warn.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How many keys with corrupt values are remembered so that each is logged once.
const CORRUPT_KEYS_REMEMBERED: u64 = 10_000;

/// A handle to a cache: cheap to clone (one reference count), safe to share across tasks.
///
/// Every operation follows the configured policy: with caching disabled it is a no-op or a miss;
/// with `fail_silently` (the default) a backend failure is logged, counted in
/// [`CacheStats::errors`] and turned into a miss or a no-op; otherwise it is returned.
///
/// ```
/// # async fn demo() -> Result<(), cache_core::CacheError> {
/// use std::time::Duration;
/// use cache_core::{Cache, CacheConfig};
///
/// let cache = Cache::new(CacheConfig::builder().memory(64 << 20).build()?).await?;
/// cache.set("user:123", &("Alice", "admin"), Some(Duration::from_secs(600))).await?;
/// let user: Option<(String, String)> = cache.get("user:123").await?;
/// assert_eq!(user, Some(("Alice".into(), "admin".into())));
/// assert!(cache.exists("user:123").await?);
/// assert_eq!(cache.delete(["user:123", "user:456"]).await?, 1);
/// assert_eq!(cache.increment("post:123:views", 5).await?, 5);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    config: CacheConfig,
    store: Store,
    breaker: Breaker,
    counters: Counters,
    created: Instant,
    /// Milliseconds after `created` of the last failure logged at warn, for rate limiting.
    last_warned_ms: AtomicU64,
    /// Keys whose corrupt value was already logged.
    corrupt_logged: moka::sync::Cache<String, ()>,
}

enum Store {
    Redis(RedisBackend),
    Memory(MemoryBackend),
    Disabled,
}

/// Runs the same call on whichever backend the cache has: `$disabled` when caching is off,
/// [`CacheError::CircuitOpen`] without a call while the breaker is open, and Redis' outcome fed
/// to the breaker.
macro_rules! on_backend {
    ($cache:expr, $disabled:expr, |$backend:ident| $call:expr) => {
        match &$cache.inner.store {
            Store::Disabled => return Ok($disabled),
            _ if !$cache.inner.breaker.allows() => Err(CacheError::CircuitOpen),
            Store::Redis($backend) => $cache.observe($call),
            Store::Memory($backend) => $call,
        }
    };
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.backend_name())
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Cache {
    /// Creates a cache of its own (not the process-wide one) from `config`.
    ///
    /// With Redis down at startup this still returns a working handle when failing silently: every
    /// operation is a miss or a no-op until the pool, reconnecting in the background, gets through.
    /// When failing loudly, it returns the connection error instead.
    pub async fn new(config: CacheConfig) -> Result<Cache, CacheError> {
        let store = if !config.enabled() {
            Store::Disabled
        } else {
            match config.backend() {
                BackendConfig::Memory { max_bytes } => {
                    Store::Memory(MemoryBackend::new(*max_bytes))
                }
                BackendConfig::Redis(url) => {
                    let (backend, started) = RedisBackend::connect(
                        url,
                        config.pool_size(),
                        config.socket_timeout(),
                        config.tls(),
                    )
                    .await?;
                    match started {
                        Ok(()) => tracing::info!(url = %url, "connected to Redis"),
                        Err(e) if config.fail_silently() => tracing::warn!(
                            url = %url,
                            error = %e,
                            "Redis is not reachable yet; caching is off until it is (reconnecting in the background)"
                        ),
                        Err(e) => return Err(e),
                    }
                    Store::Redis(backend)
                }
            }
        };
        tracing::debug!(config = %config, "cache created");
        Ok(Cache {
            inner: Arc::new(Inner {
                breaker: Breaker::new(config.breaker_threshold(), config.breaker_probe_interval()),
                config,
                store,
                counters: Counters::default(),
                created: Instant::now(),
                last_warned_ms: AtomicU64::new(u64::MAX),
                corrupt_logged: moka::sync::Cache::builder()
                    .max_capacity(CORRUPT_KEYS_REMEMBERED)
                    .time_to_live(Duration::from_secs(3600))
                    .build(),
            }),
        })
    }

    /// The configuration this cache was created with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// `redis`, `memory`, or `disabled`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.store {
            Store::Redis(_) => "redis",
            Store::Memory(_) => "memory",
            Store::Disabled => "disabled",
        }
    }

    /// A snapshot of the counters, and the circuit breaker's state.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            circuit_open: !self.inner.breaker.allows(),
            circuit_opens: self.inner.breaker.times_opened(),
            ..self.inner.counters.snapshot()
        }
    }

    /// The value under `key`, or `None` when it is absent, expired or undecodable as a `V`.
    ///
    /// Undecodable bytes (foreign, truncated, another type) are a miss counted in
    /// [`CacheStats::corrupt`] and logged once per key; the next `set` repairs them.
    pub async fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, CacheError> {
        Ok(match self.get_bytes(key).await? {
            Some(bytes) => self.decode_counted(key, &bytes),
            None => None,
        })
    }

    /// Stores `value` under `key` for `ttl` (`None`: the default TTL).
    pub async fn set<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if let Store::Disabled = self.inner.store {
            return Ok(());
        }
        let bytes = self.encode(value)?;
        self.set_bytes(key, Bytes::from(bytes), ttl).await
    }

    /// Whether `key` holds a value.
    pub async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        let result = on_backend!(self, false, |b| b.exists(key).await);
        self.policy("exists", result, false)
    }

    /// The time `key` has left; `None` when it is absent or has no expiry.
    pub async fn get_ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let result = on_backend!(self, None, |b| b.ttl(key).await);
        self.policy("get_ttl", result, None)
    }

    /// Removes `keys` and returns how many existed.
    pub async fn delete<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<u64, CacheError> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let mut result = on_backend!(self, 0, |b| b.delete(&keys).await);
        for pause in RETRY_PAUSES {
            if !retryable(&result) {
                break;
            }
            tokio::time::sleep(pause).await;
            result = on_backend!(self, 0, |b| b.delete(&keys).await);
        }
        let removed = self.policy("delete", result, 0)?;
        self.inner.counters.add(Event::Delete, removed);
        Ok(removed)
    }

    /// Removes every key matching the Redis glob `pattern` and returns how many were removed.
    ///
    /// Walks the keyspace with `SCAN ... MATCH pattern COUNT 1000` and removes each page with one
    /// `UNLINK`; never `KEYS`, so Redis keeps serving while it runs. A pattern without glob
    /// characters removes that one key directly. The empty pattern, malformed patterns and
    /// patterns made only of `*` are refused (use [`clear_all`](Self::clear_all) for that).
    pub async fn clear_pattern(&self, pattern: &str) -> Result<u64, CacheError> {
        use cache_keys::pattern;
        let invalid = |reason: String| CacheError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        pattern::validate(pattern).map_err(|e| invalid(e.to_string()))?;
        if pattern::matches_everything(pattern) {
            return Err(invalid(
                "it matches every key; call clear_all() to empty the cache on purpose".to_owned(),
            ));
        }
        match pattern::literal_key(pattern) {
            Some(key) => self.delete([key]).await,
            None => self.clear_matching(pattern).await,
        }
    }

    /// Removes every key of the cache's database (by SCAN and UNLINK, not FLUSHDB) and returns how
    /// many were removed.
    pub async fn clear_all(&self) -> Result<u64, CacheError> {
        self.clear_matching("*").await
    }

    async fn clear_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let mut result = on_backend!(self, 0, |b| b.clear_pattern(pattern).await);
        for pause in RETRY_PAUSES {
            if !retryable(&result) {
                break;
            }
            tokio::time::sleep(pause).await;
            result = on_backend!(self, 0, |b| b.clear_pattern(pattern).await);
        }
        let removed = self.policy("clear_pattern", result, 0)?;
        self.inner.counters.add(Event::Delete, removed);
        Ok(removed)
    }

    /// Adds `amount` (negative to subtract) to the integer counter under `key`, starting from 0,
    /// and returns the new value. The key keeps its TTL, as with Redis' `INCRBY`.
    ///
    /// Counters hold plain integers, not encoded values: read one with `increment(key, 0)`.
    /// Failing silently, a failure returns 0.
    pub async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError> {
        let result = on_backend!(self, 0, |b| b.increment(key, amount).await);
        self.policy("increment", result, 0)
    }

    /// The values under `keys`, in order, in one round trip (`MGET`).
    ///
    /// Absent, expired and undecodable entries are `None`; failing silently, a failure gives all
    /// `None`.
    pub async fn get_many<V: DeserializeOwned, K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<V>>, CacheError> {
        let keys: Vec<K> = keys.into_iter().collect();
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let misses = || keys.iter().map(|_| None).collect::<Vec<_>>();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let result = on_backend!(self, misses(), |b| b.get_many(&keys).await);
        let values = match result {
            Ok(values) => values,
            Err(e) => {
                self.inner.counters.add(Event::Miss, keys.len() as u64);
                return self.policy("get_many", Err(e), misses());
            }
        };
        Ok(keys
            .iter()
            .zip(values)
            .map(|(key, bytes)| match bytes {
                Some(bytes) => self.decode_counted(key, &bytes),
                None => {
                    self.inner.counters.add(Event::Miss, 1);
                    None
                }
            })
            .collect())
    }

    /// Stores every `(key, value)` pair for `ttl` (`None`: the default TTL) in one round trip
    /// (a pipeline of `SET ... PX`).
    pub async fn set_many<K: Into<String>, V: Serialize>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        if let Store::Disabled = self.inner.store {
            return Ok(());
        }
        let items = items
            .into_iter()
            .map(|(k, v)| {
                let bytes = self.encode(&v)?;
                self.check_size(bytes.len())?;
                Ok((k.into(), Bytes::from(bytes)))
            })
            .collect::<Result<Vec<(String, Bytes)>, CacheError>>()?;
        if items.is_empty() {
            return Ok(());
        }
        let count = items.len() as u64;
        let ttl = ttl.unwrap_or(self.inner.config.default_ttl());
        let result = on_backend!(self, (), |b| b.set_many(items, ttl).await);
        if result.is_ok() {
            self.inner.counters.add(Event::Set, count);
        }
        self.policy("set_many", result, ())
    }

    /// Checks the backend: PING latency and, for Redis, what `INFO` says. Never fails: a failure
    /// is `healthy: false` with the error text. It asks Redis even while the circuit breaker is
    /// open, and closes the breaker when Redis answers.
    pub async fn health_check(&self) -> HealthReport {
        match &self.inner.store {
            Store::Redis(b) => {
                let mut report = b.health().await;
                if report.healthy && !self.inner.breaker.allows() {
                    self.inner.breaker.close();
                    tracing::info!("Redis answers again; circuit breaker closed");
                }
                report.circuit = self.inner.breaker.state();
                report
            }
            Store::Memory(b) => b.health().await,
            Store::Disabled => HealthReport {
                healthy: true,
                latency_ms: 0.0,
                version: None,
                used_memory: None,
                connected_clients: None,
                uptime_seconds: Some(self.inner.created.elapsed().as_secs()),
                error: None,
                backend: "disabled",
                circuit: "closed",
                nodes: Vec::new(),
            },
        }
    }

    /// The stored bytes under `key`, with the policy applied; counts a miss when absent but leaves
    /// the hit to [`decode_counted`](Self::decode_counted).
    #[doc(hidden)]
    #[inline]
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.read_bytes(key, true).await
    }

    /// [`get_bytes`](Self::get_bytes) without counting an absent value as a miss (failures are
    /// counted): for `#[cached]`, whose flight leader counts the miss.
    #[doc(hidden)]
    #[inline]
    pub async fn get_bytes_uncounted(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.read_bytes(key, false).await
    }

    async fn read_bytes(&self, key: &str, count_miss: bool) -> Result<Option<Bytes>, CacheError> {
        let result = on_backend!(self, None, |b| b.get(key).await);
        match result {
            Ok(Some(bytes)) => Ok(Some(bytes)),
            Ok(None) => {
                if count_miss {
                    self.inner.counters.add(Event::Miss, 1);
                }
                Ok(None)
            }
            Err(e) => {
                self.inner.counters.add(Event::Miss, 1);
                self.policy("get", Err(e), None)
            }
        }
    }

    /// Stores already encoded bytes (from [`codec::encode_value`](crate::codec::encode_value)).
    #[doc(hidden)]
    pub async fn set_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.check_size(bytes.len())?;
        let ttl = ttl.unwrap_or(self.inner.config.default_ttl());
        let result = on_backend!(self, (), |b| b.set(key, bytes, ttl).await);
        if result.is_ok() {
            self.inner.counters.add(Event::Set, 1);
        }
        self.policy("set", result, ())
    }

    /// Encodes a value for storing: the codec behind the header, LZ4 when the value is large
    /// enough (feature `compression`), off the executor's worker when values of its type were
    /// large before.
    #[doc(hidden)]
    pub fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, CacheError> {
        let config = &self.inner.config;
        let min = config.offload_min_bytes();
        let fingerprint = fingerprint::of::<V>();
        let bytes = offload::run(min > 0 && offload::was_large(fingerprint), || {
            let bytes = encode_value(config.codec(), value)?;
            #[cfg(feature = "compression")]
            let bytes = crate::codec::compress(bytes, config.compress_min_bytes());
            Ok::<_, CacheError>(bytes)
        })?;
        offload::remember(fingerprint, min > 0 && bytes.len() >= min);
        Ok(bytes)
    }

    /// Decodes stored bytes, counting a hit, or a corrupt miss (logged once per key).
    #[doc(hidden)]
    pub fn decode_counted<V: DeserializeOwned>(&self, key: &str, bytes: &[u8]) -> Option<V> {
        let min = self.inner.config.offload_min_bytes();
        match offload::run(min > 0 && bytes.len() >= min, || decode_value(bytes)) {
            Ok(value) => {
                self.inner.counters.add(Event::Hit, 1);
                Some(value)
            }
            Err(e) => {
                self.inner.counters.add(Event::Miss, 1);
                self.inner.counters.add(Event::Corrupt, 1);
                if !self.inner.corrupt_logged.contains_key(key) {
                    self.inner.corrupt_logged.insert(key.to_owned(), ());
                    tracing::warn!(
                        key,
                        error = %e,
                        bytes = bytes.len(),
                        "unreadable cached value treated as a miss (logged once per key)"
                    );
                }
                None
            }
        }
    }

    /// Refuses values over `CACHE_MAX_VALUE_BYTES`, whatever the failure policy: a value that
    /// size is the caller's to fix, not a Redis failure to hide.
    fn check_size(&self, size: usize) -> Result<(), CacheError> {
        let max = self.inner.config.max_value_bytes();
        if size > max {
            return Err(CacheError::ValueTooLarge { size, max });
        }
        Ok(())
    }

    /// Feeds a Redis outcome to the circuit breaker; opens it (and starts the probe) after too
    /// many consecutive connection failures.
    fn observe<T>(&self, result: Result<T, CacheError>) -> Result<T, CacheError> {
        match &result {
            Err(e) if e.is_connection() => {
                if self.inner.breaker.on_failure() {
                    tracing::warn!(
                        error = %e,
                        probe_every = ?self.inner.breaker.probe_interval(),
                        "circuit breaker opened: Redis is skipped until it answers a probe"
                    );
                    self.spawn_probe();
                }
            }
            // An answer, even an error answer, means Redis is reachable.
            _ => self.inner.breaker.on_success(),
        }
        result
    }

    /// Checks Redis in the background every probe interval while the breaker is open, and closes
    /// it when Redis answers. Ends when the breaker closes or the cache is dropped.
    fn spawn_probe(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to probe from: close at once rather than stay open for ever.
            self.inner.breaker.close();
            return;
        };
        let inner = Arc::downgrade(&self.inner);
        let interval = self.inner.breaker.probe_interval();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = inner.upgrade() else { return };
                if inner.breaker.allows() {
                    return;
                }
                let healthy = match &inner.store {
                    Store::Redis(b) => b.health().await.healthy,
                    Store::Memory(_) | Store::Disabled => true,
                };
                if healthy {
                    inner.breaker.close();
                    tracing::info!("Redis answers again; circuit breaker closed");
                    return;
                }
            }
        });
    }

    /// Applies the failure policy: count and log the error, then hand back `fallback` when
    /// failing silently or the error otherwise.
    fn policy<T>(
        &self,
        op: &'static str,
        result: Result<T, CacheError>,
        fallback: T,
    ) -> Result<T, CacheError> {
        let Err(error) = result else { return result };
        if let CacheError::CircuitOpen = error {
            self.inner.counters.add(Event::ShortCircuit, 1);
        } else {
            self.inner.counters.add(Event::Error, 1);
            self.log_failure(op, &error);
        }
        if self.inner.config.fail_silently() {
            Ok(fallback)
        } else {
            Err(error)
        }
    }

    /// Logs a backend failure at warn at most once per [`WARN_EVERY`], at debug otherwise, so an
    /// outage does not flood the logs.
    fn log_failure(&self, op: &'static str, error: &CacheError) {
        let now_ms = self.inner.created.elapsed().as_millis() as u64;
        let last = self.inner.last_warned_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now_ms.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .inner
                .last_warned_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let errors = self.inner.counters.snapshot().errors;
            tracing::warn!(op, %error, errors, fail_silently = self.inner.config.fail_silently(), "cache backend failure");
        } else {
            tracing::debug!(op, %error, "cache backend failure");
        }
    }
}
