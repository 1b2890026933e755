//! What only the Redis backend can show: the commands it sends, foreign writers, the pool, and
//! how it behaves when Redis is absent, dies, or never answers.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig, CacheError};
use integration_tests::{closed_port_url, resident_bytes, RedisServer, Reply};

async fn cache_on(url: &str, fail_silently: bool, timeout: Duration) -> Result<Cache, CacheError> {
    let config = CacheConfig::builder()
        .url(url)
        .fail_silently(fail_silently)
        .socket_timeout(timeout)
        .pool_size(2)
        .build()
        .unwrap();
    Cache::new(config).await
}

#[tokio::test]
async fn clear_pattern_never_issues_keys() {
    let server = RedisServer::start();
    let cache = cache_on(&server.url(), false, Duration::from_secs(2))
        .await
        .unwrap();
    cache
        .set_many((0..5_000).map(|i| (format!("k:{i}"), i)), None)
        .await
        .unwrap();
    assert_eq!(cache.clear_pattern("k:*").await.unwrap(), 5_000);
    assert_eq!(cache.clear_pattern("k:1").await.unwrap(), 0);
    let stats = match server.cmd("INFO commandstats") {
        Reply::Bulk(Some(text)) => String::from_utf8(text).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(!stats.contains("cmdstat_keys:"), "{stats}");
    assert!(stats.contains("cmdstat_scan:"), "{stats}");
    assert!(stats.contains("cmdstat_unlink:"), "{stats}");
}

#[tokio::test]
async fn bytes_from_other_writers_are_counted_misses_and_memory_stays_low() {
    let server = RedisServer::start();
    // A String's header, then a varint length prefix claiming a 4 GiB string.
    let header = cache_core::codec::encode_value(cache_core::codec::CodecKind::Bincode, "")
        .unwrap()[..cache_core::codec::HEADER_LEN]
        .to_vec();
    let mut huge = header.clone();
    huge.push(0xFC);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut truncated = header.clone();
    truncated.extend_from_slice(&[0x05, b'a']);
    let writes: [(&str, &[u8]); 5] = [
        ("foreign", b"{\"name\":\"from python\"}"),
        ("truncated", &truncated),
        ("huge", &huge),
        ("header-only", &header[..7]),
        ("number", b"42"),
    ];
    for (key, bytes) in writes {
        assert_eq!(
            server.command(&[b"SET", key.as_bytes(), bytes]),
            Reply::Status("OK".into())
        );
    }
    let cache = cache_on(&server.url(), false, Duration::from_secs(2))
        .await
        .unwrap();
    let before = resident_bytes();
    for _ in 0..100 {
        for (key, _) in writes {
            assert_eq!(cache.get::<String>(key).await.unwrap(), None, "{key}");
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "resident memory grew by {grown} bytes");
    let stats = cache.stats();
    assert_eq!(
        (stats.corrupt, stats.misses, stats.hits, stats.errors),
        (500, 500, 0, 0)
    );
    for (key, _) in writes {
        cache.set(key, "repaired", None).await.unwrap();
        assert_eq!(
            cache.get::<String>(key).await.unwrap().as_deref(),
            Some("repaired")
        );
    }
}

#[tokio::test]
async fn the_pool_opens_pool_size_connections() {
    let server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .pool_size(7)
        .build()
        .unwrap();
    let cache = Cache::new(config).await.unwrap();
    cache.set("k", &1, None).await.unwrap();
    // Seven pooled connections for this runtime, one for the cache's home pool (its I/O
    // thread), plus the harness' own for INFO.
    assert_eq!(
        server.info_field("clients", "connected_clients").as_deref(),
        Some("9")
    );
    drop(cache);
    // The pool of this runtime closes on this runtime: wait without blocking it.
    let dropped = std::time::Instant::now();
    while server.info_field("clients", "connected_clients").as_deref() != Some("1") {
        assert!(
            dropped.elapsed() < Duration::from_secs(5),
            "connections left open after the cache was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_closed_port_gives_misses_when_silent_and_errors_when_loud() {
    let url = closed_port_url();
    let started = Instant::now();
    let cache = cache_on(&url, true, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    for i in 0..100 {
        assert_eq!(cache.get::<u8>(&format!("k:{i}")).await.unwrap(), None);
        cache.set("k", &1u8, None).await.unwrap();
    }
    assert_eq!(
        cache.get_many::<u8, _>(["a", "b"]).await.unwrap(),
        vec![None, None]
    );
    assert_eq!(cache.delete(["a"]).await.unwrap(), 0);
    assert_eq!(cache.clear_pattern("a*").await.unwrap(), 0);
    assert!(!cache.exists("a").await.unwrap());
    // Failing fast: 200+ operations without a server take far less than one timeout each.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let stats = cache.stats();
    // 100 gets, 100 sets, get_many, delete, clear_pattern: the first five failures open the
    // circuit breaker, and the rest skip Redis. `exists("a")` asks nothing: the failed delete
    // of "a" is pending, so the key has no value to report.
    assert_eq!(
        (
            stats.errors,
            stats.short_circuited,
            stats.misses,
            stats.sets
        ),
        (5, 198, 102, 0),
        "{stats:?}"
    );
    assert!(stats.circuit_open && stats.circuit_opens == 1, "{stats:?}");
    let health = cache.health_check().await;
    assert!(!health.healthy);
    assert!(
        health.error.as_deref().unwrap().contains("not connected"),
        "{health:?}"
    );

    // A refused connection ends the startup wait at once, not after the whole timeout.
    let started = Instant::now();
    let err = cache_on(&url, false, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_connection(), "{err}");
    assert!(err.to_string().contains(&url[..url.len() - 2]), "{err}");
}

#[tokio::test]
async fn a_cache_started_before_redis_works_once_redis_is_up() {
    let port = integration_tests::free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let cache = cache_on(&url, true, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
    assert!(!cache.health_check().await.healthy);
    let _server = RedisServer::start_on(port);
    let started = Instant::now();
    assert!(
        wait_until_async(Duration::from_secs(10), || async {
            cache.set("k", &7u8, None).await.unwrap();
            cache.get::<u8>("k").await.unwrap() == Some(7)
        })
        .await
    );
    println!("first hit {:?} after Redis came up", started.elapsed());
    assert!(cache.health_check().await.healthy);
}

#[tokio::test]
async fn operations_fail_fast_while_redis_is_down_and_recover_after_a_restart() {
    let mut server = RedisServer::start();
    let loud = cache_on(&server.url(), false, Duration::from_secs(1))
        .await
        .unwrap();
    let silent = cache_on(&server.url(), true, Duration::from_secs(1))
        .await
        .unwrap();
    loud.set("k", &1u8, None).await.unwrap();
    server.kill();
    // Give the pool a moment to notice the closed sockets.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    for _ in 0..20 {
        let err = loud.get::<u8>("k").await.unwrap_err();
        assert!(err.is_connection(), "{err}");
        assert_eq!(silent.get::<u8>("k").await.unwrap(), None);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    server.restart();
    let started = Instant::now();
    let mut recovered = false;
    while started.elapsed() < Duration::from_secs(10) {
        if loud.set("k", &2u8, None).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "no reconnect within 10 s");
    println!("reconnected {:?} after the restart", started.elapsed());
    assert!(
        wait_until_async(Duration::from_secs(10), || async {
            silent.get::<u8>("k").await.unwrap() == Some(2)
        })
        .await
    );
}

async fn wait_until_async<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_server_that_never_answers_costs_one_timeout_per_call_at_most() {
    // A tarpit: accepts connections and never says a word.
    let tarpit = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "redis://127.0.0.1:{}/0",
        tarpit.local_addr().unwrap().port()
    );
    let held = std::thread::spawn(move || {
        let mut sockets = Vec::new();
        tarpit.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((socket, _)) = tarpit.accept() {
                sockets.push(socket);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let cache = cache_on(&url, true, timeout).await.unwrap();
    assert!(
        started.elapsed() < timeout * 3,
        "startup took {:?}",
        started.elapsed()
    );
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
        cache.set("k", &1u8, None).await.unwrap();
        assert!(started.elapsed() < timeout * 3, "{:?}", started.elapsed());
    }
    let stats = cache.stats();
    assert_eq!(stats.errors + stats.short_circuited, 10, "{stats:?}");
    let started = Instant::now();
    assert!(!cache.health_check().await.healthy);
    assert!(started.elapsed() < timeout * 3);
    drop(held);
}

#[tokio::test]
async fn passwords_are_used_and_never_shown() {
    let secret = "correct-horse-battery";
    let server = RedisServer::start_with(&["--requirepass", secret]);
    let good = format!("redis://:{secret}@127.0.0.1:{}/0", server.port());
    let cache = cache_on(&good, false, Duration::from_secs(2))
        .await
        .unwrap();
    cache.set("k", "v", None).await.unwrap();
    assert!(!format!("{cache:?}").contains(secret));

    let wrong = format!("redis://:wrong-{secret}@127.0.0.1:{}/0", server.port());
    let err = cache_on(&wrong, false, Duration::from_secs(1))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(secret), "{text}");
    assert!(err.is_connection(), "{text}");
}

/// Polls `future` to completion on this thread, outside any tokio runtime (as an executor of
/// another async library would).
fn poll_outside_tokio<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park_timeout(std::time::Duration::from_millis(10));
    }
}

/// A cache made on a runtime that is gone once this returns.
#[tokio::main(flavor = "current_thread")]
async fn cache_on_a_runtime_that_ends(url: String) -> Cache {
    Cache::new(CacheConfig::builder().url(url).build().unwrap())
        .await
        .unwrap()
}

/// Calls polled outside any tokio runtime (another executor, a plain thread): a miss computes
/// and stores, the next call hits, an invalidation applies; nothing panics.
#[test]
fn a_cache_works_when_polled_outside_any_tokio_runtime() {
    let server = RedisServer::start();
    let cache = cache_on_a_runtime_that_ends(server.url());
    let memory = poll_outside_tokio(Cache::new(
        CacheConfig::builder().memory(1 << 20).build().unwrap(),
    ))
    .unwrap();
    for cache in [cache, memory] {
        let runs = std::sync::atomic::AtomicU64::new(0);
        let compute = || async {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            7u64
        };
        let backend = cache.backend_name();
        assert_eq!(
            poll_outside_tokio(cache.get_or_compute("outside:1", None, compute)),
            7
        );
        assert_eq!(
            poll_outside_tokio(cache.get_or_compute("outside:1", None, compute)),
            7
        );
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{backend}: {:?}",
            cache.stats()
        );
        assert_eq!(
            poll_outside_tokio(cache.delete(["outside:1"])),
            Ok(1),
            "{backend}"
        );
        assert_eq!(
            poll_outside_tokio(cache.get::<u64>("outside:1")),
            Ok(None),
            "{backend}"
        );
        assert!(
            poll_outside_tokio(cache.health_check()).healthy,
            "{backend}"
        );
    }
}
