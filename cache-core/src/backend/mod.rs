//! Backends: where the bytes live. Bytes in, bytes out; no knowledge of codecs or policy.
//!
//! [`redis::RedisBackend`] is the real one (a [`redis::RedisPool`] per tokio runtime that uses
//! the cache); [`memory::MemoryBackend`] keeps values in this process (the quickstart's embedded
//! default, and the reference the behaviour suite holds Redis to).

pub(crate) mod memory;
pub(crate) mod redis;

use std::time::Duration;

use bytes::Bytes;

use crate::config::BackendConfig;
use crate::runtime::IoRuntime;
use crate::{config::CacheConfig, error::CacheError, health::HealthReport};
use memory::MemoryBackend;
use redis::{Durability, PoolSettings, RedisBackend};

/// Where the bytes live.
pub(crate) enum Store {
    Redis(RedisBackend),
    Memory(MemoryBackend),
}

/// A backend, connected.
pub(crate) struct Connected {
    pub(crate) store: Store,
    /// The thread the cache's background work runs on (Redis only): the home pool, the replay of
    /// pending invalidations, the breaker's probes.
    pub(crate) io: Option<IoRuntime>,
    /// Whether the first connection came up within the socket timeout: the caller decides
    /// whether a failed start is fatal (the backend keeps connecting in the background).
    pub(crate) started: Result<(), CacheError>,
}

/// Connects the backend `config` names.
pub(crate) async fn connect(config: &CacheConfig) -> Result<Connected, CacheError> {
    match config.backend() {
        BackendConfig::Memory { max_bytes } => Ok(Connected {
            store: Store::Memory(MemoryBackend::new(*max_bytes)),
            io: None,
            started: Ok(()),
        }),
        BackendConfig::Redis(url) => {
            let io = IoRuntime::start()?;
            let settings = PoolSettings {
                url: url.clone(),
                pool_size: config.pool_size(),
                timeout: config.socket_timeout(),
                clear_timeout: config.clear_timeout(),
                read_batch: config.read_batch(),
                tls: config.tls().clone(),
                lineage: Default::default(),
                durability: Durability {
                    replicas: config.invalidation_replicas(),
                    fsync: config.invalidation_fsync(),
                },
            };
            let (backend, started) = io.run(RedisBackend::connect_home(settings)).await??;
            if started.is_ok() {
                // The creating runtime's own pool, so that its first call is not slower.
                backend.here().await?;
            }
            Ok(Connected {
                store: Store::Redis(backend),
                io: Some(io),
                started,
            })
        }
    }
}

/// Where a `clear_pattern` that did not finish stopped; empty: at the start.
#[derive(Debug, Default, Clone)]
pub(crate) struct Resume(Option<redis::Stopped>);

/// What every backend does, with Redis' semantics.
///
/// Keys are exact strings; patterns are Redis globs already checked by the caller.
pub(crate) trait Backend {
    /// The value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError>;
    /// Stores `value` under `key`, expiring after `ttl`.
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError>;
    /// The values under `keys`, in order, in one round trip.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError>;
    /// Stores every pair, each expiring after `ttl`, in one round trip.
    async fn set_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> Result<(), CacheError>;
    /// Removes `keys`; the number that existed.
    async fn delete(&self, keys: &[&str]) -> Result<u64, CacheError>;
    /// Whether `key` holds a value (a lease marker is not one).
    async fn exists(&self, key: &str) -> Result<bool, CacheError>;
    /// The time `key` has left; `None` when absent, without expiry, or holding a lease marker.
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError>;
    /// Adds `amount` to the integer under `key` (0 when absent) and returns the result.
    async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError>;
    /// The value under `key`; when there is none, takes a lease on the key by storing `marker`
    /// there for `lease_ttl` (only if it is still empty), in the same round trip. `None`: the
    /// lease was taken. See [`lease`](crate::lease). The policy passes the lease's liveness
    /// here and renews it with [`renew_if_holds`](Self::renew_if_holds).
    async fn get_or_lease(
        &self,
        key: &str,
        marker: &Bytes,
        lease_ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError>;
    /// Stores `value` under `key` for `ttl` only if the key still holds `marker`; whether it did.
    async fn set_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError>;
    /// Removes `key` only if it holds exactly `expected` (a lease marker, or unreadable bytes);
    /// whether it did.
    async fn delete_if_holds(&self, key: &str, expected: &Bytes) -> Result<bool, CacheError>;
    /// Makes `key` expire `liveness` from now only if it still holds `marker` (a lease being
    /// kept alive by its holder); whether it did.
    async fn renew_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        liveness: Duration,
    ) -> Result<bool, CacheError>;
    /// Removes every key matching the glob `pattern`, going on from where `from` says an
    /// earlier try stopped; the number removed. `from` says where this try stopped when it did
    /// not finish ([`CacheError::Incomplete`]), and is empty when it did.
    async fn clear_pattern(&self, pattern: &str, from: &mut Resume) -> Result<u64, CacheError>;
    /// A health report; never fails.
    async fn health(&self) -> HealthReport;
}

/// Whichever backend the store is: the one place that tells them apart for a command.
impl Backend for Store {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        match self {
            Store::Redis(b) => b.get(key).await,
            Store::Memory(b) => b.get(key).await,
        }
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        match self {
            Store::Redis(b) => b.set(key, value, ttl).await,
            Store::Memory(b) => b.set(key, value, ttl).await,
        }
    }
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        match self {
            Store::Redis(b) => b.get_many(keys).await,
            Store::Memory(b) => b.get_many(keys).await,
        }
    }
    async fn set_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> Result<(), CacheError> {
        match self {
            Store::Redis(b) => b.set_many(items, ttl).await,
            Store::Memory(b) => b.set_many(items, ttl).await,
        }
    }
    async fn delete(&self, keys: &[&str]) -> Result<u64, CacheError> {
        match self {
            Store::Redis(b) => b.delete(keys).await,
            Store::Memory(b) => b.delete(keys).await,
        }
    }
    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        match self {
            Store::Redis(b) => b.exists(key).await,
            Store::Memory(b) => b.exists(key).await,
        }
    }
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        match self {
            Store::Redis(b) => b.ttl(key).await,
            Store::Memory(b) => b.ttl(key).await,
        }
    }
    async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError> {
        match self {
            Store::Redis(b) => b.increment(key, amount).await,
            Store::Memory(b) => b.increment(key, amount).await,
        }
    }
    async fn get_or_lease(
        &self,
        key: &str,
        marker: &Bytes,
        lease_ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        match self {
            Store::Redis(b) => b.get_or_lease(key, marker, lease_ttl).await,
            Store::Memory(b) => b.get_or_lease(key, marker, lease_ttl).await,
        }
    }
    async fn set_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        match self {
            Store::Redis(b) => b.set_if_holds(key, marker, value, ttl).await,
            Store::Memory(b) => b.set_if_holds(key, marker, value, ttl).await,
        }
    }
    async fn delete_if_holds(&self, key: &str, expected: &Bytes) -> Result<bool, CacheError> {
        match self {
            Store::Redis(b) => b.delete_if_holds(key, expected).await,
            Store::Memory(b) => b.delete_if_holds(key, expected).await,
        }
    }
    async fn renew_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        liveness: Duration,
    ) -> Result<bool, CacheError> {
        match self {
            Store::Redis(b) => b.renew_if_holds(key, marker, liveness).await,
            Store::Memory(b) => b.renew_if_holds(key, marker, liveness).await,
        }
    }
    async fn clear_pattern(&self, pattern: &str, from: &mut Resume) -> Result<u64, CacheError> {
        match self {
            Store::Redis(b) => b.clear_pattern(pattern, from).await,
            Store::Memory(b) => b.clear_pattern(pattern, from).await,
        }
    }
    async fn health(&self) -> HealthReport {
        match self {
            Store::Redis(b) => b.health().await,
            Store::Memory(b) => b.health().await,
        }
    }
}

/// The error Redis gives for INCRBY on a value that is not an integer, shared by both backends.
pub(crate) const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
/// The error Redis gives for an INCRBY that overflows.
pub(crate) const OVERFLOW: &str = "ERR increment or decrement would overflow";
