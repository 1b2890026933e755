//! `runtime_per_test.rs` on a Redis Cluster: plain `#[tokio::test]` functions, each with a
//! runtime of its own, sharing the process-wide cache that the first of them created from
//! `REDIS_URL` (a `redis-cluster://` URL). Before the cache owned its I/O runtime, the tests
//! after the first failed with "Failed to send command to router".

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::LazyLock;

use cache_core::{cached, invalidate_cache, Cache};
use integration_tests::cluster::RedisCluster;

/// One cluster for the whole binary; its URL goes into the environment before the first
/// `get_cache()` reads it.
static CLUSTER: LazyLock<RedisCluster> = LazyLock::new(|| {
    let cluster = RedisCluster::start();
    std::env::set_var("REDIS_URL", cluster.url());
    std::env::set_var("REDIS_SOCKET_TIMEOUT", "1");
    cluster
});

async fn cache() -> Cache {
    // Started off the runtime: it takes a few seconds of blocking process management.
    tokio::task::spawn_blocking(|| LazyLock::force(&CLUSTER).url())
        .await
        .unwrap();
    cache_core::get_cache()
        .await
        .expect("the process-wide cache")
}

static TRIPLE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "rptc")]
async fn triple(n: u64) -> u64 {
    TRIPLE_RUNS.fetch_add(1, SeqCst);
    n * 3
}

/// Keys spread over every slot range: each value is computed once, then served as a hit.
#[tokio::test]
async fn hits_across_the_slots() {
    let cache = cache().await;
    for n in 0..100 {
        assert_eq!(triple(n).await, n * 3);
    }
    for n in 0..100 {
        assert_eq!(triple(n).await, n * 3);
    }
    assert_eq!(TRIPLE_RUNS.load(SeqCst), 100, "{:?}", cache.stats());
}

#[cached(ttl = 60, key_prefix = "rptc")]
async fn double(n: u64) -> u64 {
    n * 2
}

#[invalidate_cache("rptc:double:*")]
async fn forget_doubles() {}

/// An invalidation by pattern reaches every primary, from another test's runtime.
#[tokio::test]
async fn invalidation_by_pattern_on_every_primary() {
    let cache = cache().await;
    for n in 0..50 {
        assert_eq!(double(n).await, n * 2);
    }
    forget_doubles().await;
    let keys: Vec<String> = (0..50).map(|n| format!("rptc:double:{n}")).collect();
    let values: Vec<Option<u64>> = cache.get_many(&keys).await.unwrap();
    assert!(values.iter().all(Option::is_none), "{values:?}");
    assert_eq!(cache.stats().invalidations_pending, 0);
}

/// The health report covers every node, from yet another runtime.
#[tokio::test]
async fn health_of_every_node() {
    let report = cache().await.health_check().await;
    assert!(report.healthy, "{report:?}");
    assert!(report.nodes.len() >= 3, "{report:?}");
}
