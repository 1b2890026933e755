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
mod load;
mod plot;
mod values;

use std::collections::BTreeMap;
use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{cached, invalidate_cache, Cache, CacheConfig};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface, Pool};
use integration_tests::RedisServer;
use serde::Serialize;

use load::{closed_loop, median, Sample};
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
// Settings and results.

struct Settings {
    rounds: usize,
    window: Duration,
    warmup: Duration,
    pools: Vec<usize>,
    clear_keys: u64,
    out: PathBuf,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            rounds: env_or("BENCH_ROUNDS", 3usize).max(1),
            window: Duration::from_secs_f64(env_or("BENCH_SECONDS", 0.8)),
            warmup: Duration::from_secs_f64(env_or("BENCH_WARMUP", 0.2)),
            pools: std::env::var("BENCH_POOLS")
                .unwrap_or_else(|_| "1,2,4,10,32".into())
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect(),
            clear_keys: env_or("BENCH_CLEAR_KEYS", 1_000_000u64),
            out: std::env::var("BENCH_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from("target/cache-bench")),
        }
    }
}

/// Every sample of one scenario at one concurrency, one per round.
#[derive(Debug, Default, Serialize)]
struct Cell {
    samples: Vec<Sample>,
    /// Ratio of ops/s against the comparison's floor in the same round.
    ratios: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Row {
    comparison: String,
    scenario: String,
    concurrency: usize,
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    /// Median over rounds of the per-round ratio against the floor (NaN: no floor).
    ratio: f64,
    rounds: Vec<Sample>,
}

type Op = Box<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A scenario: a name and what one call does. Boxed so that all scenarios share one runner; the
/// box costs every scenario the same (one allocation and an indirect call, ~50 ns).
struct Scenario {
    name: String,
    op: &'static Op,
}

fn scenario<F, Fut>(name: impl Into<String>, f: F) -> Scenario
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let op: Op = Box::new(move |i| Box::pin(f(i)));
    Scenario {
        name: name.into(),
        op: Box::leak(Box::new(op)),
    }
}

/// Runs `scenarios` at each concurrency, interleaved, for the configured rounds. The floor of
/// each round and concurrency is the best of the scenarios whose name starts with `floor`.
async fn compare(
    settings: &Settings,
    comparison: &str,
    scenarios: &[Scenario],
    floor: &str,
    concurrency: &[usize],
) -> Vec<Row> {
    let mut cells: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    for round in 0..settings.rounds {
        for &tasks in concurrency {
            let mut ops = BTreeMap::new();
            for k in 0..scenarios.len() {
                // Rotate the order each round, so drift does not always favour the same one.
                let s = (k + round) % scenarios.len();
                let op = scenarios[s].op;
                let sample = closed_loop(tasks, settings.warmup, settings.window, op).await;
                eprintln!(
                    "  [{comparison}] round {} c={tasks:<3} {:<34} {:>10.0} ops/s  p50 {:>7.1} µs  p99 {:>7.1} µs",
                    round + 1,
                    scenarios[s].name,
                    sample.ops_per_sec,
                    sample.p50_us,
                    sample.p99_us
                );
                ops.insert(s, sample.ops_per_sec);
                cells.entry((s, tasks)).or_default().samples.push(sample);
            }
            let best_floor = scenarios
                .iter()
                .enumerate()
                .filter(|(_, sc)| sc.name.starts_with(floor))
                .map(|(s, _)| ops[&s])
                .fold(f64::NAN, f64::max);
            for (s, v) in ops {
                cells
                    .entry((s, tasks))
                    .or_default()
                    .ratios
                    .push(v / best_floor);
            }
        }
    }
    let mut rows = Vec::new();
    for (s, sc) in scenarios.iter().enumerate() {
        for &tasks in concurrency {
            let cell = &cells[&(s, tasks)];
            let pick =
                |f: fn(&Sample) -> f64| median(&cell.samples.iter().map(f).collect::<Vec<_>>());
            rows.push(Row {
                comparison: comparison.to_owned(),
                scenario: sc.name.clone(),
                concurrency: tasks,
                ops_per_sec: pick(|s| s.ops_per_sec),
                p50_us: pick(|s| s.p50_us),
                p99_us: pick(|s| s.p99_us),
                p999_us: pick(|s| s.p999_us),
                ratio: median(&cell.ratios),
                rounds: cell.samples.clone(),
            });
        }
    }
    rows
}

async fn fred_pool(url: &str, size: usize) -> &'static Pool {
    let config = Config::from_url(url).expect("url");
    let pool = Builder::from_config(config)
        .build_pool(size)
        .expect("fred pool");
    pool.init().await.expect("fred connects");
    Box::leak(Box::new(pool))
}

async fn cache_with_pool(url: &str, size: usize) -> &'static Cache {
    let config = CacheConfig::builder()
        .url(url)
        .pool_size(size)
        .fail_silently(false)
        .build()
        .expect("config");
    Box::leak(Box::new(Cache::new(config).await.expect("cache")))
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--alloc-child") {
        alloc_child();
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

        // Warm every key: the #[cached] values, the bare bincode copies, the cached crate's.
        let (small, large) = (hit_small(1).await, hit_large(1).await);
        let bare = fred_pool(&url, 1).await;
        let _: () = bare
            .set(
                "raw:small",
                values::bincode_encode(&small),
                None,
                None,
                false,
            )
            .await
            .expect("set");
        let _: () = bare
            .set(
                "raw:large",
                values::bincode_encode(&large),
                None,
                None,
                false,
            )
            .await
            .expect("set");
        assert_eq!(cached_crate_small(1).await.expect("cached crate"), small);
        assert_eq!(cached_crate_large(1).await.expect("cached crate"), large);
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
        memory
            .set("bench:hit_small:1", &small, None)
            .await
            .expect("set");
        memory
            .set("bench:hit_large:1", &large, None)
            .await
            .expect("set");
        eprintln!(
            "bytes stored: #[cached] small {} / large {}, bare bincode small {} / large {}",
            encoded_len(&small),
            encoded_len(&large),
            values::bincode_encode(&small).len(),
            values::bincode_encode(&large).len()
        );

        // 1, 2, 3, 5 and the pool study: hits of the ~100-byte value.
        let mut small_scenarios = vec![
            scenario("1 #[cached] hit", |_| async {
                black_box(hit_small(1).await);
            }),
            scenario("3 cached crate #[concurrent_cached]", |_| async {
                black_box(cached_crate_small(1).await.expect("hit"));
            }),
            scenario("5 in-process Cache::get", move |_| async move {
                black_box(memory.get::<Small>("bench:hit_small:1").await.expect("hit"));
            }),
        ];
        for &size in &settings.pools {
            let pool = fred_pool(&url, size).await;
            small_scenarios.push(scenario(
                format!("2 fred GET+decode pool {size}"),
                move |_| async move {
                    let bytes: Bytes = pool.get("raw:small").await.expect("get");
                    black_box(values::bincode_decode::<Small>(&bytes));
                },
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
                move |_| async move {
                    let bytes: Bytes = with.get("raw:small").await.expect("get");
                    black_box(values::bincode_decode::<Small>(&bytes));
                },
            ));
        }
        for &size in &settings.pools {
            if size == default_pool {
                continue; // that is scenario 1's pool, minus the attribute
            }
            let cache = cache_with_pool(&url, size).await;
            small_scenarios.push(scenario(
                format!("1b Cache::get pool {size}"),
                move |_| async move {
                    black_box(cache.get::<Small>("bench:hit_small:1").await.expect("get"));
                },
            ));
        }
        let global = cache_core::get_cache().await.expect("global");
        let global: &'static Cache = Box::leak(Box::new(global));
        small_scenarios.push(scenario(
            format!("1b Cache::get pool {default_pool}"),
            move |_| async move {
                black_box(global.get::<Small>("bench:hit_small:1").await.expect("get"));
            },
        ));
        rows.extend(
            compare(
                &settings,
                "hit ~100 B",
                &small_scenarios,
                "2 ",
                &CONCURRENCY,
            )
            .await,
        );

        // The same for the ~10 KB value (pool study left out: the small value tells it).
        let mut large_scenarios = vec![
            scenario("1 #[cached] hit", |_| async {
                black_box(hit_large(1).await);
            }),
            scenario("3 cached crate #[concurrent_cached]", |_| async {
                black_box(cached_crate_large(1).await.expect("hit"));
            }),
            scenario("5 in-process Cache::get", move |_| async move {
                black_box(memory.get::<Large>("bench:hit_large:1").await.expect("hit"));
            }),
        ];
        let mut floor_pools = vec![1, default_pool];
        floor_pools.dedup();
        for size in floor_pools {
            let pool = fred_pool(&url, size).await;
            large_scenarios.push(scenario(
                format!("2 fred GET+decode pool {size}"),
                move |_| async move {
                    let bytes: Bytes = pool.get("raw:large").await.expect("get");
                    black_box(values::bincode_decode::<Large>(&bytes));
                },
            ));
        }
        rows.extend(
            compare(
                &settings,
                "hit ~10 KB",
                &large_scenarios,
                "2 ",
                &CONCURRENCY,
            )
            .await,
        );

        // 4: miss + store, and invalidation of one exact key, against the same floor.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let floor_pool = fred_pool(&url, default_pool).await;
        let write_scenarios = vec![
            scenario("2 fred GET+decode pool (default)", move |_| async move {
                let bytes: Bytes = floor_pool.get("raw:small").await.expect("get");
                black_box(values::bincode_decode::<Small>(&bytes));
            }),
            scenario("4 #[cached] miss + store", |_| async {
                black_box(miss_small(NEXT.fetch_add(1, Ordering::Relaxed)).await);
            }),
            scenario("4 #[invalidate_cache] exact key", |i| async move {
                invalidate_one(i % 1000).await;
            }),
        ];
        rows.extend(compare(&settings, "writes", &write_scenarios, "2 ", &CONCURRENCY).await);

        // 4: get_many of 100 keys against 100 sequential gets (one caller).
        let keys: &'static Vec<String> = Box::leak(Box::new(
            (0..100).map(|i| format!("bench:many:{i}")).collect(),
        ));
        global
            .set_many(keys.iter().map(|k| (k.clone(), small.clone())), None)
            .await
            .expect("set_many");
        let batch_scenarios = vec![
            scenario("4 100 sequential Cache::get", move |_| async move {
                for key in keys {
                    black_box(global.get::<Small>(key).await.expect("get"));
                }
            }),
            scenario("4 Cache::get_many of 100", move |_| async move {
                black_box(global.get_many::<Small, _>(keys).await.expect("get_many"));
            }),
        ];
        rows.extend(
            compare(
                &settings,
                "batch",
                &batch_scenarios,
                "4 100 sequential",
                &[1],
            )
            .await,
        );

        extra.insert(
            "clear_pattern".to_owned(),
            clear_pattern_study(&settings).await,
        );
    });
    let allocations = run_alloc_child();
    extra.insert("allocations".to_owned(), allocations);
    report(&settings, &rows, &extra, started.elapsed());
}

fn encoded_len<V: Serialize>(value: &V) -> usize {
    cache_core::codec::encode_value(cache_core::codec::CodecKind::Bincode, value)
        .expect("encode")
        .len()
}

// ---------------------------------------------------------------------------------------------
// clear_pattern over 1,000,000 keys against redis-cli --scan | xargs redis-cli unlink.

async fn clear_pattern_study(settings: &Settings) -> serde_json::Value {
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

// ---------------------------------------------------------------------------------------------
// Allocations per hit, counted in a child process (the process-wide cache there is in-process
// memory, and a current-thread runtime keeps every allocation of a call on the counted thread).

fn run_alloc_child() -> serde_json::Value {
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

fn alloc_child() {
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
        let report = serde_json::json!({
            "value_decode_allocations": value,
            "key_build_allocations": key,
            "cached_hit_in_process_allocations": hit,
            "extra_allocations_per_hit": hit - value - key,
            "redis_cache_get_allocations": redis_get,
        });
        println!("{report}");
    });
}

// ---------------------------------------------------------------------------------------------
// The report: a table on stdout, report.json, report.md and the charts.

fn report(
    settings: &Settings,
    rows: &[Row],
    extra: &BTreeMap<String, serde_json::Value>,
    elapsed: Duration,
) {
    let mut md = String::new();
    md.push_str(&format!(
        "{} rounds of {:.1} s (+{:.1} s warm-up) per scenario and concurrency; medians over rounds; \
         ratio: ops/s over the best bare fred GET+decode pool of the same round (batch: over 100 sequential gets)\n\n",
        settings.rounds,
        settings.window.as_secs_f64(),
        settings.warmup.as_secs_f64()
    ));
    md.push_str("| comparison | scenario | tasks | ops/s | p50 µs | p99 µs | p99.9 µs | ratio |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} |\n",
            r.comparison,
            r.scenario,
            r.concurrency,
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.ratio
        ));
    }
    md.push('\n');
    if let Some(c) = extra.get("clear_pattern") {
        md.push_str(&format!(
            "clear_pattern of {} keys: Cache::clear_pattern {:.2} s, redis-cli --scan | xargs unlink {:.2} s (median ratio {:.2})\n\n",
            c["keys"], c["median_cache_s"].as_f64().unwrap_or(f64::NAN),
            c["median_cli_s"].as_f64().unwrap_or(f64::NAN),
            c["median_ratio_cache_over_cli"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    if let Some(a) = extra.get("allocations") {
        md.push_str(&format!("allocations per call: {a}\n\n"));
    }
    md.push_str(&format!("suite wall time {:.0} s\n", elapsed.as_secs_f64()));
    println!("{md}");
    std::fs::write(settings.out.join("report.md"), &md).expect("report.md");
    let json = serde_json::json!({
        "rounds": settings.rounds,
        "window_s": settings.window.as_secs_f64(),
        "warmup_s": settings.warmup.as_secs_f64(),
        "machine": machine(),
        "rows": rows,
        "extra": extra,
        "wall_time_s": elapsed.as_secs_f64(),
    });
    std::fs::write(
        settings.out.join("report.json"),
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("report.json");

    // Charts: hits of each value size, and the pool study at every concurrency.
    let groups: Vec<String> = CONCURRENCY.iter().map(|c| format!("{c} tasks")).collect();
    for (comparison, file) in [
        ("hit ~100 B", "hits-100b.svg"),
        ("hit ~10 KB", "hits-10kb.svg"),
    ] {
        let best_floor = |c: usize| {
            rows.iter()
                .filter(|r| {
                    r.comparison == comparison && r.concurrency == c && r.scenario.starts_with("2 ")
                })
                .map(|r| r.ops_per_sec)
                .fold(f64::NAN, f64::max)
        };
        let pick = |name: &str, c: usize| {
            rows.iter()
                .find(|r| r.comparison == comparison && r.concurrency == c && r.scenario == name)
                .map_or(f64::NAN, |r| r.ops_per_sec)
        };
        let series = vec![
            "#[cached] hit (default pool)".to_owned(),
            "bare fred GET + bincode (best pool)".to_owned(),
            "cached crate #[concurrent_cached] (redis-rs)".to_owned(),
        ];
        let values = vec![
            CONCURRENCY
                .iter()
                .map(|&c| pick("1 #[cached] hit", c))
                .collect(),
            CONCURRENCY.iter().map(|&c| best_floor(c)).collect(),
            CONCURRENCY
                .iter()
                .map(|&c| pick("3 cached crate #[concurrent_cached]", c))
                .collect(),
        ];
        let svg = plot::grouped_bars(
            &format!(
                "Cache hits per second, {comparison} value (median of {} rounds)",
                settings.rounds
            ),
            "hits per second",
            &groups,
            &series,
            &values,
        );
        std::fs::write(settings.out.join(file), svg).expect("svg");
    }
    let pool_groups: Vec<String> = settings.pools.iter().map(|p| format!("pool {p}")).collect();
    let mut series = Vec::new();
    let mut values = Vec::new();
    for (prefix, label) in [
        ("2 fred GET+decode pool ", "fred"),
        ("1b Cache::get pool ", "Cache::get"),
    ] {
        for &c in &CONCURRENCY {
            series.push(format!("{label}, {c} tasks"));
            values.push(
                settings
                    .pools
                    .iter()
                    .map(|p| {
                        rows.iter()
                            .find(|r| {
                                r.comparison == "hit ~100 B"
                                    && r.concurrency == c
                                    && r.scenario == format!("{prefix}{p}")
                            })
                            .map_or(f64::NAN, |r| r.ops_per_sec)
                    })
                    .collect(),
            );
        }
    }
    let svg = plot::grouped_bars(
        "Pool size study: GET of a ~100 B value, ops/s",
        "ops per second",
        &pool_groups,
        &series,
        &values,
    );
    std::fs::write(settings.out.join("pools.svg"), svg).expect("svg");
    eprintln!("wrote {}", settings.out.display());
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let redis = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    serde_json::json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "redis": redis,
        "os": std::env::consts::OS,
    })
}
