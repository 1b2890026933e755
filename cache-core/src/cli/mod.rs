//! `cachectl`, the operator's tool (feature `cli`): the command line (clap), the configuration
//! and connection it shares with the library, and [`run`], which dispatches to one module per
//! subcommand: [`health`], [`stats`], [`inspect`], [`invalidate`].
//!
//! Every subcommand reads the same `REDIS_*` / `CACHE_*` variables and `.env` file as
//! [`CacheConfig::from_env`]. Exit codes: [`EXIT_OK`] when all is well, [`EXIT_FAILED`] when
//! the answer is "no" (unhealthy, no such key, not a cache value, Redis unreachable, deletion
//! declined), [`EXIT_USAGE`] for a bad command line or configuration. Nothing panics: every
//! error is printed on stderr with its context.

mod connect;
mod health;
mod inspect;
mod invalidate;
mod progress;
mod stats;

use std::fmt;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::CacheConfig;

pub use stats::key_space;

/// Success.
pub const EXIT_OK: u8 = 0;
/// The check failed or the operation could not be done (unhealthy, missing key, corrupt value,
/// Redis unreachable, deletion declined).
pub const EXIT_FAILED: u8 = 1;
/// A bad command line or configuration (clap's own usage errors use it too).
pub const EXIT_USAGE: u8 = 2;

/// The command line of `cachectl`.
#[derive(Debug, Parser)]
#[command(
    name = "cachectl",
    version,
    about = "Operate the Redis behind cache-core: health, key-space statistics, value inspection, \
             invalidation by pattern",
    long_about = "Operate the Redis behind cache-core: health, key-space statistics, value \
                  inspection, invalidation by pattern.\n\nReads REDIS_URL (or REDIS_HOST, \
                  REDIS_PORT, REDIS_DB, REDIS_PASSWORD), REDIS_SOCKET_TIMEOUT, CACHE_* and a .env \
                  file in the working directory, as the library does.\n\nExit codes: 0 success, \
                  1 unhealthy / not found / not a cache value / Redis error / declined, 2 usage \
                  or configuration error."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Check that Redis answers; exit code 0 when healthy, 1 when not.
    Health {
        /// Print the report as JSON (the shape of `HealthReport`).
        #[arg(long)]
        json: bool,
    },
    /// Keys and memory per key space (`prefix:function`), from a SCAN sample.
    Stats {
        /// How many keys to sample (SCAN, then MEMORY USAGE of each).
        #[arg(long, default_value_t = stats::DEFAULT_SAMPLE, value_name = "N")]
        sample: u64,
    },
    /// Show a stored value: its envelope header, TTL, and the value when it is JSON.
    Inspect {
        /// The exact key (not a pattern).
        key: String,
    },
    /// Delete the keys matching a Redis glob pattern (SCAN + UNLINK).
    Invalidate(invalidate::Args),
}

/// Why a subcommand ended without success: the message for stderr and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// [`EXIT_FAILED`] with `message`.
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }

    /// [`EXIT_USAGE`] with `message`.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// Exits with `code` without a message (the subcommand printed its own answer).
    pub(crate) fn silent(code: u8) -> Self {
        Failure {
            code,
            message: String::new(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The entry point of the `cachectl` binary: parses the command line and the environment, runs
/// the subcommand on a runtime of its own, prints any error on stderr, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(cli))
}

/// Runs a parsed command line; the exit code.
pub fn run(cli: Cli) -> u8 {
    let outcome = CacheConfig::from_env()
        .map_err(|e| Failure::usage(format!("configuration: {e}")))
        .and_then(|config| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(dispatch(cli.command, config))
        });
    match outcome {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("cachectl: {failure}");
            }
            failure.code
        }
    }
}

async fn dispatch(command: Command, config: CacheConfig) -> Result<(), Failure> {
    match command {
        Command::Health { json } => health::run(config, json).await,
        Command::Stats { sample } => stats::run(&config, sample).await,
        Command::Inspect { key } => inspect::run(&config, &key).await,
        Command::Invalidate(args) => invalidate::run(&config, &args).await,
    }
}
