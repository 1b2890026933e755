//! Redis killed with SIGKILL in the middle of a load of concurrent `#[cached]` callers, then
//! restarted on the same port: no panic, every call returns the body's value, no call waits past
//! the socket timeout, and hits resume within a bound after the restart.
//!
//! Its own test binary: it sets up the process-wide cache that `#[cached]` uses.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{cached, CacheConfig};
use integration_tests::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(500);

#[cached(ttl = 60, key_prefix = "kill")]
async fn double(n: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    n * 2
}

/// Two workers for the callers, and the server driven from a blocking thread: the load must go
/// on while the test sleeps, kills and restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_then_restart() {
    let server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(TIMEOUT)
        .pool_size(4)
        .breaker_threshold(5)
        .breaker_probe_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (wrong, calls, slowest_us) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let callers: Vec<_> = (0..32u64)
        .map(|task| {
            let (stop, wrong, calls, slowest_us) = (
                stop.clone(),
                wrong.clone(),
                calls.clone(),
                slowest_us.clone(),
            );
            tokio::spawn(async move {
                let mut i = task;
                while !stop.load(Ordering::Relaxed) {
                    let n = i % 64;
                    let started = Instant::now();
                    if double(n).await != n * 2 {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    let took = started.elapsed().as_micros() as u64;
                    slowest_us.fetch_max(took, Ordering::Relaxed);
                    calls.fetch_add(1, Ordering::Relaxed);
                    i += 7;
                }
            })
        })
        .collect();

    let driver_cache = cache.clone();
    let (server, first_hit) = tokio::task::spawn_blocking(move || {
        let (mut server, cache) = (server, driver_cache);
        std::thread::sleep(Duration::from_secs(1));
        let hits_before_kill = cache.stats().hits;
        assert!(hits_before_kill > 100, "warm-up: {:?}", cache.stats());
        server.kill();
        std::thread::sleep(Duration::from_millis(1500));
        let during_outage = cache.stats();
        assert!(during_outage.circuit_opens >= 1, "{during_outage:?}");

        let restarted = Instant::now();
        server.restart();
        let hits_at_restart = cache.stats().hits;
        let mut first_hit = None;
        while restarted.elapsed() < Duration::from_secs(10) {
            if cache.stats().hits > hits_at_restart {
                first_hit = Some(restarted.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(500));
        (server, first_hit)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.expect("no caller panicked");
    }

    let first_hit = first_hit.expect("hits resumed after the restart");
    let stats = cache.stats();
    println!(
        "calls {}, first hit {first_hit:?} after the restart, slowest call {} µs, {stats:?}",
        calls.load(Ordering::Relaxed),
        slowest_us.load(Ordering::Relaxed)
    );
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "every call returned the body's value"
    );
    assert!(
        first_hit < Duration::from_secs(3),
        "hits resumed after {first_hit:?}"
    );
    // No call waits past the socket timeout (plus scheduling slack on a loaded machine); most
    // fail fast, since a killed server's sockets close.
    let slowest = Duration::from_micros(slowest_us.load(Ordering::Relaxed));
    assert!(
        slowest < TIMEOUT + Duration::from_millis(150),
        "slowest call {slowest:?}"
    );
    assert!(!stats.circuit_open, "{stats:?}");
    assert_eq!(cache_core::__private::in_flight(), 0);
    drop(server);
}
