//! The studies beside the comparisons: `clear_pattern` against redis-cli, and allocations per
//! call.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use cache_core::{Cache, CacheConfig};
use fred::prelude::KeysInterface;
use integration_tests::RedisServer;

use crate::load::median;
use crate::runner::{cache_with_pool, fred_pool, Settings};
use crate::values::Small;
use crate::{alloc, hit_small};

/// `clear_pattern` over `BENCH_CLEAR_KEYS` keys against
/// `redis-cli --scan | xargs redis-cli unlink`, interleaved over the rounds.
pub(crate) async fn clear_pattern_study(settings: &Settings) -> serde_json::Value {
    let server = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let port = server.port().to_string();
    let cache = cache_with_pool(&server.url(), 1).await;
    let n = settings.clear_keys;
    let populate = |server: &RedisServer| {
        server.cmd(&format!("DEBUG POPULATE {n} doomed 16"));
        server.cmd("DEBUG POPULATE 10000 kept 16");
        assert_eq!(server.dbsize(), n as i64 + 10_000);
    };
    let (mut ours, mut cli) = (Vec::new(), Vec::new());
    for round in 0..settings.rounds {
        for k in 0..2 {
            populate(&server);
            let started = Instant::now();
            if (k + round) % 2 == 0 {
                let removed = cache
                    .clear_pattern("doomed:*")
                    .await
                    .expect("clear_pattern");
                assert_eq!(removed, n);
                ours.push(started.elapsed().as_secs_f64());
            } else {
                let status = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "redis-cli -p {port} --scan --pattern 'doomed:*' | xargs redis-cli -p {port} unlink > /dev/null"
                    ))
                    .status()
                    .expect("sh");
                assert!(status.success());
                cli.push(started.elapsed().as_secs_f64());
            }
            assert_eq!(server.dbsize(), 10_000, "only the kept keys are left");
            server.cmd("FLUSHALL");
        }
        eprintln!(
            "  [clear_pattern] round {}: Cache::clear_pattern {:.2} s, redis-cli pipeline {:.2} s",
            round + 1,
            ours.last().copied().unwrap_or(f64::NAN),
            cli.last().copied().unwrap_or(f64::NAN)
        );
    }
    let ratios: Vec<f64> = ours.iter().zip(&cli).map(|(o, c)| o / c).collect();
    serde_json::json!({
        "keys": n,
        "cache_clear_pattern_s": ours,
        "redis_cli_pipeline_s": cli,
        "median_cache_s": median(&ours),
        "median_cli_s": median(&cli),
        "median_ratio_cache_over_cli": median(&ratios),
    })
}

/// Allocations per hit, counted in a child process (the process-wide cache there is in-process
/// memory, and a current-thread runtime keeps every allocation of a call on the counted thread).
pub(crate) fn run_alloc_child() -> serde_json::Value {
    let server = RedisServer::start();
    let output = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--alloc-child")
        .env("BENCH_ALLOC_REDIS", server.url())
        .output()
        .expect("alloc child");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("alloc child's JSON")
}

/// The child of [`run_alloc_child`]: prints its counts as JSON.
pub(crate) fn alloc_child() {
    const CALLS: u64 = 10_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let per_call = |f: &mut dyn FnMut()| {
        let before = alloc::count();
        for _ in 0..CALLS {
            f();
        }
        (alloc::count() - before) as f64 / CALLS as f64
    };
    runtime.block_on(async {
        cache_core::init(
            CacheConfig::builder()
                .memory(64 << 20)
                .build()
                .expect("config"),
        )
        .await
        .expect("global");
        let small = hit_small(1).await;
        let stored = cache_core::codec::encode_value(cache_core::codec::CodecKind::Bincode, &small)
            .expect("encode");
        // Warm: thread-locals (type fingerprints), the runtime's buffers.
        for _ in 0..1000 {
            black_box(hit_small(1).await);
        }
        let value = per_call(&mut || {
            black_box(
                cache_core::codec::decode_value::<Small>(&stored, usize::MAX).expect("decode"),
            );
        });
        let key = per_call(&mut || {
            let mut k = cache_core::__private::KeyBuf::new("bench:hit_small", 25);
            k.part(&1u64);
            black_box(k.finish());
        });
        let before = alloc::count();
        for _ in 0..CALLS {
            black_box(hit_small(black_box(1)).await);
        }
        let hit = (alloc::count() - before) as f64 / CALLS as f64;

        // For information: the same hit through Redis (fred allocates per command).
        let redis = Cache::new(
            CacheConfig::builder()
                .url(std::env::var("BENCH_ALLOC_REDIS").expect("url"))
                .pool_size(1)
                .build()
                .expect("config"),
        )
        .await
        .expect("redis cache");
        redis
            .set("bench:hit_small:1", &small, None)
            .await
            .expect("set");
        for _ in 0..1000 {
            black_box(redis.get::<Small>("bench:hit_small:1").await.expect("get"));
        }
        let before = alloc::count();
        for _ in 0..CALLS {
            black_box(redis.get::<Small>("bench:hit_small:1").await.expect("get"));
        }
        let redis_get = (alloc::count() - before) as f64 / CALLS as f64;

        // The bare client's GET of the same bytes, decoded the same way: what fred itself costs.
        let bare = fred_pool(&std::env::var("BENCH_ALLOC_REDIS").expect("url"), 1).await;
        let fetch = || async {
            let bytes: Bytes = bare.get("bench:hit_small:1").await.expect("get");
            black_box(
                cache_core::codec::decode_value::<Small>(&bytes, usize::MAX).expect("decode"),
            );
        };
        for _ in 0..1000 {
            fetch().await;
        }
        let before = alloc::count();
        for _ in 0..CALLS {
            fetch().await;
        }
        let fred_get = (alloc::count() - before) as f64 / CALLS as f64;
        let report = serde_json::json!({
            "value_decode_allocations": value,
            "key_build_allocations": key,
            "cached_hit_in_process_allocations": hit,
            "extra_allocations_per_hit": hit - value - key,
            "redis_cache_get_allocations": redis_get,
            "fred_get_decode_allocations": fred_get,
        });
        println!("{report}");
    });
}
