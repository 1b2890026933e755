//! `clear_pattern`: SCAN + UNLINK within a total deadline, on one server or on every primary of
//! a cluster (again when the cluster's layout moved during a pass).

use std::time::Duration;

use fred::interfaces::ClusterInterface;
use fred::prelude::{ClientLike, Error as FredError, Options};
use fred::types::scan::{ScanResult, Scanner};
use futures_util::StreamExt;

use super::cluster;
use super::topology::Topology;
use super::RedisPool;
use crate::CacheError;

/// How many keys one SCAN step asks for: large enough to amortize round trips, small enough that
/// one step never blocks the server for long.
const SCAN_COUNT: u32 = 1000;

impl RedisPool {
    /// SCAN + UNLINK of what `pattern` matches, on every primary of a cluster, within
    /// `CACHE_CLEAR_TIMEOUT` in all; the number of keys removed.
    pub(super) async fn clear(&self, pattern: &str) -> Result<u64, CacheError> {
        if !self.pool.clients().iter().any(|c| c.is_connected()) {
            return Err(CacheError::Connection(
                "not connected (reconnecting in the background)".to_owned(),
            ));
        }
        let mut walk = Walk {
            removed: 0,
            deadline: tokio::time::Instant::now() + self.clear_timeout,
            limit: self.clear_timeout,
        };
        let result = match self.topology {
            Topology::Standalone | Topology::Sentinel => {
                let client = self.pool.next_connected();
                let pages = client.scan(pattern.to_owned(), Some(SCAN_COUNT), None);
                self.remove_scanned(pages, &mut walk).await
            }
            Topology::Cluster => self.clear_pattern_cluster(pattern, &mut walk).await,
        };
        match result {
            Ok(()) => Ok(walk.removed),
            Err(error @ CacheError::Incomplete { .. }) => Err(error),
            // Part of the work is done: say how much, whatever stopped the rest.
            Err(error) if walk.removed > 0 => Err(CacheError::Incomplete {
                removed: walk.removed,
                reason: error.to_string(),
            }),
            Err(error) => Err(error),
        }
    }

    /// One SCAN + UNLINK pass over every primary of a cluster; the number of keys removed.
    ///
    /// Each removal is counted by UNLINK's own answer, so a key that SCAN returns twice (SCAN
    /// may, and a key moving between two nodes may be seen on both) is counted once.
    async fn clear_pass_cluster(&self, pattern: &str, walk: &mut Walk) -> Result<(), CacheError> {
        let client = self.pool.next_connected();
        self.remove_scanned(
            client.scan_cluster(pattern.to_owned(), Some(SCAN_COUNT), None),
            walk,
        )
        .await
    }

    /// Walks SCAN pages and removes each page's keys, asking for the next page before removing
    /// this one so that both travel at once. Counts the keys removed in `walk` as UNLINK counts
    /// them: a key SCAN repeats, or that another client removed meanwhile, is not counted twice.
    async fn remove_scanned(
        &self,
        pages: impl futures_util::Stream<Item = Result<ScanResult, FredError>>,
        walk: &mut Walk,
    ) -> Result<(), CacheError> {
        let mut pages = std::pin::pin!(pages);
        loop {
            if tokio::time::Instant::now() >= walk.deadline {
                return Err(walk.out_of_time());
            }
            let next = tokio::time::Instant::now() + self.timeout;
            let mut page =
                match tokio::time::timeout_at(next.min(walk.deadline), pages.next()).await {
                    Err(_) if tokio::time::Instant::now() >= walk.deadline => {
                        return Err(walk.out_of_time())
                    }
                    Err(_) => return Err(self.timed_out()),
                    Ok(None) => return Ok(()),
                    Ok(Some(page)) => page.map_err(|e| self.error(e))?,
                };
            let keys = page.take_results().unwrap_or_default();
            page.next();
            if keys.is_empty() {
                continue;
            }
            walk.removed += self.unlink(&keys).await?;
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

    /// `clear_pattern` on a cluster: SCAN every primary and UNLINK what matches, again when the
    /// layout changed or a slot was migrating during the pass.
    ///
    /// Keys only move one way while a slot migrates (source to target), so a key missed by one
    /// pass (it moved from a node not scanned yet to one already scanned) is found by the next,
    /// unless it moves again meanwhile.
    ///
    /// A layout still moving after [`cluster::MAX_CLEAR_PASSES`] passes is
    /// [`CacheError::Incomplete`]: a key may have moved past every pass, so the caller keeps the
    /// pattern and walks again later (the replay of pending invalidations).
    async fn clear_pattern_cluster(
        &self,
        pattern: &str,
        walk: &mut Walk,
    ) -> Result<(), CacheError> {
        for _ in 0..cluster::MAX_CLEAR_PASSES {
            let before = self.cluster_layout_by(walk).await?;
            self.clear_pass_cluster(pattern, walk).await?;
            let after = self.cluster_layout_by(walk).await?;
            if before == after && !after.migrating() {
                return Ok(());
            }
            tracing::debug!(
                pattern,
                "cluster layout moved during clear_pattern; scanning again"
            );
        }
        Err(CacheError::Incomplete {
            removed: walk.removed,
            reason: format!(
                "the cluster's layout was still moving after {} passes",
                cluster::MAX_CLEAR_PASSES
            ),
        })
    }

    /// [`cluster_layout`](Self::cluster_layout) within the walk's deadline.
    async fn cluster_layout_by(&self, walk: &Walk) -> Result<cluster::Layout, CacheError> {
        tokio::time::timeout_at(walk.deadline, self.cluster_layout())
            .await
            .map_err(|_| walk.out_of_time())?
    }
}

/// The progress of one `clear_pattern` against its total deadline.
struct Walk {
    removed: u64,
    deadline: tokio::time::Instant,
    limit: Duration,
}

impl Walk {
    /// The error for a walk that ran out of time.
    fn out_of_time(&self) -> CacheError {
        CacheError::Incomplete {
            removed: self.removed,
            reason: format!(
                "CACHE_CLEAR_TIMEOUT ({:?}) reached before the keyspace was walked",
                self.limit
            ),
        }
    }
}
