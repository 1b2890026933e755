//! A hit allocates nothing beyond its value and its key: counted with dhat's heap profiler as
//! the global allocator of this test binary (every thread's allocations, the runtime's and
//! fred's included).
//!
//! - In process: a `#[cached]` hit allocates what decoding its value allocates, plus the key.
//! - Through Redis: `Cache::get` allocates no more than the bare client's GET plus the same
//!   decode.
//! - A string whose length prefix claims 500 MiB in a 30-byte payload is refused without a
//!   block of that size ever being allocated.
//!
//! One test, because dhat counts for the whole process and only one profiler may run at a time.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{cached, Cache, CacheConfig};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface};
use integration_tests::RedisServer;
use serde::{Deserialize, Serialize};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Decoding it allocates three blocks: the name, the tags' `Vec` and its one `String`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Server {
    id: u64,
    name: String,
    tags: Vec<String>,
}

#[cached(ttl = 600, key_prefix = "alloc")]
async fn server(id: u64) -> Server {
    Server {
        id,
        name: format!("server-{id}"),
        tags: vec!["prod".to_owned()],
    }
}

/// Enough calls that the background work of the runtime and the cache (timers, the watchdog)
/// weighs less than a twentieth of a block per call.
const CALLS: u64 = 2_000;

/// Blocks allocated per run of `call`, over [`CALLS`] runs after as many to warm up.
async fn blocks_per_call<F, Fut>(mut call: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..CALLS {
        call().await;
    }
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..CALLS {
        call().await;
    }
    (dhat::HeapStats::get().total_blocks - before) as f64 / CALLS as f64
}

#[tokio::test(flavor = "current_thread")]
async fn a_hit_allocates_its_value_and_its_key_and_nothing_else() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let redis = RedisServer::start();

    // In process, through the attribute.
    cache_core::init(CacheConfig::builder().memory(1 << 20).build().unwrap())
        .await
        .unwrap();
    let stored =
        cache_core::codec::encode_value(cache_core::codec::CodecKind::Bincode, &server(1).await)
            .unwrap();
    let decode = blocks_per_call(|| async {
        black_box(cache_core::codec::decode_value::<Server>(&stored, usize::MAX).unwrap());
    })
    .await;
    assert_eq!(decode, 3.0, "the value's own blocks");
    let hit = blocks_per_call(|| async {
        black_box(server(black_box(1)).await);
    })
    .await;
    assert!(
        hit <= decode + 1.0 + 0.05,
        "an in-process #[cached] hit allocated {hit} blocks: {decode} for the value, 1 for the key, and {:.2} more",
        hit - decode - 1.0
    );

    // Through Redis: against the bare client reading the same bytes.
    let cache = Cache::new(
        CacheConfig::builder()
            .url(redis.url())
            .pool_size(1)
            .socket_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    cache
        .set("alloc:get", &server(2).await, None)
        .await
        .unwrap();
    let get = blocks_per_call(|| async {
        black_box(cache.get::<Server>("alloc:get").await.unwrap().unwrap());
    })
    .await;
    let client = Builder::from_config(Config::from_url(&redis.url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let bare = blocks_per_call(|| async {
        let bytes: Bytes = client.get("alloc:get").await.unwrap();
        black_box(cache_core::codec::decode_value::<Server>(&bytes, usize::MAX).unwrap());
    })
    .await;
    assert!(
        get <= bare + 0.05,
        "Cache::get through Redis allocated {get} blocks, the bare client's GET and decode {bare}"
    );

    // 500 MiB claimed (a varint: 0xFC, then a u32) in a 30-byte payload: the bytes that remain
    // refuse it, before allocating.
    let mut forged = cache_core::codec::encode_value(cache_core::codec::CodecKind::Bincode, "")
        .unwrap()[..cache_core::codec::HEADER_LEN]
        .to_vec();
    forged.push(0xFC);
    forged.extend_from_slice(&(500u32 << 20).to_le_bytes());
    forged.extend_from_slice(&[b'a'; 25]);
    let before = dhat::HeapStats::get();
    for _ in 0..16 {
        assert!(cache_core::codec::decode_value::<String>(black_box(&forged), usize::MAX).is_err());
        assert!(cache_core::codec::decode_value::<Vec<String>>(
            black_box(
                &[
                    &forged[..cache_core::codec::HEADER_LEN],
                    &[1],
                    &forged[cache_core::codec::HEADER_LEN..]
                ]
                .concat()
            ),
            usize::MAX
        )
        .is_err());
    }
    let after = dhat::HeapStats::get();
    let peak = after.max_bytes.saturating_sub(before.curr_bytes);
    eprintln!(
        "forged 500 MiB string claims: heap peak {} KiB above the bytes live before",
        peak >> 10
    );
    assert!(
        after.max_bytes == before.max_bytes || peak < 1 << 20,
        "decoding a forged string claim raised the heap's peak to {} MiB above what was live",
        peak >> 20
    );
}
