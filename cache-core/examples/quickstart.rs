//! The quickstart: a slow lookup cached with `#[cached]`, an update that invalidates it with
//! `#[invalidate_cache]`, against Redis when one answers.
//!
//! Run with `cargo run -p cache-core --example quickstart`. Configure Redis with REDIS_URL (or
//! REDIS_HOST/REDIS_PORT/...) and a `.env` file.
//!
//! What is the library's and what is this example's: with Redis down, the library keeps the
//! program running by itself (every call is a miss that runs the function; nothing fails). Falling
//! back to the embedded in-process backend instead, so that the demo still shows hits, is this
//! example's choice (`open_cache` below), not something the library does on its own.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, BackendConfig, Cache, CacheConfig, CacheError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Server {
    id: i64,
    name: String,
}

/// Stands in for a database table.
static DATABASE: LazyLock<Mutex<HashMap<i64, String>>> =
    LazyLock::new(|| Mutex::new(HashMap::from([(123, "web-123".to_owned())])));

/// Read-through: on a miss the body runs (a slow query) and its value is stored for 60 s under
/// `quickstart:get_server_details:{id}`; on a hit the body does not run.
#[cached(ttl = 60, key_prefix = "quickstart")]
async fn get_server_details(id: i64) -> Option<Server> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let name = DATABASE.lock().ok()?.get(&id).cloned()?;
    Some(Server { id, name })
}

/// Event-based invalidation: once the body returned `Ok`, the server's cached entry is deleted,
/// so the next read sees the new name.
#[invalidate_cache("quickstart:get_server_details:{id}")]
async fn rename_server(id: i64, name: &str) -> Result<(), String> {
    let mut table = DATABASE.lock().map_err(|e| e.to_string())?;
    table.insert(id, name.to_owned());
    Ok(())
}

/// The configured cache when its backend answers, else the in-process backend (this example's
/// choice: see the module docs).
async fn open_cache() -> Result<CacheConfig, CacheError> {
    let config = CacheConfig::from_env()?;
    let BackendConfig::Redis(url) = config.backend() else {
        println!("backend: in-process memory (CACHE_BACKEND=memory)");
        return Ok(config);
    };
    let url = url.to_string(); // Display hides the password
    let problem = match Cache::new(config.clone()).await {
        Ok(probe) => {
            let health = probe.health_check().await;
            if health.healthy {
                println!(
                    "backend: Redis {} at {url} (PING {:.2} ms)",
                    health.version.unwrap_or_default(),
                    health.latency_ms
                );
                return Ok(config);
            }
            health.error.unwrap_or_default()
        }
        Err(e) => e.to_string(),
    };
    println!(
        "backend: no Redis answers at {url} ({problem}); using the embedded in-process backend"
    );
    Ok(CacheConfig::builder().memory(64 << 20).build()?)
}

/// Calls `get_server_details(123)` and says how long it took.
async fn timed_lookup(label: &str) {
    let started = Instant::now();
    let server = get_server_details(123).await;
    println!(
        "{label}: {:?} in {:.2} ms",
        server.map(|s| s.name),
        started.elapsed().as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The process-wide cache that `#[cached]` and `#[invalidate_cache]` use.
    let cache = cache_core::init(open_cache().await?).await?;
    // Leftovers of an earlier run would make the first call a hit.
    cache.clear_pattern("quickstart:*").await?;

    timed_lookup("get_server_details(123), first call (miss: runs the query)").await;
    timed_lookup("get_server_details(123), again (hit)").await;
    rename_server(123, "web-123-renamed").await?;
    timed_lookup("after rename_server (invalidated: runs the query)").await;
    timed_lookup("get_server_details(123), again (hit)").await;

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
