//! The per-call cost of a hit through `#[cached]` against a bare `Cache::get` of the same value.
//!
//! A measurement, not a check, so an example rather than a test: run it in release mode:
//!
//! ```text
//! cargo run --release -p integration-tests --example macro_overhead
//! OVERHEAD_BACKEND=memory cargo run --release -p integration-tests --example macro_overhead
//! ```
//!
//! It alternates rounds of the two paths (so drift hits both alike) and reports the median over
//! the rounds of the mean time per call.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use cache_core::{cached, CacheConfig};
use integration_tests::RedisServer;
use serde::{Deserialize, Serialize};

static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Server {
    id: i64,
    name: String,
    tags: Vec<String>,
}

#[cached(ttl = 600, key_prefix = "server")]
async fn get_server_details(server_id: i64) -> Option<Server> {
    Some(Server {
        id: server_id,
        name: format!("srv-{server_id}"),
        tags: vec!["eu".into(), "prod".into()],
    })
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let calls: u32 = std::env::var("OVERHEAD_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rounds: usize = std::env::var("OVERHEAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    // OVERHEAD_BACKEND=memory isolates the macro's own cost from the network round trip.
    let builder = CacheConfig::builder();
    let builder = match std::env::var("OVERHEAD_BACKEND").as_deref() {
        Ok("memory") => builder.memory(64 << 20),
        _ => builder.url(SERVER.url()),
    };
    let config = builder.build().unwrap();
    let cache = cache_core::init(config).await.unwrap();
    let expected = get_server_details(123).await; // miss: stores the value
    let key = "server:get_server_details:123";
    // Warm up both paths and the connection pool.
    for _ in 0..1000 {
        assert_eq!(get_server_details(123).await, expected);
        assert_eq!(
            cache.get::<Option<Server>>(key).await.unwrap(),
            Some(expected.clone())
        );
    }
    let (mut macro_times, mut get_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(get_server_details(std::hint::black_box(123)).await);
        }
        macro_times.push(start.elapsed() / calls);
        let start = Instant::now();
        for _ in 0..calls {
            std::hint::black_box(
                cache
                    .get::<Option<Server>>(std::hint::black_box(key))
                    .await
                    .unwrap(),
            );
        }
        get_times.push(start.elapsed() / calls);
    }
    let (m, g) = (median(macro_times), median(get_times));
    let overhead = m.as_nanos() as i128 - g.as_nanos() as i128;
    println!(
        "{}: hit through #[cached]: {m:?}/call; Cache::get: {g:?}/call; overhead {overhead} ns/call ({:+.1}%), median of {rounds} rounds x {calls} calls",
        cache.backend_name(),
        overhead as f64 * 100.0 / g.as_nanos() as f64
    );
}
