//! What a durable invalidation costs (`CACHE_INVALIDATION_REPLICAS=1`), beside a plain one, on
//! a primary with one replica of its own on this machine:
//! `cargo run --release -p integration-tests --example durable_cost [rounds]`.
//!
//! Each round, alternately for the plain and the durable cache: 2,000 sequential one-key
//! deletes, 2,000 deletes from 16 tasks at once, and a `clear_pattern` over 10,000 keys. Prints
//! each round and the medians, and the durable/plain ratios of the medians.

use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use integration_tests::{wait_until, RedisServer};

const KEYS: u32 = 2_000;
const TASKS: u32 = 16;
const CLEARED: u32 = 10_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One round's figures: µs per sequential delete, µs per delete under 16 tasks, ms per clear.
async fn round(cache: &Cache) -> [f64; 3] {
    let fill = |prefix: &'static str, n: u32| (0..n).map(move |i| (format!("{prefix}:{i}"), i));
    cache.set_many(fill("seq", KEYS), None).await.unwrap();
    let started = Instant::now();
    for i in 0..KEYS {
        assert_eq!(cache.delete([format!("seq:{i}")]).await.unwrap(), 1);
    }
    let sequential = started.elapsed().as_secs_f64() * 1e6 / f64::from(KEYS);

    cache.set_many(fill("par", KEYS), None).await.unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for i in (t..KEYS).step_by(TASKS as usize) {
                    assert_eq!(cache.delete([format!("par:{i}")]).await.unwrap(), 1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = started.elapsed().as_secs_f64() * 1e6 / f64::from(KEYS);

    cache.set_many(fill("clr", CLEARED), None).await.unwrap();
    let started = Instant::now();
    assert_eq!(
        cache.clear_pattern("clr:*").await.unwrap(),
        u64::from(CLEARED)
    );
    let clear = started.elapsed().as_secs_f64() * 1e3;
    [sequential, concurrent, clear]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let primary = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    assert!(wait_until(Duration::from_secs(10), || {
        replica.info_field("replication", "master_link_status") == Some("up".to_owned())
    }));
    let cache = |replicas| {
        let config = CacheConfig::builder()
            .url(primary.url())
            .fail_silently(false)
            .invalidation_replicas(replicas)
            .build()
            .unwrap();
        Cache::new(config)
    };
    let (plain, durable) = (cache(0).await.unwrap(), cache(1).await.unwrap());
    let names = [
        "sequential delete (µs)",
        "delete, 16 tasks (µs each)",
        "clear 10,000 keys (ms)",
    ];
    let (mut p, mut d) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
    for r in 1..=rounds {
        // Alternate which goes first, so that neither always runs on a warmer machine.
        let (first, second) = if r % 2 == 1 {
            (&plain, &durable)
        } else {
            (&durable, &plain)
        };
        let a = round(first).await;
        let b = round(second).await;
        let (pr, dr) = if r % 2 == 1 { (a, b) } else { (b, a) };
        for i in 0..3 {
            p[i].push(pr[i]);
            d[i].push(dr[i]);
        }
        println!(
            "round {r}: plain {:.1} µs / {:.1} µs / {:.1} ms; durable {:.1} µs / {:.1} µs / {:.1} ms",
            pr[0], pr[1], pr[2], dr[0], dr[1], dr[2]
        );
    }
    println!("medians over {rounds} rounds (plain, durable, durable/plain):");
    for i in 0..3 {
        let (pm, dm) = (median(p[i].clone()), median(d[i].clone()));
        println!("  {:<28} {pm:8.1} {dm:8.1} {:6.2}x", names[i], dm / pm);
    }
}
