//! An invalidation while Redis is down must not be lost (failing silently, the default).
//!
//! The contract: "after an invalidation returns, no caller in this process gets a value computed
//! before it, even when Redis was down at the time (the delete is kept and replayed)". Redis runs
//! with an append-only file, fsynced on every write, so a SIGKILL loses nothing and the old value
//! is still in Redis when it comes back: only a replayed delete can keep it from being served.
//!
//! Its own test binary: it sets up the process-wide cache that `#[cached]` uses.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, CacheConfig};
use integration_tests::{RedisServer, Reply};

/// The "database" behind the cached function.
static PRICE_DB: AtomicU64 = AtomicU64::new(1);
static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 600, key_prefix = "lost")]
async fn price(id: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    PRICE_DB.load(SeqCst) * 100 + id
}

#[invalidate_cache("lost:price:{id}")]
async fn set_price(id: u64, value: u64) -> Result<(), String> {
    let _ = id;
    PRICE_DB.store(value, SeqCst);
    Ok(())
}

/// A value cached, Redis killed, the data updated and the key invalidated (which returns `Ok`,
/// failing silently), Redis back with its data: the next calls in this process return the new
/// value, never the one cached before the invalidation.
#[tokio::test]
async fn an_invalidation_while_redis_is_down_is_not_lost() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(Duration::from_secs(1))
        .breaker_probe_interval(Duration::from_millis(100))
        // The restart with data also holds every read off for a while (`lost_writes.rs`); this
        // test is about the delete kept while Redis was down.
        .replay_hold(Duration::ZERO)
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();

    assert_eq!(price(7).await, 107);
    assert_eq!(price(7).await, 107);
    assert_eq!(RUNS.load(SeqCst), 1, "{:?}", cache.stats());
    // Checks the test's own setup: data written before a SIGKILL survives the restart.
    assert_eq!(
        server.cmd("SET setup:survives yes"),
        Reply::Status("OK".into())
    );

    server.kill();
    let started = Instant::now();
    assert_eq!(set_price(7, 2).await, Ok(()));
    println!(
        "invalidation with Redis down returned Ok in {:?}",
        started.elapsed()
    );

    server.restart();
    assert_eq!(
        server.cmd("GET setup:survives"),
        Reply::Bulk(Some(b"yes".to_vec())),
        "the append-only file kept the data across the restart"
    );

    // Calls go on while the cache reconnects; once it is back, calls are served from Redis.
    // Not one of them may return the old price.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut healthy_since = None;
    let mut calls = 0;
    while Instant::now() < deadline {
        let value = price(7).await;
        calls += 1;
        assert_eq!(
            value,
            207,
            "call {calls} returned the price cached before the invalidation; {:?}",
            cache.stats()
        );
        if healthy_since.is_none() && cache.health_check().await.healthy {
            healthy_since = Some(Instant::now());
        }
        // Half a second of calls after the cache is connected again.
        if healthy_since.is_some_and(|t| t.elapsed() > Duration::from_millis(500)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        healthy_since.is_some(),
        "the cache did not reconnect within 5 s; {:?}",
        cache.stats()
    );
    // Once connected, the new value is cached: the calls became hits.
    let runs = RUNS.load(SeqCst);
    assert_eq!(price(7).await, 207);
    assert_eq!(price(7).await, 207);
    assert_eq!(RUNS.load(SeqCst), runs, "hits again; {:?}", cache.stats());
    println!(
        "{calls} calls after the restart, all new; {:?}",
        cache.stats()
    );
}
