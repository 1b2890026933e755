//! The raw Redis connection of `cachectl`: one fred client built from the configuration's URL
//! (and TLS files) the way the library builds its pool, for the commands the library does not
//! expose (SCAN, MEMORY USAGE, GET of raw bytes, PTTL, UNLINK, DBSIZE).
//!
//! On a cluster, the keyspace is every primary's: SCAN walks each of them, DBSIZE adds theirs up,
//! and UNLINK goes key by key (the keys of one SCAN page may hash to many slots).

use std::pin::Pin;
use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::ClusterInterface;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, KeysInterface, ReconnectPolicy,
    ServerInterface,
};
use fred::types::scan::ScanResult;
use fred::types::Key;
use futures_util::Stream;

use super::Failure;
use crate::backend::redis::Topology;
use crate::config::BackendConfig;
use crate::config::CacheConfig;

/// A connected client, and what it is connected to.
pub(crate) struct Redis {
    pub(crate) client: Client,
    /// The URL without its password, for messages.
    pub(crate) url: String,
    /// The socket timeout (`REDIS_SOCKET_TIMEOUT`), bounding each command.
    pub(crate) timeout: Duration,
    /// One server, a sentinel group (whose primary holds every key) or a cluster.
    topology: Topology,
}

/// The pages of a SCAN over the whole keyspace.
pub(crate) type Pages = Pin<Box<dyn Stream<Item = Result<ScanResult, FredError>> + Send>>;

impl Redis {
    /// Connects to the configured Redis within the socket timeout; `command` names the
    /// subcommand in errors.
    pub(crate) async fn connect(config: &CacheConfig, command: &str) -> Result<Redis, Failure> {
        let url = match config.backend() {
            BackendConfig::Redis(url) => url,
            BackendConfig::Memory { .. } => {
                return Err(Failure::usage(format!(
                    "`cachectl {command}` needs a Redis backend: the in-process backend lives \
                     inside the service that uses it (set REDIS_URL)"
                )))
            }
        };
        let shown = url.redacted();
        let mut fred_config = Config::from_url(url.expose())
            .map_err(|e| Failure::usage(format!("REDIS_URL {shown}: {}", e.details())))?;
        let topology = Topology::of(&fred_config.server);
        #[cfg(feature = "tls")]
        if fred_config.tls.is_some() {
            if let Some(custom) = crate::backend::redis::tls::client_config(config.tls())
                .map_err(|e| Failure::usage(format!("TLS for {shown}: {e}")))?
            {
                fred_config.tls = Some(custom);
            }
        }
        fred_config.fail_fast = true;
        let timeout = config.socket_timeout();
        let client = Builder::from_config(fred_config)
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                c.max_command_attempts = 1;
            })
            .set_policy(ReconnectPolicy::new_constant(1, 100))
            .build()
            .map_err(|e| Failure::failed(format!("{shown}: {}", e.details())))?;
        let connected = tokio::time::timeout(timeout, client.init()).await;
        match connected {
            Ok(Ok(_task)) => Ok(Redis {
                client,
                url: shown,
                timeout,
                topology,
            }),
            Ok(Err(e)) => Err(Failure::failed(format!(
                "cannot connect to {shown}: {}",
                describe(&e)
            ))),
            Err(_) => {
                let _ = client.quit().await;
                Err(Failure::failed(format!(
                    "cannot connect to {shown}: no answer within {timeout:?} (REDIS_SOCKET_TIMEOUT)"
                )))
            }
        }
    }

    /// The number of keys in the database (DBSIZE; on a cluster, every primary's together).
    pub(crate) async fn dbsize(&self) -> Result<u64, Failure> {
        match self.topology {
            Topology::Standalone | Topology::Sentinel => {
                return self
                    .client
                    .dbsize::<u64>()
                    .await
                    .map_err(|e| self.error("DBSIZE", &e))
            }
            Topology::Cluster => {}
        }
        let mut total = 0;
        for primary in self.primaries() {
            let on_node = self.client.with_cluster_node(primary.clone());
            total += on_node
                .dbsize::<u64>()
                .await
                .map_err(|e| self.error(&format!("DBSIZE on {primary}"), &e))?;
        }
        Ok(total)
    }

    /// How many servers hold keys: the primaries of a cluster, else one.
    pub(crate) fn servers(&self) -> usize {
        match self.topology {
            Topology::Standalone | Topology::Sentinel => 1,
            Topology::Cluster => self.primaries().len().max(1),
        }
    }

    fn primaries(&self) -> Vec<fred::types::config::Server> {
        self.client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default()
    }

    /// SCAN of the keys matching `pattern`, `count` at a time, on every server that holds keys.
    /// On a cluster the primaries are walked at once and their pages interleave; a page without
    /// more ([`has_more`](fred::types::scan::Scanner::has_more) false) ends one primary's walk.
    pub(crate) fn scan(&self, pattern: &str, count: u32) -> Pages {
        match self.topology {
            Topology::Standalone | Topology::Sentinel => {
                Box::pin(self.client.scan(pattern.to_owned(), Some(count), None))
            }
            Topology::Cluster => Box::pin(self.client.scan_cluster(
                pattern.to_owned(),
                Some(count),
                None,
            )),
        }
    }

    /// UNLINK of `keys`; how many existed. One command on one server; on a cluster one per key,
    /// pipelined (the keys may hash to many slots).
    pub(crate) async fn unlink(&self, keys: Vec<Key>) -> Result<u64, FredError> {
        match self.topology {
            Topology::Standalone | Topology::Sentinel => {
                return self.client.unlink::<u64, _>(keys).await
            }
            Topology::Cluster => {}
        }
        let pipeline = self.client.pipeline();
        for key in keys {
            let _: () = pipeline.unlink(key).await?;
        }
        let counts: Vec<u64> = pipeline.all().await?;
        Ok(counts.into_iter().sum())
    }

    /// The error of `command`, with the server it was sent to.
    pub(crate) fn error(&self, command: &str, error: &FredError) -> Failure {
        Failure::failed(format!("{command} on {}: {}", self.url, describe(error)))
    }

    /// Closes the connection (QUIT), ignoring errors: the answer is already printed.
    pub(crate) async fn close(self) {
        let _ = tokio::time::timeout(self.timeout, self.client.quit()).await;
    }
}

/// fred's error without the URL (fred's messages never quote credentials, but keep them short).
fn describe(error: &FredError) -> String {
    let details = error.details();
    // I/O errors come as the Debug form of `std::io::Error`: keep its message.
    if let Some((_, rest)) = details.split_once("message: \"") {
        if let Some((message, _)) = rest.split_once('"') {
            return message.to_owned();
        }
    }
    if details.is_empty() {
        format!("{:?}", error.kind())
    } else {
        details.to_owned()
    }
}
