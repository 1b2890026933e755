//! One hit scenario alone, for a profiler: `Cache::get` or a bare fred GET of a ~100-byte value,
//! closed loop, on a 2-worker runtime against a redis-server of its own.
//!
//! ```text
//! cargo build --release -p cache-bench --example hit_load
//! perf record -F 999 -g -- target/release/examples/hit_load cache 2 64 10
//! perf record -F 999 -g -- target/release/examples/hit_load fred 2 64 10
//! ```
//!
//! Arguments: `cache` or `fred`, the pool size, the number of tasks, the seconds to run. Each
//! task reads a key of its own (`hit:0`, `hit:1`, ...), as the requests of a service would.

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
        eprintln!("usage: hit_load cache|fred POOL TASKS SECONDS");
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
            "cache" => {
                let config = CacheConfig::builder()
                    .url(&url)
                    .pool_size(pool)
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
                for task in 0..tasks {
                    let _: () = client
                        .set(format!("hit:{task}"), value.clone(), None, None, false)
                        .await
                        .expect("set");
                }
                Arc::new(move |key| {
                    let client = client.clone();
                    Box::pin(async move {
                        let v: Bytes = client.get(key).await.expect("get");
                        assert_eq!(v.len(), 100);
                    })
                })
            }
            other => panic!("cache or fred, not {other}"),
        };
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
    });
}
