//! Faults injected into real redis-server processes: paused, restarted empty, evicting under
//! maxmemory, refusing writes when out of memory. Each test owns its server and its `Cache`.

use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig, CacheError};
use integration_tests::{RedisServer, Reply};

fn config(server: &RedisServer, fail_silently: bool) -> CacheConfig {
    CacheConfig::builder()
        .url(server.url())
        .fail_silently(fail_silently)
        .socket_timeout(Duration::from_millis(300))
        .breaker_probe_interval(Duration::from_millis(100))
        // Memory pressure is the point of some of these tests: store values as they are.
        .compress_min_bytes(0)
        .pool_size(2)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_paused_server_costs_at_most_a_timeout_per_call_and_hits_resume() {
    let server = RedisServer::start();
    let cache = Cache::new(config(&server, true)).await.unwrap();
    cache.set("k", &1u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    // Every client's commands wait for 3 s, ten times the 300 ms timeout.
    assert_eq!(
        server.cmd("CLIENT PAUSE 3000 ALL"),
        Reply::Status("OK".into())
    );
    let paused = Instant::now();
    let mut slowest = Duration::ZERO;
    while paused.elapsed() < Duration::from_millis(2500) {
        let started = Instant::now();
        assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(600),
        "slowest call {slowest:?}"
    );
    let stats = cache.stats();
    assert!(stats.errors >= 1 && stats.circuit_opens == 1, "{stats:?}");
    assert!(stats.short_circuited > 0, "{stats:?}");
    let resumed = Instant::now();
    loop {
        if cache.get::<u32>("k").await.unwrap() == Some(1) {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(5),
            "no hit after the pause"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("hits resumed {:?} after the pause began", paused.elapsed());
    // Half-open after the probe: a few successful calls close it.
    for _ in 0..5 {
        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
    }
    assert!(!cache.stats().circuit_open, "{:?}", cache.stats());
}

#[tokio::test]
async fn a_server_restarted_empty_gives_misses_never_stale_values() {
    let mut server = RedisServer::start();
    let cache = Cache::new(config(&server, true)).await.unwrap();
    cache
        .set("user:1", "before the restart", None)
        .await
        .unwrap();
    server.restart();
    let started = Instant::now();
    // Until the pool reconnects: misses; after: still misses, since the data is gone.
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(cache.get::<String>("user:1").await.unwrap(), None);
        if cache.health_check().await.healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cache.get::<String>("user:1").await.unwrap(), None);
    cache.set("user:1", "recomputed", None).await.unwrap();
    assert_eq!(
        cache.get::<String>("user:1").await.unwrap().as_deref(),
        Some("recomputed")
    );
}

#[tokio::test]
async fn evictions_under_allkeys_lru_are_misses_not_errors() {
    let server =
        RedisServer::start_with(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"]);
    let cache = Cache::new(config(&server, false)).await.unwrap();
    let value = vec![7u8; 10 * 1024];
    for i in 0..2_000 {
        cache.set(&format!("blob:{i}"), &value, None).await.unwrap();
    }
    let evicted: u64 = server
        .info_field("stats", "evicted_keys")
        .unwrap()
        .parse()
        .unwrap();
    assert!(evicted > 1_000, "evicted {evicted}");
    let read: Vec<Option<Vec<u8>>> = cache
        .get_many((0..2_000).map(|i| format!("blob:{i}")))
        .await
        .unwrap();
    let present = read.iter().flatten().count();
    assert!(present > 0 && present < 1_000, "present {present}");
    assert!(read.iter().flatten().all(|v| *v == value));
    let stats = cache.stats();
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(stats.misses as usize, 2_000 - present);
}

#[tokio::test]
async fn out_of_memory_with_noeviction_fails_writes_and_keeps_reads() {
    let server =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let silent = Cache::new(config(&server, true)).await.unwrap();
    let loud = Cache::new(config(&server, false)).await.unwrap();
    silent.set("keep", "small and early", None).await.unwrap();
    let value = vec![1u8; 64 * 1024];
    for i in 0..100 {
        // Failing silently: the write is dropped, the caller goes on.
        silent
            .set(&format!("blob:{i}"), &value, None)
            .await
            .unwrap();
    }
    let stats = silent.stats();
    assert!(stats.errors > 50, "{stats:?}");
    assert_eq!(stats.circuit_opens, 0, "OOM is not an outage: {stats:?}");
    assert_eq!(
        silent.get::<String>("keep").await.unwrap().as_deref(),
        Some("small and early")
    );
    let err = loud.set("one-more", &value, None).await.unwrap_err();
    assert!(
        matches!(err, CacheError::Redis(ref m) if m.contains("OOM")),
        "{err}"
    );
    assert_eq!(
        loud.get::<String>("keep").await.unwrap().as_deref(),
        Some("small and early")
    );
    assert!(silent.health_check().await.healthy);
}

#[tokio::test]
async fn the_breaker_opens_on_outage_skips_redis_and_closes_when_it_returns() {
    let mut server = RedisServer::start();
    let cache = Cache::new(config(&server, false)).await.unwrap();
    cache.set("k", &1u8, None).await.unwrap();
    server.kill();
    // Five consecutive connection failures open it (one timeout would at once).
    for _ in 0..5 {
        let result = cache.get::<u8>("k").await;
        assert!(
            matches!(result, Err(ref e) if e.is_connection()),
            "{result:?}"
        );
    }
    let stats = cache.stats();
    assert!(stats.circuit_open, "{stats:?}");
    assert_eq!(
        cache.get::<u8>("k").await.unwrap_err(),
        CacheError::CircuitOpen
    );
    assert_eq!(cache.health_check().await.circuit, "open");
    assert_eq!(cache.stats().short_circuited, stats.short_circuited + 1);
    server.restart();
    let back = Instant::now();
    while cache.stats().circuit_open {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the probe never half-opened it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("breaker half-open {:?} after the restart", back.elapsed());
    assert_eq!(cache.health_check().await.circuit, "half-open");
    // Successful trial calls close it. (A connection that fred had opened just before the
    // restart can still fail one trial with "Connection closed unexpectedly": that opens the
    // breaker again, and the next probe half-opens it; so: closed within a bound.)
    let trials = Instant::now();
    loop {
        let stored = cache.set("k", &2u8, None).await;
        let read = cache.get::<u8>("k").await;
        let read_again = cache.get::<u8>("k").await;
        if cache.health_check().await.circuit == "closed" {
            assert_eq!(read_again.unwrap(), Some(2), "{stored:?} {read:?}");
            break;
        }
        assert!(
            trials.elapsed() < Duration::from_secs(5),
            "trial calls never closed it: {stored:?} {read:?} {read_again:?} {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
