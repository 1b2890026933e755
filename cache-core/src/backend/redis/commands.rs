//! The commands of the Redis backend: its Lua scripts (leases, and telling lease markers from
//! values), the helpers that send several commands at once, and the [`Backend`] impl of
//! [`RedisPool`]; `clear_pattern` is in [`clear`](super::clear), the health report in
//! [`health`](super::health).

use std::time::Duration;

use bytes::Bytes;
use fred::clients::{Client, Pipeline};
use fred::prelude::{Error as FredError, Expiration, KeysInterface};
use fred::types::scripts::Script;
use fred::types::Value;

use super::topology::Topology;
use super::RedisPool;
use crate::backend::{Backend, Resume};
use crate::{error::CacheError, health::HealthReport};

/// GET, or, when the key is empty, SET the lease marker (`ARGV[1]`) with NX for `ARGV[2]` ms.
/// Replies with the value, or nil when the lease was taken.
const GET_OR_LEASE: &str = "local v = redis.call('GET', KEYS[1]) \
if v then return v end \
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) \
return false";
/// SET the value (`ARGV[2]`) for `ARGV[3]` ms only if the key holds the marker (`ARGV[1]`): 1 or 0.
const SET_IF_HOLDS: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end \
return 0";
/// DEL the key only if it holds exactly `ARGV[1]`: 1 or 0.
const DELETE_IF_HOLDS: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
redis.call('DEL', KEYS[1]) return 1 end \
return 0";

/// PEXPIRE the key by `ARGV[2]` ms only if it holds exactly `ARGV[1]` (a lease kept alive): 1 or 0.
const RENEW_IF_HOLDS: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
return 0";

/// Whether the key holds something other than a lease marker (`ARGV[1]` its prefix, `ARGV[2]` its
/// length): 1 or 0.
const EXISTS_VALUE: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
if redis.call('STRLEN', KEYS[1]) == tonumber(ARGV[2]) \
and redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) == ARGV[1] then return 0 end \
return 1";
/// PTTL of the key, or -2 (no such key) when it holds a lease marker (ARGV as for EXISTS_VALUE).
const PTTL_OF_VALUE: &str = "if redis.call('EXISTS', KEYS[1]) == 1 \
and redis.call('STRLEN', KEYS[1]) == tonumber(ARGV[2]) \
and redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) == ARGV[1] then return -2 end \
return redis.call('PTTL', KEYS[1])";

/// The lease scripts and those that tell markers from values, hashed once.
struct Scripts {
    get_or_lease: Script,
    set_if_holds: Script,
    delete_if_holds: Script,
    exists_value: Script,
    pttl_of_value: Script,
    renew_if_holds: Script,
}

static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
    get_or_lease: Script::from_lua(GET_OR_LEASE),
    set_if_holds: Script::from_lua(SET_IF_HOLDS),
    delete_if_holds: Script::from_lua(DELETE_IF_HOLDS),
    exists_value: Script::from_lua(EXISTS_VALUE),
    pttl_of_value: Script::from_lua(PTTL_OF_VALUE),
    renew_if_holds: Script::from_lua(RENEW_IF_HOLDS),
});

/// The arguments that describe a lease marker to [`EXISTS_VALUE`] and [`PTTL_OF_VALUE`].
fn marker_shape() -> Vec<Value> {
    vec![
        Value::Bytes(Bytes::from_static(&crate::lease::PREFIX)),
        (crate::lease::MARKER_LEN as i64).into(),
    ]
}

impl RedisPool {
    /// Runs `script`, one of the `*_IF_HOLDS` scripts, which answer 1 when the key held what
    /// they were given and they acted, 0 otherwise.
    async fn if_holds(
        &self,
        script: &Script,
        key: &str,
        args: Vec<Value>,
    ) -> Result<i64, CacheError> {
        let client = self.pool.next_connected();
        self.bounded(script.evalsha_with_reload(client, key, args))
            .await
    }

    /// Runs `script`, one of those that look at the value under `key` but not at a lease marker
    /// ([`EXISTS_VALUE`], [`PTTL_OF_VALUE`]), and vouches for the node that answered.
    async fn about_value(&self, script: &Script, key: &str) -> Result<i64, CacheError> {
        let (i, client) = self.connected();
        let answer: i64 = self
            .bounded(script.evalsha_with_reload(client, key, marker_shape()))
            .await?;
        self.vouch(i).await?;
        Ok(answer)
    }

    /// Makes the deletes acknowledged so far durable as `CACHE_INVALIDATION_REPLICAS` and
    /// `CACHE_INVALIDATION_FSYNC` ask ([`durable`](super::durable)), within the socket timeout; nothing to do
    /// when they ask for nothing.
    async fn settle(&self) -> Result<(), CacheError> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        match tokio::time::timeout(self.timeout, fence.settle()).await {
            Ok(settled) => settled,
            Err(_) => Err(CacheError::NotDurable(format!(
                "no answer about it within {:?} (REDIS_SOCKET_TIMEOUT)",
                self.timeout
            ))),
        }
    }
}

impl RedisPool {
    /// A pipeline on a connected client; commands queue locally until `try_all`.
    fn pipeline(&self) -> Pipeline<Client> {
        self.pool.next_connected().pipeline()
    }

    /// Sends a pipeline of single-key commands and converts each reply, failing on the first
    /// error.
    async fn run_pipeline<R: fred::types::FromValue>(
        &self,
        pipeline: Pipeline<Client>,
    ) -> Result<Vec<R>, CacheError> {
        let replies = self
            .bounded(async { Ok::<_, FredError>(pipeline.try_all::<R>().await) })
            .await?;
        replies
            .into_iter()
            .map(|r| r.map_err(|e| self.error(e)))
            .collect()
    }

    /// GET of each key, one command per key, on a cluster (no CROSSSLOT).
    async fn get_each(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        #[cfg(feature = "replicas")]
        if self.replica_reads {
            let pipeline = self.pool.next_connected().replicas().pipeline();
            for key in keys {
                let _: () = pipeline.get(*key).await.map_err(|e| self.error(e))?;
            }
            let replies = self
                .bounded(async { Ok::<_, FredError>(pipeline.try_all::<Option<Bytes>>().await) })
                .await?;
            return replies
                .into_iter()
                .map(|r| r.map_err(|e| self.error(e)))
                .collect();
        }
        let (i, client) = self.connected();
        let pipeline = client.pipeline();
        for key in keys {
            let _: () = pipeline.get(*key).await.map_err(|e| self.error(e))?;
        }
        let values = self.run_pipeline(pipeline).await?;
        self.vouch(i).await?;
        Ok(values)
    }

    /// UNLINK of `keys`; the number that existed. One command on a single server; on a cluster,
    /// where the keys may hash to many slots, a pipeline of one command per key.
    pub(super) async fn unlink<K: Into<fred::types::Key> + Clone + Send>(
        &self,
        keys: &[K],
    ) -> Result<u64, CacheError> {
        match self.topology {
            Topology::Standalone | Topology::Sentinel => {
                let keys: Vec<fred::types::Key> = keys.iter().cloned().map(Into::into).collect();
                let client = self.client();
                client.send(self, |c| c.unlink(keys)).await
            }
            Topology::Cluster => {
                let pipeline = self.pipeline();
                for key in keys {
                    let _: () = pipeline
                        .unlink(key.clone())
                        .await
                        .map_err(|e| self.error(e))?;
                }
                let counts: Vec<u64> = self.run_pipeline(pipeline).await?;
                Ok(counts.into_iter().sum())
            }
        }
    }
}

/// A TTL in whole milliseconds, at least 1 (Redis refuses 0).
fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX)
}

fn expiration(ttl: Duration) -> Expiration {
    Expiration::PX(millis(ttl))
}

impl Backend for RedisPool {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        #[cfg(feature = "replicas")]
        if self.replica_reads {
            let client = self.client();
            let replicas = client.replicas();
            return client.send(self, |_| replicas.get(key)).await;
        }
        let client = self.client();
        client.read(self, |c| c.get(key)).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let client = self.client();
        client
            .send(self, |c| {
                c.set(key, value, Some(expiration(ttl)), None, false)
            })
            .await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        match self.topology {
            Topology::Cluster => self.get_each(keys).await,
            Topology::Standalone | Topology::Sentinel => {
                let keys: Vec<&str> = keys.to_vec();
                let client = self.client();
                client.read(self, |c| c.mget(keys)).await
            }
        }
    }

    async fn set_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> Result<(), CacheError> {
        // One SET per key: on a cluster each is routed by its own key.
        let pipeline = self.pipeline();
        for (key, value) in items {
            // Queued locally; nothing is sent until `all`.
            let _: () = pipeline
                .set(key, value, Some(expiration(ttl)), None, false)
                .await
                .map_err(|e| self.error(e))?;
        }
        let _: Vec<Value> = self.run_pipeline(pipeline).await?;
        Ok(())
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, CacheError> {
        let removed = self.unlink(keys).await?;
        self.settle().await?;
        Ok(removed)
    }

    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        #[cfg(feature = "replicas")]
        if self.replica_reads {
            let n: u64 = self
                .client()
                .replicas()
                .exists(key)
                .await
                .map_err(|e| self.error(e))?;
            return Ok(n > 0);
        }
        let n = self.about_value(&SCRIPTS.exists_value, key).await?;
        Ok(n > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let ms = self.about_value(&SCRIPTS.pttl_of_value, key).await?;
        // -2: no such key (or a lease marker); -1: no expiry.
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError> {
        let client = self.client();
        client.send(self, |c| c.incr_by(key, amount)).await
    }

    async fn get_or_lease(
        &self,
        key: &str,
        marker: &Bytes,
        lease_ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        let (i, client) = self.connected();
        let args: Vec<Value> = vec![Value::Bytes(marker.clone()), millis(lease_ttl).into()];
        let found = self
            .bounded(SCRIPTS.get_or_lease.evalsha_with_reload(client, key, args))
            .await?;
        self.vouch(i).await?;
        Ok(found)
    }

    async fn set_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let args: Vec<Value> = vec![
            Value::Bytes(marker.clone()),
            Value::Bytes(value),
            millis(ttl).into(),
        ];
        Ok(self.if_holds(&SCRIPTS.set_if_holds, key, args).await? == 1)
    }

    async fn delete_if_holds(&self, key: &str, expected: &Bytes) -> Result<bool, CacheError> {
        let args = vec![Value::Bytes(expected.clone())];
        Ok(self.if_holds(&SCRIPTS.delete_if_holds, key, args).await? == 1)
    }

    async fn renew_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        liveness: Duration,
    ) -> Result<bool, CacheError> {
        let args = vec![Value::Bytes(marker.clone()), millis(liveness).into()];
        Ok(self.if_holds(&SCRIPTS.renew_if_holds, key, args).await? == 1)
    }

    async fn clear_pattern(&self, pattern: &str, from: &mut Resume) -> Result<u64, CacheError> {
        let removed = self.clear(pattern, &mut from.0).await?;
        self.settle().await?;
        Ok(removed)
    }

    async fn health(&self) -> HealthReport {
        self.check_health().await
    }
}
