//! Single flight through `#[cached]` against a real redis-server: concurrent cold callers share
//! one run of the body, a cancelled or panicking leader neither hangs the others nor leaves
//! an entry in the in-flight table, and crossed bodies (each leading a key and calling the
//! other's) complete, on Redis and on the in-process backend.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use cache_core::{__private::in_flight, cached, Cache, CacheConfig};
use integration_tests::RedisServer;

/// One server for the binary's tests, which share the process-wide cache on it.
static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

/// The process-wide cache's configuration: every test passes an equal one to `init`, which
/// returns the cache the first call set up.
fn config_for(server: &RedisServer) -> CacheConfig {
    CacheConfig::builder().url(server.url()).build().unwrap()
}

/// The tests share the one in-flight table; each checks it drains, so they run one at a time.
/// An async lock: each test holds it across its awaits, on a runtime of its own.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

static HOT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "flight")]
async fn hot(id: u32) -> Vec<u32> {
    HOT_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    vec![id; 4]
}

/// Two workers, so that the cold callers race each other in parallel, not only in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_cold_callers_run_the_body_once() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    let _serial = SERIAL.lock().await;
    let before = Cache::stats(&cache_core::get_cache().await.unwrap());
    let callers: Vec<_> = (0..64).map(|_| tokio::spawn(hot(7))).collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), vec![7; 4]);
    }
    assert_eq!(HOT_RUNS.load(SeqCst), 1);
    assert_eq!(in_flight(), 0);
    let after = cache_core::get_cache().await.unwrap().stats();
    // One trip to Redis for the leader (a miss) and one write; the waiters decoded its bytes.
    assert_eq!(after.sets - before.sets, 1);
    assert_eq!(after.misses - before.misses, 1);
    // Warm now: 64 more callers, no body.
    let callers: Vec<_> = (0..64).map(|_| tokio::spawn(hot(7))).collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), vec![7; 4]);
    }
    assert_eq!(HOT_RUNS.load(SeqCst), 1);
    assert_eq!(in_flight(), 0);
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "flight")]
async fn slow(id: u32) -> u32 {
    let run = SLOW_RUNS.fetch_add(1, SeqCst);
    // The first run hangs until it is cancelled; later runs are quick.
    if run == 0 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    id * 10
}

#[tokio::test]
async fn a_cancelled_leader_frees_the_key_and_its_waiters_compute() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    let _serial = SERIAL.lock().await;
    let leader = tokio::spawn(slow(1));
    assert!(wait_until_async(|| SLOW_RUNS.load(SeqCst) == 1).await);
    assert_eq!(in_flight(), 1);
    let waiters: Vec<_> = (0..8).map(|_| tokio::spawn(slow(1))).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for waiter in waiters {
        let value = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("a waiter hung after its leader was cancelled");
        assert_eq!(value.unwrap(), 10);
    }
    assert_eq!(
        SLOW_RUNS.load(SeqCst),
        9,
        "each waiter ran its own body at once, as it would without a cache"
    );
    assert_eq!(in_flight(), 0);
}

static PANIC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "flight")]
async fn fragile(id: u32) -> Result<u32, String> {
    let run = PANIC_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    if run == 0 {
        panic!("the first run panics");
    }
    Ok(id)
}

#[tokio::test]
async fn a_panic_reaches_its_caller_and_its_waiters_compute() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    let _serial = SERIAL.lock().await;
    let leader = tokio::spawn(fragile(3));
    assert!(wait_until_async(|| PANIC_RUNS.load(SeqCst) == 1).await);
    let waiters: Vec<_> = (0..8).map(|_| tokio::spawn(fragile(3))).collect();
    assert!(
        leader.await.unwrap_err().is_panic(),
        "the panic propagates to the caller that ran the body"
    );
    for waiter in waiters {
        let value = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("a waiter hung after its leader panicked");
        assert_eq!(value.unwrap(), Ok(3));
    }
    // Each waiter ran its own body at once (none of them panicked).
    assert_eq!(PANIC_RUNS.load(SeqCst), 9);
    assert_eq!(in_flight(), 0);
}

static ERR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "flight")]
async fn failing(id: u32) -> Result<u32, String> {
    ERR_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    Err(format!("no {id}"))
}

#[tokio::test]
async fn errors_are_not_shared_each_waiter_runs_the_body() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    let _serial = SERIAL.lock().await;
    let callers: Vec<_> = (0..4).map(|_| tokio::spawn(failing(1))).collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), Err("no 1".into()));
    }
    assert_eq!(
        ERR_RUNS.load(SeqCst),
        4,
        "nothing cacheable: each caller ran it"
    );
    assert_eq!(in_flight(), 0);
}

async fn wait_until_async(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// `Send` but not `Sync`: the future of a `#[cached]` fn must still be `Send` (spawnable).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Counter {
    hits: std::cell::Cell<u32>,
}

#[cached(ttl = 60, key_prefix = "flight")]
async fn counter(start: u32) -> Result<Counter, String> {
    tokio::task::yield_now().await;
    Ok(Counter {
        hits: std::cell::Cell::new(start),
    })
}

#[tokio::test]
async fn futures_of_send_but_not_sync_values_are_send() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    let _serial = SERIAL.lock().await;
    for _ in 0..2 {
        let value = tokio::spawn(counter(5)).await.unwrap().unwrap();
        assert_eq!(value.hits.get(), 5);
    }
}

/// Crossed bodies must complete well within this (before: never).
const CROSSED_BOUND: Duration = Duration::from_secs(2);

/// Both leaders meet here before calling each other's key, so that each leads its own first.
static CROSSING: LazyLock<tokio::sync::Barrier> = LazyLock::new(|| tokio::sync::Barrier::new(2));

/// At depth 0, leads `left:{id}` and then calls `right(id)`; at depth 1, a plain value.
#[cached(ttl = 60, key_prefix = "flight", skip(depth))]
async fn left(id: u32, depth: u32) -> u32 {
    if depth > 0 {
        return id;
    }
    CROSSING.wait().await;
    Box::pin(right(id, 1)).await + 1
}

/// At depth 0, leads `right:{id}` and then calls `left(id)`; at depth 1, a plain value.
#[cached(ttl = 60, key_prefix = "flight", skip(depth))]
async fn right(id: u32, depth: u32) -> u32 {
    if depth > 0 {
        return id * 10;
    }
    CROSSING.wait().await;
    Box::pin(left(id, 1)).await + 2
}

/// Task A leads `left:5` and calls `right:5`, which task B leads and which calls `left:5`:
/// without cycle detection each waits for the other forever. Both complete at once, and each
/// key then holds its own leader's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossed_bodies_complete() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let a = tokio::spawn(left(5, 0));
    let b = tokio::spawn(right(5, 0));
    let both = tokio::time::timeout(Duration::from_secs(10), async {
        (a.await.unwrap(), b.await.unwrap())
    })
    .await
    .expect("crossed bodies deadlocked: each waits for the other");
    let took = started.elapsed();
    println!("crossed #[cached] bodies on Redis: {both:?} in {took:?}");
    assert!(took < CROSSED_BOUND, "crossed bodies took {took:?}");
    // The one that saw the cycle computed the other's key itself, at depth 1 (`left`: 5,
    // `right`: 50); the other waited for its value (the keys skip `depth`).
    assert!(
        both == (5 + 2 + 1, 5 + 2) || both == (50 + 1, 50 + 1 + 2),
        "{both:?}"
    );
    assert_eq!(in_flight(), 0);
    // The values stored are their leaders' own: hits now.
    assert_eq!(left(5, 0).await, both.0);
    assert_eq!(right(5, 0).await, both.1);
}

/// The same crossing through `get_or_compute` on a cache of the in-process backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossed_computations_complete_on_the_memory_backend() {
    let cache = cache_core::Cache::new(CacheConfig::builder().memory(1 << 20).build().unwrap())
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let ttl = Some(Duration::from_secs(60));
    let crossing = |mine: &'static str, theirs: &'static str, inner: u32| {
        let (cache, barrier) = (cache.clone(), barrier.clone());
        tokio::spawn(async move {
            let outer = cache.clone();
            outer
                .get_or_compute(mine, ttl, || async move {
                    barrier.wait().await;
                    cache
                        .get_or_compute(theirs, ttl, || async move { inner })
                        .await
                        + 100
                })
                .await
        })
    };
    let started = Instant::now();
    let a = crossing("mem:k1", "mem:k2", 1);
    let b = crossing("mem:k2", "mem:k1", 2);
    let both = tokio::time::timeout(Duration::from_secs(10), async {
        (a.await.unwrap(), b.await.unwrap())
    })
    .await
    .expect("crossed computations deadlocked on the memory backend");
    let took = started.elapsed();
    println!("crossed get_or_compute on the memory backend: {both:?} in {took:?}");
    assert!(took < CROSSED_BOUND, "crossed computations took {took:?}");
    // One of them computed the other's inner value itself (1 or 2) and stored its own outer
    // value, which the other one then got.
    assert!(both == (202, 102) || both == (101, 201), "{both:?}");
}
