//! The [`Cache`] handle: the public operations, with the policy (enabled, fail silently,
//! counting, logging) between callers and the backend.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::policy::{check_pattern, Cacheable, Policy};
use crate::stats::ShutdownReport;
use crate::{config::CacheConfig, error::CacheError, health::HealthReport, stats::CacheStats};

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
    inner: Arc<Policy>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.backend_name())
            .field("config", self.config())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Cache {
    /// Creates a cache of its own (not the process-wide one) from `config`.
    ///
    /// A Redis cache works from every tokio runtime in the process, whichever created it, for as
    /// long as a handle lives: each runtime that uses it gets a connection pool of its own, and
    /// its background work runs on a thread of the cache's own.
    ///
    /// With Redis down at startup this still returns a working handle when failing silently: every
    /// operation is a miss or a no-op until the pool, reconnecting in the background, gets through.
    /// When failing loudly, it returns the connection error instead.
    pub async fn new(config: CacheConfig) -> Result<Cache, CacheError> {
        Ok(Cache {
            inner: Policy::start(config).await?,
        })
    }

    /// The configuration this cache was created with.
    pub fn config(&self) -> &CacheConfig {
        self.inner.config()
    }

    /// `redis`, `memory`, or `disabled`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }

    /// A snapshot of the counters, the circuit breaker's state and the pending invalidations.
    pub fn stats(&self) -> CacheStats {
        self.inner.stats()
    }

    /// The value under `key`, or `None` when it is absent, expired or undecodable as a `V`.
    ///
    /// Undecodable bytes (foreign, truncated, another format) are a miss counted in
    /// [`CacheStats::corrupt`] and logged once per key; a value written under another schema
    /// (`V` changed since) is a miss counted in [`CacheStats::schema_mismatches`]; the next `set`
    /// repairs both. `V: Serialize` because the decoded value's shape is checked against the
    /// one recorded when it was written.
    pub async fn get<V: DeserializeOwned + Serialize>(
        &self,
        key: &str,
    ) -> Result<Option<V>, CacheError> {
        self.inner.get(key).await
    }

    /// Stores `value` under `key` for `ttl` (`None`: the default TTL).
    pub async fn set<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.inner.set(key, value, ttl).await
    }

    /// Stores `bytes` under `key` exactly as given, for `ttl` (`None`: the default TTL).
    ///
    /// [`get`](Self::get) reads only what [`codec::encode_value`](crate::codec::encode_value)
    /// wrote; anything else is a counted corrupt miss. For tools that copy entries between caches
    /// and for tests of that path.
    pub async fn set_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.inner.set_bytes(key, bytes, ttl).await
    }

    /// Whether `key` holds a value: not a lease marker (a miss being computed), and not a key a
    /// pending invalidation covers (its value is on its way out).
    pub async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.inner.exists(key).await
    }

    /// The time `key` has left; `None` when it is absent, has no expiry, or holds no value
    /// (see [`exists`](Self::exists)).
    pub async fn get_ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        self.inner.ttl(key).await
    }

    /// Removes `keys` and returns how many existed.
    ///
    /// A delete that cannot reach Redis is kept and replayed when Redis answers again; until
    /// then reads of those keys in this process are misses (see [`CacheStats::invalidations_pending`]).
    pub async fn delete<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<u64, CacheError> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.inner.delete_keys(&keys).await
    }

    /// Removes every key matching the Redis glob `pattern` and returns how many were removed.
    ///
    /// Walks the keyspace with `SCAN ... MATCH pattern COUNT 1000` and removes each page with one
    /// `UNLINK`; never `KEYS`, so Redis keeps serving while it runs. A pattern without glob
    /// characters removes that one key directly. The empty pattern, malformed patterns and
    /// patterns made only of `*` are refused (use [`clear_all`](Self::clear_all) for that). Like
    /// [`delete`](Self::delete), a pattern that cannot reach Redis is kept and replayed.
    pub async fn clear_pattern(&self, pattern: &str) -> Result<u64, CacheError> {
        check_pattern(pattern)?;
        match cache_keys::pattern::literal_key(pattern) {
            Some(key) => self.inner.delete_keys(&[key.as_str()]).await,
            None => self.inner.delete_matching(pattern).await,
        }
    }

    /// Removes every key of the cache's database (by SCAN and UNLINK, not FLUSHDB) and returns how
    /// many were removed.
    pub async fn clear_all(&self) -> Result<u64, CacheError> {
        self.inner.delete_matching("*").await
    }

    /// Adds `amount` (negative to subtract) to the integer counter under `key`, starting from 0,
    /// and returns the new value. The key keeps its TTL, as with Redis' `INCRBY`.
    ///
    /// Counters hold plain integers, not encoded values: read one with `increment(key, 0)`.
    /// Failing silently, a failure returns 0.
    pub async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError> {
        self.inner.increment(key, amount).await
    }

    /// The values under `keys`, in order, in one round trip (`MGET`).
    ///
    /// Absent, expired and undecodable entries are `None`, and so are keys a pending invalidation
    /// covers; failing silently, a failure gives all `None`.
    pub async fn get_many<V: DeserializeOwned + Serialize, K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<V>>, CacheError> {
        let keys: Vec<K> = keys.into_iter().collect();
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.inner.get_many(&keys).await
    }

    /// Stores every `(key, value)` pair for `ttl` (`None`: the default TTL) in one round trip
    /// (a pipeline of `SET ... PX`).
    pub async fn set_many<K: Into<String>, V: Serialize>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        self.inner.set_many(items, ttl).await
    }

    /// Checks the backend, within one socket timeout in all: PING latency and, for Redis, what
    /// `INFO` says (every node of a cluster, in parallel). Never fails: a failure is
    /// `healthy: false` with the error text. It asks Redis even while the circuit breaker is
    /// open; an answer wakes the probe, which replays pending invalidations and half-opens it.
    pub async fn health_check(&self) -> HealthReport {
        self.inner.health().await
    }

    /// Delivers the invalidations still pending (kept while Redis was unreachable) within
    /// `deadline`, and reports those it could not deliver, each also logged at error and
    /// counted in [`CacheStats::invalidations_dropped`]. The cache keeps working afterwards;
    /// [`shutdown`](crate::shutdown) does this for the process-wide cache.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.inner.shutdown(deadline).await
    }

    /// The value under `key`, or, on a miss, the value `compute` returns, stored for `ttl`
    /// (`None`: the default TTL): the read-through that `#[cached]` expands to.
    ///
    /// Concurrent callers of one cold key in this cache share one run of `compute`; callers in
    /// other processes wait for it too (a lease on the key). No value computed before an
    /// invalidation of the key can be stored after it returned. Cache failures never reach the
    /// caller: failing silently they are misses; failing loudly they are logged at error and
    /// `compute` runs (use [`try_get_or_compute`](Self::try_get_or_compute) to receive them).
    ///
    /// ```
    /// # async fn demo() -> Result<(), cache_core::CacheError> {
    /// # use cache_core::{Cache, CacheConfig};
    /// # let cache = Cache::new(CacheConfig::builder().memory(1 << 20).build()?).await?;
    /// use std::time::Duration;
    /// let name: String = cache
    ///     .get_or_compute("user:123:name", Some(Duration::from_secs(60)), || async {
    ///         "Alice".to_owned() // the database query
    ///     })
    ///     .await;
    /// assert_eq!(name, "Alice");
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn get_or_compute<V, F, Fut>(&self, key: &str, ttl: Option<Duration>, compute: F) -> V
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        self.inner
            .read_through(key, &Always { ttl }, async move { compute().await })
            .await
    }

    /// Like [`get_or_compute`](Self::get_or_compute) for a fallible computation: `Ok` is cached,
    /// `Err` is returned and not cached (concurrent callers then run their own computations).
    /// Failing loudly, cache failures reach the caller as `E::from(CacheError)`.
    ///
    /// ```
    /// # async fn demo() -> Result<(), cache_core::CacheError> {
    /// # use cache_core::{Cache, CacheConfig, CacheError};
    /// # let cache = Cache::new(CacheConfig::builder().memory(1 << 20).build()?).await?;
    /// let user: Result<u64, CacheError> = cache
    ///     .try_get_or_compute("user:123:id", None, || async { Ok(123) })
    ///     .await;
    /// assert_eq!(user?, 123);
    /// # Ok(()) }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn try_get_or_compute<V, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<V, E>
    where
        V: Serialize + DeserializeOwned,
        E: From<CacheError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.inner
            .read_through(key, &OkOnly { ttl }, async move { compute().await })
            .await
    }

    /// The policy behind this handle, for the attributes' expansion.
    pub(crate) fn policy(&self) -> &Arc<Policy> {
        &self.inner
    }
}

/// `get_or_compute`: every value is cached.
struct Always {
    ttl: Option<Duration>,
}

impl<V: Serialize + DeserializeOwned> Cacheable<V> for Always {
    type Stored = V;
    fn store_as<'r>(&self, ret: &'r V) -> Option<(&'r V, Option<Duration>)> {
        Some((ret, self.ttl))
    }
    fn load(&self, stored: V) -> V {
        stored
    }
    fn on_error(&self, _: CacheError) -> Option<V> {
        None
    }
}

/// `try_get_or_compute`: `Ok` is cached; cache errors become `Err(E::from(..))`.
struct OkOnly {
    ttl: Option<Duration>,
}

impl<V: Serialize + DeserializeOwned, E: From<CacheError>> Cacheable<Result<V, E>> for OkOnly {
    type Stored = V;
    fn store_as<'r>(&self, ret: &'r Result<V, E>) -> Option<(&'r V, Option<Duration>)> {
        ret.as_ref().ok().map(|v| (v, self.ttl))
    }
    fn load(&self, stored: V) -> Result<V, E> {
        Ok(stored)
    }
    fn on_error(&self, error: CacheError) -> Option<Result<V, E>> {
        Some(Err(E::from(error)))
    }
}
