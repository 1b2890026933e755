//! A service that exits while an invalidation is pending (Redis unreachable), written the way a
//! user writes one: `#[tokio::main]`, the cache from the environment, a `tracing` subscriber.
//! With `--shutdown` it calls `cache_core::shutdown` before returning; without, it just returns.
//! `tests/shutdown.rs` runs it and reads what it logged.

use std::time::Duration;

use cache_core::{cached, invalidate_cache};

#[cached(ttl = 60, key_prefix = "exit")]
async fn item(id: u64) -> u64 {
    id
}

#[invalidate_cache("exit:item:{id}")]
async fn update_item(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // REDIS_URL names a port where nothing listens: failing silently, the cache starts anyway.
    let cache = cache_core::init_from_env().await.expect("the cache");
    assert_eq!(item(7).await, 7);
    update_item(7)
        .await
        .expect("failing silently, an invalidation returns Ok");
    println!("pending={}", cache.stats().invalidations_pending);
    if std::env::args().any(|a| a == "--shutdown") {
        let report = cache_core::shutdown(Duration::from_millis(300)).await;
        println!(
            "delivered={} undelivered={:?}",
            report.delivered, report.undelivered
        );
    }
}
