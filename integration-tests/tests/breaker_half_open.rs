//! The circuit breaker against a Redis that answers PING but is still sick: `CLIENT PAUSE WRITE`
//! holds every write on the connections that sent one, while the probe's PING, on the cache's
//! own connection, is answered. A breaker that closed on one successful probe sent every pending
//! caller into the timeout again, probe after probe; a half-open breaker lets at most a few trial
//! calls through per probe, the first of them that fails opens it again, and when Redis heals a
//! few successful calls close it. The state machine itself is tested in cache-core's
//! `policy::breaker`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use integration_tests::RedisServer;

const TIMEOUT: Duration = Duration::from_millis(300);
const PROBE: Duration = Duration::from_millis(250);
const CALLERS: usize = 16;
/// The trial calls a half-open breaker lets through at a time (cache-core's `TRIAL_CALLS`).
const TRIALS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sick_redis_that_answers_the_probe_costs_a_few_trial_calls_per_probe() {
    let server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(TIMEOUT)
        .breaker_probe_interval(PROBE)
        .build()
        .unwrap();
    let cache = Cache::new(config).await.unwrap();
    cache.set("warm", &1u8, None).await.unwrap();

    server.cmd("CLIENT PAUSE 4000 WRITE");
    let paused = Instant::now();
    // (when it started after the pause, how long it took) of every call that paid the timeout.
    let slow = Arc::new(Mutex::new(Vec::<(Duration, Duration)>::new()));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (cache, slow) = (cache.clone(), slow.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while paused.elapsed() < Duration::from_secs(3) {
                    let started = Instant::now();
                    let _ = cache.set(&format!("w:{i}:{n}"), &n, None).await;
                    if started.elapsed() >= TIMEOUT * 8 / 10 {
                        slow.lock()
                            .unwrap()
                            .push((started - paused, started.elapsed()));
                    } else {
                        // Skipped by the open breaker: do not spin.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let mut states = Vec::new();
    while paused.elapsed() < Duration::from_secs(3) {
        states.push(cache.health_check().await.circuit);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for caller in callers {
        caller.await.unwrap();
    }
    let slow = slow.lock().unwrap().clone();
    let mut starts: Vec<u128> = slow.iter().map(|(at, _)| at.as_millis()).collect();
    starts.sort_unstable();
    println!("slow call starts (ms after the pause): {starts:?}");
    // The first wave: the calls in flight when the writes began to hang.
    let first_wave = slow
        .iter()
        .filter(|(at, _)| *at < Duration::from_millis(100))
        .count();
    // After it, slow calls per probe interval: at most the trials.
    let mut per_window = std::collections::BTreeMap::<u128, usize>::new();
    for (at, _) in slow
        .iter()
        .filter(|(at, _)| *at >= Duration::from_millis(100))
    {
        *per_window
            .entry(at.as_millis() / PROBE.as_millis())
            .or_default() += 1;
    }
    println!(
        "{} slow calls: {first_wave} in the first wave, then per probe interval {per_window:?}; \
         circuit states seen {states:?}",
        slow.len()
    );
    assert!(first_wave <= CALLERS);
    for (window, count) in &per_window {
        assert!(
            *count <= TRIALS,
            "{count} calls paid the timeout in probe interval {window}: the breaker let every \
             caller through after a probe ({per_window:?})"
        );
    }
    assert!(states.contains(&"open"), "the breaker opened: {states:?}");

    // Healthy again: the probe half-opens it and a few calls close it.
    server.cmd("CLIENT UNPAUSE");
    let healed = Instant::now();
    loop {
        let _ = cache.set("after", &1u8, None).await;
        if cache.health_check().await.circuit == "closed" {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(3),
            "the breaker never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cache.get::<u8>("after").await.unwrap(), Some(1));
}
