//! Slots migrating (`redis-cli --cluster reshard`) while `#[cached]` reads and
//! `#[invalidate_cache]` invalidations run: no invalidation is lost, so no stale value is ever
//! served after `#[invalidate_cache]` returned.
//!
//! One test in this binary: the process-wide cache points at this binary's cluster.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, CacheConfig};
use integration_tests::cluster::RedisCluster;
use integration_tests::{command_at, reply_text};

/// The "database": the current version of each item.
static DB: LazyLock<Mutex<HashMap<u64, u64>>> = LazyLock::new(Default::default);
static READS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 600, key_prefix = "item")]
async fn item(id: u64) -> u64 {
    READS.fetch_add(1, SeqCst);
    DB.lock().unwrap().get(&id).copied().unwrap_or(0)
}

/// Invalidates by pattern over the whole prefix: a SCAN of every primary per update.
#[invalidate_cache("item:*")]
async fn update_all(id: u64, version: u64) -> Result<(), String> {
    DB.lock().unwrap().insert(id, version);
    Ok(())
}

/// Invalidates the one key: a single UNLINK, routed by its slot.
#[invalidate_cache("item:item:{id}")]
async fn update_one(id: u64, version: u64) -> Result<(), String> {
    DB.lock().unwrap().insert(id, version);
    Ok(())
}

/// A hash tag in the prefix keeps every key of the prefix in one slot (deployment guide).
#[cached(ttl = 600, key_prefix = "{tagged}")]
async fn tagged(id: u64) -> u64 {
    id + 1
}

#[invalidate_cache("{{tagged}}:*")]
async fn drop_tagged() -> Result<(), String> {
    Ok(())
}

/// The slots the primary on `port` serves, from the health report.
async fn slots_of(cache: &cache_core::Cache, port: u16) -> u32 {
    let report = cache.health_check().await;
    report
        .nodes
        .iter()
        .find(|n| n.address == format!("127.0.0.1:{port}"))
        .and_then(|n| n.slots)
        .unwrap_or_else(|| panic!("no slots for {port}: {report:?}"))
}

fn migrating_slots(ports: &[u16]) -> bool {
    ports.iter().any(|p| {
        command_at(*p, &["CLUSTER", "NODES"])
            .map(|r| {
                let t = reply_text(&r);
                t.contains("->-") || t.contains("-<-")
            })
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn invalidations_are_never_lost_while_slots_migrate() {
    let cluster = RedisCluster::start();
    let config = CacheConfig::builder()
        .url(cluster.url())
        .socket_timeout(Duration::from_secs(2))
        .pool_size(4)
        .fail_silently(true)
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();
    // Filler keys, so that migrating a slot moves several keys and takes a while.
    cache
        .set_many((0..15_000).map(|i| (format!("filler:{i}"), i)), None)
        .await
        .unwrap();
    let ids: Vec<u64> = (0..120).collect();
    for &id in &ids {
        DB.lock().unwrap().insert(id, 1);
        assert_eq!(item(id).await, 1);
    }

    // Move a third of the first primary's slots to the second, in the background.
    let primaries: Vec<u16> = {
        let mut p: Vec<u16> = cluster
            .nodes()
            .iter()
            .filter(|n| n.primary)
            .map(|n| n.port)
            .collect();
        p.sort_unstable();
        p
    };
    let slots_before = slots_of(&cache, primaries[1]).await;
    let mut reshard = cluster.reshard(primaries[0], primaries[1], 1500);
    let started = Instant::now();
    let mut rounds = 0u64;
    let mut checks = 0u64;
    let mut checks_while_migrating = 0u64;
    let ports = cluster.live_ports();
    loop {
        let done = reshard.try_wait().unwrap().is_some();
        rounds += 1;
        for &id in &ids {
            let version = DB.lock().unwrap()[&id];
            assert_eq!(item(id).await, version, "item({id}) before update");
            let next = version + 1;
            if (id + rounds) % 4 == 0 {
                update_all(id, next).await.unwrap();
            } else {
                update_one(id, next).await.unwrap();
            }
            // The invalidation has returned: a read now must see the new version.
            assert_eq!(
                item(id).await,
                next,
                "item({id}) served a stale value after its invalidation (round {rounds}): {:?}",
                cache.stats()
            );
            checks += 1;
            // Sampled now and then: was a slot half-moved around this check?
            if id % 10 == 0 && migrating_slots(&ports) {
                checks_while_migrating += 10;
            }
        }
        if done {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the reshard did not finish"
        );
    }
    let status = reshard.wait_with_output().unwrap();
    assert!(
        status.status.success(),
        "reshard failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    eprintln!(
        "reshard: {rounds} rounds, {checks} invalidations checked ({checks_while_migrating} while slots migrated) in {:?}",
        started.elapsed()
    );
    assert!(rounds >= 2, "the reshard ended before the checks ran");
    assert!(
        checks_while_migrating > 0,
        "no check overlapped a migrating slot"
    );
    // The cache was used throughout: reads after a version change were hits.
    let stats = cache.stats();
    assert!(stats.hits > 0, "{stats:?}");
    // Hash-tagged keys: all in one slot, and invalidated by a pattern naming the tag.
    for id in 0..20 {
        assert_eq!(tagged(id).await, id + 1);
    }
    let slots: std::collections::BTreeSet<u16> = (0..20)
        .map(|id| cluster.keyslot(&format!("{{tagged}}:tagged:{id}")))
        .collect();
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert!(cache.exists("{tagged}:tagged:7").await.unwrap());
    drop_tagged().await.unwrap();
    assert!(!cache.exists("{tagged}:tagged:7").await.unwrap());
    // The destination primary now serves the 1500 moved slots (as the health report says).
    let after = slots_of(&cache, primaries[1]).await;
    assert_eq!(after, slots_before + 1500, "{}", cluster.describe());
}
