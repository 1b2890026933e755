//! Redis can undo an invalidation it acknowledged: a restart from an RDB snapshot taken before
//! it (Redis's default persistence) brings the old value back. The cache notices the restart
//! (another `run_id`) and makes its recent invalidations again before serving what Redis holds.
//!
//! Its own test binary: it sets up the process-wide cache that `#[cached]` uses.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, CacheConfig};
use integration_tests::sentinel::SentinelGroup;
use integration_tests::{wait_until, RedisServer, Reply};

/// The "database" behind the cached function.
static PRICE_DB: AtomicU64 = AtomicU64::new(1);

#[cached(ttl = 600, key_prefix = "rolled")]
async fn price(id: u64) -> u64 {
    PRICE_DB.load(SeqCst) * 100 + id
}

#[invalidate_cache("rolled:price:{id}")]
async fn set_price(id: u64, value: u64) -> Result<(), String> {
    let _ = id;
    PRICE_DB.store(value, SeqCst);
    Ok(())
}

/// A value cached, a snapshot taken, the data updated and the key invalidated (acknowledged),
/// then Redis killed and restarted from the snapshot, which holds the old value again: calls
/// return the new value from the first one on, and the cache deletes the old one from Redis by
/// itself, before anything reads it.
#[tokio::test]
async fn an_invalidation_undone_by_a_restart_from_a_snapshot_is_made_again() {
    let mut server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(Duration::from_secs(1))
        .breaker_probe_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();

    assert_eq!(price(7).await, 107);
    assert_eq!(price(7).await, 107, "a hit");
    assert_eq!(server.cmd("SAVE"), Reply::Status("OK".into()));
    assert_eq!(set_price(7, 2).await, Ok(()));
    assert_eq!(server.cmd("EXISTS rolled:price:7"), Reply::Integer(0));

    server.kill();
    server.restart();
    // Checks the test's own setup: the snapshot brought the old value back.
    assert!(
        matches!(server.cmd("GET rolled:price:7"), Reply::Bulk(Some(_))),
        "the restart from the snapshot restored the invalidated value"
    );

    // Nothing reads: the cache sees the new incarnation when it reconnects, and deletes again
    // what it invalidated in the last minute.
    // The test's own thread blocks: the cache's background work needs none of it.
    let replayed = wait_until(Duration::from_secs(5), || {
        server.cmd("EXISTS rolled:price:7") == Reply::Integer(0)
    });
    let stats = cache.stats();
    assert!(
        replayed,
        "the old value is still in Redis 5 s after the restart; {stats:?}"
    );
    assert_eq!(stats.redis_node_changes, 1, "{stats:?}");
    assert!(stats.invalidations_replayed >= 1, "{stats:?}");

    // And had a call come first, it would not have been served the old value either.
    let started = Instant::now();
    assert_eq!(price(7).await, 207);
    println!(
        "after the restart: first call in {:?}; {:?}",
        started.elapsed(),
        cache.stats()
    );
}

/// The same restart with a call racing it: the first read after the reconnect asks Redis who it
/// is before its reply is used, so not even the read that meets the restored value serves it.
#[tokio::test]
async fn the_first_read_after_a_restart_from_a_snapshot_is_not_served_the_undone_value() {
    let mut server = RedisServer::start();
    let cache = cache_core::Cache::new(
        CacheConfig::builder()
            .url(server.url())
            .socket_timeout(Duration::from_secs(1))
            // Held off for long enough that this test sees the hold, not the replay.
            .replay_hold(Duration::from_secs(30))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();

    cache.set("rolled:direct", &1u64, None).await.unwrap();
    assert_eq!(cache.get::<u64>("rolled:direct").await.unwrap(), Some(1));
    assert_eq!(server.cmd("SAVE"), Reply::Status("OK".into()));
    assert_eq!(cache.delete(["rolled:direct"]).await.unwrap(), 1);

    server.kill();
    server.restart();
    assert!(matches!(
        server.cmd("GET rolled:direct"),
        Reply::Bulk(Some(_))
    ));
    // Reads from the moment the cache reconnects: every one is a miss, however it races the
    // reconnect and the replay (the replay deletes the key; the hold keeps reads misses).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut reads = 0;
    while Instant::now() < deadline {
        assert_eq!(
            cache.get::<u64>("rolled:direct").await.unwrap(),
            None,
            "read {reads} was served the value Redis lost the delete of; {:?}",
            cache.stats()
        );
        reads += 1;
    }
    assert!(cache.stats().redis_node_changes >= 1, "{:?}", cache.stats());
    // A value written after the restart is not one Redis lost a delete of, but the hold keeps
    // every read a miss until it ends: the other processes may still be replaying theirs.
    cache.set("rolled:after", &2u64, None).await.unwrap();
    assert_eq!(cache.get::<u64>("rolled:after").await.unwrap(), None);
    println!(
        "{reads} reads after the restart, none served; {:?}",
        cache.stats()
    );
}

/// A sentinel failover to a replica that never received an invalidation: the replica is frozen
/// (SIGSTOP, its link cut) while the primary acknowledges the delete, then the primary dies and the sentinels
/// promote the replica, which still holds the old value. The cache reaches a node it has not
/// seen before in the primary's place: no read serves the old value, and the delete is made
/// again on the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_a_promoted_replica_never_received_is_made_again() {
    let mut group = SentinelGroup::start();
    let cache = cache_core::Cache::new(
        CacheConfig::builder()
            .url(group.url())
            .socket_timeout(Duration::from_millis(500))
            .breaker_probe_interval(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let (victim, heir) = (group.servers[0].port(), group.servers[1].port());
    assert_eq!(group.primary_port(), Some(victim));

    cache.set("promo:item", &1u64, None).await.unwrap();
    assert_eq!(cache.get::<u64>("promo:item").await.unwrap(), Some(1));
    let synced = tokio::task::block_in_place(|| {
        let offset = |port: u16, field: &str| {
            group
                .server(port)
                .info_field("replication", field)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let primary = offset(victim, "master_repl_offset");
        wait_until(Duration::from_secs(5), || {
            offset(heir, "slave_repl_offset") >= primary
        })
    });
    assert!(synced, "the replica has the value");

    // The replica misses the delete: frozen while the primary acknowledges it, then the
    // primary is killed before it could send it.
    tokio::task::block_in_place(|| {
        let pid = group.server(heir).pid().unwrap().to_string();
        let stopped = std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status();
        assert!(stopped.is_ok_and(|s| s.success()));
        // A frozen process still receives into its socket buffer: cut the replication link on
        // the primary's side too, so that the delete is never sent.
        assert_eq!(
            group.server(victim).cmd("CLIENT KILL TYPE replica"),
            Reply::Integer(1)
        );
    });
    assert_eq!(
        cache.delete(["promo:item"]).await,
        Ok(1),
        "the primary acknowledged the delete"
    );
    let killed = tokio::task::block_in_place(|| {
        group.kill(victim);
        group.server(heir).resume();
        Instant::now()
    });

    // Reads from the kill on: misses (Redis down, then a node never seen, whose reads are held
    // off while the delete is made again), never the old value.
    let mut reads = 0;
    let mut promoted = None;
    while killed.elapsed() < Duration::from_secs(20) {
        let value = cache.get::<u64>("promo:item").await;
        assert!(
            matches!(value, Ok(None)),
            "read {reads}, {:?} after the kill: {value:?}; {:?}",
            killed.elapsed(),
            cache.stats()
        );
        reads += 1;
        if promoted.is_none() && tokio::task::block_in_place(|| group.is_writable_primary(heir)) {
            promoted = Some(killed.elapsed());
        }
        if promoted.is_some() && cache.stats().redis_node_changes > 0 {
            let gone = tokio::task::block_in_place(|| {
                group.server(heir).cmd("EXISTS promo:item") == Reply::Integer(0)
            });
            if gone {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = cache.stats();
    assert!(
        promoted.is_some(),
        "the sentinels did not promote the replica; {stats:?}"
    );
    assert_eq!(
        tokio::task::block_in_place(|| group.server(heir).cmd("EXISTS promo:item")),
        Reply::Integer(0),
        "the delete was made again on the promoted replica; {stats:?}"
    );
    println!(
        "promoted after {:?}, {reads} reads, none served the old value; {stats:?}",
        promoted.unwrap_or_default()
    );
}

/// A primary and a replica of it, in sync.
fn primary_and_replica() -> (RedisServer, RedisServer) {
    // Redis waits 5 s by default before the first full sync, for more replicas to join.
    let primary = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let linked = wait_until(Duration::from_secs(10), || {
        replica.info_field("replication", "master_link_status") == Some("up".to_owned())
    });
    assert!(linked, "the replica did not link to its primary");
    (primary, replica)
}

/// A cache on `url` that fails loudly, waiting for `replicas` replicas on each invalidation.
async fn durable_cache(url: String, replicas: u32) -> cache_core::Cache {
    cache_core::Cache::new(
        CacheConfig::builder()
            .url(url)
            .fail_silently(false)
            .socket_timeout(Duration::from_secs(1))
            .breaker_probe_interval(Duration::from_millis(100))
            .invalidation_replicas(replicas)
            .build()
            .unwrap(),
    )
    .await
    .unwrap()
}

/// Waits until the replica has every write the primary has.
fn in_sync(primary: &RedisServer, replica: &RedisServer) -> bool {
    let offset = |server: &RedisServer, field: &str| {
        server
            .info_field("replication", field)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let wanted = offset(primary, "master_repl_offset");
    wait_until(Duration::from_secs(5), || {
        offset(replica, "slave_repl_offset") >= wanted
    })
}

/// The fault durable invalidations are for: the replica lags (here frozen) while the primary
/// acknowledges a delete, then the primary dies and the replica takes its place with the old
/// value. Without `CACHE_INVALIDATION_REPLICAS` the caller was told `Ok` for an invalidation that
/// is undone; with it, the caller is told it is not durable (and the cache keeps it for replay),
/// and once the replica answers again the replay completes it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_invalidation_returns_only_once_the_replica_has_it() {
    let (mut primary, replica) = primary_and_replica();
    let plain = durable_cache(primary.url(), 0).await;
    let durable = durable_cache(primary.url(), 1).await;

    // With the replica in sync, a durable delete returns Ok, and the replica has it by then.
    durable.set("durable:0", &0u64, None).await.unwrap();
    assert!(tokio::task::block_in_place(|| in_sync(&primary, &replica)));
    assert_eq!(durable.delete(["durable:0"]).await, Ok(1));
    assert_eq!(
        tokio::task::block_in_place(|| replica.cmd("EXISTS durable:0")),
        Reply::Integer(0),
        "the replica acknowledged the delete before it returned"
    );

    plain.set("durable:1", &1u64, None).await.unwrap();
    plain.set("durable:2", &2u64, None).await.unwrap();
    assert!(tokio::task::block_in_place(|| in_sync(&primary, &replica)));
    let frozen = replica.pause();

    // Without the setting: Ok, although only the primary has the delete.
    assert_eq!(plain.delete(["durable:1"]).await, Ok(1));
    // With it: not durable, within the socket timeout, and kept.
    let started = Instant::now();
    let answer = durable.delete(["durable:2"]).await;
    let took = started.elapsed();
    assert!(
        matches!(answer, Err(cache_core::CacheError::NotDurable(ref why)) if why.contains("0 of 1 replicas")),
        "{answer:?}"
    );
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(durable.stats().invalidations_pending, 1);
    assert_eq!(
        durable.get::<u64>("durable:2").await,
        Ok(None),
        "a key under a pending invalidation is a miss"
    );

    // The replica answers again: the replay makes the invalidation durable.
    drop(frozen);
    let replayed = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(10), || {
            durable.stats().invalidations_pending == 0
        })
    });
    assert!(replayed, "{:?}", durable.stats());
    assert_eq!(durable.stats().invalidations_replayed, 1);

    // What `Ok` without the setting was worth: the same fault once more, then the primary dies
    // and the replica is promoted with the old value.
    plain.set("durable:3", &3u64, None).await.unwrap();
    assert!(tokio::task::block_in_place(|| in_sync(&primary, &replica)));
    let frozen = replica.pause();
    tokio::task::block_in_place(|| {
        assert_eq!(primary.cmd("CLIENT KILL TYPE replica"), Reply::Integer(1));
    });
    assert_eq!(plain.delete(["durable:3"]).await, Ok(1));
    tokio::task::block_in_place(|| {
        // Killed before the replica runs again, so that it cannot fetch the delete.
        primary.kill();
        drop(frozen);
        assert_eq!(replica.cmd("REPLICAOF NO ONE"), Reply::Status("OK".into()));
        assert!(
            matches!(replica.cmd("GET durable:3"), Reply::Bulk(Some(_))),
            "the promoted replica serves the value whose delete was acknowledged"
        );
    });
}

/// `CACHE_INVALIDATION_FSYNC` waits with `WAITAOF`, which Redis has from 7.2 on: an older server
/// gets an error that says so, a newer one with `appendonly yes` a durable invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsynced_invalidations_need_redis_7_2() {
    let server = RedisServer::start_with(&["--appendonly", "yes"]);
    let version = server.info_field("server", "redis_version").unwrap();
    let numbers: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    let has_waitaof = numbers.as_slice() >= [7, 2].as_slice();
    let cache = cache_core::Cache::new(
        CacheConfig::builder()
            .url(server.url())
            .fail_silently(false)
            .socket_timeout(Duration::from_secs(1))
            .invalidation_fsync(true)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    cache.set("fsynced:1", &1u64, None).await.unwrap();
    let answer = cache.delete(["fsynced:1"]).await;
    if has_waitaof {
        assert_eq!(answer, Ok(1), "Redis {version}");
    } else {
        assert!(
            matches!(answer, Err(cache_core::CacheError::Redis(ref why))
                if why.starts_with("CACHE_INVALIDATION_FSYNC needs Redis 7.2 or later")),
            "Redis {version}: {answer:?}"
        );
        assert_eq!(cache.stats().invalidations_pending, 1, "kept for replay");
    }
}
