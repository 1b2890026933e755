//! The ordinary way to test a service that uses the cache: one redis-server for the test binary,
//! its URL in `REDIS_URL`, and plain `#[tokio::test]` functions, each with a runtime of its own,
//! each reaching the process-wide cache through `get_cache()` and the attributes.
//!
//! The contract: "a `Cache` works from every tokio runtime of the process, whichever created it".
//! The first test to call `get_cache()` creates the cache on its runtime, and that runtime is
//! dropped when the test ends; every other test must still get hits, invalidations and a healthy
//! report. Each test has its own key prefix, so the tests can run in any order and in parallel.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::LazyLock;
use std::time::Duration;

use cache_core::{cached, invalidate_cache, Cache};
use integration_tests::RedisServer;

/// One server for the whole binary, started by the first test that asks for the cache. Its URL
/// goes into the environment before the first `get_cache()` reads it.
/// A short timeout, so that a broken connection fails a test in seconds.
static SERVER: LazyLock<RedisServer> = LazyLock::new(|| RedisServer::start_for_env("1"));

/// The process-wide cache, set up from the environment on first use.
async fn cache() -> Cache {
    LazyLock::force(&SERVER);
    let cache = cache_core::get_cache()
        .await
        .expect("the process-wide cache");
    assert_eq!(cache.backend_name(), "redis");
    cache
}

// ---------------------------------------------------------------------------------------------

static SQUARE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "rpt_square")]
async fn square(n: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, SeqCst);
    n * n
}

/// A second call of a `#[cached]` fn with the same argument is a hit: the body runs once per key.
#[tokio::test]
async fn second_call_is_a_hit() {
    let cache = cache().await;
    for n in 0..20 {
        assert_eq!(square(n).await, n * n);
    }
    for n in 0..20 {
        assert_eq!(square(n).await, n * n);
    }
    assert_eq!(
        SQUARE_RUNS.load(SeqCst),
        20,
        "the body ran once per key; stats: {:?}",
        cache.stats()
    );
}

// ---------------------------------------------------------------------------------------------

static PROFILE_DB: AtomicU64 = AtomicU64::new(100);
static PROFILE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "rpt_profile")]
async fn profile(id: u64) -> u64 {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    PROFILE_DB.load(SeqCst) + id
}

#[invalidate_cache("rpt_profile:profile:{id}")]
async fn update_profile(id: u64, value: u64) -> Result<(), String> {
    PROFILE_DB.store(value, SeqCst);
    Ok(())
}

/// After an `#[invalidate_cache]` fn returns, the next call recomputes and sees the new data,
/// and the call after that is a hit again.
#[tokio::test]
async fn invalidation_makes_the_next_call_recompute() {
    let cache = cache().await;
    assert_eq!(profile(1).await, 101);
    assert_eq!(profile(1).await, 101);
    assert_eq!(PROFILE_RUNS.load(SeqCst), 1, "{:?}", cache.stats());
    update_profile(1, 200).await.unwrap();
    assert_eq!(profile(1).await, 201, "the new value after invalidation");
    assert_eq!(profile(1).await, 201);
    assert_eq!(
        PROFILE_RUNS.load(SeqCst),
        2,
        "one run before and one after the invalidation; stats: {:?}",
        cache.stats()
    );
}

// ---------------------------------------------------------------------------------------------

/// `health_check` reports the server healthy, with its version, and quickly.
#[tokio::test]
async fn health_check_is_healthy() {
    let cache = cache().await;
    let report = cache.health_check().await;
    assert!(report.healthy, "{report:?}");
    assert!(report.error.is_none(), "{report:?}");
    assert!(report.version.is_some(), "{report:?}");
    assert!(report.latency_ms < 1000.0, "{report:?}");
}

// ---------------------------------------------------------------------------------------------

/// Direct use of the cache: set, get, exists, ttl, delete, all reaching the server.
#[tokio::test]
async fn direct_operations_reach_redis() {
    let cache = cache().await;
    cache
        .set(
            "rpt_direct:a",
            &(7u32, "seven".to_owned()),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(
        cache.get::<(u32, String)>("rpt_direct:a").await.unwrap(),
        Some((7, "seven".to_owned()))
    );
    assert!(cache.exists("rpt_direct:a").await.unwrap());
    let ttl = cache.get_ttl("rpt_direct:a").await.unwrap().unwrap();
    assert!(
        ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60),
        "{ttl:?}"
    );
    // The server itself holds it (not some local copy).
    assert_eq!(
        SERVER.command(&[b"EXISTS", b"rpt_direct:a"]),
        integration_tests::Reply::Integer(1)
    );
    assert_eq!(cache.delete(["rpt_direct:a"]).await.unwrap(), 1);
    assert_eq!(
        cache.get::<(u32, String)>("rpt_direct:a").await.unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------------

/// `set_many`, `get_many` and `increment`: one value per key, in order, absent keys as `None`.
#[tokio::test]
async fn get_many_set_many_and_increment() {
    let cache = cache().await;
    let items: Vec<(String, u64)> = (0..10).map(|i| (format!("rpt_many:{i}"), i * 3)).collect();
    cache
        .set_many(items, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let keys: Vec<String> = (0..12).map(|i| format!("rpt_many:{i}")).collect();
    let values = cache.get_many::<u64, _>(&keys).await.unwrap();
    let expected: Vec<Option<u64>> = (0..12).map(|i| (i < 10).then_some(i * 3)).collect();
    assert_eq!(values, expected);
    assert_eq!(cache.increment("rpt_many:counter", 5).await.unwrap(), 5);
    assert_eq!(cache.increment("rpt_many:counter", -2).await.unwrap(), 3);
    assert_eq!(cache.clear_pattern("rpt_many:*").await.unwrap(), 11);
}

// ---------------------------------------------------------------------------------------------

static FIND_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "rpt_find")]
async fn find(id: u64) -> Option<u64> {
    FIND_RUNS.fetch_add(1, SeqCst);
    (id % 2 == 0).then_some(id * 10)
}

/// `Option` returns: `Some` is cached, `None` is not (no `none_ttl`).
#[tokio::test]
async fn some_is_cached_none_is_not() {
    let cache = cache().await;
    for _ in 0..3 {
        assert_eq!(find(2).await, Some(20));
        assert_eq!(find(3).await, None);
    }
    assert_eq!(
        FIND_RUNS.load(SeqCst),
        1 + 3,
        "Some(20) computed once, None three times; stats: {:?}",
        cache.stats()
    );
}

// ---------------------------------------------------------------------------------------------

static HOT_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "rpt_hot")]
async fn hot(id: u64) -> Vec<u64> {
    HOT_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    vec![id; 3]
}

/// 32 concurrent cold callers of one key (spawned on the test's current-thread runtime) share
/// one run of the body; 32 more afterwards are all hits.
#[tokio::test]
async fn two_waves_of_concurrent_callers_run_the_body_once() {
    let cache = cache().await;
    let hits_before = cache.stats().hits;
    let callers: Vec<_> = (0..32).map(|_| tokio::spawn(hot(5))).collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), vec![5; 3]);
    }
    let callers: Vec<_> = (0..32).map(|_| tokio::spawn(hot(5))).collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), vec![5; 3]);
    }
    assert_eq!(HOT_RUNS.load(SeqCst), 1, "{:?}", cache.stats());
    assert!(
        cache.stats().hits - hits_before >= 32,
        "the second wave was all hits: {:?}",
        cache.stats()
    );
}

// ---------------------------------------------------------------------------------------------

static MT_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "rpt_mt")]
async fn mt(n: u64) -> String {
    MT_RUNS.fetch_add(1, SeqCst);
    format!("value {n}")
}

/// A multi-thread runtime of its own: tasks on both workers get hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_runtime_gets_hits() {
    let cache = cache().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async {
                for n in 0..25 {
                    assert_eq!(mt(n).await, format!("value {n}"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let runs = MT_RUNS.load(SeqCst);
    // Concurrent cold callers share a flight, so 25 runs; a few more would still mean caching
    // works, 200 would mean it does not.
    assert!(
        runs <= 30,
        "{runs} runs for 25 keys; stats: {:?}",
        cache.stats()
    );
    for n in 0..25 {
        assert_eq!(mt(n).await, format!("value {n}"));
    }
    assert_eq!(
        MT_RUNS.load(SeqCst),
        runs,
        "all hits now; {:?}",
        cache.stats()
    );
}
