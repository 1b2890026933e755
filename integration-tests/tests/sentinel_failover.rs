//! `#[cached]` through the death of a sentinel-managed primary: concurrent callers keep getting
//! the body's value (fail silently), and hits resume once the sentinels have promoted the
//! replica and the pool has re-discovered it, within a bound this test asserts. Prints the
//! measured time from the kill to the first hit.
//!
//! One test in this binary: the process-wide cache points at this binary's sentinel group.

mod common;

use std::time::{Duration, Instant};

use common::{hits_on_every_id, init_and_warm, probe_until_hit, wait_for_replica, Load};
use integration_tests::sentinel::SentinelGroup;

/// Two workers: the load's callers keep running while the test blocks in place to kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_keeps_every_call_correct_and_hits_resume_on_the_promoted_replica() {
    let mut group = SentinelGroup::start();
    let cache = init_and_warm(&group.url()).await;

    // The victim: the primary; wait until its replica has every write.
    let victim = group.primary_port().unwrap();
    assert_eq!(victim, group.servers[0].port());
    let heir = group.servers[1].port();
    wait_for_replica(victim, heir);
    let report = cache.health_check().await;
    assert!(report.healthy, "{report:?}");
    assert_eq!(report.nodes.len(), 1);
    assert_eq!(report.nodes[0].address, format!("127.0.0.1:{victim}"));
    assert_eq!(report.nodes[0].role, "primary");

    let load = Load::start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Kill the primary (SIGKILL, off the runtime's threads) and probe until the first hit.
    let killed_at = tokio::task::block_in_place(|| {
        group.kill(victim);
        Instant::now()
    });
    let (first_hit, misses) = probe_until_hit(killed_at, || {
        format!("sentinels say {:?}", group.primary_port())
    })
    .await;
    // The hit came from the promoted replica.
    let (named, writable) =
        tokio::task::block_in_place(|| (group.primary_port(), group.is_writable_primary(heir)));
    assert_eq!(named, Some(heir));
    assert!(writable);
    eprintln!(
        "sentinel failover: primary kill -> first hit on the new primary: {} ms ({misses} probe misses)",
        first_hit.as_millis()
    );

    // Callers keep going on the new topology for a moment, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.finish().await;

    // Hits on every id again, and a report naming the new primary (a client of the pool that
    // is still reconnecting may answer for a moment, so allow a short wait).
    hits_on_every_id(&cache).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let report = cache.health_check().await;
        if report.nodes.first().map(|n| n.address.clone()) == Some(format!("127.0.0.1:{heir}"))
            || Instant::now() > deadline
        {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(report.healthy, "{report:?}");
    assert_eq!(report.nodes.len(), 1);
    assert_eq!(
        report.nodes[0].address,
        format!("127.0.0.1:{heir}"),
        "{report:?}"
    );
    assert_eq!(report.nodes[0].role, "primary");
}
