//! One hit scenario alone, for a profiler: `Cache::get` or a bare fred GET and bincode decode of a
//! ~100-byte value, closed loop, on a 2-worker runtime against a redis-server of its own.
//!
//! ```text
//! cargo build --release -p cache-bench --example hit_load
//! perf record -F 999 -g -- target/release/examples/hit_load cache 2 64 10
//! perf record -F 999 -g -- target/release/examples/hit_load fred 2 64 10
//! ```
//!
//! Arguments: `cache`, `cache-each` (reads not gathered) or `fred`, the pool size, the number of
//! tasks, the seconds to run. Each task reads a key of its own (`hit:0`, `hit:1`, ...), as the
//! requests of a service would.
//!
//! Besides the hits per second it prints this process's CPU time and context switches per hit,
//! per thread name (read from `/proc/self/task`, so Redis's own work is not in them): the client
//! CPU a hit costs, which the rate alone hides when the server is the bottleneck.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{Cache, CacheConfig};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface};
use integration_tests::RedisServer;

/// One read of the key given, checked.
type Hit = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(which), Some(pool), Some(tasks), Some(seconds)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        eprintln!("usage: hit_load cache|cache-each|fred POOL TASKS SECONDS");
        std::process::exit(2);
    };
    let pool: usize = pool.parse().expect("pool size");
    let tasks: usize = tasks.parse().expect("tasks");
    let run_for = Duration::from_secs_f64(seconds.parse().expect("seconds"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = RedisServer::start();
    let url = server.url();
    let value = vec![7u8; 100];
    let done = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let load: Arc<dyn Fn(String) -> Hit + Send + Sync> = match which.as_str() {
            "cache" | "cache-each" => {
                let config = CacheConfig::builder()
                    .url(&url)
                    .pool_size(pool)
                    .read_batch(if which == "cache" { 64 } else { 1 })
                    .build()
                    .expect("config");
                let cache = Cache::new(config).await.expect("cache");
                for task in 0..tasks {
                    cache
                        .set(&format!("hit:{task}"), &value, None)
                        .await
                        .expect("set");
                }
                Arc::new(move |key| {
                    let cache = cache.clone();
                    Box::pin(async move {
                        let v: Option<Vec<u8>> = cache.get(&key).await.expect("get");
                        assert!(v.is_some());
                    })
                })
            }
            "fred" => {
                let client = Builder::from_config(Config::from_url(&url).expect("url"))
                    .build_pool(pool)
                    .expect("pool");
                client.init().await.expect("connect");
                // The same value in bincode, decoded the same way: the floor of cache-bench.
                let encoded = bincode::serde::encode_to_vec(&value, bincode::config::standard())
                    .expect("encode");
                for task in 0..tasks {
                    let _: () = client
                        .set(format!("hit:{task}"), encoded.clone(), None, None, false)
                        .await
                        .expect("set");
                }
                Arc::new(move |key| {
                    let client = client.clone();
                    Box::pin(async move {
                        let bytes: Bytes = client.get(key).await.expect("get");
                        let (v, _): (Vec<u8>, _) =
                            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                                .expect("decode");
                        assert_eq!(v.len(), 100);
                    })
                })
            }
            other => panic!("cache, cache-each or fred, not {other}"),
        };
        let before = ThreadTimes::read();
        let started = Instant::now();
        let workers: Vec<_> = (0..tasks)
            .map(|task| {
                let (load, done) = (load.clone(), done.clone());
                let key = format!("hit:{task}");
                tokio::spawn(async move {
                    while started.elapsed() < run_for {
                        load(key.clone()).await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("worker");
        }
        let n = done.load(Ordering::Relaxed);
        println!(
            "{which} pool {pool}, {tasks} tasks: {n} hits in {:?}, {:.0}/s",
            started.elapsed(),
            n as f64 / started.elapsed().as_secs_f64()
        );
        ThreadTimes::read().since(&before).print(n);
    });
}

/// CPU time and context switches of each thread of this process, summed by thread name.
struct ThreadTimes(BTreeMap<String, [u64; 3]>);

impl ThreadTimes {
    /// Per name: nanoseconds on a CPU, voluntary and involuntary context switches.
    fn read() -> ThreadTimes {
        let mut times = BTreeMap::new();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
            let dir = task.expect("task").path();
            let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            let name = read("comm").trim().to_owned();
            let cpu_ns = read("schedstat")
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let status = read("status");
            let switches = |field: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0)
            };
            let entry: &mut [u64; 3] = times.entry(name).or_default();
            entry[0] += cpu_ns;
            entry[1] += switches("voluntary_ctxt_switches:");
            entry[2] += switches("nonvoluntary_ctxt_switches:");
        }
        ThreadTimes(times)
    }

    fn since(&self, before: &ThreadTimes) -> ThreadTimes {
        let mut diff = BTreeMap::new();
        for (name, now) in &self.0 {
            let then = before.0.get(name).copied().unwrap_or_default();
            diff.insert(
                name.clone(),
                [0, 1, 2].map(|i| now[i].saturating_sub(then[i])),
            );
        }
        ThreadTimes(diff)
    }

    /// Per hit, for `hits` hits: each thread name, then the process.
    fn print(&self, hits: u64) {
        let hits = hits.max(1) as f64;
        let mut total = [0u64; 3];
        for (name, t) in &self.0 {
            for i in 0..3 {
                total[i] += t[i];
            }
            if t[0] > 0 {
                Self::line(name, t, hits);
            }
        }
        Self::line("process", &total, hits);
    }

    fn line(name: &str, t: &[u64; 3], hits: f64) {
        println!(
            "  {name:<22} cpu {:>6.2} µs/hit, switches {:.3} voluntary + {:.3} forced /hit",
            t[0] as f64 / 1000.0 / hits,
            t[1] as f64 / hits,
            t[2] as f64 / hits
        );
    }
}
