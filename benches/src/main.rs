//! `cache-bench`: the load generator of `docs/src/benchmarks.md`.
//!
//! ```text
//! cargo run --release -p cache-bench            # the whole suite, about 6 minutes on 2 cores
//! BENCH_ROUNDS=1 BENCH_SECONDS=0.3 cargo run --release -p cache-bench   # a quick look
//! ```
//!
//! Starts its own `redis-server` processes on free loopback ports, runs closed-loop load (N tokio
//! tasks, each calling again as soon as its call returns) for a fixed window after a warm-up, and
//! prints a table (ops/s, p50, p99, p99.9, and the ratio against the bare-client floor) plus
//! `report.json`, `report.md` and SVG charts in `BENCH_OUT` (default `target/cache-bench`).
//!
//! The machine is shared and noisy, so every scenario of one comparison runs in the same process,
//! interleaved, in several rounds (the order rotates each round); ratios are taken within a round
//! and the report gives the median over the rounds.
//!
//! Environment: `BENCH_ROUNDS` (3), `BENCH_SECONDS` per measurement (0.8), `BENCH_WARMUP` (0.2),
//! `BENCH_POOLS` (pool sizes of the pool study, `1,2,4,10,32`), `BENCH_CLEAR_KEYS` (1000000),
//! `BENCH_OUT`.

mod alloc;
mod keys;
mod load;
mod plot;
mod report;
mod runner;
mod studies;
mod values;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{cached, invalidate_cache, Cache, CacheConfig};
use fred::prelude::{ClientLike, KeysInterface, Pool};
use integration_tests::RedisServer;
use serde::Serialize;

use keys::KEYS;
use runner::{
    baseline, cache_get, cache_with, cache_with_pool, compare, fred_get, fred_pool, scenario,
    Settings,
};
use values::{Large, Small};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

const CONCURRENCY: [usize; 3] = [1, 16, 64];

// ---------------------------------------------------------------------------------------------
// The functions under test.

#[cached(ttl = 3600, key_prefix = "bench")]
async fn hit_small(id: u64) -> Small {
    values::small(id)
}

#[cached(ttl = 3600, key_prefix = "bench")]
async fn hit_large(id: u64) -> Large {
    values::large(id)
}

#[cached(ttl = 120, key_prefix = "bench")]
async fn miss_small(n: u64) -> Small {
    values::small(n)
}

#[invalidate_cache("bench:invalidated:{id}")]
async fn invalidate_one(id: u64) {
    black_box(id);
}

/// The `cached` crate's connection string, read by its `create` blocks on first call.
static CACHED_CRATE_URL: OnceLock<String> = OnceLock::new();

#[cached::macros::concurrent_cached(
    map_error = r##"|e| format!("{e:?}")"##,
    ty = "cached::AsyncRedisCache<u64, Small>",
    create = r##" {
        cached::AsyncRedisCache::builder("cached_crate_small")
            .ttl(Duration::from_secs(3600))
            .connection_string(CACHED_CRATE_URL.get().expect("set before the first call"))
            .build()
            .await
            .expect("the cached crate's Redis cache")
    } "##
)]
async fn cached_crate_small(id: u64) -> Result<Small, String> {
    Ok(values::small(id))
}

#[cached::macros::concurrent_cached(
    map_error = r##"|e| format!("{e:?}")"##,
    ty = "cached::AsyncRedisCache<u64, Large>",
    create = r##" {
        cached::AsyncRedisCache::builder("cached_crate_large")
            .ttl(Duration::from_secs(3600))
            .connection_string(CACHED_CRATE_URL.get().expect("set before the first call"))
            .build()
            .await
            .expect("the cached crate's Redis cache")
    } "##
)]
async fn cached_crate_large(id: u64) -> Result<Large, String> {
    Ok(values::large(id))
}

// ---------------------------------------------------------------------------------------------
// The comparisons.

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--alloc-child") {
        studies::alloc_child();
        return;
    }
    let settings = Settings::from_env();
    let started = Instant::now();
    std::fs::create_dir_all(&settings.out).expect("output directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = RedisServer::start();
    let url = server.url();
    let mut rows = Vec::new();
    let mut extra = BTreeMap::new();
    runtime.block_on(async {
        let default_pool = CacheConfig::builder()
            .url(&url)
            .build()
            .expect("config")
            .pool_size();
        eprintln!(
            "redis-server on port {}; #[cached] uses the default pool of {default_pool}",
            server.port()
        );
        cache_core::init(
            CacheConfig::builder()
                .url(&url)
                .fail_silently(false)
                .build()
                .expect("config"),
        )
        .await
        .expect("global cache");
        CACHED_CRATE_URL.set(url.clone()).expect("once");

        // Warm every key: the #[cached] values, the bare bincode copies, the cached crate's. Each
        // task reads a key of its own (`KEYS` of them), as the requests of a service would: a
        // cache that gathered the reads of one key would otherwise look better than it is.
        let (small, large) = (hit_small(0).await, hit_large(0).await);
        let bare = fred_pool(&url, 1).await;
        let memory: &'static Cache = Box::leak(Box::new(
            Cache::new(
                CacheConfig::builder()
                    .memory(64 << 20)
                    .build()
                    .expect("config"),
            )
            .await
            .expect("memory cache"),
        ));
        for id in 0..KEYS {
            let (small, large) = (hit_small(id).await, hit_large(id).await);
            let raw = [
                (
                    &keys::RAW_SMALL[id as usize],
                    values::bincode_encode(&small),
                ),
                (
                    &keys::RAW_LARGE[id as usize],
                    values::bincode_encode(&large),
                ),
            ];
            for (key, bytes) in raw {
                let _: () = bare
                    .set(key.as_str(), bytes, None, None, false)
                    .await
                    .expect("set");
            }
            assert_eq!(cached_crate_small(id).await.expect("cached crate"), small);
            assert_eq!(cached_crate_large(id).await.expect("cached crate"), large);
            memory
                .set(&keys::SMALL[id as usize], &small, None)
                .await
                .expect("set");
            memory
                .set(&keys::LARGE[id as usize], &large, None)
                .await
                .expect("set");
        }
        eprintln!(
            "bytes stored: #[cached] small {} / large {}, bare bincode small {} / large {}",
            encoded_len(&small),
            encoded_len(&large),
            values::bincode_encode(&small).len(),
            values::bincode_encode(&large).len()
        );

        // 1, 2, 3, 5 and the pool study: hits of the ~100-byte value.
        let mut small_scenarios = vec![
            scenario("1 #[cached] hit", |i| async move {
                black_box(hit_small(keys::id(i)).await);
            }),
            scenario("3 cached crate #[concurrent_cached]", |i| async move {
                black_box(cached_crate_small(keys::id(i)).await.expect("hit"));
            }),
            cache_get::<Small>("5 in-process Cache::get", memory, &keys::SMALL),
        ];
        for &size in &settings.pools {
            let pool = fred_pool(&url, size).await;
            small_scenarios.push(fred_get::<Small>(
                format!("2 fred GET+decode pool {size}"),
                pool,
                &keys::RAW_SMALL,
            ));
        }
        // What cache-core's per-command options (fail fast, one attempt, the socket timeout) cost
        // on the bare client: the timeout is a timer per command.
        {
            let pool = fred_pool(&url, 1).await;
            let options = fred::prelude::Options {
                fail_fast: true,
                max_attempts: Some(1),
                timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            };
            let with: &'static fred::clients::WithOptions<Pool> =
                Box::leak(Box::new(pool.with_options(&options)));
            small_scenarios.push(scenario(
                "2o fred+options GET+decode pool 1",
                move |i| async move {
                    let key = keys::RAW_SMALL[keys::id(i) as usize].as_str();
                    let bytes: Bytes = with.get(key).await.expect("get");
                    black_box(values::bincode_decode::<Small>(&bytes));
                },
            ));
        }
        for &size in &settings.pools {
            if size == default_pool {
                continue; // that is scenario 1's pool, minus the attribute
            }
            let cache = cache_with_pool(&url, size).await;
            small_scenarios.push(cache_get::<Small>(
                format!("1b Cache::get pool {size}"),
                cache,
                &keys::SMALL,
            ));
        }
        let global = cache_core::get_cache().await.expect("global");
        let global: &'static Cache = Box::leak(Box::new(global));
        small_scenarios.push(cache_get::<Small>(
            format!("1b Cache::get pool {default_pool}"),
            global,
            &keys::SMALL,
        ));
        // The same cache with each read a GET of its own: what gathering reads is worth.
        let unbatched = cache_with(CacheConfig::builder().url(&url).read_batch(1)).await;
        small_scenarios.push(cache_get::<Small>(
            format!("1c Cache::get pool {default_pool}, reads not gathered"),
            unbatched,
            &keys::SMALL,
        ));
        rows.extend(compare(&settings, "hit ~100 B", &small_scenarios, &CONCURRENCY).await);

        // The same for the ~10 KB value (pool study left out: the small value tells it).
        let mut large_scenarios = vec![
            scenario("1 #[cached] hit", |i| async move {
                black_box(hit_large(keys::id(i)).await);
            }),
            scenario("3 cached crate #[concurrent_cached]", |i| async move {
                black_box(cached_crate_large(keys::id(i)).await.expect("hit"));
            }),
            cache_get::<Large>("5 in-process Cache::get", memory, &keys::LARGE),
        ];
        let mut floor_pools = vec![1, default_pool];
        floor_pools.dedup();
        for size in floor_pools {
            let pool = fred_pool(&url, size).await;
            large_scenarios.push(fred_get::<Large>(
                format!("2 fred GET+decode pool {size}"),
                pool,
                &keys::RAW_LARGE,
            ));
        }
        rows.extend(compare(&settings, "hit ~10 KB", &large_scenarios, &CONCURRENCY).await);

        // 4: miss + store, and invalidation of one exact key, against the same floor.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let floor_pool = fred_pool(&url, default_pool).await;
        let write_scenarios = vec![
            fred_get::<Small>(
                "2 fred GET+decode pool (default)",
                floor_pool,
                &keys::RAW_SMALL,
            ),
            scenario("4 #[cached] miss + store", |_| async {
                black_box(miss_small(NEXT.fetch_add(1, Ordering::Relaxed)).await);
            }),
            scenario("4 #[invalidate_cache] exact key", |i| async move {
                invalidate_one(i % 1000).await;
            }),
        ];
        rows.extend(compare(&settings, "writes", &write_scenarios, &CONCURRENCY).await);

        // 4: get_many of 100 keys against 100 sequential gets (one caller).
        let keys: &'static Vec<String> = Box::leak(Box::new(
            (0..100).map(|i| format!("bench:many:{i}")).collect(),
        ));
        global
            .set_many(keys.iter().map(|k| (k.clone(), small.clone())), None)
            .await
            .expect("set_many");
        let batch_scenarios = vec![
            baseline("4 100 sequential Cache::get", move |_| async move {
                for key in keys {
                    black_box(global.get::<Small>(key).await.expect("get"));
                }
            }),
            scenario("4 Cache::get_many of 100", move |_| async move {
                black_box(global.get_many::<Small, _>(keys).await.expect("get_many"));
            }),
        ];
        rows.extend(compare(&settings, "batch", &batch_scenarios, &[1]).await);

        extra.insert(
            "clear_pattern".to_owned(),
            studies::clear_pattern_study(&settings).await,
        );
    });
    let allocations = studies::run_alloc_child();
    extra.insert("allocations".to_owned(), allocations);
    report::report(&settings, &rows, &extra, started.elapsed());
}

fn encoded_len<V: Serialize>(value: &V) -> usize {
    cache_core::codec::encode_value(cache_core::codec::CodecKind::Bincode, value)
        .expect("encode")
        .len()
}
