//! A Redis Cluster of this test: 3 primaries and 3 replicas, each a [`RedisServer`] on its own
//! free loopback port, joined with `redis-cli --cluster create ... --cluster-replicas 1`.
//!
//! Node timeouts are short (1 s) so that a killed primary's replica takes over within a few
//! seconds. Every node is stopped by pid when the [`RedisCluster`] is dropped (and by its
//! watchdog if the test process dies), like any [`RedisServer`].

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{command_at, reply_text, require_binary, wait_until, RedisServer, Reply};

/// `cluster-node-timeout` of the test clusters, in milliseconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// One node as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node id.
    pub id: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// A primary (else a replica).
    pub primary: bool,
    /// For a replica, its primary's id.
    pub primary_id: Option<String>,
    /// Flagged as failing.
    pub failed: bool,
}

/// A 3-primary + 3-replica cluster on loopback ports.
#[derive(Debug)]
pub struct RedisCluster {
    servers: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every slot is served and every
    /// replica is in sync.
    pub fn start() -> RedisCluster {
        require_binary("redis-cli");
        let timeout = NODE_TIMEOUT_MS.to_string();
        let servers: Vec<RedisServer> = (0..6)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &timeout,
                    // Failover as soon as the primary is seen down, whatever the replica's lag.
                    "--cluster-replica-validity-factor",
                    "0",
                ])
            })
            .collect();
        let cluster = RedisCluster { servers };
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            cluster
                .servers
                .iter()
                .map(|s| format!("127.0.0.1:{}", s.port())),
        );
        args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            cluster.wait_stable(Duration::from_secs(20)),
            "the cluster did not become stable: {}",
            cluster.describe()
        );
        cluster
    }

    /// `redis-cluster://127.0.0.1:{first}?node=127.0.0.1:{second}&...`, naming every node.
    pub fn url(&self) -> String {
        let mut ports = self.servers.iter().map(|s| s.port());
        let first = ports.next().unwrap_or_default();
        let rest: Vec<String> = ports.map(|p| format!("node=127.0.0.1:{p}")).collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", rest.join("&"))
    }

    /// The nodes' servers, in start order.
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.servers
            .iter()
            .filter(|s| s.pid().is_some())
            .map(|s| s.port())
            .collect()
    }

    /// Sends a command to the node on `port`; panics if it does not answer.
    pub fn command_on(&self, port: u16, args: &[&str]) -> Reply {
        command_at(port, args).unwrap_or_else(|e| panic!("node {port} did not answer: {e}"))
    }

    /// The nodes as the first live node describes them.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        for port in self.live_ports() {
            if let Ok(reply) = command_at(port, &["CLUSTER", "NODES"]) {
                let text = reply_text(&reply);
                if !text.is_empty() {
                    return parse_nodes(&text);
                }
            }
        }
        Vec::new()
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn keyslot(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        match self.command_on(port, &["CLUSTER", "KEYSLOT", key]) {
            Reply::Integer(n) => n as u16,
            other => panic!("CLUSTER KEYSLOT answered {other:?}"),
        }
    }

    /// The port of the primary serving `slot`, from `CLUSTER SLOTS` of a live node.
    pub fn primary_port_of_slot(&self, slot: u16) -> u16 {
        let port = self.live_ports()[0];
        let Reply::Array(Some(ranges)) = self.command_on(port, &["CLUSTER", "SLOTS"]) else {
            panic!("CLUSTER SLOTS failed");
        };
        for range in ranges {
            let Reply::Array(Some(parts)) = range else {
                continue;
            };
            let (Reply::Integer(start), Reply::Integer(end)) = (&parts[0], &parts[1]) else {
                continue;
            };
            if (*start..=*end).contains(&i64::from(slot)) {
                if let Reply::Array(Some(primary)) = &parts[2] {
                    if let Reply::Integer(p) = primary[1] {
                        return p as u16;
                    }
                }
            }
        }
        panic!("no primary serves slot {slot}: {}", self.describe())
    }

    /// The port of the primary serving `key`.
    pub fn primary_port_of(&self, key: &str) -> u16 {
        self.primary_port_of_slot(self.keyslot(key))
    }

    /// The port of the (first) replica of the primary on `primary_port`.
    pub fn replica_port_of(&self, primary_port: u16) -> u16 {
        let nodes = self.nodes();
        let primary = nodes
            .iter()
            .find(|n| n.port == primary_port)
            .unwrap_or_else(|| panic!("no node on {primary_port}"));
        nodes
            .iter()
            .find(|n| n.primary_id.as_deref() == Some(primary.id.as_str()) && !n.failed)
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("{primary_port} has no replica: {}", self.describe()))
    }

    /// The value of `key` read from the primary serving it, bypassing any client.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let port = self.primary_port_of(key);
        match self.command_on(port, &["GET", key]) {
            Reply::Bulk(value) => value,
            other => panic!("GET {key} on {port}: {other:?}"),
        }
    }

    /// Kills the node on `port` with SIGKILL, as a crash would.
    pub fn kill(&mut self, port: u16) {
        let server = self
            .servers
            .iter_mut()
            .find(|s| s.port() == port)
            .unwrap_or_else(|| panic!("no node on {port}"));
        server.kill();
    }

    /// Waits until every live node says `cluster_state:ok`, all agree on which node serves each
    /// slot, no live node is flagged failing, and every live replica's link to its primary is up.
    pub fn wait_stable(&self, limit: Duration) -> bool {
        wait_until(limit, || self.is_stable())
    }

    fn is_stable(&self) -> bool {
        let ports = self.live_ports();
        let mut slot_views = Vec::new();
        for &port in &ports {
            let Ok(info) = command_at(port, &["CLUSTER", "INFO"]) else {
                return false;
            };
            let info = reply_text(&info);
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return false;
            }
            let Ok(nodes) = command_at(port, &["CLUSTER", "NODES"]) else {
                return false;
            };
            let nodes = parse_nodes(&reply_text(&nodes));
            if nodes
                .iter()
                .any(|n| ports.contains(&n.port) && (n.failed || n.id.is_empty()))
            {
                return false;
            }
            let mut primaries: Vec<u16> = nodes
                .iter()
                .filter(|n| n.primary && ports.contains(&n.port))
                .map(|n| n.port)
                .collect();
            primaries.sort_unstable();
            slot_views.push(primaries);
            let Ok(replication) = command_at(port, &["INFO", "replication"]) else {
                return false;
            };
            let replication = reply_text(&replication);
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return false;
            }
        }
        slot_views.windows(2).all(|w| w[0] == w[1])
    }

    /// Starts moving `slots` slots from the primary on `from_port` to the one on `to_port` with
    /// `redis-cli --cluster reshard`, in the background; wait on the returned child.
    pub fn reshard(&self, from_port: u16, to_port: u16, slots: u32) -> Child {
        Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &format!("127.0.0.1:{from_port}"),
                "--cluster-from",
                &self.id_of(from_port),
                "--cluster-to",
                &self.id_of(to_port),
                "--cluster-slots",
                &slots.to_string(),
                "--cluster-yes",
                // Few keys per MIGRATE, so slots stay half-moved for a while.
                "--cluster-pipeline",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run redis-cli --cluster reshard")
    }

    /// Leaves `slot` half-moved from the primary on `from_port` to the one on `to_port`: the slot
    /// is marked MIGRATING on the source and IMPORTING on the destination, and only `keys` (which
    /// must hash to `slot`) are moved. Until [`RedisCluster::finish_migration`], a command for a
    /// key of the slot gets an ASK redirection from the source whenever the key is not there.
    pub fn start_migration(&self, slot: u16, from_port: u16, to_port: u16, keys: &[&str]) {
        let (from_id, to_id) = (self.id_of(from_port), self.id_of(to_port));
        let slot = slot.to_string();
        let ok = Reply::Status("OK".into());
        let importing = ["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id];
        assert_eq!(self.command_on(to_port, &importing), ok);
        let migrating = ["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id];
        assert_eq!(self.command_on(from_port, &migrating), ok);
        for key in keys {
            self.migrate_key(key, from_port, to_port);
        }
    }

    /// Moves what is left of `slot` to the primary on `to_port` and gives it the slot, on every
    /// primary (the end of `redis-cli --cluster reshard`'s work for one slot).
    pub fn finish_migration(&self, slot: u16, from_port: u16, to_port: u16) {
        let slot_text = slot.to_string();
        loop {
            let left = self.command_on(from_port, &["CLUSTER", "GETKEYSINSLOT", &slot_text, "100"]);
            let Reply::Array(Some(keys)) = left else {
                panic!("GETKEYSINSLOT {slot} on {from_port}: {left:?}");
            };
            if keys.is_empty() {
                break;
            }
            for key in &keys {
                self.migrate_key(&reply_text(key), from_port, to_port);
            }
        }
        let to_id = self.id_of(to_port);
        let owner = ["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id];
        // The destination first, then the source, as redis-cli does; then the other primaries.
        let mut order = vec![to_port, from_port];
        order.extend(
            self.nodes()
                .iter()
                .filter(|n| n.primary && n.port != to_port && n.port != from_port)
                .map(|n| n.port),
        );
        for port in order {
            assert_eq!(self.command_on(port, &owner), Reply::Status("OK".into()));
        }
    }

    /// Waits until `redis-cli --cluster check` finds nothing to warn about: every node agrees on
    /// who serves each slot (replicas learn a new owner by gossip) and no slot is half-moved.
    /// `redis-cli --cluster reshard` refuses to start before that.
    pub fn wait_agreed(&self, limit: Duration) -> bool {
        let port = self.live_ports()[0];
        wait_until(limit, || {
            Command::new("redis-cli")
                .args(["--cluster", "check", &format!("127.0.0.1:{port}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|out| {
                    out.status.success()
                        && !String::from_utf8_lossy(&out.stdout).contains("[WARNING]")
                })
        })
    }

    fn migrate_key(&self, key: &str, from_port: u16, to_port: u16) {
        let to = to_port.to_string();
        let reply = self.command_on(from_port, &["MIGRATE", "127.0.0.1", &to, key, "0", "5000"]);
        assert!(
            matches!(&reply, Reply::Status(s) if s == "OK" || s == "NOKEY"),
            "MIGRATE {key} from {from_port} to {to_port}: {reply:?}"
        );
    }

    fn id_of(&self, port: u16) -> String {
        self.nodes()
            .into_iter()
            .find(|n| n.port == port)
            .map(|n| n.id)
            .unwrap_or_else(|| panic!("no node on {port}: {}", self.describe()))
    }

    /// A one-line summary of the nodes, for failure messages.
    pub fn describe(&self) -> String {
        self.nodes()
            .iter()
            .map(|n| {
                format!(
                    "{}:{}{}",
                    n.port,
                    if n.primary { "primary" } else { "replica" },
                    if n.failed { "(failed)" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Polls until `condition` holds, returning the time it took; panics with `what` after `limit`.
pub fn time_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    assert!(wait_until(limit, &mut condition), "{what} within {limit:?}");
    started.elapsed()
}

fn parse_nodes(text: &str) -> Vec<NodeInfo> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags: Vec<&str> = f[2].split(',').collect();
            Some(NodeInfo {
                id: f[0].to_owned(),
                port,
                primary: flags.contains(&"master"),
                primary_id: (f[3] != "-").then(|| f[3].to_owned()),
                failed: flags.iter().any(|x| *x == "fail" || *x == "fail?"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_serves_every_slot_with_a_replica_per_primary() {
        let cluster = RedisCluster::start();
        let nodes = cluster.nodes();
        assert_eq!(nodes.len(), 6);
        let primaries: Vec<&NodeInfo> = nodes.iter().filter(|n| n.primary).collect();
        assert_eq!(primaries.len(), 3);
        for p in primaries {
            assert_ne!(cluster.replica_port_of(p.port), p.port);
        }
        assert!(cluster.url().starts_with("redis-cluster://127.0.0.1:"));
        assert!(!cluster.url().contains(":6379"));
        let port = cluster.primary_port_of("k");
        assert_eq!(
            cluster.command_on(port, &["SET", "k", "v"]),
            Reply::Status("OK".into())
        );
        assert_eq!(cluster.get("k"), Some(b"v".to_vec()));
    }
}
