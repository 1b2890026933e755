//! Durable invalidations: an invalidation returns only once the copies it must survive on have
//! it: `CACHE_INVALIDATION_REPLICAS` replicas of each primary (`WAIT`), and with
//! `CACHE_INVALIDATION_FSYNC` each primary's append-only file, fsynced (`WAITAOF`, Redis 7.2).
//!
//! `WAIT` and `WAITAOF` wait for the last write of the connection they are sent on, and fred
//! holds every other command of that connection back until they answer. So the waits go on a
//! connection of their own (hits never queue behind one), after a write of their own there: a
//! short-lived fence key set on each primary just before the wait. A primary applies its writes
//! in one order, so once its fence is acknowledged, every delete it acknowledged before the fence
//! was sent, on whichever connection, is acknowledged too.
//!
//! Concurrent invalidations share their waits (group commit): a caller whose delete was
//! acknowledged before a fence was sent is covered by that fence, so while one wait is under way
//! the callers that arrive meanwhile are all covered by the next one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface, ServerInterface};
use fred::prelude::{Error as FredError, Expiration, Options};
use fred::types::cluster::ClusterRouting;
use fred::types::config::Server;
use fred::types::{ClusterHash, CustomCommand, Value};

use crate::error::CacheError;

/// The key each primary's fence is written to; on a cluster, with a hash tag that puts it on
/// that primary.
const FENCE_KEY: &str = "cache-core:durability-fence";

/// How long a fence key lives: it is read by nobody, and only needs to outlive its wait.
const FENCE_TTL_MS: i64 = 60_000;

/// What an invalidation waits for before it returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Durability {
    /// Replicas of each primary that must acknowledge it (`CACHE_INVALIDATION_REPLICAS`).
    pub(crate) replicas: u32,
    /// Whether each primary must have fsynced it to its append-only file
    /// (`CACHE_INVALIDATION_FSYNC`).
    pub(crate) fsync: bool,
}

impl Durability {
    /// Whether an invalidation waits for anything.
    pub(crate) fn wanted(&self) -> bool {
        self.replicas > 0 || self.fsync
    }
}

/// The connection durable invalidations wait on.
pub(super) struct Fence {
    client: Client,
    durability: Durability,
    /// Callers so far: each takes the next number after its deletes were acknowledged.
    asked: AtomicU64,
    /// The highest caller number a successful wait covered; held while a wait is under way.
    covered: tokio::sync::Mutex<u64>,
    /// How long Redis waits for the acknowledgements: three quarters of the socket timeout, so
    /// that its answer (enough or not) arrives before the command is given up.
    wait: Duration,
}

impl Fence {
    /// Starts connecting `client` (built like the pool's clients) in the background.
    pub(super) fn connect(client: Client, durability: Durability, timeout: Duration) -> Self {
        let _connection_task = client.connect();
        Fence {
            client,
            durability,
            asked: AtomicU64::new(0),
            covered: tokio::sync::Mutex::new(0),
            wait: timeout * 3 / 4,
        }
    }

    /// Closes the connection and stops reconnecting.
    pub(super) async fn quit(&self) {
        let _ = self.client.quit().await;
    }

    /// Waits until every primary's writes acknowledged so far are durable as configured, or
    /// until a wait that began after they were covers them. Not bounded here: the caller
    /// bounds it by the socket timeout.
    pub(super) async fn settle(&self) -> Result<(), CacheError> {
        let me = self.asked.fetch_add(1, Ordering::AcqRel) + 1;
        let mut covered = self.covered.lock().await;
        if *covered >= me {
            return Ok(());
        }
        // Every caller numbered up to here asked before the fences below are sent.
        let upto = self.asked.load(Ordering::Acquire);
        self.fence_and_wait().await?;
        *covered = upto;
        Ok(())
    }

    /// A fence on each primary, then `WAIT`/`WAITAOF` after it, on all primaries at once.
    async fn fence_and_wait(&self) -> Result<(), CacheError> {
        // Connected in the background since the pool was made: the first invalidation may
        // come before the connection is up.
        self.client
            .wait_for_connect()
            .await
            .map_err(|e| self.error("the primary", e))?;
        let primaries = match self.client.cached_cluster_state() {
            Some(state) => state
                .unique_primary_nodes()
                .into_iter()
                .filter_map(|primary| {
                    fence_key_on(&state, &primary).map(|key| (Some(primary), key))
                })
                .collect(),
            None => vec![(None, FENCE_KEY.to_owned())],
        };
        let waits = primaries
            .iter()
            .map(|(primary, key)| self.settle_on(primary.as_ref(), key));
        futures_util::future::try_join_all(waits).await?;
        Ok(())
    }

    /// The fence and the wait on one primary (`None`: the one a single server or a sentinel
    /// group has).
    async fn settle_on(&self, primary: Option<&Server>, key: &str) -> Result<(), CacheError> {
        let node = primary.map_or_else(|| "the primary".to_owned(), |p| p.to_string());
        let error = |e: FredError| self.error(&node, e);
        let fail_fast = Options {
            fail_fast: true,
            max_attempts: Some(1),
            ..Options::default()
        };
        let _: () = self
            .client
            .with_options(&fail_fast)
            .set(
                key,
                std::process::id().to_string(),
                Some(Expiration::PX(FENCE_TTL_MS)),
                None,
                false,
            )
            .await
            .map_err(error)?;
        let options = Options {
            cluster_node: primary.cloned(),
            ..fail_fast
        };
        let on_primary = self.client.with_options(&options);
        let wait_ms = i64::try_from(self.wait.as_millis().max(1)).unwrap_or(i64::MAX);
        let replicas = i64::from(self.durability.replicas);
        if self.durability.fsync {
            let command = CustomCommand::new_static("WAITAOF", ClusterHash::FirstKey, true);
            let args: Vec<Value> = vec![1.into(), replicas.into(), wait_ms.into()];
            let acked: Vec<i64> = on_primary.custom(command, args).await.map_err(error)?;
            let (local, copies) = (
                acked.first().copied().unwrap_or(0),
                acked.get(1).copied().unwrap_or(0),
            );
            if local < 1 {
                return Err(CacheError::NotDurable(format!(
                    "{node} did not fsync it to its append-only file within {:?} \
                     (CACHE_INVALIDATION_FSYNC)",
                    self.wait
                )));
            }
            self.enough(&node, copies, "fsynced")
        } else {
            let copies: i64 = on_primary.wait(replicas, wait_ms).await.map_err(error)?;
            self.enough(&node, copies, "acknowledged")
        }
    }

    /// `Ok` when `copies` replicas did what was asked of them.
    fn enough(&self, node: &str, copies: i64, did: &str) -> Result<(), CacheError> {
        let wanted = self.durability.replicas;
        if copies >= i64::from(wanted) {
            return Ok(());
        }
        Err(CacheError::NotDurable(format!(
            "{copies} of {wanted} replicas of {node} {did} it within {:?} \
             (CACHE_INVALIDATION_REPLICAS)",
            self.wait
        )))
    }

    /// A failed fence or wait, in words that say which setting needs what.
    fn error(&self, node: &str, e: FredError) -> CacheError {
        let details = e.details();
        if details.contains("unknown command") && self.durability.fsync {
            return CacheError::Redis(format!(
                "CACHE_INVALIDATION_FSYNC needs Redis 7.2 or later (WAITAOF), which {node} \
                 refused: {details}"
            ));
        }
        if details.contains("appendonly is disabled") {
            return CacheError::Redis(format!(
                "CACHE_INVALIDATION_FSYNC needs `appendonly yes` on {node}: {details}"
            ));
        }
        match e.kind() {
            fred::error::ErrorKind::Timeout
            | fred::error::ErrorKind::IO
            | fred::error::ErrorKind::Canceled => CacheError::NotDurable(format!(
                "no answer from {node} about it ({details}); the connection that waits for \
                 acknowledgements is reconnecting"
            )),
            _ => CacheError::Redis(details.to_owned()),
        }
    }
}

/// A fence key that hashes to a slot `primary` serves, or `None` when it serves none (it holds
/// no keys, so there is nothing to wait for). At most one try per hash slot.
fn fence_key_on(state: &ClusterRouting, primary: &Server) -> Option<String> {
    (0..super::cluster::SLOTS).find_map(|tag| {
        let key = format!("{FENCE_KEY}:{{{tag}}}");
        let slot = ClusterRouting::hash_key(key.as_bytes());
        (state.get_server(slot) == Some(primary)).then_some(key)
    })
}
