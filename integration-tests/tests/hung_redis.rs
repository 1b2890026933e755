//! A hung Redis (SIGSTOP: connections stay open, nothing answers) with REDIS_SOCKET_TIMEOUT=1.
//!
//! The contract: "a call pays at most one socket timeout", and "a circuit breaker stops paying
//! the socket timeout on every call while Redis is down"; `health_check` never hangs past the
//! timeout either.
//!
//! Its own test binary: it sets up the process-wide cache that `#[cached]` uses.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_core::{cached, CacheConfig};
use integration_tests::RedisServer;

const TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(100);

static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "hung")]
async fn lookup(id: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    id * 3
}

/// Against a stopped server: one cold call returns within one timeout, 20 more cold calls within
/// two timeouts in all (the breaker opens), and `health_check` within one timeout; every call
/// returns the body's value.
#[tokio::test]
async fn a_hung_server_costs_one_timeout_per_call_at_most() {
    let server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(TIMEOUT)
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();

    // Warm and connected: a miss, then a hit.
    assert_eq!(lookup(1).await, 3);
    assert_eq!(lookup(1).await, 3);
    assert_eq!(RUNS.load(SeqCst), 1, "{:?}", cache.stats());
    assert!(cache.health_check().await.healthy);

    let _paused = server.pause();

    let started = Instant::now();
    assert_eq!(lookup(1000).await, 3000);
    let one = started.elapsed();
    println!("one cold call against the stopped server: {one:?}");

    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for id in 2000..2020 {
        let call = Instant::now();
        assert_eq!(lookup(id).await, id * 3);
        slowest = slowest.max(call.elapsed());
    }
    let twenty = started.elapsed();
    println!(
        "20 more cold calls: {twenty:?} (slowest {slowest:?}); {:?}",
        cache.stats()
    );

    let started = Instant::now();
    let report = cache.health_check().await;
    let health = started.elapsed();
    println!("health_check: {health:?}: {report:?}");

    assert!(one < TIMEOUT + SLACK, "one call took {one:?}");
    assert!(
        slowest < TIMEOUT + SLACK,
        "the slowest of the 20 calls took {slowest:?}"
    );
    assert!(
        twenty < 2 * TIMEOUT,
        "20 calls took {twenty:?}: the breaker did not spare them the timeout"
    );
    assert!(!report.healthy, "{report:?}");
    assert!(health < TIMEOUT + SLACK, "health_check took {health:?}");
    assert_eq!(RUNS.load(SeqCst), 1 + 1 + 20);
}

/// Four runtimes make their first call at once while Redis hangs: each connects a pool of its
/// own, side by side, so none waits for the others' connection timeouts (before, they took turns:
/// the last one waited four timeouts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_calls_from_new_runtimes_during_a_hang_each_pay_one_timeout() {
    let server = RedisServer::start();
    let cache = cache_core::Cache::new(
        CacheConfig::builder()
            .url(server.url())
            .socket_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let paused = server.pause();
    let ready = std::sync::Barrier::new(4);
    // The four threads block this worker until they are done: the other one runs the rest.
    let took: Vec<Duration> = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let calls: Vec<_> = (0..4)
                .map(|_| s.spawn(|| first_call_on_a_runtime_of_its_own(&cache, &ready)))
                .collect();
            calls.into_iter().map(|c| c.join().unwrap()).collect()
        })
    });
    // A health check from yet another runtime: one timeout in all, its pool's connect included.
    let (healthy, health_took) = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            s.spawn(|| health_on_a_runtime_of_its_own(&cache))
                .join()
                .unwrap()
        })
    });
    drop(paused);
    assert!(!healthy);
    assert!(
        health_took < Duration::from_millis(500) + SLACK * 2,
        "health_check paid the connect and then its own timeout: {health_took:?}"
    );
    println!("first calls from four new runtimes during a hang: {took:?}; health {health_took:?}");
    let slowest = took.iter().max().copied().unwrap_or_default();
    // One connect timeout (0.5 s), then at most one command timeout.
    assert!(
        slowest < Duration::from_millis(1000) + SLACK * 3,
        "a first call waited for other runtimes' connects: {took:?}"
    );
}

/// A runtime's first call, timed from the moment the four runtimes are ready.
#[tokio::main(flavor = "current_thread")]
async fn first_call_on_a_runtime_of_its_own(
    cache: &cache_core::Cache,
    ready: &std::sync::Barrier,
) -> Duration {
    ready.wait();
    let started = Instant::now();
    let value = cache.get::<u64>("hung:new-runtime").await;
    assert_eq!(value, Ok(None), "failing silently");
    started.elapsed()
}

/// A health check from a runtime of its own: whether healthy, and how long it took.
#[tokio::main(flavor = "current_thread")]
async fn health_on_a_runtime_of_its_own(cache: &cache_core::Cache) -> (bool, Duration) {
    let started = Instant::now();
    let healthy = cache.health_check().await.healthy;
    (healthy, started.elapsed())
}
