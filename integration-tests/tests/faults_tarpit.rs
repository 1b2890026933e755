//! A "tarpit": a listener that accepts connections and never answers. With
//! REDIS_SOCKET_TIMEOUT=1, 100 calls through `#[cached]` finish in a few seconds, not 100+.
//!
//! Its own test binary: it sets up the process-wide cache that `#[cached]` uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::{cached, CacheConfig};

static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "tarpit")]
async fn square(n: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::Relaxed);
    n * n
}

#[tokio::test]
async fn a_server_that_never_answers_costs_seconds_not_minutes() {
    let url = integration_tests::tarpit_url();
    let config = CacheConfig::builder()
        .url(url)
        .socket_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let cache = cache_core::init(config).await.unwrap();
    for n in 0..100 {
        assert_eq!(square(n).await, n * n);
    }
    let took = started.elapsed();
    let stats = cache.stats();
    println!("100 calls against a tarpit (startup included): {took:?}; {stats:?}");
    assert_eq!(RUNS.load(Ordering::Relaxed), 100);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(stats.hits, 0);
    let health = cache.health_check().await;
    assert!(!health.healthy, "{health:?}");
}
