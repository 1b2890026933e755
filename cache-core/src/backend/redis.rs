//! The Redis backend on fred's connection pool.
//!
//! Every command fails fast while the pool is disconnected (no queueing behind a dead socket) and
//! never waits past the socket timeout; the pool reconnects in the background forever, with
//! exponential backoff, so a cache created while Redis is down starts working when it comes up.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::clients::{Pool, WithOptions};
use fred::interfaces::EventInterface;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ErrorKind, Expiration, KeysInterface, Options,
    ReconnectPolicy,
};
use fred::types::config::UnresponsiveConfig;
use fred::types::scan::Scanner;
use futures_util::StreamExt;

use super::Backend;
use crate::config::RedisUrl;
use crate::{CacheError, HealthReport};

/// How many keys one SCAN step asks for: large enough to amortize round trips, small enough that
/// one step never blocks the server for long.
const SCAN_COUNT: u32 = 1000;

/// A pool of `REDIS_POOL_SIZE` connections to one Redis deployment.
pub(crate) struct RedisBackend {
    pool: Pool,
    /// The pool with per-command options: fail fast when disconnected, one attempt, the timeout.
    client: WithOptions<Pool>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("connections", &self.pool.size())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisBackend {
    /// Builds the pool and starts connecting in the background.
    ///
    /// Returns the backend at once, with the result of waiting up to `timeout` for the first
    /// connections: callers decide whether a failed start is fatal.
    pub(crate) async fn connect(
        url: &RedisUrl,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<(Self, Result<(), CacheError>), CacheError> {
        let mut config = Config::from_url(url.expose())
            .map_err(|e| CacheError::Connection(format!("{url}: {}", e.details())))?;
        // Start even when Redis is down; the reconnect policy keeps trying in the background.
        config.fail_fast = false;
        let pool = Builder::from_config(config)
            .with_performance_config(|p| {
                // Backstop for the commands that ignore per-command options (SCAN, pipelines).
                p.default_command_timeout = timeout;
            })
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                c.max_command_attempts = 1;
                // A half-open socket (server frozen, cable pulled) is noticed and replaced.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(timeout.max(Duration::from_secs(1)) * 2),
                    interval: Duration::from_millis(500),
                };
            })
            // Zero attempts means forever: a finite count would kill the client for good.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2))
            .build_pool(pool_size)
            .map_err(|e| CacheError::Connection(format!("{url}: {}", e.details())))?;
        // Subscribed before connecting, so that a refused first connection ends the wait at once
        // instead of after the whole timeout.
        let mut errors = pool.clients().first().map(|c| c.error_rx());
        let _connection_task = pool.connect();
        let options = Options {
            fail_fast: true,
            max_attempts: Some(1),
            timeout: Some(timeout),
            ..Options::default()
        };
        let client = pool.with_options(&options);
        let backend = RedisBackend {
            pool,
            client,
            timeout,
        };
        let first_error = async {
            match errors.as_mut() {
                Some(rx) => rx.recv().await.ok(),
                None => None,
            }
        };
        let started = tokio::select! {
            connected = tokio::time::timeout(timeout, backend.pool.wait_for_connect()) => match connected {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(backend.error(e)),
                Err(_) => Err(CacheError::Connection(format!(
                    "no connection to {url} within {timeout:?}"
                ))),
            },
            Some((e, _)) = first_error => Err(CacheError::Connection(format!("{url}: {}", e.details()))),
        };
        Ok((backend, started))
    }

    /// Maps a fred error onto ours; fred's messages carry no credentials.
    fn error(&self, e: FredError) -> CacheError {
        let details = e.details();
        match e.kind() {
            ErrorKind::Timeout => CacheError::Timeout(self.timeout),
            ErrorKind::Auth => CacheError::Auth(details.to_owned()),
            ErrorKind::Canceled | ErrorKind::IO | ErrorKind::Routing | ErrorKind::Backpressure => {
                CacheError::Connection(if details.is_empty() || details == "Canceled." {
                    "not connected (reconnecting in the background)".to_owned()
                } else {
                    details.to_owned()
                })
            }
            _ if details.starts_with("WRONGPASS") || details.starts_with("NOAUTH") => {
                CacheError::Auth(details.to_owned())
            }
            _ => CacheError::Redis(details.to_owned()),
        }
    }

    /// Runs a command that fred's per-command options do not cover, within the timeout.
    async fn bounded<T>(
        &self,
        command: impl std::future::Future<Output = Result<T, FredError>>,
    ) -> Result<T, CacheError> {
        if !self.pool.clients().iter().any(|c| c.is_connected()) {
            return Err(CacheError::Connection(
                "not connected (reconnecting in the background)".to_owned(),
            ));
        }
        match tokio::time::timeout(self.timeout, command).await {
            Ok(result) => result.map_err(|e| self.error(e)),
            Err(_) => Err(CacheError::Timeout(self.timeout)),
        }
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        // Stop the reconnect loops of a cache nobody holds any more.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            runtime.spawn(async move {
                let _ = pool.quit().await;
            });
        }
    }
}

fn expiration(ttl: Duration) -> Expiration {
    Expiration::PX(i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX))
}

impl Backend for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.client.get(key).await.map_err(|e| self.error(e))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.client
            .set(key, value, Some(expiration(ttl)), None, false)
            .await
            .map_err(|e| self.error(e))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let keys: Vec<&str> = keys.to_vec();
        self.client.mget(keys).await.map_err(|e| self.error(e))
    }

    async fn set_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> Result<(), CacheError> {
        let pipeline = self.pool.next_connected().pipeline();
        for (key, value) in items {
            // Queued locally; nothing is sent until `all`.
            let _: () = pipeline
                .set(key, value, Some(expiration(ttl)), None, false)
                .await
                .map_err(|e| self.error(e))?;
        }
        let _: Vec<fred::types::Value> = self.bounded(pipeline.all()).await?;
        Ok(())
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, CacheError> {
        let keys: Vec<&str> = keys.to_vec();
        self.client.unlink(keys).await.map_err(|e| self.error(e))
    }

    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        let n: u64 = self.client.exists(key).await.map_err(|e| self.error(e))?;
        Ok(n > 0)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let ms: i64 = self.client.pttl(key).await.map_err(|e| self.error(e))?;
        // -2: no such key; -1: no expiry.
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError> {
        self.client
            .incr_by(key, amount)
            .await
            .map_err(|e| self.error(e))
    }

    async fn clear_pattern(&self, pattern: &str) -> Result<u64, CacheError> {
        let client = self.pool.next_connected();
        if !client.is_connected() {
            return Err(CacheError::Connection(
                "not connected (reconnecting in the background)".to_owned(),
            ));
        }
        let mut pages = std::pin::pin!(client.scan(pattern.to_owned(), Some(SCAN_COUNT), None));
        let mut removed = 0;
        loop {
            let page = match tokio::time::timeout(self.timeout, pages.next()).await {
                Err(_) => return Err(CacheError::Timeout(self.timeout)),
                Ok(None) => break,
                Ok(Some(page)) => page.map_err(|e| self.error(e))?,
            };
            let mut page = page;
            let keys = page.take_results().unwrap_or_default();
            // Ask for the next page before unlinking this one, so both travel at once.
            page.next();
            if !keys.is_empty() {
                // Counts only keys that still existed: SCAN may repeat a key, or another client
                // may have removed it meanwhile, and neither is counted twice.
                let n: u64 = self.client.unlink(keys).await.map_err(|e| self.error(e))?;
                removed += n;
            }
        }
        Ok(removed)
    }

    async fn health(&self) -> HealthReport {
        let started = Instant::now();
        let elapsed_ms = || started.elapsed().as_secs_f64() * 1000.0;
        let pong: Result<String, _> = self.bounded(self.client.ping(None)).await;
        if let Err(e) = pong {
            return HealthReport::failed("redis", elapsed_ms(), e.to_string());
        }
        let latency_ms = elapsed_ms();
        let report = HealthReport {
            healthy: true,
            latency_ms,
            version: None,
            used_memory: None,
            connected_clients: None,
            uptime_seconds: None,
            error: None,
            backend: "redis",
            circuit: "closed",
        };
        match self.bounded(self.client.info::<String>(None)).await {
            Ok(info) => report.with_info(&info),
            Err(e) => HealthReport {
                error: Some(format!("INFO failed: {e}")),
                ..report
            },
        }
    }
}
