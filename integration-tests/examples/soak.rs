//! Long-run soak: many concurrent `#[cached]` callers over a mix of hits, misses and
//! invalidations while Redis is restarted now and then, against a redis-server of its own.
//!
//! ```text
//! cargo run --release -p integration-tests --example soak            # 60 s, 10,000 callers
//! SOAK_SECONDS=300 SOAK_CALLERS=20000 cargo run --release -p integration-tests --example soak
//! ```
//!
//! Reports wrong values (a value for another key, or from a version that does not exist yet),
//! stale reads (a version older than one whose invalidation had returned before the read began),
//! p50/p99/p99.9 latency, and resident memory at the start and end (it must not grow: the
//! single-flight table drains, per-key state is bounded). Exits non-zero when a wrong value or a
//! stale read was seen, or the in-flight table did not drain.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, CacheConfig};
use integration_tests::{resident_bytes, RedisServer};
use serde::{Deserialize, Serialize};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const KEYS: usize = 5_000;

/// The source of truth: a version per item, bumped by invalidating writes.
static VERSIONS: LazyLock<Vec<AtomicU64>> =
    LazyLock::new(|| (0..KEYS).map(|_| AtomicU64::new(0)).collect());
/// Per item, the newest version whose invalidation has returned: no read that starts later may
/// see an older one.
static INVALIDATED: LazyLock<Vec<AtomicU64>> =
    LazyLock::new(|| (0..KEYS).map(|_| AtomicU64::new(0)).collect());

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Price {
    item: u32,
    version: u64,
    cents: u64,
}

#[cached(ttl = 30, key_prefix = "soak")]
async fn price(item: u32) -> Price {
    let version = VERSIONS[item as usize].load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_micros(200)).await; // the "database"
    Price {
        item,
        version,
        cents: u64::from(item) * 100 + version,
    }
}

#[invalidate_cache("soak:price:{item}")]
async fn bump(item: u32) -> u64 {
    VERSIONS[item as usize].fetch_add(1, Ordering::SeqCst) + 1
}

/// Latency histogram: 64 power-of-two ranges of microseconds, each split in 16.
struct Histogram {
    buckets: Vec<AtomicU64>,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: (0..64 * 16).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn bucket(us: u64) -> usize {
        if us < 16 {
            return us as usize;
        }
        let top = 63 - us.leading_zeros() as usize; // >= 4
        let sub = ((us >> (top - 4)) & 15) as usize;
        (top - 3) * 16 + sub
    }

    fn lower_bound(bucket: usize) -> u64 {
        if bucket < 16 {
            return bucket as u64;
        }
        let (top, sub) = (bucket / 16 + 3, (bucket % 16) as u64);
        (1 << top) | (sub << (top - 4))
    }

    fn record(&self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        self.buckets[Self::bucket(us).min(self.buckets.len() - 1)].fetch_add(1, Ordering::Relaxed);
    }

    fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let target = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target.max(1) {
                return Self::lower_bound(i);
            }
        }
        0
    }
}

fn main() {
    let seconds = env("SOAK_SECONDS", 60);
    let callers = env("SOAK_CALLERS", 10_000);
    let restart_every = env("SOAK_RESTART_EVERY", 20);
    let mut server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(Duration::from_millis(500))
        .breaker_probe_interval(Duration::from_millis(200))
        .build()
        .expect("config");
    // The callers' runtime: two workers, while this thread drives the server and the clock.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cache = runtime.block_on(cache_core::init(config)).expect("cache");

    let stop = Arc::new(AtomicBool::new(false));
    let histogram = Arc::new(Histogram::new());
    let (calls, wrong, stale, bumps) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let tasks: Vec<_> = runtime.block_on(async {
        (0..callers)
            .map(|task| {
                let (stop, histogram, calls, wrong, stale, bumps) = (
                    stop.clone(),
                    histogram.clone(),
                    calls.clone(),
                    wrong.clone(),
                    stale.clone(),
                    bumps.clone(),
                );
                tokio::spawn(async move {
                    // A cheap per-task pseudo-random walk over the keys, skewed to hot ones.
                    let mut state = task.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    while !stop.load(Ordering::Relaxed) {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let item = ((state % KEYS as u64) * (state % 7 + 1) / 7) as u32;
                        if state % 100 == 0 {
                            let version = bump(item).await;
                            INVALIDATED[item as usize].fetch_max(version, Ordering::SeqCst);
                            bumps.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let committed = INVALIDATED[item as usize].load(Ordering::SeqCst);
                        let started = Instant::now();
                        let got = price(item).await;
                        histogram.record(started.elapsed());
                        calls.fetch_add(1, Ordering::Relaxed);
                        let now = VERSIONS[item as usize].load(Ordering::SeqCst);
                        let consistent = got.item == item
                            && got.version <= now
                            && got.cents == u64::from(item) * 100 + got.version;
                        if !consistent {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        } else if got.version < committed {
                            stale.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect()
    });

    // Warm up, then measure memory from here.
    std::thread::sleep(Duration::from_secs(2));
    let rss_start = resident_bytes();
    let started = Instant::now();
    let mut restarts = 0;
    let mut next_restart = Duration::from_secs(restart_every);
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(100));
        if restart_every > 0 && started.elapsed() >= next_restart {
            server.restart();
            restarts += 1;
            next_restart += Duration::from_secs(restart_every);
        }
    }
    let rss_loaded = resident_bytes();
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for task in tasks {
            task.await.expect("a caller panicked");
        }
    });
    // Give dropped futures and moka's housekeeping a moment before reading memory.
    std::thread::sleep(Duration::from_millis(500));
    let rss_end = resident_bytes();
    let in_flight = cache_core::__private::in_flight();
    let stats = cache.stats();
    let calls = calls.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    println!("soak: {seconds} s, {callers} concurrent callers, {KEYS} keys, Redis restarted {restarts} times");
    println!(
        "calls {calls} ({:.0}/s), invalidations {}, wrong values {}, stale reads {}",
        calls as f64 / elapsed,
        bumps.load(Ordering::Relaxed),
        wrong.load(Ordering::Relaxed),
        stale.load(Ordering::Relaxed)
    );
    println!(
        "latency p50 {} µs, p99 {} µs, p99.9 {} µs",
        histogram.quantile(0.50),
        histogram.quantile(0.99),
        histogram.quantile(0.999)
    );
    println!(
        "hits {}, misses {}, errors {}, short-circuited {}, circuit opened {} times, hit rate {:.1}%",
        stats.hits,
        stats.misses,
        stats.errors,
        stats.short_circuited,
        stats.circuit_opens,
        stats.hit_rate() * 100.0
    );
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "resident memory under load: {:.1} MiB after warm-up, {:.1} MiB at the end ({:+.1} MiB); \
         {:.1} MiB once the callers are gone; in-flight table: {in_flight} entries",
        mib(rss_start),
        mib(rss_loaded),
        mib(rss_loaded) - mib(rss_start),
        mib(rss_end)
    );
    if wrong.load(Ordering::Relaxed) > 0 || stale.load(Ordering::Relaxed) > 0 || in_flight > 0 {
        std::process::exit(1);
    }
}
