//! Large values: LZ4 compression above CACHE_COMPRESS_MIN_BYTES (what Redis stores shrinks, what
//! callers read does not change), and (de)serialization off the executor's worker above
//! CACHE_OFFLOAD_MIN_BYTES (other tasks keep running while a large value is decoded).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use integration_tests::{RedisServer, Reply};

fn stored_len(server: &RedisServer, key: &str) -> i64 {
    match server.command(&[b"STRLEN", key.as_bytes()]) {
        Reply::Integer(n) => n,
        other => panic!("STRLEN answered {other:?}"),
    }
}

#[tokio::test]
async fn large_values_are_compressed_in_redis_and_read_back_unchanged() {
    let server = RedisServer::start();
    let config = |min| {
        CacheConfig::builder()
            .url(server.url())
            .fail_silently(false)
            .compress_min_bytes(min)
            .build()
            .unwrap()
    };
    let packed = Cache::new(config(1024)).await.unwrap();
    let plain = Cache::new(config(0)).await.unwrap();
    let page: String = (0..2_000)
        .map(|i| format!("<li>server {}</li>", i % 50))
        .collect();
    packed.set("page:packed", &page, None).await.unwrap();
    plain.set("page:plain", &page, None).await.unwrap();
    let (packed_len, plain_len) = (
        stored_len(&server, "page:packed"),
        stored_len(&server, "page:plain"),
    );
    assert!(
        packed_len * 5 < plain_len,
        "{packed_len} vs {plain_len} bytes in Redis"
    );
    // Each cache reads both: the header says which is compressed.
    for cache in [&packed, &plain] {
        for key in ["page:packed", "page:plain"] {
            assert_eq!(
                cache.get::<String>(key).await.unwrap().as_deref(),
                Some(page.as_str())
            );
        }
    }
    // Small values are not worth it, and stay as they are.
    packed.set("small", "tiny", None).await.unwrap();
    plain.set("small-plain", "tiny", None).await.unwrap();
    assert_eq!(
        stored_len(&server, "small"),
        stored_len(&server, "small-plain")
    );
}

/// The longest pause of a task ticking every millisecond while a large value is decoded, on the
/// test's runtime (one worker thread).
async fn longest_stall(offload_min_bytes: usize) -> Duration {
    {
        let cache = Cache::new(
            CacheConfig::builder()
                .memory(1 << 30)
                .max_value_bytes(1 << 30)
                .offload_min_bytes(offload_min_bytes)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        let big: Vec<u64> = (0..3_000_000).collect();
        cache.set("big", &big, None).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let longest_us = Arc::new(AtomicU64::new(0));
        let ticker = {
            let (stop, longest_us) = (stop.clone(), longest_us.clone());
            tokio::spawn(async move {
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    longest_us.fetch_max(last.elapsed().as_micros() as u64, Ordering::Relaxed);
                    last = Instant::now();
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The decode runs in this task, on the only worker.
        let reader = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get::<Vec<u64>>("big").await.unwrap().map(|v| v.len()) }
        });
        assert_eq!(reader.await.unwrap(), Some(3_000_000));
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.store(true, Ordering::Relaxed);
        ticker.await.unwrap();
        Duration::from_micros(longest_us.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn decoding_a_large_value_does_not_stall_other_tasks() {
    let inline = longest_stall(0).await;
    let offloaded = longest_stall(64 * 1024).await;
    println!("longest stall of a 1 ms ticker: {inline:?} decoding inline, {offloaded:?} offloaded");
    assert!(
        offloaded * 2 < inline,
        "inline {inline:?}, offloaded {offloaded:?}"
    );
}
