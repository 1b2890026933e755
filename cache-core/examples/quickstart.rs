//! The quickstart: cache a slow lookup, against Redis when one answers, else in process memory.
//!
//! Run with `cargo run -p cache-core --example quickstart`. Configure Redis with REDIS_URL (or
//! REDIS_HOST/REDIS_PORT/...) and a `.env` file; with no Redis reachable it falls back to the
//! embedded in-process backend and says so.

use std::time::{Duration, Instant};

use cache_core::{BackendConfig, Cache, CacheConfig, CacheError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Server {
    id: i64,
    name: String,
    stars: u32,
}

/// Stands in for a database query: slow on purpose.
async fn load_server_from_database(id: i64) -> Server {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Server {
        id,
        name: format!("server-{id}"),
        stars: 42,
    }
}

/// Cache-aside by hand: check, load on a miss, store.
async fn get_server(cache: &Cache, id: i64) -> Result<(Server, &'static str), CacheError> {
    let key = format!("quickstart:server:{id}");
    if let Some(server) = cache.get::<Server>(&key).await? {
        return Ok((server, "hit"));
    }
    let server = load_server_from_database(id).await;
    cache
        .set(&key, &server, Some(Duration::from_secs(60)))
        .await?;
    Ok((server, "miss, loaded from the database"))
}

/// The configured cache if its backend answers, otherwise the in-process backend.
async fn open_cache() -> Result<Cache, CacheError> {
    let config = CacheConfig::from_env()?;
    let BackendConfig::Redis(url) = config.backend() else {
        println!("backend: in-process memory (CACHE_BACKEND=memory)");
        return Cache::new(config).await;
    };
    let url = url.to_string(); // Display hides the password
    let problem = match Cache::new(config.clone()).await {
        Ok(cache) => {
            let health = cache.health_check().await;
            if health.healthy {
                println!(
                    "backend: Redis {} at {url} (PING {:.2} ms)",
                    health.version.unwrap_or_default(),
                    health.latency_ms
                );
                return Ok(cache);
            }
            health.error.unwrap_or_default()
        }
        Err(e) => e.to_string(),
    };
    println!(
        "backend: no Redis answers at {url} ({problem}); using the embedded in-process backend"
    );
    Cache::new(CacheConfig::builder().memory(64 << 20).build()?).await
}

#[tokio::main]
async fn main() -> Result<(), CacheError> {
    let cache = open_cache().await?;
    for round in 1..=3 {
        let started = Instant::now();
        let (server, outcome) = get_server(&cache, 123).await?;
        println!(
            "get_server(123) #{round}: {outcome} in {:.2} ms -> {} ({} stars)",
            started.elapsed().as_secs_f64() * 1000.0,
            server.name,
            server.stars
        );
    }
    let views = cache.increment("quickstart:server:123:views", 1).await?;
    println!("views counter: {views}");
    let removed = cache.clear_pattern("quickstart:*").await?;
    println!("clear_pattern(\"quickstart:*\") removed {removed} keys");
    let stats = cache.stats();
    println!(
        "stats: {} hits, {} misses, {} errors, hit rate {:.0}%",
        stats.hits,
        stats.misses,
        stats.errors,
        stats.hit_rate() * 100.0
    );
    Ok(())
}
