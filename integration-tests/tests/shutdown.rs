//! A graceful end: `shutdown` delivers the invalidations kept while Redis was unreachable, and
//! says which it could not deliver; a service that exits without it logs each at error.

use std::process::Command;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use integration_tests::{closed_port_url, RedisServer, Reply};

fn cache_config(url: String) -> CacheConfig {
    CacheConfig::builder()
        .url(url)
        .socket_timeout(Duration::from_millis(500))
        .breaker_probe_interval(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// An invalidation made while Redis was down is delivered by `shutdown` once Redis is back,
/// without waiting for the background replay.
#[tokio::test]
async fn shutdown_delivers_the_pending_invalidations() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let cache = Cache::new(cache_config(server.url())).await.unwrap();
    cache.set("end:item:1", &1u64, None).await.unwrap();
    server.kill();
    assert_eq!(
        cache.delete(["end:item:1"]).await,
        Ok(0),
        "failing silently"
    );
    assert_eq!(cache.stats().invalidations_pending, 1);
    server.restart();
    assert!(matches!(server.cmd("GET end:item:1"), Reply::Bulk(Some(_))));

    let report = cache.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(server.cmd("EXISTS end:item:1"), Reply::Integer(0));
    assert_eq!(cache.stats().invalidations_pending, 0);
}

/// Redis still down: `shutdown` gives up at its deadline and reports the invalidation by its
/// key space, counted as dropped.
#[tokio::test]
async fn shutdown_reports_what_it_could_not_deliver_within_its_deadline() {
    let cache = Cache::new(cache_config(closed_port_url())).await.unwrap();
    assert_eq!(
        cache.clear_pattern("end:user:*").await,
        Ok(0),
        "failing silently"
    );
    assert_eq!(cache.delete(["end:post:9"]).await, Ok(0));
    let started = Instant::now();
    let report = cache.shutdown(Duration::from_millis(400)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "bounded by its deadline: {took:?}"
    );
    assert_eq!(report.delivered, 0);
    assert_eq!(report.undelivered.len(), 2, "{report:?}");
    assert_eq!(
        cache.stats().invalidations_dropped,
        2,
        "{:?}",
        cache.stats()
    );
}

/// Runs `exit_pending` against a port where nothing listens; what it printed and logged.
fn run_service(args: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_exit_pending"))
        .args(args)
        .env("REDIS_URL", closed_port_url())
        .env("REDIS_SOCKET_TIMEOUT", "0.3")
        .output()
        .expect("run exit_pending");
    assert!(output.status.success(), "{output:?}");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `#[tokio::main]` service that returns from `main` with an invalidation pending logs it at
/// error, with its key space, as it exits; with `shutdown`, the report says it instead, and the
/// exit adds nothing.
#[test]
fn an_exit_with_invalidations_pending_logs_each_at_error() {
    let (stdout, stderr) = run_service(&[]);
    assert!(stdout.contains("pending=1"), "{stdout}");
    let lost: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("invalidation not delivered"))
        .collect();
    assert_eq!(lost.len(), 1, "{stderr}");
    assert!(lost[0].contains("the process exits"), "{stderr}");
    assert!(lost[0].contains("exit:item"), "the key space: {stderr}");

    let (stdout, stderr) = run_service(&["--shutdown"]);
    assert!(
        stdout.contains(r#"delivered=0 undelivered=["exit:item"]"#),
        "{stdout}"
    );
    let lost: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("invalidation not delivered"))
        .collect();
    assert_eq!(lost.len(), 1, "reported once, by the shutdown: {stderr}");
    assert!(lost[0].contains("deadline"), "{stderr}");
}
