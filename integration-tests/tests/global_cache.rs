//! The process-wide cache: set up from the environment exactly once, however many first callers.
//!
//! Its own test binary, because the process-wide cache and the environment are per process.

use cache_core::{get_cache, init, CacheConfig, CacheError};

/// Two workers, so that the first callers race each other in parallel, not only in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_set_up_one_cache_from_the_environment() {
    // Before any task exists that could read the environment concurrently.
    std::env::set_var("CACHE_BACKEND", "memory");
    std::env::set_var("CACHE_TTL_DEFAULT", "123");
    let callers: Vec<_> = (0..64).map(|_| tokio::spawn(get_cache())).collect();
    let mut caches = Vec::new();
    for caller in callers {
        caches.push(caller.await.unwrap().unwrap());
    }
    assert_eq!(caches[0].backend_name(), "memory");
    assert_eq!(caches[0].config().default_ttl().as_secs(), 123);
    // One cache: a write through the first handle is read through every other.
    caches[0].set("shared", &1u8, None).await.unwrap();
    for cache in &caches {
        assert_eq!(cache.get::<u8>("shared").await.unwrap(), Some(1));
    }
    assert_eq!(caches[63].stats().hits, 64);

    let again = init(CacheConfig::builder().memory(1024).build().unwrap()).await;
    assert_eq!(again.unwrap_err(), CacheError::AlreadyInitialized);
    assert_eq!(
        get_cache()
            .await
            .unwrap()
            .get::<u8>("shared")
            .await
            .unwrap(),
        Some(1)
    );
}
