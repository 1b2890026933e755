//! The health report: can the backend be reached, how fast, and what does it say about itself;
//! for a cluster or a sentinel group, one [`NodeHealth`] per server as well.

use serde::Serialize;

/// The answer of [`Cache::health_check`](crate::Cache::health_check); it never fails, a failure is
/// `healthy: false` with the error text.
///
/// Serializes to the JSON a health endpoint returns:
/// `{"healthy":true,"latency_ms":0.21,"version":"7.0.15",...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// True when the backend answered a PING within the socket timeout.
    pub healthy: bool,
    /// The PING round trip in milliseconds (or the time until the failure).
    pub latency_ms: f64,
    /// The server's version (`redis_version`, or `valkey_version`).
    pub version: Option<String>,
    /// The server's memory use as it reports it, for example `2.5M`.
    pub used_memory: Option<String>,
    /// Clients connected to the server.
    pub connected_clients: Option<u64>,
    /// Seconds since the server (or the in-process backend) started.
    pub uptime_seconds: Option<u64>,
    /// Why the check failed, when it did.
    pub error: Option<String>,
    /// Which backend answered: `redis`, `memory`, or `disabled`.
    pub backend: &'static str,
    /// The circuit breaker: `closed` (calls go to the backend) or `open` (calls skip it until a
    /// probe succeeds).
    pub circuit: &'static str,
    /// Each Redis server behind the cache: the one server, the primary a sentinel group pointed
    /// at, or every node of a cluster (primaries and replicas). Empty for the other backends, and
    /// when Redis could not be reached at all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeHealth>,
    /// Invalidations that could not reach Redis and wait to be replayed (see
    /// [`CacheStats::invalidations_pending`](crate::CacheStats::invalidations_pending)).
    pub invalidations_pending: u64,
}

/// One Redis server in a [`HealthReport`].
///
/// Primaries are asked directly (PING for the latency, then `INFO`); cluster replicas are
/// described as the cluster sees them (role, address, link state), so their latency and server
/// fields are `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct NodeHealth {
    /// `host:port` as the client reaches it.
    pub address: String,
    /// `primary` or `replica`.
    pub role: &'static str,
    /// True when the node answered (primaries), or the cluster sees it connected and not failing
    /// (replicas).
    pub healthy: bool,
    /// The PING round trip to this node in milliseconds, when it was measured.
    pub latency_ms: Option<f64>,
    /// Hash slots this node serves (cluster primaries only).
    pub slots: Option<u32>,
    /// The node's version (`redis_version`, or `valkey_version`).
    pub version: Option<String>,
    /// The node's memory use as it reports it, for example `2.5M`.
    pub used_memory: Option<String>,
    /// Clients connected to the node.
    pub connected_clients: Option<u64>,
    /// Seconds since the node started.
    pub uptime_seconds: Option<u64>,
    /// Why the node is unhealthy, when it is.
    pub error: Option<String>,
}

impl NodeHealth {
    /// A node seen but not (yet) asked anything.
    pub(crate) fn new(address: String, role: &'static str, healthy: bool) -> Self {
        NodeHealth {
            address,
            role,
            healthy,
            latency_ms: None,
            slots: None,
            version: None,
            used_memory: None,
            connected_clients: None,
            uptime_seconds: None,
            error: None,
        }
    }

    /// Fills the server fields (and the role) from the text of `INFO`.
    pub(crate) fn with_info(mut self, info: &str) -> Self {
        for (name, value) in info_fields(info) {
            match name {
                "redis_version" | "valkey_version" => self.version = Some(value.to_owned()),
                "used_memory_human" => self.used_memory = Some(value.to_owned()),
                "connected_clients" => self.connected_clients = value.parse().ok(),
                "uptime_in_seconds" => self.uptime_seconds = value.parse().ok(),
                "role" if value == "master" => self.role = "primary",
                "role" if value == "slave" => self.role = "replica",
                _ => {}
            }
        }
        self
    }
}

/// The `name:value` lines of an `INFO` reply.
fn info_fields(info: &str) -> impl Iterator<Item = (&str, &str)> {
    info.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
}

impl HealthReport {
    pub(crate) fn failed(backend: &'static str, latency_ms: f64, error: String) -> Self {
        HealthReport {
            healthy: false,
            latency_ms,
            version: None,
            used_memory: None,
            connected_clients: None,
            uptime_seconds: None,
            error: Some(error),
            backend,
            circuit: "closed",
            nodes: Vec::new(),
            invalidations_pending: 0,
        }
    }

    /// A healthy report with `latency_ms` and nothing else filled in yet.
    pub(crate) fn up(backend: &'static str, latency_ms: f64) -> Self {
        HealthReport {
            healthy: true,
            error: None,
            ..HealthReport::failed(backend, latency_ms, String::new())
        }
    }

    /// Fills the server fields from the text of `INFO`.
    pub(crate) fn with_info(mut self, info: &str) -> Self {
        for (name, value) in info_fields(info) {
            match name {
                "redis_version" => self.version = Some(value.to_owned()),
                "valkey_version" => self.version = Some(value.to_owned()),
                "used_memory_human" => self.used_memory = Some(value.to_owned()),
                "connected_clients" => self.connected_clients = value.parse().ok(),
                "uptime_in_seconds" => self.uptime_seconds = value.parse().ok(),
                _ => {}
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:86400\r\n# Clients\r\nconnected_clients:5\r\n# Memory\r\nused_memory:2621440\r\nused_memory_human:2.50M\r\n";
        let r = HealthReport::up("redis", 1.0).with_info(info);
        assert_eq!(r.version.as_deref(), Some("7.0.15"));
        assert_eq!(r.used_memory.as_deref(), Some("2.50M"));
        assert_eq!(r.connected_clients, Some(5));
        assert_eq!(r.uptime_seconds, Some(86400));
    }
}
