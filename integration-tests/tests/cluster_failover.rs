//! `#[cached]` through a cluster primary's death: concurrent callers keep getting the body's
//! value (fail silently), and hits resume once the primary's replica has taken over, within a
//! bound this test asserts. Prints the measured time from the kill to the first hit.
//!
//! One test in this binary: the process-wide cache points at this binary's cluster.

mod common;

use std::time::{Duration, Instant};

use common::{hits_on_every_id, init_and_warm, probe_until_hit, wait_for_replica, Load, PROBE_KEY};
use integration_tests::cluster::RedisCluster;

/// Two workers: the load's callers keep running while the test blocks in place to kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_primary_keeps_every_call_correct_and_hits_resume_on_its_replica() {
    let mut cluster = RedisCluster::start();
    let cache = init_and_warm(&cluster.url()).await;

    // The victim: the primary holding the probe key; wait until its replica has every write.
    let victim = cluster.primary_port_of(PROBE_KEY);
    let heir = cluster.replica_port_of(victim);
    wait_for_replica(victim, heir);

    let load = Load::start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Kill the primary (SIGKILL, off the runtime's threads) and probe until the first hit.
    let killed_at = tokio::task::block_in_place(|| {
        cluster.kill(victim);
        Instant::now()
    });
    let (first_hit, misses) = probe_until_hit(killed_at, || cluster.describe()).await;
    // The hit came from the promoted replica, which now serves the probe key's slot.
    let heir_now_primary = tokio::task::block_in_place(|| {
        cluster.live_ports().contains(&heir) && cluster.primary_port_of(PROBE_KEY) == heir
    });
    assert!(
        heir_now_primary,
        "the probe key is not on {heir}: {}",
        cluster.describe()
    );
    eprintln!(
        "cluster failover: primary kill -> first hit on the new primary: {} ms ({misses} probe misses)",
        first_hit.as_millis()
    );

    // Callers keep going on the new topology for a moment, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.finish().await;

    // Hits on every id again, and a healthy report: three serving primaries, the dead one down.
    hits_on_every_id(&cache).await;
    let report = cache.health_check().await;
    assert!(report.healthy, "{report:?}");
    let serving: Vec<_> = report
        .nodes
        .iter()
        .filter(|n| n.role == "primary" && n.slots.is_some_and(|s| s > 0))
        .collect();
    assert_eq!(serving.len(), 3, "{report:?}");
    assert!(serving
        .iter()
        .any(|n| n.address == format!("127.0.0.1:{heir}")));
    assert!(report
        .nodes
        .iter()
        .any(|n| n.address == format!("127.0.0.1:{victim}") && !n.healthy));
}
