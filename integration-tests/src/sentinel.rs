//! A sentinel group of this test: a primary, its replica, and three `redis-sentinel` processes
//! watching them, each on its own free loopback port.
//!
//! Sentinels consider the primary down after 1 s without an answer and need two of three to
//! agree, so a killed primary is replaced within a few seconds. Sentinels run under the same
//! watchdog shell as [`RedisServer`]s: stopped by pid on drop, and killed when the test process
//! dies.

use std::path::PathBuf;
use std::time::Duration;

use crate::{
    command_at, free_port, reply_text, require_binary, wait_until, RedisServer, Reply, Watched,
};

/// The service name the sentinels monitor.
pub const SERVICE: &str = "cachetest";
/// `down-after-milliseconds` of the test sentinels.
pub const DOWN_AFTER_MS: u64 = 1000;

/// One `redis-sentinel` process.
#[derive(Debug)]
pub struct Sentinel {
    port: u16,
    dir: PathBuf,
    process: Option<Watched>,
}

impl Sentinel {
    /// Starts a sentinel monitoring the primary on `primary_port`.
    fn start(primary_port: u16) -> Sentinel {
        require_binary("redis-sentinel");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("cache-test-sentinel-{}-{port}", std::process::id()));
            let mut sentinel = Sentinel {
                port,
                dir,
                process: None,
            };
            match sentinel.launch(primary_port) {
                Ok(()) => return sentinel,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-sentinel: {last_error}");
    }

    fn launch(&mut self, primary_port: u16) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("scratch dir: {e}"))?;
        let conf = self.dir.join("sentinel.conf");
        // Sentinel rewrites its configuration file as it learns, so it gets a file of its own.
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile sentinel.log\n\
             sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {SERVICE} 4000\n\
             sentinel parallel-syncs {SERVICE} 1\n",
            port = self.port,
            dir = self.dir.display(),
        );
        std::fs::write(&conf, text).map_err(|e| format!("sentinel.conf: {e}"))?;
        self.process = Some(Watched::spawn(
            "redis-sentinel",
            &[conf.to_string_lossy().into_owned()],
        )?);
        let port = self.port;
        if !wait_until(
            Duration::from_secs(10),
            || matches!(command_at(port, &["PING"]), Ok(Reply::Status(ref s)) if s == "PONG"),
        ) {
            let log = std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default();
            self.kill();
            return Err(format!("port {port}: not answering; log:\n{log}"));
        }
        Ok(())
    }

    /// The sentinel's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the sentinel (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// The primary's port according to this sentinel.
    pub fn primary_port(&self) -> Option<u16> {
        match command_at(self.port, &["SENTINEL", "get-master-addr-by-name", SERVICE]) {
            Ok(Reply::Array(Some(parts))) => match parts.get(1) {
                Some(Reply::Bulk(Some(port))) => String::from_utf8_lossy(port).parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }

    /// How many entries `SENTINEL {what} {SERVICE}` lists (`replicas`, `sentinels`).
    fn count(&self, what: &str) -> usize {
        match command_at(self.port, &["SENTINEL", what, SERVICE]) {
            Ok(Reply::Array(Some(items))) => items.len(),
            _ => 0,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary, one replica and three sentinels.
#[derive(Debug)]
pub struct SentinelGroup {
    /// The servers: the first starts as the primary, the second as its replica.
    pub servers: Vec<RedisServer>,
    /// The three sentinels.
    pub sentinels: Vec<Sentinel>,
}

impl SentinelGroup {
    /// Starts the servers and sentinels and waits until every sentinel knows the replica and
    /// the two other sentinels (without which it could not fail over).
    pub fn start() -> SentinelGroup {
        let primary = RedisServer::start();
        let primary_port = primary.port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary_port]);
        assert!(
            wait_until(Duration::from_secs(10), || {
                replica
                    .info_field("replication", "master_link_status")
                    .as_deref()
                    == Some("up")
            }),
            "the replica did not sync"
        );
        let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(primary.port())).collect();
        let group = SentinelGroup {
            servers: vec![primary, replica],
            sentinels,
        };
        assert!(
            wait_until(Duration::from_secs(20), || {
                group
                    .sentinels
                    .iter()
                    .all(|s| s.count("replicas") == 1 && s.count("sentinels") == 2)
            }),
            "the sentinels did not discover each other and the replica"
        );
        group
    }

    /// `redis-sentinel://127.0.0.1:{s1}/0?sentinelServiceName=..&node=127.0.0.1:{s2}&node=..`.
    pub fn url(&self) -> String {
        let rest: Vec<String> = self.sentinels[1..]
            .iter()
            .map(|s| format!("&node=127.0.0.1:{}", s.port()))
            .collect();
        format!(
            "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName={SERVICE}{}",
            self.sentinels[0].port(),
            rest.concat()
        )
    }

    /// The primary's port as a majority of the sentinels report it.
    pub fn primary_port(&self) -> Option<u16> {
        let ports: Vec<u16> = self
            .sentinels
            .iter()
            .filter_map(Sentinel::primary_port)
            .collect();
        ports
            .iter()
            .copied()
            .find(|p| ports.iter().filter(|q| *q == p).count() >= 2)
    }

    /// The server on `port`.
    pub fn server(&self, port: u16) -> &RedisServer {
        self.servers
            .iter()
            .find(|s| s.port() == port)
            .unwrap_or_else(|| panic!("no server on {port}"))
    }

    /// Kills the server on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        self.servers
            .iter_mut()
            .find(|s| s.port() == port)
            .unwrap_or_else(|| panic!("no server on {port}"))
            .kill();
    }

    /// Whether the server on `port` is a primary that accepts writes.
    pub fn is_writable_primary(&self, port: u16) -> bool {
        command_at(port, &["INFO", "replication"])
            .map(|r| reply_text(&r).contains("role:master"))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_name_the_primary() {
        let group = SentinelGroup::start();
        let primary = group.servers[0].port();
        assert_eq!(group.primary_port(), Some(primary));
        assert!(group.is_writable_primary(primary));
        assert!(!group.is_writable_primary(group.servers[1].port()));
        assert!(group.url().contains("sentinelServiceName=cachetest"));
        assert!(!group.url().contains(":6379"));
    }
}
