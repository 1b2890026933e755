//! Figures of the runtime core on this machine, against a redis-server of its own:
//! `cargo run --release -p integration-tests --example core_figures [rounds]`.
//!
//! Prints, per round and as medians: 10,000 sequential `set`+`get` round trips through `Cache`,
//! and one `clear_pattern` over 100,000 keys (beside 10,000 keys it must leave alone).

use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use integration_tests::RedisServer;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let server = RedisServer::start();
    let (mut round_trips, mut clears) = (Vec::new(), Vec::new());
    let config = CacheConfig::builder()
        .url(server.url())
        .fail_silently(false)
        .build()
        .unwrap();
    let cache = Cache::new(config).await.unwrap();
    for round in 1..=rounds {
        let started = Instant::now();
        for i in 0..10_000u32 {
            let key = format!("rt:{i}");
            cache.set(&key, &i, None).await.unwrap();
            assert_eq!(cache.get::<u32>(&key).await.unwrap(), Some(i));
        }
        let rt = started.elapsed();

        for chunk in (0..100_000u32).collect::<Vec<_>>().chunks(10_000) {
            cache
                .set_many(chunk.iter().map(|i| (format!("user:{i}"), *i)), None)
                .await
                .unwrap();
        }
        cache
            .set_many((0..10_000u32).map(|i| (format!("keep:{i}"), i)), None)
            .await
            .unwrap();
        let started = Instant::now();
        let removed = cache.clear_pattern("user:*").await.unwrap();
        let clear = started.elapsed();
        assert_eq!(removed, 100_000);
        assert_eq!(cache.clear_pattern("keep:*").await.unwrap(), 10_000);
        println!(
            "round {round}: 10,000 set+get round trips {:.0} ms ({:.1} µs per op); clear_pattern of 100,000 keys {:.0} ms",
            rt.as_secs_f64() * 1e3,
            rt.as_secs_f64() * 1e6 / 20_000.0,
            clear.as_secs_f64() * 1e3
        );
        round_trips.push(rt);
        clears.push(clear);
        cache.clear_all().await.unwrap();
    }
    let rt = median(round_trips);
    println!(
        "median of {rounds}: 10,000 sequential set+get round trips {:.0} ms ({:.1} µs per op); clear_pattern of 100,000 keys {:.0} ms",
        rt.as_secs_f64() * 1e3,
        rt.as_secs_f64() * 1e6 / 20_000.0,
        median(clears).as_secs_f64() * 1e3
    );
}
