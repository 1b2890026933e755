//! The Redis backend: one [`RedisPool`] per tokio runtime that uses the cache.
//!
//! fred drives a pool's connections with tasks on the runtime that connected it. A cache whose
//! pool lived on the runtime that created it died with that runtime (a `#[tokio::test]` per test,
//! a runtime per CLI command); a pool on a thread of the cache's own made every command cross two
//! threads and back, which tripled the latency of a hit at low load (from 40-50 µs to 80-110 µs on
//! loopback, measured with cache-bench). So each runtime gets a pool of its own, connected on
//! first use from that runtime and driven by it: commands never leave the caller's runtime, and a
//! runtime that shuts down takes only its own pool with it (a task on it notices, and the pool is
//! forgotten). Calls made outside any runtime, and the cache's background work, use the *home*
//! pool on the cache's I/O thread ([`IoRuntime`](crate::runtime::IoRuntime)).
//!
//! Connections: `REDIS_POOL_SIZE` per runtime that uses the cache, plus one for the home pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt as _, Shared};
use tokio::runtime::{Handle, Id};

mod batch;
mod clear;
mod cluster;
mod commands;
mod durable;
mod health;
mod in_flight;
mod lineage;
mod pool;
#[cfg(feature = "tls")]
pub(crate) mod tls;
mod topology;

use super::{Backend, Resume};
use crate::{error::CacheError, health::HealthReport};
pub(crate) use clear::Stopped;
pub(crate) use durable::Durability;
pub(crate) use lineage::Lineage;
pub(crate) use pool::{PoolSettings, RedisPool};
#[cfg(feature = "cli")]
pub(crate) use topology::Topology;

/// One runtime's connection attempt: its pool once the first connection came up or the timeout
/// passed.
type Attempt = Shared<BoxFuture<'static, Result<Arc<RedisPool>, CacheError>>>;

/// A runtime's pool, and whether that runtime still runs.
struct Bound {
    runtime: Handle,
    pool: Arc<RedisPool>,
    alive: Arc<AtomicBool>,
}

/// Clears `alive` when the task that holds it is dropped, which a runtime does to its tasks when
/// it shuts down.
struct AliveWhileHeld(Arc<AtomicBool>);

impl Drop for AliveWhileHeld {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The Redis backend of one cache.
pub(crate) struct RedisBackend {
    settings: PoolSettings,
    /// On the cache's I/O runtime.
    home: Arc<RedisPool>,
    home_runtime: Id,
    bound: RwLock<Vec<Bound>>,
    /// The connection attempt under way for each runtime, shared by its concurrent first calls.
    connecting: Mutex<HashMap<Id, Attempt>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bound = self.bound.read().map_or(0, |b| b.len());
        f.debug_struct("RedisBackend")
            .field("home", &self.home)
            .field("runtimes", &bound)
            .finish()
    }
}

impl RedisBackend {
    /// Connects the home pool; run on the cache's I/O runtime. Returns the backend with the
    /// result of waiting for the first connection: callers decide whether a failed start is fatal.
    pub(crate) async fn connect_home(
        settings: PoolSettings,
    ) -> Result<(RedisBackend, Result<(), CacheError>), CacheError> {
        let (home, started) = RedisPool::connect(&settings, 1).await?;
        let backend = RedisBackend {
            settings,
            home,
            home_runtime: Handle::current().id(),
            bound: RwLock::new(Vec::new()),
            connecting: Mutex::new(HashMap::new()),
        };
        Ok((backend, started))
    }

    /// The incarnations of the nodes the cache's pools reach.
    pub(crate) fn lineage(&self) -> &Arc<Lineage> {
        &self.settings.lineage
    }

    /// The pool on the cache's I/O runtime, for its background work.
    pub(crate) fn home(&self) -> &RedisPool {
        &self.home
    }

    /// The pool of the runtime this runs on, connected on first use.
    pub(crate) async fn here(&self) -> Result<Arc<RedisPool>, CacheError> {
        let Ok(handle) = Handle::try_current() else {
            return Ok(Arc::clone(&self.home));
        };
        let runtime = handle.id();
        if runtime == self.home_runtime {
            return Ok(Arc::clone(&self.home));
        }
        if let Some(pool) = self.find(runtime) {
            return Ok(pool);
        }
        // Waits for the first connection (the breaker only lets calls here while Redis answers),
        // so that the runtime's first call is not a spurious failure; a pool that cannot connect
        // yet keeps trying in the background. Concurrent first calls of one runtime share one
        // attempt; other runtimes' attempts run beside it, so none waits more than one timeout.
        let attempt = {
            let mut connecting = self
                .connecting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            connecting
                .entry(runtime)
                .or_insert_with(|| {
                    let settings = self.settings.clone();
                    async move {
                        RedisPool::connect(&settings, settings.pool_size)
                            .await
                            .map(|(pool, _started)| pool)
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        let result = attempt.clone().await;
        let mut connecting = self
            .connecting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if connecting.get(&runtime).is_some_and(|a| a.ptr_eq(&attempt)) {
            connecting.remove(&runtime);
        }
        drop(connecting);
        let pool = result?;
        let mut bound = self.bound.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(first) = bound.iter().find(|b| b.runtime.id() == runtime) {
            // Another caller of the same attempt registered it.
            return Ok(Arc::clone(&first.pool));
        }
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveWhileHeld(Arc::clone(&alive));
        drop(handle.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        // Forget the pools of runtimes that are gone (their connection tasks went with them).
        bound.retain(|b| b.alive.load(Ordering::Acquire));
        bound.push(Bound {
            runtime: handle,
            pool: Arc::clone(&pool),
            alive,
        });
        Ok(pool)
    }

    fn find(&self, runtime: Id) -> Option<Arc<RedisPool>> {
        let bound = self.bound.read().unwrap_or_else(PoisonError::into_inner);
        bound
            .iter()
            .find(|b| b.runtime.id() == runtime)
            .map(|b| Arc::clone(&b.pool))
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        // A pool's connection tasks run on its runtime and reconnect forever: tell the pools of
        // the runtimes still running to close. (The home pool stops with the I/O runtime.)
        let bound = self.bound.get_mut().unwrap_or_else(PoisonError::into_inner);
        for b in bound.drain(..) {
            if b.alive.load(Ordering::Acquire) {
                let pool = b.pool;
                drop(b.runtime.spawn(async move { pool.quit().await }));
            }
        }
    }
}

impl Backend for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.here().await?.get_gathered(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.here().await?.set(key, value, ttl).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.here().await?.get_many(keys).await
    }

    async fn set_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> Result<(), CacheError> {
        self.here().await?.set_many(items, ttl).await
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, CacheError> {
        self.here().await?.delete(keys).await
    }

    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        self.here().await?.exists(key).await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        self.here().await?.ttl(key).await
    }

    async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError> {
        self.here().await?.increment(key, amount).await
    }

    async fn get_or_lease(
        &self,
        key: &str,
        marker: &Bytes,
        lease_ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        self.here()
            .await?
            .get_or_lease(key, marker, lease_ttl)
            .await
    }

    async fn set_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        self.here()
            .await?
            .set_if_holds(key, marker, value, ttl)
            .await
    }

    async fn delete_if_holds(&self, key: &str, expected: &Bytes) -> Result<bool, CacheError> {
        self.here().await?.delete_if_holds(key, expected).await
    }

    async fn renew_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        liveness: Duration,
    ) -> Result<bool, CacheError> {
        self.here()
            .await?
            .renew_if_holds(key, marker, liveness)
            .await
    }

    async fn clear_pattern(&self, pattern: &str, from: &mut Resume) -> Result<u64, CacheError> {
        self.here().await?.clear_pattern(pattern, from).await
    }

    async fn health(&self) -> HealthReport {
        // One socket timeout in all, connecting this runtime's pool included.
        let started = std::time::Instant::now();
        let check = async {
            match self.here().await {
                Ok(pool) => pool.health().await,
                Err(e) => HealthReport::failed("redis", 0.0, e.to_string()),
            }
        };
        match tokio::time::timeout(self.settings.timeout, check).await {
            Ok(report) => report,
            Err(_) => HealthReport::failed(
                "redis",
                started.elapsed().as_secs_f64() * 1000.0,
                CacheError::Timeout(self.settings.timeout).to_string(),
            ),
        }
    }
}
