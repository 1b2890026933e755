//! Every `Cache` operation on a 3-primary + 3-replica Redis Cluster: multi-key operations over
//! keys of many slots (never CROSSSLOT), `clear_pattern` over every primary, and a health report
//! per node. All tests share one cluster; each uses its own key prefix.

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::Duration;

use cache_core::{Cache, CacheConfig};
use integration_tests::cluster::RedisCluster;
use integration_tests::Reply;

static CLUSTER: LazyLock<RedisCluster> = LazyLock::new(RedisCluster::start);

/// A cache on the shared cluster that fails loudly, so every error is seen.
async fn cache() -> Cache {
    let config = CacheConfig::builder()
        .url(CLUSTER.url())
        .fail_silently(false)
        .socket_timeout(Duration::from_secs(2))
        .pool_size(2)
        .build()
        .unwrap();
    Cache::new(config).await.unwrap()
}

/// `n` keys under `prefix` and the primaries they live on: the test only means something if
/// they span every primary.
fn keys_over_every_primary(prefix: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}:{i}")).collect();
    let primaries: BTreeSet<u16> = keys
        .iter()
        .take(30)
        .map(|k| CLUSTER.primary_port_of(k))
        .collect();
    assert_eq!(
        primaries.len(),
        3,
        "keys should land on all three primaries"
    );
    keys
}

#[tokio::test]
async fn multi_key_operations_span_slots_without_crossslot() {
    let cache = cache().await;
    let keys = keys_over_every_primary("multi", 200);
    cache
        .set_many(keys.iter().map(|k| (k.clone(), k.len())), None)
        .await
        .unwrap();
    // Stored where the cluster routes each key, with the TTL.
    for k in keys.iter().take(20) {
        assert!(CLUSTER.get(k).is_some(), "{k} missing on its primary");
        assert!(cache.get_ttl(k).await.unwrap().is_some());
    }
    let mut asked: Vec<String> = keys.clone();
    asked.insert(5, "multi:absent".to_owned());
    let values: Vec<Option<usize>> = cache.get_many(&asked).await.unwrap();
    assert_eq!(values.len(), asked.len());
    for (k, v) in asked.iter().zip(&values) {
        let want = (k != "multi:absent").then_some(k.len());
        assert_eq!(*v, want, "{k}");
    }
    // Delete counts each existing key once, across slots.
    let removed = cache
        .delete(keys[..100].iter().chain(["multi:absent".to_owned()].iter()))
        .await
        .unwrap();
    assert_eq!(removed, 100);
    let after: Vec<Option<usize>> = cache.get_many(&keys).await.unwrap();
    assert!(after[..100].iter().all(Option::is_none));
    assert!(after[100..].iter().all(Option::is_some));
    assert_eq!(cache.stats().errors, 0);
}

#[tokio::test]
async fn single_key_operations_work_on_every_node() {
    let cache = cache().await;
    for k in keys_over_every_primary("single", 30) {
        cache
            .set(&k, "v", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(cache.get::<String>(&k).await.unwrap().as_deref(), Some("v"));
        assert!(cache.exists(&k).await.unwrap());
        let ttl = cache.get_ttl(&k).await.unwrap().unwrap();
        assert!(ttl > Duration::from_secs(50), "{ttl:?}");
        assert_eq!(cache.increment(&format!("{k}:n"), 3).await.unwrap(), 3);
        assert_eq!(cache.increment(&format!("{k}:n"), -1).await.unwrap(), 2);
        assert_eq!(cache.delete([&k]).await.unwrap(), 1);
        assert!(!cache.exists(&k).await.unwrap());
    }
}

#[tokio::test]
async fn clear_pattern_scans_every_primary_and_counts_each_key_once() {
    let cache = cache().await;
    let keys = keys_over_every_primary("clear", 3000);
    cache
        .set_many(keys.iter().map(|k| (k.clone(), 1u8)), None)
        .await
        .unwrap();
    cache
        .set_many((0..50).map(|i| (format!("keep:{i}"), 1u8)), None)
        .await
        .unwrap();
    assert_eq!(cache.clear_pattern("clear:*").await.unwrap(), 3000);
    assert_eq!(cache.clear_pattern("clear:*").await.unwrap(), 0);
    for port in CLUSTER.live_ports() {
        let Reply::Array(Some(left)) = CLUSTER.command_on(port, &["KEYS", "clear:*"]) else {
            panic!("KEYS failed on {port}");
        };
        assert!(left.is_empty(), "{} keys left on {port}", left.len());
    }
    let kept: Vec<Option<u8>> = cache
        .get_many((0..50).map(|i| format!("keep:{i}")))
        .await
        .unwrap();
    assert!(kept.iter().all(|v| *v == Some(1)));
    // Never KEYS from the library: only SCAN + UNLINK on the nodes.
    for port in CLUSTER.live_ports() {
        let stats =
            integration_tests::reply_text(&CLUSTER.command_on(port, &["INFO", "commandstats"]));
        assert!(!stats.contains("cmdstat_mget:"), "{port}: {stats}");
    }
}

#[tokio::test]
async fn health_reports_every_node_and_all_slots() {
    let cache = cache().await;
    let report = cache.health_check().await;
    assert!(report.healthy, "{report:?}");
    assert_eq!(report.error, None);
    assert_eq!(report.nodes.len(), 6, "{report:?}");
    let primaries: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.role == "primary")
        .collect();
    assert_eq!(primaries.len(), 3);
    assert_eq!(
        primaries.iter().map(|n| n.slots.unwrap()).sum::<u32>(),
        16384
    );
    for p in &primaries {
        assert!(p.healthy);
        assert!(p.latency_ms.unwrap() >= 0.0);
        assert!(p.version.as_deref().unwrap().starts_with('7'), "{p:?}");
        assert!(p.used_memory.is_some());
    }
    assert_eq!(
        report.nodes.iter().filter(|n| n.role == "replica").count(),
        3
    );
    let ports: BTreeSet<String> = report.nodes.iter().map(|n| n.address.clone()).collect();
    let want: BTreeSet<String> = CLUSTER
        .servers()
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port()))
        .collect();
    assert_eq!(ports, want);
    assert!(report.version.as_deref().unwrap().starts_with('7'));
    assert!(report.connected_clients.unwrap() >= 3);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"nodes\":["), "{json}");
}

/// With `CACHE_INVALIDATION_REPLICAS=1`, a delete and a `clear_pattern` over keys on every
/// primary return only once each primary's replica has them: each replica lacks its keys as
/// soon as the call returns. (The wait is per primary, after a fence key on that primary.)
#[tokio::test]
async fn durable_invalidations_wait_for_the_replica_of_every_primary() {
    let cache = Cache::new(
        CacheConfig::builder()
            .url(CLUSTER.url())
            .fail_silently(false)
            .socket_timeout(Duration::from_secs(2))
            .invalidation_replicas(1)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let keys = keys_over_every_primary("durable", 60);
    let replicas: BTreeSet<u16> = keys
        .iter()
        .map(|k| CLUSTER.replica_port_of(CLUSTER.primary_port_of(k)))
        .collect();
    cache
        .set_many(keys.iter().map(|k| (k.clone(), 1u8)), None)
        .await
        .unwrap();

    let first = &keys[..30];
    let firsts: Vec<&str> = first.iter().map(String::as_str).collect();
    assert_eq!(cache.delete(&firsts).await, Ok(30));
    assert_eq!(cache.clear_pattern("durable:*").await, Ok(30));
    for replica in replicas {
        // KEYS has no key to redirect by: the replica answers with what it holds.
        assert_eq!(
            CLUSTER.command_on(replica, &["KEYS", "durable:*"]),
            Reply::Array(Some(Vec::new())),
            "the replica on {replica}"
        );
    }
    assert_eq!(cache.stats().invalidations_pending, 0);
}
