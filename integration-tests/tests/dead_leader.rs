//! A process killed while it computes a key: the other processes' callers of that key wait for
//! it about a second (the lease's liveness), not the lease TTL.
//!
//! The second process is this test binary run again with `DEAD_LEADER_CHILD` set to the
//! server's URL: it calls `report(1)`, whose body sleeps 30 s there, and so holds the key's
//! lease. The parent waits until the key holds a lease marker (read with the harness' own
//! client), SIGKILLs the child, and calls `report(1)` itself: the marker, no longer renewed,
//! lapses within `CACHE_LEASE_LIVENESS` (1 s), and the parent computes and stores the value.
//! Before leases were kept alive by their holder, the marker lived `CACHE_LEASE_TTL` (10 s)
//! and the parent's call took that long.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_core::{cached, CacheConfig};
use integration_tests::{wait_until, RedisServer, Reply};

/// This test's name, as the child is asked to run it.
const TEST_NAME: &str = "a_killed_leader_costs_the_other_process_about_a_second";
/// Set in the child: the server's URL.
const CHILD_ENV: &str = "DEAD_LEADER_CHILD";
/// The child's body: far longer than the test.
const CHILD_BODY: Duration = Duration::from_secs(30);
/// What the parent's call may take: the liveness (1 s), a poll, and slack for a shared machine.
const BOUND: Duration = Duration::from_millis(1500);
/// The first bytes of a lease marker (the value magic, then a version values never have).
const MARKER_PREFIX: [u8; 4] = [0xCA, 0xCE, 0xFF, b'L'];

static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "dead_leader")]
async fn report(id: u64) -> u64 {
    RUNS.fetch_add(1, SeqCst);
    if std::env::var_os(CHILD_ENV).is_some() {
        tokio::time::sleep(CHILD_BODY).await;
    }
    id * 100
}

fn config(url: String) -> CacheConfig {
    CacheConfig::builder().url(url).build().unwrap()
}

/// The one key in the server and what it holds, if there is exactly one.
fn only_key(server: &RedisServer) -> Option<(Vec<u8>, Vec<u8>)> {
    let Reply::Array(Some(keys)) = server.cmd("KEYS *") else {
        return None;
    };
    let [Reply::Bulk(Some(key))] = &keys[..] else {
        return None;
    };
    match server.command(&[b"GET", key]) {
        Reply::Bulk(Some(value)) => Some((key.clone(), value)),
        _ => None,
    }
}

/// The child: lead `report(1)` until killed (or past a deadline, whatever happens).
async fn child(url: String) {
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        eprintln!("dead_leader child: past its deadline, exiting");
        std::process::exit(4);
    });
    cache_core::init(config(url)).await.unwrap();
    report(1).await;
    panic!("the child's body returned: it should have been killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_costs_the_other_process_about_a_second() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return child(url).await;
    }
    let server = RedisServer::start();
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture"])
        .env(CHILD_ENV, server.url())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let leased = tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(20), || {
            only_key(&server).is_some_and(|(_, v)| v.starts_with(&MARKER_PREFIX))
        })
    });
    if !leased {
        let _ = process.kill();
        panic!("the child never took the lease: {:?}", only_key(&server));
    }
    // The child renews its lease while its body runs: it is still there well past the
    // liveness.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (key, marker) = only_key(&server).expect("the child's lease");
    assert!(marker.starts_with(&MARKER_PREFIX), "still a marker");
    process.kill().unwrap(); // SIGKILL
    process.wait().unwrap();
    let killed = Instant::now();

    cache_core::init(config(server.url())).await.unwrap();
    let value = tokio::time::timeout(Duration::from_secs(30), report(1))
        .await
        .expect("report(1) completes");
    let took = killed.elapsed();
    println!(
        "report(1) after its leader was SIGKILLed: {took:?} (bound {BOUND:?}), {} body run here",
        RUNS.load(SeqCst)
    );
    assert_eq!(value, 100);
    assert_eq!(RUNS.load(SeqCst), 1, "this process computed it");
    assert!(
        took < BOUND,
        "the other process waited {took:?} for a dead leader's lease"
    );
    let stored = server.command(&[b"GET", &key]);
    assert!(
        matches!(&stored, Reply::Bulk(Some(v)) if !v.starts_with(&MARKER_PREFIX)),
        "the value is stored: {stored:?}"
    );
}

/// How many scripts (EVALSHA and EVAL) the server has run without an error (a NOSCRIPT
/// before the script is loaded is an error).
fn scripts_run(server: &RedisServer) -> u64 {
    let field = |line: &str, name: &str| {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    ["cmdstat_evalsha", "cmdstat_eval"]
        .iter()
        .filter_map(|stat| server.info_field("commandstats", stat))
        .map(|line| field(&line, "calls=") - field(&line, "failed_calls="))
        .sum()
}

/// A living leader renews its lease every third of the liveness while its body runs, and not
/// after its store: a 5 s body sends about 15 renewals, besides the lease and the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_second_body_renews_its_lease_about_fifteen_times() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let server = RedisServer::start();
    let cache = cache_core::Cache::new(config(server.url())).await.unwrap();
    let before = scripts_run(&server);
    let value = cache
        .get_or_compute("five", None, || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            7u64
        })
        .await;
    assert_eq!(value, 7);
    let after = scripts_run(&server);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = scripts_run(&server);
    // The lease script and the store, and the renewals between them.
    let renewals = after - before - 2;
    println!(
        "a 5 s body: {renewals} lease renewals ({} scripts in all)",
        after - before
    );
    assert!((13..=16).contains(&renewals), "{renewals} renewals");
    assert_eq!(later, after, "no renewal after the store");
}
