//! `clear_pattern` has a total deadline (CACHE_CLEAR_TIMEOUT): past it, it stops and says how
//! many keys it removed; the pattern is kept pending (its keys are misses in this process) and
//! the replay finishes the job once it can.

use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig, CacheError};
use integration_tests::proxy::{Fault, FaultProxy};
use integration_tests::{command_at, RedisServer, Reply};

const KEYS: usize = 6_000;
/// Keys beside the pattern's, in the test whose walk never fits in its deadline.
const OTHERS: usize = 15_000;

fn count(server: &RedisServer, pattern: &str) -> usize {
    let mut cursor = "0".to_owned();
    let mut found = 0;
    loop {
        let reply = command_at(
            server.port(),
            &["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"],
        )
        .unwrap();
        let Reply::Array(Some(parts)) = reply else {
            panic!("SCAN answered {reply:?}")
        };
        let [Reply::Bulk(Some(next)), Reply::Array(Some(keys))] = &parts[..] else {
            panic!("SCAN answered {parts:?}")
        };
        found += keys.len();
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            return found;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_clear_stops_at_its_deadline_reports_progress_and_is_finished_by_the_replay() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let config = CacheConfig::builder()
        .url(proxy.url())
        .socket_timeout(Duration::from_secs(2))
        .clear_timeout(Duration::from_millis(150))
        .breaker_probe_interval(Duration::from_millis(100))
        .fail_silently(false)
        .build()
        .unwrap();
    let cache = Cache::new(config).await.unwrap();
    cache
        .set_many((0..KEYS).map(|i| (format!("bulk:{i}"), i as u64)), None)
        .await
        .unwrap();
    cache.set("keep", &1u8, None).await.unwrap();
    assert_eq!(count(&server, "bulk:*"), KEYS);

    // Every round trip now takes 40 ms or more: a few SCAN pages fit in the deadline, not all
    // (the first page's keys are gone after two round trips, with room for a loaded machine).
    proxy.set(Fault::Latency(Duration::from_millis(20)));
    let started = Instant::now();
    let result = cache.clear_pattern("bulk:*").await;
    let took = started.elapsed();
    let error = result.expect_err(&format!("a clear that took {took:?}"));
    let CacheError::Incomplete { removed, reason } = &error else {
        panic!("expected an incomplete clear, got {error:?}")
    };
    println!("stopped after {took:?}: {error}");
    assert!(*removed > 0 && (*removed as usize) < KEYS, "{error}");
    assert!(reason.contains("CACHE_CLEAR_TIMEOUT"), "{error}");
    assert!(
        took < Duration::from_millis(150 + 400),
        "the deadline bounds the whole call, not each page: {took:?}"
    );
    // Until the replay has walked the rest, the keys left are misses here.
    let left = count(&server, "bulk:*");
    assert!(left > 0, "the clear was stopped part-way");
    assert_eq!(cache.get::<u64>("bulk:5999").await.unwrap(), None);
    assert_eq!(cache.stats().invalidations_pending, 1);
    assert_eq!(cache.get::<u8>("keep").await.unwrap(), Some(1));

    proxy.set(Fault::None);
    let healed = Instant::now();
    while cache.stats().invalidations_pending > 0 {
        assert!(
            healed.elapsed() < Duration::from_secs(10),
            "the replay never finished: {} keys left, {:?}",
            count(&server, "bulk:*"),
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&server, "bulk:*"), 0);
    assert!(cache.stats().invalidations_replayed >= 1);
    assert_eq!(cache.health_check().await.invalidations_pending, 0);
    assert_eq!(cache.get::<u8>("keep").await.unwrap(), Some(1));
}

/// A walk that never fits in CACHE_CLEAR_TIMEOUT still completes: each replay goes on from the
/// SCAN cursor where the last try stopped, instead of starting over and stopping at the same
/// place forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_longer_than_its_deadline_completes_over_several_replays() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let config = CacheConfig::builder()
        .url(proxy.url())
        .socket_timeout(Duration::from_secs(2))
        .clear_timeout(Duration::from_millis(150))
        .breaker_probe_interval(Duration::from_millis(100))
        .fail_silently(false)
        .build()
        .unwrap();
    let cache = Cache::new(config).await.unwrap();
    // Keys the pattern leaves alone keep the key space large, so that the walk needs many SCAN
    // pages however many of its own keys are gone (Redis shrinks a table that empties, and a
    // walk started over at cursor 0 would then see the last keys early).
    for chunk in 0..OTHERS / 5_000 {
        let others = (0..5_000).map(|i| (format!("other:{chunk}:{i}"), 0u8));
        cache.set_many(others, None).await.unwrap();
    }
    cache
        .set_many((0..KEYS).map(|i| (format!("long:{i}"), i as u64)), None)
        .await
        .unwrap();

    // The latency stays: no try can walk every page within the deadline.
    proxy.set(Fault::Latency(Duration::from_millis(15)));
    let first = cache.clear_pattern("long:*").await;
    assert!(
        matches!(first, Err(CacheError::Incomplete { .. })),
        "{first:?}"
    );
    let started = Instant::now();
    while cache.stats().invalidations_pending > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the replays never finished the walk: {} keys left, {:?}",
            count(&server, "long:*"),
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("walked over several replays in {:?}", started.elapsed());
    assert_eq!(count(&server, "long:*"), 0);
    assert_eq!(count(&server, "other:*"), OTHERS);
    assert_eq!(cache.stats().invalidations_replayed, 1);
}
