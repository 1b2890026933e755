//! Redis killed (SIGKILL) under load, with the default 5 s socket timeout: the kernel closes its
//! sockets, so no call may wait anywhere near the timeout. Before the watchdog failed the
//! commands of a disconnected connection, a command handed to fred just before the close waited
//! in its queue while it reconnected, and some call took the full 5 s in every run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use integration_tests::RedisServer;

const TIMEOUT: Duration = Duration::from_secs(5);
/// A few watchdog ticks and scheduling on a loaded 2-core machine; far below the timeout.
const BOUND: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_fails_calls_at_once_not_after_the_socket_timeout() {
    for round in 0..3 {
        let mut server = RedisServer::start();
        let config = CacheConfig::builder()
            .url(server.url())
            .socket_timeout(TIMEOUT)
            .pool_size(2)
            .build()
            .unwrap();
        let cache = Arc::new(Cache::new(config).await.unwrap());
        for i in 0..100u64 {
            cache.set(&format!("k{i}"), &i, None).await.unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let worst_ms = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (0..32u64)
            .map(|t| {
                let (cache, stop, worst_ms) = (cache.clone(), stop.clone(), worst_ms.clone());
                tokio::spawn(async move {
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let value: Option<u64> = cache.get(&format!("k{}", i % 100)).await.unwrap();
                        assert!(value.is_none_or(|v| v == i % 100));
                        worst_ms.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(cache.stats().hits > 100, "{:?}", cache.stats());
        worst_ms.store(0, Ordering::Relaxed);
        let server = tokio::task::spawn_blocking(move || {
            server.kill();
            server
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        for caller in callers {
            caller.await.unwrap();
        }
        let worst = Duration::from_millis(worst_ms.load(Ordering::Relaxed));
        let stats = cache.stats();
        eprintln!("round {round}: slowest call after the kill {worst:?}; {stats:?}");
        assert!(
            worst < BOUND,
            "round {round}: a call took {worst:?}; {stats:?}"
        );
        assert!(stats.circuit_open, "{stats:?}");
        drop(server);
    }
}
