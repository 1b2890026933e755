//! Hits resume within a second of Redis answering again, even when the callers never yield.
//!
//! 32 tasks on a 2-worker runtime call a `#[cached]` fn whose body does not await (it returns
//! its argument), in a tight loop over 50 keys. Redis is killed with SIGKILL, the loop goes on
//! for 3 s (every call a miss served by the body, the circuit breaker open), then Redis restarts
//! on the same port. The contract: "hits resume within a second of Redis answering again".
//!
//! Its own test binary: it sets up the process-wide cache that `#[cached]` uses.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{cached, CacheConfig};
use integration_tests::RedisServer;

/// `REDIS_SOCKET_TIMEOUT=0.5`, through the builder.
const TIMEOUT: Duration = Duration::from_millis(500);
const KEYS: u64 = 50;

static RUNS: AtomicU64 = AtomicU64::new(0);

/// No `.await` in the body: with the circuit open, a call never yields to the scheduler.
#[cached(ttl = 60, key_prefix = "tight")]
async fn echo(n: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::Relaxed);
    n
}

/// Sets the flag when dropped (also when the test panics).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// After SIGKILL and a restart on the same port, the first cache hit (a GET Redis answers with a
/// value) comes less than 1 s after the server answers PING again, and the body stops running
/// (every call a hit) soon after, while 32 tasks keep calling in a tight loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_resume_within_a_second_of_redis_answering_again() {
    let server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(TIMEOUT)
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // The callers stop however the test ends: a runtime cannot shut down while its tasks spin.
    let _stop_on_drop = StopOnDrop(stop.clone());
    let wrong = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..32u64)
        .map(|task| {
            let (stop, wrong, calls) = (stop.clone(), wrong.clone(), calls.clone());
            tokio::spawn(async move {
                let mut i = task;
                while !stop.load(Ordering::Relaxed) {
                    let n = i % KEYS;
                    if echo(n).await != n {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                }
            })
        })
        .collect();

    // The server is driven and the counters watched from a blocking thread: it does not depend
    // on the runtime's workers, which the callers keep busy.
    let watcher_cache = cache.clone();
    let calls_seen = calls.clone();
    let watch = tokio::task::spawn_blocking(move || {
        let mut server = server;
        let cache = watcher_cache;
        let calls = calls_seen;
        std::thread::sleep(Duration::from_secs(1));
        let warm = cache.stats();
        assert!(warm.hits > 1000, "warm-up: {warm:?}");
        server.kill();
        std::thread::sleep(Duration::from_secs(3));
        let outage = cache.stats();
        // `restart` returns once the server answers PING.
        server.restart();
        let answering = Instant::now();
        // A hit is a GET that Redis answered with a value: the server's own `keyspace_hits`
        // (zero after the restart). `cache.stats().hits` cannot tell: it also counts the callers
        // that share a leader's value, which goes on all through the outage.
        let mut first_hit = None;
        // Steady: a 100 ms window in which calls went on and the body never ran.
        let mut steady = None;
        let mut window = (
            Instant::now(),
            RUNS.load(Ordering::Relaxed),
            calls.load(Ordering::Relaxed),
        );
        while answering.elapsed() < Duration::from_secs(10) && steady.is_none() {
            std::thread::sleep(Duration::from_millis(10));
            if first_hit.is_none() {
                let hits = server.info_field("stats", "keyspace_hits");
                if hits.is_some_and(|h| h != "0") {
                    first_hit = Some(answering.elapsed());
                }
            }
            if window.0.elapsed() >= Duration::from_millis(100) {
                let (runs, calls) = (RUNS.load(Ordering::Relaxed), calls.load(Ordering::Relaxed));
                if first_hit.is_some() && runs == window.1 && calls > window.2 + 100 {
                    steady = Some(answering.elapsed());
                }
                window = (Instant::now(), runs, calls);
            }
        }
        (server, warm, outage, first_hit, steady)
    });
    let (server, warm, outage, first_hit, steady) = watch.await.unwrap();

    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        tokio::time::timeout(Duration::from_secs(5), caller)
            .await
            .expect("a caller stopped when asked")
            .expect("no caller panicked");
    }
    let stats = cache.stats();
    println!(
        "calls {}, body runs {}; after the server answered PING again: first Redis hit {first_hit:?}, \
         steady hits (a 100 ms window without a body run) {steady:?}\n\
         warm: {warm:?}\noutage: {outage:?}\nend: {stats:?}",
        calls.load(Ordering::Relaxed),
        RUNS.load(Ordering::Relaxed),
    );
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "every call returned the body's value"
    );
    assert!(
        outage.misses > warm.misses + 1000,
        "calls went on during the outage: {outage:?}"
    );
    let first_hit = first_hit.expect("no Redis hit within 10 s of the server answering again");
    assert!(
        first_hit < Duration::from_secs(1),
        "the first Redis hit came {first_hit:?} after the server answered again"
    );
    let steady = steady.expect("the body kept running for 10 s after the server answered again");
    assert!(
        steady < Duration::from_millis(1500),
        "calls were served from Redis without running the body only {steady:?} after the server answered again"
    );
    drop(server);
}
