//! Single flight when the leader has nothing to share, and when it waits on its own key.
//!
//! The contract: "`#[cached]` runs a cold key's body once per process however many callers wait
//! for it (single-flight)", and no call hangs. When the leader's result is not cached (an `Err`,
//! a `None` without `none_ttl`), its waiters must not then take turns running the body one after
//! another; and a body that calls its own function with the same key must not wait for itself,
//! whether it calls it directly or from a task it spawns and awaits.
//!
//! One redis-server for the binary, its URL in `REDIS_URL`, `#[tokio::test]` functions. The lease
//! TTL is 3 s (`CACHE_LEASE_TTL`): before any body of a key space was measured, a waiter waits at
//! most that long for another caller's computation.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use cache_core::{cached, Cache};
use integration_tests::RedisServer;

static SERVER: LazyLock<RedisServer> = LazyLock::new(|| {
    let server = RedisServer::start_for_env("1");
    std::env::set_var("CACHE_LEASE_TTL", LEASE_TTL_SECS);
    server
});
const LEASE_TTL_SECS: &str = "3";

async fn cache() -> Cache {
    LazyLock::force(&SERVER);
    cache_core::get_cache()
        .await
        .expect("the process-wide cache")
}

const CALLERS: usize = 200;
/// How long each body takes.
const BODY: Duration = Duration::from_secs(1);
/// All callers together: one body, and a second one at most, plus slack.
const BOUND: Duration = Duration::from_millis(2500);
/// The test gives up here, so that a failure is quick.
const GIVE_UP: Duration = Duration::from_secs(10);

/// Spawns `CALLERS` callers of `call`, waits for all of them (at most `GIVE_UP`) and returns
/// the results and the time they took; panics with how many had finished when it gives up.
async fn run_callers<T: Send + 'static, F>(call: impl Fn() -> F) -> (Vec<T>, Duration)
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (done, call) = (done.clone(), call());
            tokio::spawn(async move {
                let value = call.await;
                done.fetch_add(1, SeqCst);
                value
            })
        })
        .collect();
    let all = async {
        let mut values = Vec::with_capacity(CALLERS);
        for caller in callers {
            values.push(caller.await.expect("no caller panicked"));
        }
        values
    };
    match tokio::time::timeout(GIVE_UP, all).await {
        Ok(values) => (values, started.elapsed()),
        Err(_) => panic!(
            "after {GIVE_UP:?} only {} of {CALLERS} callers had finished (each body takes {BODY:?})",
            done.load(SeqCst)
        ),
    }
}

static ERR_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "failed_leader")]
async fn always_fails(id: u64) -> Result<u64, String> {
    ERR_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(BODY).await;
    Err(format!("no {id}"))
}

/// 200 concurrent callers of one key whose body returns `Err` (never cached) all finish within
/// about two body times, not one body time each.
#[tokio::test]
async fn two_hundred_callers_of_a_failing_key_finish_together() {
    let cache = cache().await;
    let (values, took) = run_callers(|| always_fails(1)).await;
    println!(
        "{CALLERS} callers of an Err key: {took:?}, {} body runs; {:?}",
        ERR_RUNS.load(SeqCst),
        cache.stats()
    );
    assert!(values.iter().all(|v| v == &Err("no 1".to_owned())));
    assert!(took < BOUND, "{CALLERS} callers took {took:?}");
}

static NONE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "failed_leader")]
async fn never_found(id: u64) -> Option<u64> {
    NONE_RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(BODY).await;
    (id == u64::MAX).then_some(id)
}

/// 200 concurrent callers of one key whose body returns `None` (not cached without `none_ttl`)
/// all finish within about two body times.
#[tokio::test]
async fn two_hundred_callers_of_a_none_key_finish_together() {
    let cache = cache().await;
    let (values, took) = run_callers(|| never_found(2)).await;
    println!(
        "{CALLERS} callers of a None key: {took:?}, {} body runs; {:?}",
        NONE_RUNS.load(SeqCst),
        cache.stats()
    );
    assert!(values.iter().all(Option::is_none));
    assert!(took < BOUND, "{CALLERS} callers took {took:?}");
}

static RESOLVE_RUNS: AtomicU64 = AtomicU64::new(0);

/// A resolver that, for a top-level call, resolves the same id once more (depth-guarded by a
/// skipped argument, so both calls have the same key).
#[cached(ttl = 60, key_prefix = "failed_leader", skip(depth))]
async fn resolve(id: u64, depth: u32) -> u64 {
    RESOLVE_RUNS.fetch_add(1, SeqCst);
    if depth == 0 {
        Box::pin(resolve(id, depth + 1)).await + 1
    } else {
        id * 10
    }
}

/// A body that calls its own function with the same key completes instead of waiting for
/// itself, and what the outer call returns is what is cached.
#[tokio::test]
async fn a_body_that_calls_its_own_key_does_not_wait_for_itself() {
    let cache = cache().await;
    let started = Instant::now();
    let value = tokio::time::timeout(Duration::from_secs(5), resolve(4, 0))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "resolve(4) did not complete within 5 s ({} body runs): it waits for itself",
                RESOLVE_RUNS.load(SeqCst)
            )
        });
    println!(
        "resolve(4): {value} in {:?}; {:?}",
        started.elapsed(),
        cache.stats()
    );
    assert_eq!(value, 41);
    assert_eq!(RESOLVE_RUNS.load(SeqCst), 2, "the outer and the inner body");
    let value = tokio::time::timeout(Duration::from_secs(5), resolve(4, 0))
        .await
        .expect("a hit completes");
    assert_eq!(value, 41, "the outer call's value is the cached one");
    assert_eq!(RESOLVE_RUNS.load(SeqCst), 2, "a hit: no body");
}

static SPAWNED_RUNS: AtomicU64 = AtomicU64::new(0);

/// A resolver that, for a top-level call, resolves the same id once more in a task it spawns and
/// awaits: the spawned call waits for the flight its own awaiting caller leads, which no task-local
/// and no wait-for graph can see.
#[cached(ttl = 60, key_prefix = "failed_leader", skip(depth))]
async fn resolve_spawned(id: u64, depth: u32) -> u64 {
    SPAWNED_RUNS.fetch_add(1, SeqCst);
    if depth == 0 {
        tokio::spawn(spawned_call(id))
            .await
            .expect("the spawned call")
            + 1
    } else {
        id * 10
    }
}

/// `resolve_spawned(id, 1)`, boxed: its future's type names no future of `resolve_spawned`, so
/// the compiler can tell the recursive future is `Send`.
fn spawned_call(id: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> {
    Box::pin(resolve_spawned(id, 1))
}

/// A body that spawns a task calling its own key and awaits it completes: the spawned call stops
/// waiting after the bound (the lease TTL, 3 s here, before any body of the space was measured)
/// and computes for itself. Before waits were bounded, it hung forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_spawns_a_call_for_its_own_key_completes() {
    let cache = cache().await;
    let started = Instant::now();
    let value = tokio::time::timeout(Duration::from_secs(10), resolve_spawned(6, 0))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "resolve_spawned(6) did not complete within 10 s ({} body runs)",
                SPAWNED_RUNS.load(SeqCst)
            )
        });
    let took = started.elapsed();
    println!(
        "resolve_spawned(6): {value} in {took:?}; {:?}",
        cache.stats()
    );
    assert_eq!(value, 61);
    assert_eq!(
        SPAWNED_RUNS.load(SeqCst),
        2,
        "the outer and the spawned body"
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}, the bound being {LEASE_TTL_SECS} s"
    );
    let value = tokio::time::timeout(Duration::from_secs(5), resolve_spawned(6, 0))
        .await
        .expect("a hit completes");
    assert_eq!(value, 61, "the outer call's value is the cached one");
}
