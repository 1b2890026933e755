//! Redis unreachable, failing silently (the default): every body runs and returns its value,
//! within the socket timeout, and invalidation is a logged no-op.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, CacheConfig, CacheError};
use integration_tests::closed_port_url;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq)]
struct AppError(String);

impl From<CacheError> for AppError {
    fn from(e: CacheError) -> Self {
        AppError(e.to_string())
    }
}

#[cached(ttl = 60)]
async fn lookup(id: u32) -> Result<u32, AppError> {
    RUNS.fetch_add(1, SeqCst);
    Ok(id + 1)
}

#[cached(ttl = 60)]
async fn plain(id: u32) -> String {
    RUNS.fetch_add(1, SeqCst);
    id.to_string()
}

#[invalidate_cache("lookup:{id}", "plain:*")]
async fn update(id: u32) -> Result<(), AppError> {
    Ok(())
}

#[tokio::test]
async fn bodies_run_and_values_return_with_redis_down() {
    let config = CacheConfig::builder()
        .url(closed_port_url())
        .socket_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(config.fail_silently());
    let cache = cache_core::init(config).await.unwrap();
    let started = Instant::now();
    assert_eq!(lookup(1).await, Ok(2));
    assert_eq!(lookup(1).await, Ok(2));
    assert_eq!(plain(5).await, "5");
    assert_eq!(update(1).await, Ok(()));
    assert_eq!(RUNS.load(SeqCst), 3, "nothing was cached");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(cache.stats().errors > 0, "{:?}", cache.stats());
}
