//! `#[cached]` through the death of a sentinel-managed primary: concurrent callers keep getting
//! the body's value (fail silently), and hits resume once the sentinels have promoted the
//! replica and the pool has re-discovered it, within a bound this test asserts. Prints the
//! measured time from the kill to the first hit.
//!
//! One test in this binary: the process-wide cache points at this binary's sentinel group.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{cached, CacheConfig};
use integration_tests::sentinel::SentinelGroup;
use integration_tests::{block_on, command_at, reply_text, wait_until};

static LOAD_RUNS: AtomicUsize = AtomicUsize::new(0);
static PROBE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// What the load calls: the value is a pure function of the id, so every answer can be checked.
#[cached(ttl = 600, key_prefix = "load")]
async fn load_value(id: u64) -> u64 {
    LOAD_RUNS.fetch_add(1, SeqCst);
    id * 7 + 1
}

/// What the probe calls, alone, so that "the body did not run" means "a hit".
#[cached(ttl = 600, key_prefix = "probe")]
async fn probe_value(id: u64) -> u64 {
    PROBE_RUNS.fetch_add(1, SeqCst);
    id * 3
}

/// The longest we accept between killing a primary and the first hit on its replica.
const HITS_RESUME_WITHIN: Duration = Duration::from_secs(12);
/// The longest any single call may take while the primary fails over.
const CALL_BOUND: Duration = Duration::from_millis(2500);

fn replication_offset(port: u16, field: &str) -> Option<u64> {
    let info = reply_text(&command_at(port, &["INFO", "replication"]).ok()?);
    info.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn killing_the_primary_keeps_every_call_correct_and_hits_resume_on_the_promoted_replica() {
    let mut group = SentinelGroup::start();
    block_on(async {
        let config = CacheConfig::builder()
            .url(group.url())
            .socket_timeout(Duration::from_millis(500))
            .pool_size(4)
            .fail_silently(true)
            .build()
            .unwrap();
        let cache = cache_core::init(config).await.unwrap();

        // Warm: every load id and the probe id are cached.
        for id in 0..300 {
            assert_eq!(load_value(id).await, id * 7 + 1);
        }
        let probe_id = 42;
        assert_eq!(probe_value(probe_id).await, probe_id * 3);
        let probe_key = format!("probe:probe_value:{probe_id}");
        assert!(cache.exists(&probe_key).await.unwrap(), "{probe_key}");
        let before = PROBE_RUNS.load(SeqCst);
        assert_eq!(probe_value(probe_id).await, probe_id * 3);
        assert_eq!(PROBE_RUNS.load(SeqCst), before, "warm probe is a hit");

        // The victim: the primary; wait until its replica has every write.
        let victim = group.primary_port().unwrap();
        assert_eq!(victim, group.servers[0].port());
        let heir = group.servers[1].port();
        let primary_offset = replication_offset(victim, "master_repl_offset").unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || {
                replication_offset(heir, "slave_repl_offset").unwrap_or(0) >= primary_offset
            }),
            "replica {heir} did not catch up"
        );
        let report = cache.health_check().await;
        assert!(report.healthy, "{report:?}");
        assert_eq!(report.nodes.len(), 1);
        assert_eq!(report.nodes[0].address, format!("127.0.0.1:{victim}"));
        assert_eq!(report.nodes[0].role, "primary");

        // Load: concurrent callers over ids on every primary, checking every answer.
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (0..8u64)
            .map(|t| {
                let (stop, slowest_ms, calls) = (stop.clone(), slowest_ms.clone(), calls.clone());
                tokio::spawn(async move {
                    let mut id = t;
                    while !stop.load(SeqCst) {
                        id = (id * 31 + 17) % 300;
                        let started = Instant::now();
                        let v = load_value(id).await;
                        slowest_ms.fetch_max(started.elapsed().as_millis() as u64, SeqCst);
                        assert_eq!(v, id * 7 + 1, "load_value({id})");
                        calls.fetch_add(1, SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Kill the primary (SIGKILL, off the runtime's threads) and probe until the first hit.
        let killed_at = tokio::task::block_in_place(|| {
            group.kill(victim);
            Instant::now()
        });
        let mut misses_after_kill = 0;
        let first_hit = loop {
            let runs = PROBE_RUNS.load(SeqCst);
            let started = Instant::now();
            let v = probe_value(probe_id).await;
            assert!(
                started.elapsed() < CALL_BOUND,
                "probe took {:?}",
                started.elapsed()
            );
            assert_eq!(v, probe_id * 3);
            if PROBE_RUNS.load(SeqCst) == runs {
                break killed_at.elapsed();
            }
            misses_after_kill += 1;
            assert!(
                killed_at.elapsed() < HITS_RESUME_WITHIN,
                "no hit within {HITS_RESUME_WITHIN:?} of the kill ({misses_after_kill} misses); sentinels say {:?}",
                group.primary_port()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The hit came from the promoted replica.
        let (named, writable) =
            tokio::task::block_in_place(|| (group.primary_port(), group.is_writable_primary(heir)));
        assert_eq!(named, Some(heir));
        assert!(writable);
        eprintln!(
            "sentinel failover: primary kill -> first hit on the new primary: {} ms ({misses_after_kill} probe misses)",
            first_hit.as_millis()
        );

        // Callers keep going on the new topology for a moment, then stop; none panicked.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, SeqCst);
        for caller in callers {
            caller
                .await
                .expect("a caller panicked or got a wrong value");
        }
        let slowest = Duration::from_millis(slowest_ms.load(SeqCst));
        assert!(slowest < CALL_BOUND, "slowest call {slowest:?}");
        assert!(calls.load(SeqCst) > 100, "{} calls", calls.load(SeqCst));

        // Hits on every id again, and a healthy report on five nodes.
        let stats_before = cache.stats();
        for id in 0..300 {
            assert_eq!(load_value(id).await, id * 7 + 1);
        }
        for id in 0..300 {
            assert_eq!(load_value(id).await, id * 7 + 1);
        }
        let stats_after = cache.stats();
        assert!(
            stats_after.hits - stats_before.hits >= 300,
            "{stats_before:?} -> {stats_after:?}"
        );
        // The report names the new primary (the pool's record of its connections can trail the
        // reconnect by a moment, so allow a short wait).
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
    });
}
