//! Slots migrating (`redis-cli --cluster reshard`) while `#[cached]` reads and
//! `#[invalidate_cache]` invalidations run: no invalidation is lost, so no stale value is ever
//! served after `#[invalidate_cache]` returned. Half-moved slots are first set up by hand (so the
//! checks meet them whatever the timing), then a real reshard runs under the checks.
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

/// Reads `item(id)`, updates it (by pattern one round in four, else by key) and reads it again:
/// once the invalidation has returned, the read must see the new version.
async fn check_invalidation(id: u64, round: u64, cache: &cache_core::Cache) {
    let version = DB.lock().unwrap()[&id];
    assert_eq!(item(id).await, version, "item({id}) before update");
    let next = version + 1;
    if (id + round) % 4 == 0 {
        update_all(id, next).await.unwrap();
    } else {
        update_one(id, next).await.unwrap();
    }
    assert_eq!(
        item(id).await,
        next,
        "item({id}) served a stale value after its invalidation (round {round}): {:?}",
        cache.stats()
    );
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
    let ports = cluster.live_ports();
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
    // Half-moved slots, set up by hand so the checks surely meet them: eight slots of `item` keys
    // marked MIGRATING, the keys of four of them already on the destination (reads and deletes
    // there follow an ASK redirection), the other four still on the source.
    let half_moved: Vec<(u64, u16)> = ids
        .iter()
        .map(|&id| (id, cluster.keyslot(&format!("item:item:{id}"))))
        .filter(|&(_, slot)| cluster.primary_port_of_slot(slot) == primaries[0])
        .take(8)
        .collect();
    assert_eq!(half_moved.len(), 8, "{}", cluster.describe());
    for (n, &(id, slot)) in half_moved.iter().enumerate() {
        let key = format!("item:item:{id}");
        let moved: &[&str] = if n % 2 == 0 { &[&key] } else { &[] };
        cluster.start_migration(slot, primaries[0], primaries[1], moved);
    }
    assert!(migrating_slots(&ports));
    // A clear while slots stay half-moved: its passes never see a settled layout, so a key may
    // have moved past every one of them. It is kept and walked again once the slots are home.
    cache
        .set_many((0..100).map(|i| (format!("halfway:{i}"), i)), None)
        .await
        .unwrap();
    let pending_before = cache.stats().invalidations_pending;
    let _ = cache.clear_pattern("halfway:*").await;
    assert_eq!(
        cache.stats().invalidations_pending,
        pending_before + 1,
        "a clear over a moving layout is kept for replay; {:?}",
        cache.stats()
    );
    for round in 0..4u64 {
        for &(id, _) in &half_moved {
            check_invalidation(id, round, &cache).await;
        }
    }
    for &(_, slot) in &half_moved {
        cluster.finish_migration(slot, primaries[0], primaries[1]);
    }
    assert!(!migrating_slots(&ports));
    assert!(
        cluster.wait_agreed(Duration::from_secs(10)),
        "{}",
        cluster.describe()
    );
    let stats = cache.stats();
    eprintln!("half-moved slots: {stats:?}");
    // A command on a moved key failed alone: the breaker did not take the cache offline.
    assert_eq!(stats.circuit_opens, 0, "{stats:?}");
    // fred 10.1 does not follow an ASK redirection (it sends ASKING to the target, then the
    // command to the source again, and drops its connections when its attempts run out): the
    // commands on moved keys failed, as misses. Once the slots are home, hits resume.
    let recovered = Instant::now();
    loop {
        let report = cache.health_check().await;
        if report.healthy {
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(10),
            "not healthy 10 s after the slots moved: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("healthy again after {:?}", recovered.elapsed());
    // The kept clear finished its walk once the layout settled.
    let replayed = Instant::now();
    while cache.stats().invalidations_pending > 0 {
        assert!(
            replayed.elapsed() < Duration::from_secs(10),
            "the clear was not replayed; {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..100 {
        assert_eq!(cluster.get(&format!("halfway:{i}")), None, "halfway:{i}");
    }

    let slots_before = slots_of(&cache, primaries[1]).await;
    let mut reshard = cluster.reshard(primaries[0], primaries[1], 1500);
    let started = Instant::now();
    let mut rounds = 0u64;
    let mut checks = 0u64;
    let mut checks_while_migrating = 0u64;
    loop {
        let done = reshard.try_wait().unwrap().is_some();
        rounds += 1;
        for &id in &ids {
            check_invalidation(id, rounds, &cache).await;
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
    // A clear that met a moving layout is kept and walked again once it settles; until then
    // the keys it covers are misses.
    let settled = Instant::now();
    while cache.stats().invalidations_pending > 0 {
        assert!(
            settled.elapsed() < Duration::from_secs(10),
            "a clear kept during the reshard was not replayed; {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cache still serves: the second of two reads is a hit. (Most reads above are misses by
    // design: every `update_all` clears the whole prefix.)
    let hits = cache.stats().hits;
    for id in [7, 77] {
        let version = DB.lock().unwrap()[&id];
        assert_eq!(item(id).await, version);
        assert_eq!(item(id).await, version);
    }
    let stats = cache.stats();
    assert!(stats.hits >= hits + 2, "{stats:?}");
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
    // The destination primary now serves the 1500 resharded slots (as the health report says).
    let after = slots_of(&cache, primaries[1]).await;
    assert_eq!(after, slots_before + 1500, "{}", cluster.describe());
}
