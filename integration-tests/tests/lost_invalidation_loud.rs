//! An invalidation of two patterns while Redis is down, failing loudly
//! (`CACHE_FAIL_SILENTLY=false`, through the builder): the call returns `Err`, and yet neither
//! pattern's keys may serve old values once Redis is back with its data.
//!
//! The contract: "after an invalidation returns, no caller in this process gets a value computed
//! before it, even when Redis was down at the time (the delete is kept and replayed)". Returning
//! `Err` tells the caller the delete did not happen *yet*; the data underneath has changed all
//! the same (the body ran and succeeded), so both deletes must still be kept and replayed, the
//! second pattern's included.
//!
//! Its own test binary: it sets up the process-wide cache that `#[cached]` uses, failing loudly.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, CacheConfig, CacheError};
use integration_tests::{RedisServer, Reply};

#[derive(Debug, Clone, PartialEq)]
enum AppError {
    Cache(CacheError),
}

impl From<CacheError> for AppError {
    fn from(e: CacheError) -> Self {
        AppError::Cache(e)
    }
}

/// The "database": one version number behind both key spaces.
static DB: AtomicU64 = AtomicU64::new(1);
static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 600, key_prefix = "loud_a")]
async fn first(id: u64) -> Result<u64, AppError> {
    RUNS.fetch_add(1, SeqCst);
    Ok(DB.load(SeqCst) * 100 + id)
}

#[cached(ttl = 600, key_prefix = "loud_b")]
async fn second(id: u64) -> Result<u64, AppError> {
    RUNS.fetch_add(1, SeqCst);
    Ok(DB.load(SeqCst) * 1000 + id)
}

#[invalidate_cache("loud_a:*", "loud_b:*")]
async fn update(version: u64) -> Result<(), AppError> {
    DB.store(version, SeqCst);
    Ok(())
}

/// The four cached values under two patterns: `(first(1), first(2), second(1), second(2))`.
async fn all() -> [Result<u64, AppError>; 4] {
    [
        first(1).await,
        first(2).await,
        second(1).await,
        second(2).await,
    ]
}

/// Redis down: a two-pattern invalidation returns `Err`. Redis back with its data: none of the
/// four cached values from before the change is served, under either pattern.
#[tokio::test]
async fn a_failed_two_pattern_invalidation_is_still_replayed_for_both_patterns() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(Duration::from_secs(1))
        .fail_silently(false)
        .breaker_probe_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();

    let old = [Ok(101), Ok(102), Ok(1001), Ok(1002)];
    assert_eq!(all().await, old);
    assert_eq!(all().await, old);
    assert_eq!(RUNS.load(SeqCst), 4, "cached; {:?}", cache.stats());
    assert_eq!(server.dbsize(), 4);
    assert_eq!(
        server.cmd("SET setup:survives yes"),
        Reply::Status("OK".into())
    );

    server.kill();
    let started = Instant::now();
    let result = update(2).await;
    println!(
        "invalidation with Redis down: {result:?} in {:?}",
        started.elapsed()
    );
    assert!(
        matches!(result, Err(AppError::Cache(_))),
        "failing loudly, the failed delete is reported: {result:?}"
    );

    server.restart();
    assert_eq!(
        server.cmd("GET setup:survives"),
        Reply::Bulk(Some(b"yes".to_vec())),
        "the append-only file kept the data across the restart"
    );

    // Failing loudly, calls return `Err` until the cache is connected again; after that, each
    // of the four must be the new value, under both patterns.
    let new = [Ok(201), Ok(202), Ok(2001), Ok(2002)];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut good_rounds = 0;
    let mut rounds = 0;
    while Instant::now() < deadline && good_rounds < 5 {
        rounds += 1;
        let values = all().await;
        for (got, (old, new)) in values.iter().zip(old.iter().zip(new.iter())) {
            assert_ne!(
                got,
                old,
                "round {rounds}: a value cached before the invalidation was served: {values:?}; {:?}",
                cache.stats()
            );
            assert!(got == new || got.is_err(), "round {rounds}: {values:?}");
        }
        if values == new {
            good_rounds += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        good_rounds,
        5,
        "the cache did not serve the four new values within 5 s; {:?}",
        cache.stats()
    );
    println!("{rounds} rounds after the restart; {:?}", cache.stats());
}
