//! [`RedisPool`]: one fred connection pool, how it connects, which client a command goes to, and
//! what fred's errors mean to the cache. Its commands are in [`commands`](super::commands),
//! `clear_pattern` in [`clear`](super::clear), the health report in [`health`](super::health).
//!
//! Every command fails fast while the pool is disconnected (no queueing behind a dead socket) and
//! never waits past the socket timeout; the pool reconnects in the background forever, with
//! exponential backoff, so a cache created while Redis is down starts working when it comes up.
//!
//! The same code serves the three deployments a `REDIS_URL` can name;
//! [`topology`](super::topology) says what differs between them, and
//! [`cluster`](super::cluster) reads a cluster's own description of itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::clients::{Client, Pool, WithOptions};
use fred::interfaces::EventInterface;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ErrorKind, Options, ReconnectPolicy,
};
use fred::types::config::ReconnectError;

use super::in_flight::{self, Expired, InFlight, Ticket};
use super::topology::{self, Topology};
use super::{batch, durable, Durability, Lineage};
use crate::config::{RedisUrl, TlsFiles};
use crate::error::CacheError;

/// What every pool of one cache is connected with.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    pub(crate) url: RedisUrl,
    /// Connections per runtime that uses the cache (`REDIS_POOL_SIZE`).
    pub(crate) pool_size: usize,
    pub(crate) timeout: Duration,
    pub(crate) clear_timeout: Duration,
    pub(crate) read_batch: usize,
    pub(crate) tls: TlsFiles,
    /// Shared by every pool of the cache.
    pub(crate) lineage: Arc<Lineage>,
    /// What an invalidation waits for before it returns.
    pub(crate) durability: Durability,
}

/// How many commands may be in flight on a connection before the next one goes to another.
const SPILL_AFTER: usize = 64;

/// A client picked for one command, in flight until dropped (the end of the statement that
/// sends the command and awaits its answer).
pub(super) struct Picked<'p> {
    pub(super) client: &'p WithOptions<Client>,
    pub(super) ticket: Ticket<'p>,
    /// The client's place in the pool.
    pub(super) index: usize,
}

impl std::ops::Deref for Picked<'_> {
    type Target = WithOptions<Client>;
    fn deref(&self) -> &Self::Target {
        self.client
    }
}

impl<'p> Picked<'p> {
    /// Sends the command that `command` makes on this client, and awaits its reply within the
    /// socket timeout.
    pub(super) async fn send<T, F>(
        &self,
        pool: &RedisPool,
        command: impl FnOnce(&'p WithOptions<Client>) -> F,
    ) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = Result<T, FredError>>,
    {
        match self.ticket.watch(|| command(self.client)).await {
            Ok(reply) => reply.map_err(|e| pool.error(e)),
            Err(Expired::Timeout) => Err(CacheError::Timeout(pool.timeout)),
            Err(Expired::Lost) => Err(CacheError::Connection(
                "the connection closed (reconnecting in the background)".to_owned(),
            )),
        }
    }

    /// [`send`](Self::send) for a command that reads values: its reply is used only once the
    /// nodes it came from are known incarnations ([`RedisPool::vouch`]).
    pub(super) async fn read<T, F>(
        &self,
        pool: &RedisPool,
        command: impl FnOnce(&'p WithOptions<Client>) -> F,
    ) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = Result<T, FredError>>,
    {
        let reply = self.send(pool, command).await?;
        pool.vouch(self.index).await?;
        Ok(reply)
    }
}

/// A pool of connections to one Redis deployment, driven by the tokio runtime that connected it
/// (fred's connection tasks live there). [`RedisBackend`](super::RedisBackend) keeps one per runtime.
pub(crate) struct RedisPool {
    pub(super) pool: Pool,
    /// Each client of the pool with the per-command options: fail fast when disconnected, one
    /// attempt, no timer (the watchdog of `in_flight` bounds the command). Commands pick one with
    /// [`client`](Self::client) (fred's own `Pool` picks a client again on each internal look-up
    /// of a command).
    pub(super) clients: Vec<WithOptions<Client>>,
    /// The same clients with fred's timer, for a command the watchdog cannot watch.
    pub(super) timed_clients: Vec<WithOptions<Client>>,
    /// Commands in flight on each client, and since when.
    pub(super) in_flight: Arc<InFlight>,
    pub(super) created: Instant,
    /// Milliseconds after `created` when the connections were last replaced after a timeout.
    pub(super) last_replaced_ms: std::sync::atomic::AtomicU64,
    pub(super) timeout: Duration,
    /// The most one `clear_pattern` may take in all.
    pub(super) clear_timeout: Duration,
    /// Single server, sentinel group or cluster.
    pub(super) topology: Topology,
    /// Where concurrent GETs gather into one MGET; `None` on a cluster.
    pub(super) batches: Option<batch::Batches>,
    /// The runtime that drives the connections, where batches are sent from.
    pub(super) runtime: tokio::runtime::Handle,
    /// Reads go to replicas (cluster only, feature `replicas`).
    #[cfg_attr(not(feature = "replicas"), allow(dead_code))]
    pub(super) replica_reads: bool,
    /// One receiver of each client's reconnect channel, never drained: its length counts the
    /// connections the client made ([`lineage`](super::lineage)).
    pub(super) connections_made: Vec<tokio::sync::broadcast::Receiver<fred::types::config::Server>>,
    /// The count of `connections` when the nodes each client reaches were last asked who they are.
    pub(super) verified: Vec<std::sync::atomic::AtomicU64>,
    /// The incarnations of the nodes, shared with the backend's other pools.
    pub(super) lineage: Arc<Lineage>,
    /// Where invalidations are made durable, when they must be.
    pub(super) fence: Option<durable::Fence>,
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("connections", &self.pool.size())
            .field("timeout", &self.timeout)
            .field("topology", &self.topology)
            .field("replica_reads", &self.replica_reads)
            .finish()
    }
}

impl RedisPool {
    /// Builds a pool of `size` connections and starts connecting in the background, watching
    /// its connections ([`watch_connections`](Self::watch_connections)).
    ///
    /// Returns the pool at once, with the result of waiting up to the socket timeout for the
    /// first connections: callers decide whether a failed start is fatal.
    ///
    /// fred spawns the connection tasks on the runtime this runs on.
    pub(crate) async fn connect(
        settings: &PoolSettings,
        size: usize,
    ) -> Result<(Arc<Self>, Result<(), CacheError>), CacheError> {
        let (pool, started) = Self::build(settings, size).await?;
        let pool = Arc::new(pool);
        pool.watch_connections();
        Ok((pool, started))
    }

    /// [`connect`](Self::connect) before its connections are watched.
    async fn build(
        settings: &PoolSettings,
        pool_size: usize,
    ) -> Result<(Self, Result<(), CacheError>), CacheError> {
        let PoolSettings {
            url,
            timeout,
            clear_timeout,
            read_batch,
            tls,
            lineage,
            durability,
            pool_size: _,
        } = settings;
        let (timeout, clear_timeout, read_batch) = (*timeout, *clear_timeout, *read_batch);
        let mut config = Config::from_url(url.expose())
            .map_err(|e| CacheError::Connection(format!("{url}: {}", e.details())))?;
        #[cfg(feature = "tls")]
        if config.tls.is_some() {
            if let Some(custom) = super::tls::client_config(tls)? {
                config.tls = Some(custom);
            }
        }
        #[cfg(not(feature = "tls"))]
        let _ = tls; // Refused at configuration time: TLS files need the `tls` feature.
        let replica_reads = url::Url::parse(url.expose())
            .map_err(|e| CacheError::Connection(format!("{url}: {e}")))
            .and_then(|u| {
                crate::config::read_from_replicas(&u)
                    .map_err(|e| CacheError::Connection(format!("{url}: {e}")))
            })?;
        let topology = Topology::of(&config.server);
        let attempts = topology.command_attempts();
        // Start even when Redis is down; the reconnect policy keeps trying in the background.
        config.fail_fast = false;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p| {
                // Backstop for the commands that ignore per-command options (SCAN, pipelines).
                p.default_command_timeout = timeout;
            })
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                c.max_command_attempts = attempts;
                c.max_redirections = topology::MAX_REDIRECTIONS;
                // A primary demoted in place (failover without dropping connections) answers
                // writes with READONLY; a cluster mid-failover answers CLUSTERDOWN. Both mean
                // "reconnect and ask the sentinels / the cluster again", not "give up".
                c.reconnect_errors = vec![
                    ReconnectError::ReadOnly,
                    ReconnectError::ClusterDown,
                    ReconnectError::Loading,
                    ReconnectError::MasterDown,
                ];
                #[cfg(feature = "replicas")]
                {
                    // Replicas connect up front so that the first read does not pay for it, and
                    // a read falls back to the primary when no replica can serve it.
                    c.replica.lazy_connections = false;
                    c.replica.primary_fallback = true;
                }
                // No `unresponsive` checks: fred arms a timer on every turn of a connection's
                // loop for them, which cost a third of the hits at 16 and 64 tasks with two
                // connections (cache-bench). A command that times out replaces the pool's
                // connections instead (`replace_connections`), which also catches a half-open
                // socket (server frozen, cable pulled), at the first timeout.
            })
            // Zero attempts means forever: a finite count would kill the client for good. The
            // backoff stops growing at 250 ms, so that however long the outage, the cache is
            // connected again within a quarter of a second of Redis answering.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 250, 2));
        let built = |e: FredError| CacheError::Connection(format!("{url}: {}", e.details()));
        let pool = builder.build_pool(pool_size).map_err(built)?;
        let fence = match durability.wanted() {
            true => Some(durable::Fence::connect(
                builder.build().map_err(built)?,
                *durability,
                timeout,
            )),
            false => None,
        };
        // Subscribed before connecting, so that a refused first connection ends the wait at once
        // instead of after the whole timeout.
        let mut errors = pool.clients().first().map(|c| c.error_rx());
        // Subscribed before connecting, so that the first connection is counted too.
        let connections_made = pool.clients().iter().map(|c| c.reconnect_rx()).collect();
        let _connection_task = pool.connect();
        let timed = Options {
            fail_fast: true,
            max_attempts: Some(attempts),
            timeout: Some(timeout),
            ..Options::default()
        };
        // Zero is "no timeout" to fred.
        let watched = Options {
            timeout: Some(Duration::ZERO),
            ..timed.clone()
        };
        let with = |options: &Options| {
            pool.clients()
                .iter()
                .map(|c| c.with_options(options))
                .collect()
        };
        let in_flight = Arc::new(InFlight::new(pool_size, timeout));
        let stuck = pool.clone();
        let connections: Vec<Client> = pool.clients().to_vec();
        in_flight::watch(
            Arc::downgrade(&in_flight),
            in_flight::tick(timeout),
            move |i| connections.get(i).is_some_and(|c| !c.is_connected()),
            move || replace_connections(&stuck),
        );
        let backend = RedisPool {
            clients: with(&watched),
            timed_clients: with(&timed),
            pool,
            in_flight,
            created: Instant::now(),
            last_replaced_ms: std::sync::atomic::AtomicU64::new(u64::MAX),
            timeout,
            clear_timeout,
            batches: match topology {
                Topology::Standalone | Topology::Sentinel if read_batch > 1 => {
                    Some(batch::Batches::new(read_batch))
                }
                Topology::Standalone | Topology::Sentinel | Topology::Cluster => None,
            },
            runtime: tokio::runtime::Handle::current(),
            topology,
            replica_reads,
            connections_made,
            verified: (0..pool_size)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            lineage: Arc::clone(lineage),
            fence,
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

    /// The client for the next command: the next connected one, round robin.
    ///
    /// Fills one connection before it spills onto the next: fred sends what queued up while a
    /// connection was writing in one `writev`, so commands spread evenly over two connections
    /// were flushed almost one by one (1.7 hits per `writev` against 20 on one connection, with 64
    /// tasks; `hit_load` in cache-bench). The first connected client takes the commands until
    /// [`SPILL_AFTER`] are in flight on it, then the least loaded one does.
    pub(super) fn client(&self) -> Picked<'_> {
        let mut least: Option<(usize, usize)> = None;
        for (i, client) in self.clients.iter().enumerate() {
            if !client.is_connected() {
                continue;
            }
            let load = self.in_flight.load(i);
            if load < SPILL_AFTER {
                least = Some((i, load));
                break;
            }
            if least.is_none_or(|(_, l)| load < l) {
                least = Some((i, load));
            }
        }
        // None connected: any client fails fast with "not connected".
        let i = least.map_or(0, |(i, _)| i);
        let ticket = self.in_flight.start(i);
        // A pool has at least one client (REDIS_POOL_SIZE >= 1, checked by the configuration),
        // and one set of clients per option set.
        let client = if ticket.watched() {
            &self.clients[i]
        } else {
            &self.timed_clients[i]
        };
        Picked {
            client,
            ticket,
            index: i,
        }
    }

    /// The first connected client and its place in the pool (the first client when none is),
    /// for a command that is not watched: a Lua script, which fred's per-command options miss.
    pub(super) fn connected(&self) -> (usize, &Client) {
        let clients = self.pool.clients();
        let i = clients.iter().position(|c| c.is_connected()).unwrap_or(0);
        // A pool has at least one client (REDIS_POOL_SIZE >= 1, checked by the configuration).
        (i, &clients[i])
    }

    /// Asks the nodes who they are as soon as a client connects (again), so that a node that
    /// lost writes is noticed even while nothing reads: a task per client on the pool's runtime,
    /// which ends with the pool or its runtime.
    pub(crate) fn watch_connections(self: &Arc<Self>) {
        for (i, client) in self.pool.clients().iter().enumerate() {
            let mut connected = client.reconnect_rx();
            let pool = Arc::downgrade(self);
            drop(self.runtime.spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                while let Ok(_) | Err(RecvError::Lagged(_)) = connected.recv().await {
                    let Some(pool) = pool.upgrade() else {
                        return;
                    };
                    // A failure is asked again by the next read.
                    let _ = pool.vouch(i).await;
                }
            }));
        }
    }

    /// The error for a command that got no answer within the socket timeout. The connections are
    /// suspect (a frozen server, a socket left half-open by a partition), so they are replaced,
    /// at most once per socket timeout; the reconnect policy takes it from there.
    pub(super) fn timed_out(&self) -> CacheError {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.created.elapsed().as_millis() as u64;
        let last = self.last_replaced_ms.load(Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= self.timeout.as_millis() as u64;
        if due
            && self
                .last_replaced_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            replace_connections(&self.pool);
        }
        CacheError::Timeout(self.timeout)
    }

    /// Maps a fred error onto ours; fred's messages carry no credentials.
    pub(super) fn error(&self, e: FredError) -> CacheError {
        let details = e.details();
        match e.kind() {
            ErrorKind::Timeout => self.timed_out(),
            ErrorKind::Auth => CacheError::Auth(details.to_owned()),
            // A key of a slot being migrated, which fred fails to follow (see
            // `topology::MAX_REDIRECTIONS`): the cluster answered; only this command failed.
            ErrorKind::Routing if details.starts_with("Too many redirections") => {
                CacheError::Redis(format!("{details} (a slot being migrated)"))
            }
            ErrorKind::Canceled | ErrorKind::IO | ErrorKind::Routing | ErrorKind::Backpressure => {
                CacheError::Connection(if details.is_empty() || details == "Canceled." {
                    "not connected (reconnecting in the background)".to_owned()
                } else {
                    details.to_owned()
                })
            }
            // fred's words for "no connection to send it on" (a socket that just closed, or a
            // router task that is gone), and for a command that was on a connection when it was
            // replaced (its one attempt is spent).
            ErrorKind::Unknown
                if details.starts_with("Failed to route command")
                    || details.starts_with("Failed to send command to router")
                    || details.starts_with("Too many failed write attempts") =>
            {
                CacheError::Connection(details.to_owned())
            }
            _ if details.starts_with("WRONGPASS") || details.starts_with("NOAUTH") => {
                CacheError::Auth(details.to_owned())
            }
            _ => CacheError::Redis(details.to_owned()),
        }
    }

    /// Runs a command that fred's per-command options do not cover, within the timeout.
    pub(super) async fn bounded<T>(
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
            Err(_) => Err(self.timed_out()),
        }
    }
}

/// Replaces the connections of `pool` in the background, failing the commands in flight on them
/// (they are sent with `fail_fast`); the reconnect policy takes it from there.
pub(super) fn replace_connections(pool: &Pool) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let pool = pool.clone();
        drop(runtime.spawn(async move {
            let _ = pool.force_reconnection().await;
        }));
    }
}

impl RedisPool {
    /// Closes the connections and stops reconnecting.
    pub(crate) async fn quit(&self) {
        let _ = self.pool.quit().await;
        if let Some(fence) = &self.fence {
            fence.quit().await;
        }
    }

    /// One PING, within the socket timeout: is the deployment answering at all?
    pub(crate) async fn ping(&self) -> Result<(), CacheError> {
        let _: String = self.bounded(self.client().ping(None)).await?;
        Ok(())
    }
}
