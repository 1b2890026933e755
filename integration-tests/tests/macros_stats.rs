//! Hits and misses of `#[cached]` functions, counted in the process-wide cache's `stats()`.
//!
//! Its own binary with one test, so no other test moves the counters.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_core::{cached, invalidate_cache, CacheConfig};
use integration_tests::RedisServer;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "stats")]
async fn square(n: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    n * n
}

#[invalidate_cache("stats:square:{n}")]
async fn forget(n: u64) {}

#[tokio::test]
async fn hits_and_misses_are_counted() {
    let server = RedisServer::start();
    let config = CacheConfig::builder().url(server.url()).build().unwrap();
    let cache = cache_core::init(config).await.unwrap();
    let start = cache.stats();
    assert_eq!((start.hits, start.misses), (0, 0));

    assert_eq!(square(3).await, 9); // miss, set
    assert_eq!(square(3).await, 9); // hit
    assert_eq!(square(3).await, 9); // hit
    assert_eq!(square(4).await, 16); // miss, set
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.sets), (2, 2, 2));
    assert_eq!(RUNS.load(SeqCst), 2);

    forget(3).await;
    let stats = cache.stats();
    assert_eq!(stats.deletes, 1);
    assert_eq!(square(3).await, 9); // miss again
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.sets), (2, 3, 3));
    assert_eq!(RUNS.load(SeqCst), 3);

    // Foreign bytes under the key are a corrupt miss, repaired by the next store.
    server.cmd("SET stats:square:5 garbage");
    assert_eq!(square(5).await, 25);
    let stats = cache.stats();
    assert_eq!((stats.corrupt, stats.misses), (1, 4));
    assert_eq!(square(5).await, 25);
    assert_eq!(cache.stats().hits, 3);
    assert_eq!(RUNS.load(SeqCst), 4);
}
