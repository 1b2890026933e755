//! The three deployments a `REDIS_URL` can name, and what the backend does differently for each.
//!
//! Every place that differs matches on [`Topology`] exhaustively, so a new deployment kind is a
//! compile error at each of them rather than a silent fall-through to the single-server path.

use fred::types::config::ServerConfig;

/// How the Redis deployment is laid out, read once from the parsed URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server (`redis://`, `rediss://`).
    Standalone,
    /// A primary found through sentinels (`redis-sentinel://`). fred asks the sentinels on every
    /// (re)connection; past that, commands go to one server as with [`Topology::Standalone`].
    Sentinel,
    /// A Redis Cluster (`redis-cluster://`): each key lives on the primary serving its hash
    /// slot. fred routes single-key commands and follows `MOVED`/`ASK`, but sends a multi-key
    /// command whole to its first key's node, so multi-key work is split per key, and SCAN runs
    /// on every primary.
    Cluster,
}

impl Topology {
    /// The topology of fred's server configuration.
    pub(crate) fn of(server: &ServerConfig) -> Self {
        match server {
            ServerConfig::Centralized { .. } => Topology::Standalone,
            ServerConfig::Sentinel { .. } => Topology::Sentinel,
            ServerConfig::Clustered { .. } => Topology::Cluster,
        }
    }

    /// How many times fred may send one command.
    ///
    /// One on a single server: a failed command is not resent behind a dead socket. On a cluster,
    /// one more than [`MAX_REDIRECTIONS`] (see there). The socket timeout bounds the whole call
    /// either way.
    pub(crate) fn command_attempts(self) -> u32 {
        match self {
            Topology::Standalone | Topology::Sentinel => 1,
            Topology::Cluster => MAX_REDIRECTIONS + 1,
        }
    }
}

/// How many `MOVED`/`ASK` redirections fred may follow for one command; kept below the cluster's
/// [`Topology::command_attempts`].
///
/// fred 10.1 mishandles `ASK` (a key of a slot being migrated that has already moved): it sends
/// `ASKING` to the new node, then the command to the old one again, which answers `ASK` again.
/// Each turn spends one attempt and one redirection. If the attempts run out first, fred's router
/// task ends for good and the client never answers again (every later command times out). If the
/// redirections run out first, only that command fails ("Too many redirections"): the cache reads
/// it as a miss, or keeps the invalidation pending, until the slot has moved. A `MOVED` (the
/// slot has moved for good) needs one redirection.
pub(crate) const MAX_REDIRECTIONS: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use fred::prelude::Config;

    #[test]
    fn each_url_scheme_maps_to_its_topology() {
        let of = |url: &str| Topology::of(&Config::from_url(url).unwrap().server);
        assert_eq!(of("redis://127.0.0.1:7000"), Topology::Standalone);
        assert_eq!(of("rediss://127.0.0.1:7000"), Topology::Standalone);
        assert_eq!(
            of("redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=main"),
            Topology::Sentinel
        );
        assert_eq!(
            of("redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001"),
            Topology::Cluster
        );
        assert!(Topology::Cluster.command_attempts() > MAX_REDIRECTIONS);
        assert_eq!(Topology::Sentinel.command_attempts(), 1);
    }
}
