//! The health report: one server (standalone, or a sentinel group's primary) or every node of a
//! cluster, asked in parallel, within one socket timeout in all.

use std::time::Instant;

use fred::interfaces::ClusterInterface;
use fred::prelude::{ClientLike, Options};
use fred::types::CustomCommand;

use super::cluster;
use super::topology::Topology;
use super::RedisPool;
use crate::{health::HealthReport, health::NodeHealth};

impl RedisPool {
    /// The health of the deployment, within one socket timeout in all.
    pub(super) async fn check_health(&self) -> HealthReport {
        // One socket timeout for the whole check, however many commands and nodes it asks.
        let started = Instant::now();
        let check = async {
            match self.topology {
                Topology::Standalone | Topology::Sentinel => self.standalone_health().await,
                Topology::Cluster => self.cluster_health().await,
            }
        };
        match tokio::time::timeout(self.timeout, check).await {
            Ok(report) => report,
            Err(_) => HealthReport::failed(
                "redis",
                started.elapsed().as_secs_f64() * 1000.0,
                self.timed_out().to_string(),
            ),
        }
    }

    /// The health of one primary reached through `options` (which name the node, or none).
    async fn node_health(&self, address: String, options: &Options) -> NodeHealth {
        let started = Instant::now();
        let client = self.pool.next_connected().with_options(options);
        let pong: Result<String, _> = self.bounded(client.ping(None)).await;
        let mut node = NodeHealth::new(address, "primary", pong.is_ok());
        node.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        if let Err(e) = pong {
            node.error = Some(e.to_string());
            return node;
        }
        match self.bounded(client.info::<String>(None)).await {
            Ok(info) => node.with_info(&info),
            Err(e) => {
                node.error = Some(format!("INFO failed: {e}"));
                node
            }
        }
    }

    /// Health of a cluster: every primary asked in turn, replicas as the cluster sees them, and
    /// healthy only when every primary answers and `CLUSTER INFO` says all 16384 slots are
    /// served.
    async fn cluster_health(&self) -> HealthReport {
        let started = Instant::now();
        let elapsed_ms = || started.elapsed().as_secs_f64() * 1000.0;
        let info: String = match self.bounded(self.client().cluster_info()).await {
            Ok(info) => info,
            Err(e) => return HealthReport::failed("redis", elapsed_ms(), e.to_string()),
        };
        let nodes_text: String = match self.bounded(self.client().cluster_nodes()).await {
            Ok(text) => text,
            Err(e) => return HealthReport::failed("redis", elapsed_ms(), e.to_string()),
        };
        let seen = cluster::parse_nodes(&nodes_text);
        let primaries = self
            .pool
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        let checks = primaries.iter().map(|server| {
            let options = Options {
                cluster_node: Some(server.clone()),
                ..self.client().options().clone()
            };
            async move { self.node_health(server.to_string(), &options).await }
        });
        let mut nodes = futures_util::future::join_all(checks).await;
        for node in &mut nodes {
            if let Some(seen) = seen.iter().find(|n| n.address == node.address) {
                node.slots = Some(seen.slots);
            }
        }
        for replica in seen.iter().filter(|n| !n.primary) {
            let mut node = NodeHealth::new(replica.address.clone(), "replica", replica.ok);
            if !replica.ok {
                node.error = Some(format!("the cluster sees it as {}", replica.flags));
            }
            nodes.push(node);
        }
        for down in seen.iter().filter(|n| n.primary && !n.ok) {
            if !nodes.iter().any(|n| n.address == down.address) {
                let mut node = NodeHealth::new(down.address.clone(), "primary", false);
                node.error = Some(format!("the cluster sees it as {}", down.flags));
                nodes.push(node);
            }
        }
        let state = cluster::parse_info(&info);
        let mut problems: Vec<String> = Vec::new();
        if !state.ok() {
            problems.push(format!(
                "cluster_state:{}, {} of 16384 slots served",
                state.state, state.slots_ok
            ));
        }
        // Nodes that serve no slot (a failed primary already replaced, a replica) are reported
        // but do not make the cache unhealthy: every slot is still served.
        for node in nodes
            .iter()
            .filter(|n| !n.healthy && n.latency_ms.is_some())
        {
            problems.push(format!(
                "{} {}: {}",
                node.role,
                node.address,
                node.error.as_deref().unwrap_or("unhealthy")
            ));
        }
        let asked: Vec<&NodeHealth> = nodes.iter().filter(|n| n.latency_ms.is_some()).collect();
        let mut report = HealthReport::up(
            "redis",
            asked
                .iter()
                .filter_map(|n| n.latency_ms)
                .fold(0.0, f64::max),
        );
        report.healthy = problems.is_empty();
        report.error = (!problems.is_empty()).then(|| problems.join("; "));
        let mut versions: Vec<&str> = asked.iter().filter_map(|n| n.version.as_deref()).collect();
        versions.sort_unstable();
        versions.dedup();
        report.version = (!versions.is_empty()).then(|| versions.join(", "));
        report.used_memory = asked
            .iter()
            .map(|n| n.used_memory.as_deref())
            .collect::<Option<Vec<&str>>>()
            .and_then(|all| cluster::sum_human_bytes(&all));
        report.connected_clients = asked.iter().map(|n| n.connected_clients).sum();
        report.uptime_seconds = asked.iter().filter_map(|n| n.uptime_seconds).min();
        report.nodes = nodes;
        report
    }

    /// Health of one server (standalone, or the primary of a sentinel group).
    async fn standalone_health(&self) -> HealthReport {
        let started = Instant::now();
        let elapsed_ms = || started.elapsed().as_secs_f64() * 1000.0;
        let pong: Result<String, _> = self.bounded(self.client().ping(None)).await;
        if let Err(e) = pong {
            return HealthReport::failed("redis", elapsed_ms(), e.to_string());
        }
        let report = HealthReport::up("redis", elapsed_ms());
        // The server that answered, as it sees the connection (`laddr` of CLIENT INFO): exact
        // after a sentinel failover, when the pool's own record of its connections may be empty.
        let client_info = CustomCommand::new_static("CLIENT", None::<u16>, false);
        let address = self
            .bounded(
                self.client()
                    .custom::<String, &str>(client_info, vec!["INFO"]),
            )
            .await
            .ok()
            .and_then(|text| {
                text.split_whitespace()
                    .find_map(|field| field.strip_prefix("laddr="))
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        match self.bounded(self.client().info::<String>(None)).await {
            Ok(info) => {
                let mut node = NodeHealth::new(address, "primary", true).with_info(&info);
                node.latency_ms = Some(report.latency_ms);
                HealthReport {
                    nodes: vec![node],
                    ..report.with_info(&info)
                }
            }
            Err(e) => HealthReport {
                error: Some(format!("INFO failed: {e}")),
                ..report
            },
        }
    }
}
