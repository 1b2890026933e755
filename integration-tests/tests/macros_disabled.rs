//! CACHE_ENABLED=false: the attributes call the body directly and never touch Redis.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_core::{cached, invalidate_cache};
use integration_tests::RedisServer;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60)]
async fn compute(id: u32) -> u32 {
    RUNS.fetch_add(1, SeqCst);
    id
}

#[invalidate_cache("compute:*")]
async fn reset() {}

#[tokio::test]
async fn bodies_run_directly() {
    let server = RedisServer::start();
    std::env::set_var("REDIS_URL", server.url());
    std::env::set_var("CACHE_ENABLED", "false");
    for _ in 0..3 {
        assert_eq!(compute(1).await, 1);
    }
    reset().await;
    assert_eq!(RUNS.load(SeqCst), 3);
    let cache = cache_core::get_cache().await.unwrap();
    assert!(!cache.config().enabled());
    assert_eq!(cache.stats().misses, 0);
    assert_eq!(server.dbsize(), 0);
}
