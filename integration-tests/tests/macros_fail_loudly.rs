//! Redis unreachable with CACHE_FAIL_SILENTLY=false: a function returning `Result<T, E>` with
//! `E: From<CacheError>` gets the error; any other function logs it and returns its value.
//!
//! The process-wide cache comes from the environment here (the path a service takes), pointed
//! at a closed loopback port.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_core::{cached, invalidate_cache, CacheError};
use integration_tests::{closed_port_url, RedisServer};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, PartialEq)]
enum AppError {
    Cache(CacheError),
}

impl From<CacheError> for AppError {
    fn from(e: CacheError) -> Self {
        AppError::Cache(e)
    }
}

#[cached(ttl = 60)]
async fn lookup(id: u32) -> Result<u32, AppError> {
    RUNS.fetch_add(1, SeqCst);
    Ok(id + 1)
}

/// `String` is not `From<CacheError>`: the error is logged and the value returned.
#[cached(ttl = 60)]
async fn lookup_str(id: u32) -> Result<u32, String> {
    RUNS.fetch_add(1, SeqCst);
    Ok(id + 1)
}

#[cached(ttl = 60)]
async fn plain(id: u32) -> Option<u32> {
    RUNS.fetch_add(1, SeqCst);
    Some(id)
}

#[invalidate_cache("lookup:{id}")]
async fn update(id: u32) -> Result<(), AppError> {
    Ok(())
}

#[tokio::test]
async fn result_functions_get_the_error_others_their_value() {
    // Before any other thread exists.
    std::env::set_var("REDIS_URL", closed_port_url());
    std::env::set_var("CACHE_FAIL_SILENTLY", "false");
    std::env::set_var("REDIS_SOCKET_TIMEOUT", "1");
    let error = lookup(1).await.unwrap_err();
    assert!(
        matches!(&error, AppError::Cache(e) if e.is_connection()),
        "{error:?}"
    );
    assert_eq!(lookup_str(1).await, Ok(2));
    assert_eq!(plain(4).await, Some(4));
    assert!(matches!(update(1).await, Err(AppError::Cache(_))));
    assert_eq!(
        RUNS.load(SeqCst),
        2,
        "the failing Result fn did not run its body"
    );

    // Once Redis answers on that port, the same functions cache again.
    let port: u16 = std::env::var("REDIS_URL")
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let server = RedisServer::start_on(port);
    assert_eq!(lookup(1).await, Ok(2));
    // `update(1)` found no cache; the cache that came up replays its delete, and until then
    // `lookup:1` is a miss that is not stored.
    let cache = cache_core::get_cache().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while cache.stats().invalidations_pending > 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", cache.stats());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let runs = RUNS.load(SeqCst);
    assert_eq!(lookup(1).await, Ok(2));
    assert_eq!(lookup(1).await, Ok(2));
    assert_eq!(RUNS.load(SeqCst), runs + 1, "a miss, then a hit");
    drop(server);
}
