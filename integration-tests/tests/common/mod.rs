//! What the cluster and sentinel failover tests share: the cached functions under load, the load
//! itself, and the probe that times the first hit after a primary is killed.
//!
//! Included with `mod common;` by each failover test binary (cargo builds no binary of its own
//! from a subdirectory of `tests/`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{cached, Cache, CacheConfig};
use integration_tests::{command_at, reply_text, wait_until};

static LOAD_RUNS: AtomicUsize = AtomicUsize::new(0);
static PROBE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// How many ids the load spreads over.
pub const IDS: u64 = 300;
/// The id the probe asks for.
pub const PROBE_ID: u64 = 42;
/// The probe's key in Redis.
pub const PROBE_KEY: &str = "probe:probe_value:42";
/// The longest we accept between killing a primary and the first hit on its replica.
pub const HITS_RESUME_WITHIN: Duration = Duration::from_secs(12);
/// The longest any single call may take while the primary fails over.
pub const CALL_BOUND: Duration = Duration::from_millis(2500);

/// What the load calls: the value is a pure function of the id, so every answer can be checked.
#[cached(ttl = 600, key_prefix = "load")]
pub async fn load_value(id: u64) -> u64 {
    LOAD_RUNS.fetch_add(1, SeqCst);
    id * 7 + 1
}

/// What the probe calls, alone, so that "the body did not run" means "a hit".
#[cached(ttl = 600, key_prefix = "probe")]
pub async fn probe_value(id: u64) -> u64 {
    PROBE_RUNS.fetch_add(1, SeqCst);
    id * 3
}

/// Sets up the process-wide cache on `url` (fail silently, 0.5 s timeout, 4 connections) and
/// warms it.
pub async fn init_and_warm(url: &str) -> Cache {
    let config = CacheConfig::builder()
        .url(url)
        .socket_timeout(Duration::from_millis(500))
        .pool_size(4)
        .fail_silently(true)
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();
    warm(&cache).await;
    cache
}

/// Caches every load id and the probe id, and checks that the probe now hits.
async fn warm(cache: &Cache) {
    for id in 0..IDS {
        assert_eq!(load_value(id).await, id * 7 + 1);
    }
    assert_eq!(probe_value(PROBE_ID).await, PROBE_ID * 3);
    assert!(cache.exists(PROBE_KEY).await.unwrap(), "{PROBE_KEY}");
    let before = PROBE_RUNS.load(SeqCst);
    assert_eq!(probe_value(PROBE_ID).await, PROBE_ID * 3);
    assert_eq!(PROBE_RUNS.load(SeqCst), before, "warm probe is a hit");
}

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

/// Waits until the replica on `heir` has every write of the primary on `victim`.
pub fn wait_for_replica(victim: u16, heir: u16) {
    let primary_offset = replication_offset(victim, "master_repl_offset").unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || {
            replication_offset(heir, "slave_repl_offset").unwrap_or(0) >= primary_offset
        }),
        "replica {heir} did not catch up"
    );
}

/// Concurrent callers over every id, checking every answer, until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    slowest_ms: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
    callers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts 8 callers on the current runtime.
    pub fn start() -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(AtomicU64::new(0));
        let callers = (0..8u64)
            .map(|t| {
                let (stop, slowest_ms, calls) = (stop.clone(), slowest_ms.clone(), calls.clone());
                tokio::spawn(async move {
                    let mut id = t;
                    while !stop.load(SeqCst) {
                        id = (id * 31 + 17) % IDS;
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
        Load {
            stop,
            slowest_ms,
            calls,
            callers,
        }
    }

    /// Stops the callers; none panicked or got a wrong value, none took longer than
    /// [`CALL_BOUND`], and they made progress.
    pub async fn finish(self) {
        self.stop.store(true, SeqCst);
        for caller in self.callers {
            caller
                .await
                .expect("a caller panicked or got a wrong value");
        }
        let slowest = Duration::from_millis(self.slowest_ms.load(SeqCst));
        assert!(slowest < CALL_BOUND, "slowest call {slowest:?}");
        assert!(
            self.calls.load(SeqCst) > 100,
            "{} calls",
            self.calls.load(SeqCst)
        );
    }
}

/// Calls the probe until it hits; the time since `killed_at` and the misses before it.
/// `describe` says what the topology looks like when the bound is exceeded.
pub async fn probe_until_hit(killed_at: Instant, describe: impl Fn() -> String) -> (Duration, u32) {
    let mut misses = 0;
    loop {
        let runs = PROBE_RUNS.load(SeqCst);
        let started = Instant::now();
        let v = probe_value(PROBE_ID).await;
        assert!(
            started.elapsed() < CALL_BOUND,
            "probe took {:?}",
            started.elapsed()
        );
        assert_eq!(v, PROBE_ID * 3);
        if PROBE_RUNS.load(SeqCst) == runs {
            return (killed_at.elapsed(), misses);
        }
        misses += 1;
        assert!(
            killed_at.elapsed() < HITS_RESUME_WITHIN,
            "no hit within {HITS_RESUME_WITHIN:?} of the kill ({misses} misses): {}",
            describe()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads every id twice: at least one read each is a hit on the new topology.
pub async fn hits_on_every_id(cache: &Cache) {
    let before = cache.stats();
    for _ in 0..2 {
        for id in 0..IDS {
            assert_eq!(load_value(id).await, id * 7 + 1);
        }
    }
    let after = cache.stats();
    assert!(after.hits - before.hits >= IDS, "{before:?} -> {after:?}");
}
