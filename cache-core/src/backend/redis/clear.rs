//! `clear_pattern`: SCAN + UNLINK within a total deadline, on one server or on every primary of
//! a cluster (again when the cluster's layout moved during a pass), going on where an earlier
//! try of the same pattern stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{ClusterInterface, KeysInterface};
use fred::prelude::{ClientLike, Error as FredError, Options};
use fred::types::config::Server;
use fred::types::{Key, Value};

use super::cluster;
use super::topology::Topology;
use super::RedisPool;
use crate::error::CacheError;

/// How many keys one SCAN step asks for: large enough to amortize round trips, small enough that
/// one step never blocks the server for long.
const SCAN_COUNT: u32 = 1000;

/// Where a walk of a pattern stopped, to go on from there on the next try: a walk longer than
/// `CACHE_CLEAR_TIMEOUT` completes over several tries instead of starting over each time.
#[derive(Debug, Clone)]
pub(crate) struct Stopped {
    /// The nodes of this pass, in walk order: every primary of a cluster, or `None` for the one
    /// primary of a single server or sentinel group.
    nodes: Vec<Option<Server>>,
    /// The cluster's layout when the pass began (`None` on a single server).
    layout: Option<cluster::Layout>,
    /// The node being walked, and its SCAN cursor ("0": its start).
    node: usize,
    cursor: String,
    /// Passes begun so far.
    passes: usize,
    /// [`Lineage::changes`](super::Lineage::changes) when the pass began: a cursor means nothing
    /// to another incarnation of a node.
    changes: u64,
}

impl RedisPool {
    /// SCAN + UNLINK of what `pattern` matches, on every primary of a cluster, within
    /// `CACHE_CLEAR_TIMEOUT` in all, going on from where `from` stopped; the number of keys
    /// removed. `from` is left where this walk stopped when it did not finish, and empty when it
    /// did.
    pub(super) async fn clear(
        &self,
        pattern: &str,
        from: &mut Option<Stopped>,
    ) -> Result<u64, CacheError> {
        if !self.pool.clients().iter().any(|c| c.is_connected()) {
            return Err(CacheError::Connection(
                "not connected (reconnecting in the background)".to_owned(),
            ));
        }
        let walk = Walk {
            removed: AtomicU64::new(0),
            deadline: tokio::time::Instant::now() + self.clear_timeout,
            limit: self.clear_timeout,
        };
        // On the heap: a walk's state (a page being asked for while the last one's keys are
        // removed, on each node) is large, and `clear_pattern` is awaited deep in callers' stacks.
        let walked = Box::pin(self.walk(pattern, from, &walk)).await;
        let removed = walk.removed.load(Ordering::Relaxed);
        match walked {
            Ok(()) => {
                *from = None;
                Ok(removed)
            }
            Err(error @ CacheError::Incomplete { .. }) => Err(error),
            // Part of the work is done: say how much, whatever stopped the rest.
            Err(error) if removed > 0 => Err(CacheError::Incomplete {
                removed,
                reason: error.to_string(),
            }),
            Err(error) => Err(error),
        }
    }

    /// Walks every node of the pass in `from` (a new pass when it is empty or belongs to another
    /// incarnation), then checks that nothing moved meanwhile, passing again when something did,
    /// at most [`cluster::MAX_CLEAR_PASSES`] times.
    ///
    /// Keys only move one way while a slot migrates (source to target), so a key missed by one
    /// pass (it moved from a node not walked yet to one already walked) is found by the next,
    /// unless it moves again meanwhile. A layout still moving after the last pass is
    /// [`CacheError::Incomplete`]: the caller keeps the pattern and walks again later (the replay
    /// of pending invalidations).
    async fn walk(
        &self,
        pattern: &str,
        from: &mut Option<Stopped>,
        walk: &Walk,
    ) -> Result<(), CacheError> {
        let (i, client) = self.connected();
        if from.is_some() {
            // Who the nodes are now, before a cursor of theirs is used.
            self.within(walk, self.vouch(i)).await?;
        }
        let mut at = match from.take() {
            Some(stopped) if stopped.changes == self.lineage.changes() => stopped,
            _ => self.new_pass(walk, 0).await?,
        };
        loop {
            *from = Some(at.clone());
            while let Some(node) = at.nodes.get(at.node).cloned() {
                self.walk_node(client, node, pattern, &mut at, from, walk)
                    .await?;
                at.node += 1;
                at.cursor = "0".to_owned();
                *from = Some(at.clone());
            }
            self.within(walk, self.vouch(i)).await?;
            let layout = match at.layout {
                Some(_) => Some(self.within(walk, self.cluster_layout()).await?),
                None => None,
            };
            let moved = at.changes != self.lineage.changes()
                || layout != at.layout
                || layout.as_ref().is_some_and(cluster::Layout::migrating);
            if !moved {
                return Ok(());
            }
            if at.passes >= cluster::MAX_CLEAR_PASSES {
                *from = None;
                return Err(CacheError::Incomplete {
                    removed: walk.removed.load(Ordering::Relaxed),
                    reason: format!(
                        "the cluster's layout was still moving after {} passes",
                        cluster::MAX_CLEAR_PASSES
                    ),
                });
            }
            tracing::debug!(pattern, "nodes moved during clear_pattern; walking again");
            at = self.new_pass(walk, at.passes).await?;
        }
    }

    /// A pass from the start of every node, after `passes` passes.
    async fn new_pass(&self, walk: &Walk, passes: usize) -> Result<Stopped, CacheError> {
        let changes = self.lineage.changes();
        let (nodes, layout) = match self.topology {
            Topology::Standalone | Topology::Sentinel => (vec![None], None),
            Topology::Cluster => {
                let layout = self.within(walk, self.cluster_layout()).await?;
                let primaries = self
                    .pool
                    .cached_cluster_state()
                    .map(|state| state.unique_primary_nodes())
                    .unwrap_or_default();
                (primaries.into_iter().map(Some).collect(), Some(layout))
            }
        };
        Ok(Stopped {
            nodes,
            layout,
            node: 0,
            cursor: "0".to_owned(),
            passes: passes + 1,
            changes,
        })
    }

    /// SCAN + UNLINK on one node from `at`'s cursor to the end, asking for the next page while
    /// the keys of this one are removed, so that both travel at once. `from` follows `at` after
    /// each page whose keys are gone. Counts the keys removed in `walk` as UNLINK counts them: a
    /// key SCAN repeats, or that another client removed meanwhile, is not counted twice.
    async fn walk_node(
        &self,
        client: &Client,
        node: Option<Server>,
        pattern: &str,
        at: &mut Stopped,
        from: &mut Option<Stopped>,
        walk: &Walk,
    ) -> Result<(), CacheError> {
        let options = Options {
            cluster_node: node,
            ..self.client().options().clone()
        };
        let on_node = client.with_options(&options);
        let page = |cursor: String| {
            let on_node = &on_node;
            async move {
                let reply: Value = on_node
                    .scan_page(cursor, pattern.to_owned(), Some(SCAN_COUNT), None)
                    .await?;
                reply.convert::<(String, Vec<Key>)>()
            }
        };
        let unlink = |keys: Vec<Key>| async move {
            match keys.is_empty() {
                true => Ok(0),
                false => self.within(walk, self.unlink(&keys)).await,
            }
        };
        let (mut next, mut keys) = self.within(walk, page(at.cursor.clone())).await?;
        loop {
            if next == "0" {
                walk.removed(unlink(keys).await?);
                return Ok(());
            }
            let (removed, following) = tokio::join!(
                unlink(std::mem::take(&mut keys)),
                self.within(walk, page(next.clone()))
            );
            walk.removed(removed?);
            at.cursor = std::mem::take(&mut next);
            *from = Some(at.clone());
            (next, keys) = following?;
        }
    }

    /// What each primary says about the cluster's layout (`CLUSTER NODES`, without the parts
    /// that change on their own), and whether any slot is migrating.
    async fn cluster_layout(&self) -> Result<cluster::Layout, CacheError> {
        let primaries = self
            .pool
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        let mut layout = cluster::Layout::default();
        for server in primaries {
            let options = Options {
                cluster_node: Some(server.clone()),
                ..self.client().options().clone()
            };
            let text: String = self
                .bounded(
                    self.pool
                        .next_connected()
                        .with_options(&options)
                        .cluster_nodes(),
                )
                .await?;
            layout.add(&server.to_string(), &text);
        }
        Ok(layout)
    }

    /// `command` within the socket timeout and the walk's deadline, whichever comes first.
    async fn within<T, E: Into<Failure>>(
        &self,
        walk: &Walk,
        command: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, CacheError> {
        let until = (tokio::time::Instant::now() + self.timeout).min(walk.deadline);
        match tokio::time::timeout_at(until, command).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failure)) => Err(match failure.into() {
                Failure::Fred(e) => self.error(e),
                Failure::Cache(e) => e,
            }),
            Err(_) if tokio::time::Instant::now() >= walk.deadline => Err(walk.out_of_time()),
            Err(_) => Err(self.timed_out()),
        }
    }
}

/// An error from fred or one of ours, for [`RedisPool::within`].
enum Failure {
    Fred(FredError),
    Cache(CacheError),
}

impl From<FredError> for Failure {
    fn from(e: FredError) -> Self {
        Failure::Fred(e)
    }
}

impl From<CacheError> for Failure {
    fn from(e: CacheError) -> Self {
        Failure::Cache(e)
    }
}

/// The progress of one `clear_pattern` against its total deadline.
struct Walk {
    /// Keys removed so far (counted while a page's keys are removed and the next page is
    /// asked for at once).
    removed: AtomicU64,
    deadline: tokio::time::Instant,
    limit: Duration,
}

impl Walk {
    fn removed(&self, keys: u64) {
        self.removed.fetch_add(keys, Ordering::Relaxed);
    }

    /// The error for a walk that ran out of time.
    fn out_of_time(&self) -> CacheError {
        CacheError::Incomplete {
            removed: self.removed.load(Ordering::Relaxed),
            reason: format!(
                "CACHE_CLEAR_TIMEOUT ({:?}) reached before the keyspace was walked",
                self.limit
            ),
        }
    }
}
