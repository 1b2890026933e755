//! `cachectl invalidate PATTERN`: deletes the keys matching a Redis glob (SCAN + UNLINK, as
//! [`Cache::clear_pattern`](crate::Cache::clear_pattern) does), with a dry run, a progress
//! display, and a confirmation on stdin before deleting more than `--confirm-above` keys.
//!
//! When a confirmation may be needed, a first SCAN pass counts the matching keys; the deleting
//! pass then removes what matches at that time and reports UNLINK's own count.

use std::io::{BufRead, IsTerminal};

use fred::types::scan::Scanner;
use fred::types::Key;
use futures_util::StreamExt;

use super::connect::Redis;
use super::progress::{self, Mode, Progress};
use super::{Failure, EXIT_FAILED};
use crate::config::CacheConfig;

/// Keys asked for per SCAN step, as `clear_pattern` does.
const SCAN_COUNT: u32 = 1000;

/// The options of `cachectl invalidate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A Redis glob pattern such as `user:get_user:*` (quote it in the shell). Empty is refused;
    /// `*` deletes everything and asks first like any other.
    pattern: String,
    /// Only count the matching keys; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete without asking, however many keys match.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Ask on stdin before deleting more than this many keys.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    confirm_above: u64,
    /// Progress on stderr: `auto` (a bar on a terminal, plain lines otherwise), `bar`, `plain`,
    /// `none`. `--progress` alone means `plain`.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "plain",
        value_name = "MODE"
    )]
    progress: Mode,
    /// A plain progress line every this many keys scanned.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    progress_every: u64,
}

pub(super) async fn run(config: &CacheConfig, args: &Args) -> Result<(), Failure> {
    if args.pattern.is_empty() {
        return Err(Failure::usage(
            "refusing an empty pattern: give a glob such as 'user:*' ('*' for every key)",
        ));
    }
    cache_keys::pattern::validate(&args.pattern)
        .map_err(|e| Failure::usage(format!("pattern {:?}: {e}", args.pattern)))?;
    let redis = Redis::connect(config, "invalidate").await?;
    let outcome = invalidate(&redis, args).await;
    redis.close().await;
    outcome
}

async fn invalidate(redis: &Redis, args: &Args) -> Result<(), Failure> {
    let pattern = &args.pattern;
    if args.dry_run {
        let total = redis.dbsize().await?;
        let matched = walk(redis, args, total, Pass::Count).await?;
        println!("dry run: {matched} keys match '{pattern}'; nothing deleted");
        return Ok(());
    }
    if !args.yes {
        let total = redis.dbsize().await?;
        let matched = walk(redis, args, total, Pass::Count).await?;
        if matched == 0 {
            println!("deleted 0 keys matching '{pattern}' (none matched)");
            return Ok(());
        }
        if matched > args.confirm_above && !confirm(matched, pattern).await? {
            println!("aborted: nothing deleted ({matched} keys match '{pattern}')");
            return Err(Failure::silent(EXIT_FAILED));
        }
    }
    let total = redis.dbsize().await?;
    let deleted = walk(redis, args, total, Pass::Delete).await?;
    println!("deleted {deleted} keys matching '{pattern}'");
    Ok(())
}

/// What a SCAN pass does with the matching keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Count,
    Delete,
}

/// One SCAN pass over the keys matching the pattern: counts them, or UNLINKs them and counts
/// what UNLINK removed.
async fn walk(redis: &Redis, args: &Args, total: u64, pass: Pass) -> Result<u64, Failure> {
    let verb = match pass {
        Pass::Count => "matching",
        Pass::Delete => "deleted",
    };
    let mut progress = Progress::start(args.progress, total, args.progress_every, verb);
    let mut pages = redis.scan(&args.pattern, SCAN_COUNT);
    let mut counted = 0u64;
    // On a cluster, how many primaries have been walked to the end, of how many.
    let servers = redis.servers();
    let mut servers_done = 0usize;
    loop {
        let mut page = match tokio::time::timeout(redis.timeout, pages.next()).await {
            Err(_) => {
                progress.finish(counted);
                return Err(Failure::failed(format!(
                    "SCAN on {}: no answer within {:?}; {counted} keys {verb} so far",
                    redis.url, redis.timeout
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                progress.finish(counted);
                let failure = redis.error("SCAN", &e);
                return Err(Failure::failed(format!(
                    "{failure}; {counted} keys {verb} so far"
                )));
            }
            Ok(Some(Ok(page))) => page,
        };
        let keys: Vec<Key> = page.take_results().unwrap_or_default();
        let share = if servers == 1 {
            progress::scanned_share(page.cursor().as_deref(), page.has_more())
        } else {
            servers_done += usize::from(!page.has_more());
            servers_done as f64 / servers as f64
        };
        // Ask for the next page before removing this one, so that both travel at once.
        page.next();
        match pass {
            Pass::Count => counted += keys.len() as u64,
            Pass::Delete if keys.is_empty() => {}
            Pass::Delete => {
                let removed = tokio::time::timeout(redis.timeout, redis.unlink(keys)).await;
                match removed {
                    Ok(Ok(n)) => counted += n,
                    Ok(Err(e)) => {
                        progress.finish(counted);
                        let failure = redis.error("UNLINK", &e);
                        return Err(Failure::failed(format!(
                            "{failure}; {counted} keys deleted before it"
                        )));
                    }
                    Err(_) => {
                        progress.finish(counted);
                        return Err(Failure::failed(format!(
                            "UNLINK on {}: no answer within {:?}; {counted} keys deleted before it",
                            redis.url, redis.timeout
                        )));
                    }
                }
            }
        }
        progress.update(share, counted);
    }
    progress.finish(counted);
    Ok(counted)
}

/// Asks on stderr, reads the answer from stdin: true only for `y` or `yes`. End of input
/// (no terminal, nothing piped) is a no.
async fn confirm(matched: u64, pattern: &str) -> Result<bool, Failure> {
    eprint!("delete {matched} keys matching '{pattern}'? [y/N] ");
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| Failure::failed(format!("reading the answer: {e}")))?
    .map_err(|e| Failure::failed(format!("reading the answer from stdin: {e}")))?;
    let answer = answer.trim().to_ascii_lowercase();
    // A terminal echoes the typed answer and its newline; piped input does not.
    if answer.is_empty() || !std::io::stdin().is_terminal() {
        eprintln!();
    }
    Ok(answer == "y" || answer == "yes")
}
