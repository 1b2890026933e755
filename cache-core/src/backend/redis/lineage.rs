//! Which incarnation of each Redis node the connections reach, so that a node that may have lost
//! acknowledged writes is noticed before anything read from it is used.
//!
//! Redis can undo a write it acknowledged: a restart from an older RDB snapshot, an AOF with
//! `appendfsync everysec` that lost its last second, a replica promoted before it received the
//! write. An undone invalidation brings the old value back. Each of these puts the cache in front
//! of another *incarnation* of the node: another `run_id` (a restart), another `master_replid` (a
//! promotion), or another node at all (sentinel and cluster failovers). And each breaks the
//! connections, so the client connects again.
//!
//! fred announces every connection it makes, the first one and each one after, on the client's
//! reconnect channel *before* that connection carries a command (its router task makes the
//! connection, announces it, and only then goes back to sending commands). A pool keeps one
//! receiver per client that it never drains, so the receiver's length counts the client's
//! connections. A read whose reply came while that count differs from the one last verified asks
//! the nodes who they are (`INFO`) before its reply is used ([`RedisPool::vouch`]): the first read
//! after a reconnect pays that round trip, every other read one uncontended lock. A node found to
//! be another incarnation than the one known, and that started with data (a node that started
//! empty holds nothing from before), bumps [`Lineage::changes`], which the policy reads
//! after every backend call: it then replays its recent invalidations before serving reads again
//! (see `policy/recent.rs`).
//!
//! Not covered: cluster replicas read with `readFromReplicas` (their values may be replication
//! lag old anyway).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use fred::interfaces::ClusterInterface;
use fred::prelude::{ClientLike, Options};
use tokio::sync::Notify;

use super::topology::Topology;
use super::RedisPool;
use crate::error::CacheError;

/// Who a node says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Incarnation {
    /// New at every start of the process.
    run_id: String,
    /// New at every start and at every promotion of a replica.
    replid: String,
    /// It started without data: no AOF, no key loaded from a snapshot, never a replica. Such a
    /// node cannot hold anything written before it started, so it cannot undo an invalidation.
    started_empty: bool,
}

impl Incarnation {
    /// Reads the incarnation from an `INFO` reply (sections `server`, `replication` and
    /// `persistence`).
    fn from_info(info: &str) -> Option<Incarnation> {
        let field = |name: &str| {
            info.lines().find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(str::trim)
            })
        };
        let started_empty = field("aof_enabled") == Some("0")
            && field("rdb_last_load_keys_loaded") == Some("0")
            && field("master_replid2").is_some_and(|id| id.bytes().all(|b| b == b'0'));
        Some(Incarnation {
            run_id: field("run_id")?.to_owned(),
            replid: field("master_replid")?.to_owned(),
            started_empty,
        })
    }
}

/// The most node addresses remembered: a deployment has a handful, and addresses change only
/// with failovers and reshards. Past it, only the nodes of the latest look are kept (those
/// forgotten count as never seen, which replays: safe, and rare).
const MAX_NODES: usize = 1024;

/// The incarnations of the nodes a backend's pools reach, shared by those pools.
#[derive(Debug, Default)]
pub(crate) struct Lineage {
    /// By node address, at most [`MAX_NODES`].
    known: Mutex<HashMap<String, Incarnation>>,
    /// How many times a node was found to be another incarnation than the one known.
    changes: AtomicU64,
    /// Woken at each change.
    changed: Notify,
}

impl Lineage {
    /// How many times a node was found to be another incarnation than the one known: each time,
    /// acknowledged writes may have been lost.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Waits for the next change (or one that happened since the last wait).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Records what the nodes a client reaches said they are. The first nodes ever seen are the
    /// baseline; after that, a node that is another incarnation, or a node never seen before (a
    /// replica promoted in another node's place), is a change.
    fn observe(&self, nodes: Vec<(String, Incarnation)>) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let baseline = known.is_empty();
        if known.len() + nodes.len() > MAX_NODES {
            known.retain(|address, _| nodes.iter().any(|(seen, _)| seen == address));
        }
        let mut changed = false;
        for (address, incarnation) in nodes {
            let before = known.insert(address.clone(), incarnation.clone());
            if !baseline && before.as_ref() != Some(&incarnation) && !incarnation.started_empty {
                tracing::warn!(
                    node = %address,
                    restarted = before.as_ref().is_some_and(|b| b.run_id != incarnation.run_id),
                    "Redis node is another incarnation than before (restarted, or failed over): \
                     writes it acknowledged may be lost; recent invalidations will be replayed"
                );
                changed = true;
            }
        }
        drop(known);
        if changed {
            self.changes.fetch_add(1, Ordering::AcqRel);
            self.changed.notify_one();
        }
    }
}

impl RedisPool {
    /// Makes sure the nodes client `i` reaches are the incarnations known, asking them after the
    /// client connected again; an error when they could not be asked (the read that called it is
    /// then a failed read: nothing it read is used).
    pub(super) async fn vouch(&self, i: usize) -> Result<(), CacheError> {
        let (Some(connections), Some(verified)) =
            (self.connections_made.get(i), self.verified.get(i))
        else {
            return Ok(());
        };
        // Read before asking: a connection made while the nodes answer is asked about next time.
        let made = connections.len() as u64;
        if made == verified.load(Ordering::Acquire) {
            return Ok(());
        }
        let nodes = self.incarnations(i).await?;
        self.lineage.observe(nodes);
        verified.fetch_max(made, Ordering::AcqRel);
        Ok(())
    }

    /// Asks each node client `i` reaches who it is: the one server, or every cluster primary.
    async fn incarnations(&self, i: usize) -> Result<Vec<(String, Incarnation)>, CacheError> {
        let Some(client) = self.pool.clients().get(i) else {
            return Ok(Vec::new());
        };
        let servers = match self.topology {
            Topology::Standalone | Topology::Sentinel => vec![None],
            Topology::Cluster => client
                .cached_cluster_state()
                .map(|state| state.unique_primary_nodes())
                .unwrap_or_default()
                .into_iter()
                .map(Some)
                .collect(),
        };
        let mut nodes = Vec::with_capacity(servers.len());
        for server in servers {
            let address = match &server {
                Some(server) => server.to_string(),
                None => client
                    .active_connections()
                    .into_iter()
                    .next()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            };
            let options = Options {
                cluster_node: server,
                ..Options::default()
            };
            // Not `bounded`: this may run while the client finishes connecting, and the command
            // then waits for it, within the timeout.
            let info: String =
                match tokio::time::timeout(self.timeout, client.with_options(&options).info(None))
                    .await
                {
                    Ok(reply) => reply.map_err(|e| self.error(e))?,
                    Err(_) => return Err(self.timed_out()),
                };
            let incarnation = Incarnation::from_info(&info).ok_or_else(|| {
                CacheError::Redis("INFO gave no run_id or master_replid".to_owned())
            })?;
            nodes.push((address, incarnation));
        }
        Ok(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(run_id: &str, replid: &str) -> Incarnation {
        Incarnation {
            run_id: run_id.to_owned(),
            replid: replid.to_owned(),
            started_empty: false,
        }
    }

    #[test]
    fn reads_the_incarnation_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc\r\n\r\n# Persistence\r\n\
                    rdb_last_load_keys_loaded:0\r\naof_enabled:0\r\n\r\n# Replication\r\n\
                    role:master\r\nmaster_replid:def\r\nmaster_replid2:000\r\n";
        let empty = Incarnation {
            started_empty: true,
            ..node("abc", "def")
        };
        assert_eq!(Incarnation::from_info(info), Some(empty));
        let loaded = info.replace("keys_loaded:0", "keys_loaded:12");
        assert_eq!(Incarnation::from_info(&loaded), Some(node("abc", "def")));
        let aof = info.replace("aof_enabled:0", "aof_enabled:1");
        assert_eq!(Incarnation::from_info(&aof), Some(node("abc", "def")));
        let promoted = info.replace("master_replid2:000", "master_replid2:9f1");
        assert_eq!(Incarnation::from_info(&promoted), Some(node("abc", "def")));
        assert_eq!(Incarnation::from_info("run_id:abc\r\n"), None);
    }

    #[test]
    fn a_restart_a_promotion_or_a_new_node_is_a_change_after_the_baseline() {
        let lineage = Lineage::default();
        let a = || ("a:1".to_owned(), node("r1", "x1"));
        lineage.observe(vec![a(), ("b:1".to_owned(), node("r2", "x2"))]);
        assert_eq!(
            lineage.changes(),
            0,
            "the first nodes seen are the baseline"
        );
        lineage.observe(vec![a()]);
        assert_eq!(lineage.changes(), 0, "the same incarnation: no change");
        lineage.observe(vec![("a:1".to_owned(), node("r9", "x1"))]);
        assert_eq!(lineage.changes(), 1, "restarted");
        lineage.observe(vec![("a:1".to_owned(), node("r9", "x9"))]);
        assert_eq!(lineage.changes(), 2, "promoted");
        lineage.observe(vec![("c:1".to_owned(), node("r3", "x3"))]);
        assert_eq!(lineage.changes(), 3, "a node never seen before");
        let empty = Incarnation {
            started_empty: true,
            ..node("r4", "x4")
        };
        lineage.observe(vec![("a:1".to_owned(), empty)]);
        assert_eq!(lineage.changes(), 3, "restarted empty: nothing to undo");
    }
}
