//! The process-wide cache created on a runtime of another thread, which is then dropped, must
//! keep working from the test's own runtime ("a `Cache` works from every tokio runtime of the
//! process, whichever created it").
//!
//! Its own test binary, so that the runtime of the other thread is certainly the one that
//! creates the cache (in `runtime_per_test.rs` any of the tests may create it first).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use cache_core::cached;
use integration_tests::RedisServer;

static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "other")]
async fn thread_value(n: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    n + 1000
}

/// The other thread's command: creates the process-wide cache, caches a value and stores one
/// directly.
#[tokio::main(flavor = "current_thread")]
async fn first_use_on_a_runtime_of_its_own() {
    let cache = cache_core::get_cache().await.unwrap();
    assert_eq!(thread_value(1).await, 1001);
    assert_eq!(thread_value(1).await, 1001);
    assert_eq!(RUNS.load(SeqCst), 1, "{:?}", cache.stats());
    cache
        .set("other:direct", &42u64, Some(Duration::from_secs(60)))
        .await
        .unwrap();
}

/// A runtime on another std::thread creates and uses the cache, then is dropped; the test's
/// runtime then gets hits on what it stored, caches a new key, invalidates by pattern and sees a
/// healthy report.
#[tokio::test]
async fn a_dropped_runtime_on_another_thread_does_not_break_the_cache() {
    let server = RedisServer::start();
    std::env::set_var("REDIS_URL", server.url());
    std::env::set_var("REDIS_SOCKET_TIMEOUT", "1");

    // A thread that runs a command on a runtime of its own, as a CLI command or a background
    // job does; the runtime is dropped when the command returns.
    std::thread::spawn(first_use_on_a_runtime_of_its_own)
        .join()
        .expect("the other thread's part passed");

    let cache = cache_core::get_cache().await.unwrap();
    assert_eq!(thread_value(1).await, 1001);
    assert_eq!(
        RUNS.load(SeqCst),
        1,
        "a hit on what the other runtime stored; stats: {:?}",
        cache.stats()
    );
    assert_eq!(cache.get::<u64>("other:direct").await.unwrap(), Some(42));
    assert_eq!(thread_value(2).await, 1002);
    assert_eq!(thread_value(2).await, 1002);
    assert_eq!(RUNS.load(SeqCst), 2, "{:?}", cache.stats());
    assert_eq!(cache.clear_pattern("other:*").await.unwrap(), 3);
    let report = cache.health_check().await;
    assert!(report.healthy, "{report:?}");
}
