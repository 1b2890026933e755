//! The raw Redis connection of `cachectl`: one fred client built from the configuration's URL
//! (and TLS files) the way the library builds its pool, for the commands the library does not
//! expose (SCAN, MEMORY USAGE, GET of raw bytes, PTTL, UNLINK, DBSIZE).

use std::time::Duration;

use fred::clients::Client;
use fred::prelude::{
    Builder, ClientLike, Config, Error as FredError, ReconnectPolicy, ServerInterface,
};
use fred::types::config::ServerConfig;

use super::Failure;
use crate::config::BackendConfig;
use crate::CacheConfig;

/// A connected client, and what it is connected to.
pub(crate) struct Redis {
    pub(crate) client: Client,
    /// The URL without its password, for messages.
    pub(crate) url: String,
    /// The socket timeout (`REDIS_SOCKET_TIMEOUT`), bounding each command.
    pub(crate) timeout: Duration,
}

/// What `cachectl` can do on a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Keys by name only (GET, PTTL): any deployment.
    Keys,
    /// The whole keyspace (SCAN, DBSIZE): one server, or the primary a sentinel group names.
    /// Clusters are refused: SCAN would have to walk every primary and UNLINK split per slot,
    /// which `cachectl` does not do yet.
    Keyspace,
}

impl Redis {
    /// Connects to the configured Redis within the socket timeout; `command` names the
    /// subcommand in errors.
    pub(crate) async fn connect(
        config: &CacheConfig,
        command: &str,
        reach: Reach,
    ) -> Result<Redis, Failure> {
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
        if reach == Reach::Keyspace && matches!(fred_config.server, ServerConfig::Clustered { .. })
        {
            return Err(Failure::usage(format!(
                "`cachectl {command}` does not support Redis Cluster yet ({shown}): it would have \
                 to SCAN every primary and split UNLINK per hash slot"
            )));
        }
        #[cfg(feature = "tls")]
        if fred_config.tls.is_some() {
            if let Some(custom) = crate::backend::tls::client_config(config.tls())
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

    /// The number of keys in the database (DBSIZE).
    pub(crate) async fn dbsize(&self) -> Result<u64, Failure> {
        self.client
            .dbsize::<u64>()
            .await
            .map_err(|e| self.error("DBSIZE", &e))
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
