//! The process-wide cache that the attributes use: set up once, by [`init`] or lazily from the
//! environment by [`get_cache`]. Its setup checks the registered key spaces
//! ([`registry::verify`](crate::registry::verify)) as `CACHE_VERIFY_KEYS` says.
//!
//! Concurrent first callers share one setup attempt: with Redis unreachable and failing loudly,
//! they all get its error after one connect timeout, not one timeout each in turn. A failed
//! attempt is not remembered, so a later call tries again. [`shutdown`] delivers what it still
//! has pending before the process exits.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt as _, Shared};

use crate::stats::ShutdownReport;
use crate::{cache::Cache, config::CacheConfig, error::CacheError};

static GLOBAL: OnceLock<Cache> = OnceLock::new();

/// Invalidations made while the process-wide cache could not be set up (failing loudly with
/// Redis down at first use): nothing to keep them in yet, so they wait here, and the cache that
/// comes up makes them pending (its reads of the keys they cover are misses until they are
/// replayed). At most [`MAX_ORPHANED`]; past it, each is logged at error and dropped.
static ORPHANED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The most invalidations kept before the process-wide cache exists.
const MAX_ORPHANED: usize = 10_000;

/// One setup of the process-wide cache, awaited by every caller that arrives while it runs.
type Attempt = Shared<BoxFuture<'static, Result<Cache, CacheError>>>;

/// The setup attempt under way, if any.
static ATTEMPT: Mutex<Option<Attempt>> = Mutex::new(None);

/// Sets up the process-wide cache from `config` and returns it.
///
/// When it already exists with an equal configuration (a second `init` in the same test binary,
/// say), returns it; with a different one, fails with [`CacheError::AlreadyInitialized`]. See
/// [`Cache::new`] for what happens when Redis is down.
pub async fn init(config: CacheConfig) -> Result<Cache, CacheError> {
    if let Some(cache) = GLOBAL.get() {
        return same_config(cache, &config);
    }
    let cache = setup(config.clone()).await?;
    same_config(&cache, &config)
}

/// Sets up the process-wide cache from the environment and `.env` ([`CacheConfig::from_env`]).
pub async fn init_from_env() -> Result<Cache, CacheError> {
    init(CacheConfig::from_env()?).await
}

/// The process-wide cache, set up from the environment on first use if [`init`] was not called.
///
/// Concurrent first calls share one setup; the others wait for it.
pub async fn get_cache() -> Result<Cache, CacheError> {
    if let Some(cache) = GLOBAL.get() {
        return Ok(cache.clone());
    }
    setup(CacheConfig::from_env()?).await
}

/// The process-wide cache if it is set up, without waiting or setting it up.
pub(crate) fn initialized() -> Option<&'static Cache> {
    GLOBAL.get()
}

/// Keeps invalidations that found no process-wide cache (see [`ORPHANED`]).
pub(crate) fn keep_orphaned(patterns: &[String]) {
    let mut orphaned = ORPHANED.lock().unwrap_or_else(PoisonError::into_inner);
    for pattern in patterns {
        if orphaned.len() < MAX_ORPHANED {
            orphaned.push(pattern.clone());
        } else {
            tracing::error!(
                space = crate::telemetry::At::Pattern(pattern).space(),
                "invalidation lost: no cache could be set up and {MAX_ORPHANED} invalidations \
                 already wait for one; the keys it covers may serve old values until they expire"
            );
        }
    }
}

/// `cache` when it was made from `config`.
fn same_config(cache: &Cache, config: &CacheConfig) -> Result<Cache, CacheError> {
    if cache.config() == config {
        Ok(cache.clone())
    } else {
        Err(CacheError::AlreadyInitialized)
    }
}

/// Joins the setup attempt under way, or starts one from `config`; the process-wide cache once
/// it exists (whichever attempt made it).
async fn setup(config: CacheConfig) -> Result<Cache, CacheError> {
    let attempt = {
        let mut slot = ATTEMPT.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(attempt) => attempt.clone(),
            None => {
                let attempt = async move {
                    crate::registry::apply(config.verify_keys()).map_err(CacheError::KeySpaces)?;
                    let cache = Cache::new(config).await?;
                    let global = GLOBAL.get_or_init(|| cache);
                    let orphaned = std::mem::take(
                        &mut *ORPHANED.lock().unwrap_or_else(PoisonError::into_inner),
                    );
                    global.policy().adopt_pending(&orphaned);
                    crate::shutdown::watch_exit(global);
                    Ok(global.clone())
                }
                .boxed()
                .shared();
                *slot = Some(attempt.clone());
                attempt
            }
        }
    };
    let result = attempt.clone().await;
    let mut slot = ATTEMPT.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.as_ref().is_some_and(|a| a.ptr_eq(&attempt)) {
        // Done, one way or the other: the next caller finds the cache, or tries again.
        *slot = None;
    }
    result
}

/// Delivers the process-wide cache's pending invalidations within `deadline` and reports what
/// could not be delivered: call it at the end of `main`, after the work that invalidates.
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> Result<(), cache_core::CacheError> {
///     cache_core::init_from_env().await?;
///     // ... serve until told to stop ...
///     let report = cache_core::shutdown(std::time::Duration::from_secs(5)).await;
///     if !report.is_clean() {
///         eprintln!("{} invalidations were not delivered", report.undelivered.len());
///     }
///     Ok(())
/// }
/// ```
///
/// Without a process-wide cache (never set up), there is nothing to deliver.
pub async fn shutdown(deadline: Duration) -> ShutdownReport {
    match initialized() {
        Some(cache) => cache.shutdown(deadline).await,
        None => ShutdownReport::default(),
    }
}
