//! Failing loudly with Redis down at first use, the process-wide cache cannot be set up: an
//! `#[invalidate_cache]` then has no cache to keep its delete in. It is kept for the cache that
//! comes up once Redis answers, which replays it before serving the keys it covers.
//!
//! Its own test binary: it sets up the process-wide cache from the environment.

use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, Cache, CacheConfig};
use integration_tests::{RedisServer, Reply};

static PRICE_DB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[cached(ttl = 600, key_prefix = "orphan")]
async fn price(id: u64) -> u64 {
    PRICE_DB.load(std::sync::atomic::Ordering::SeqCst) * 100 + id
}

/// `String` is not `From<CacheError>`: the failure to set up the cache is logged, and the
/// function returns its own `Ok`.
#[invalidate_cache("orphan:price:{id}")]
async fn set_price(id: u64, value: u64) -> Result<(), String> {
    let _ = id;
    PRICE_DB.store(value, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn an_invalidation_made_before_the_cache_could_start_is_replayed_once_it_does() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    // Another process cached the old price.
    let other = Cache::new(CacheConfig::builder().url(server.url()).build().unwrap())
        .await
        .unwrap();
    other.set(&price__key(&7), &107u64, None).await.unwrap();
    drop(other);

    std::env::set_var("REDIS_URL", server.url());
    std::env::set_var("REDIS_SOCKET_TIMEOUT", "0.3");
    std::env::set_var("CACHE_FAIL_SILENTLY", "false");
    server.kill();
    assert!(
        cache_core::get_cache().await.is_err(),
        "failing loudly, no cache while Redis is down"
    );
    assert_eq!(set_price(7, 2).await, Ok(()));

    server.restart();
    assert!(
        matches!(server.cmd("GET orphan:price:7"), Reply::Bulk(Some(_))),
        "the old price is back with Redis"
    );
    // The cache comes up now, with the delete it missed: never the old price.
    assert_eq!(price(7).await, 207);
    let cache = cache_core::get_cache().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.cmd("EXISTS orphan:price:7") != Reply::Integer(0) {
        assert!(
            Instant::now() < deadline,
            "not replayed; {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cache.stats().invalidations_replayed >= 1,
        "{:?}",
        cache.stats()
    );
    assert_eq!(price(7).await, 207);
}
