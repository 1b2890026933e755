//! `init` is idempotent for the same configuration: a second `init` with an equal config (a
//! library and its application both calling it, or a test helper called by every test) returns
//! the cache that exists; only a *different* configuration is `AlreadyInitialized`.
//!
//! Its own test binary: it sets up the process-wide cache.

use std::time::Duration;

use cache_core::{get_cache, init, CacheConfig, CacheError};
use integration_tests::RedisServer;

/// `init(config)` then `init(equal config)` returns `Ok` with the same cache (shared counters,
/// same configuration, what `get_cache()` returns); `init(other config)` is `AlreadyInitialized`.
#[tokio::test]
async fn init_twice_with_an_equal_config_returns_the_same_cache() {
    let server = RedisServer::start();
    let config = || {
        CacheConfig::builder()
            .url(server.url())
            .socket_timeout(Duration::from_secs(1))
            .default_ttl(Duration::from_secs(120))
            .build()
            .unwrap()
    };
    let first = init(config()).await.expect("the first init");
    first.set("twice:k", &5u32, None).await.unwrap();
    assert_eq!(first.get::<u32>("twice:k").await.unwrap(), Some(5));
    assert_eq!(first.stats().hits, 1);

    let second = init(config())
        .await
        .expect("a second init with an equal configuration returns the existing cache");
    assert_eq!(second.config(), first.config());
    // The same cache, not a second one on the same server: its counters are the first's.
    assert_eq!(second.stats().hits, 1, "{:?}", second.stats());
    assert_eq!(second.get::<u32>("twice:k").await.unwrap(), Some(5));
    assert_eq!(first.stats().hits, 2, "{:?}", first.stats());
    assert_eq!(get_cache().await.unwrap().stats().hits, 2);

    let other = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(Duration::from_secs(1))
        .default_ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_ne!(other, config());
    assert_eq!(
        init(other).await.unwrap_err(),
        CacheError::AlreadyInitialized,
        "a different configuration is refused"
    );
    // The cache in place is untouched.
    let cache = get_cache().await.unwrap();
    assert_eq!(cache.config().default_ttl(), Duration::from_secs(120));
    assert_eq!(cache.get::<u32>("twice:k").await.unwrap(), Some(5));
}
