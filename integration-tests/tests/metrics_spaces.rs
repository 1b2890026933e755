//! The metrics and spans of `#[cached]` and `#[invalidate_cache]` functions, labelled by key
//! space: the head of the function's keys, never a key or an argument. Its own binary: the test
//! installs the process-wide metrics recorder and tracing subscriber.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::{cached, invalidate_cache, CacheConfig};
use integration_tests::RedisServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use tracing_subscriber::fmt::format::FmtSpan;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "server")]
async fn get_server_details(server_id: u64) -> String {
    RUNS.fetch_add(1, SeqCst);
    tokio::time::sleep(Duration::from_millis(5)).await;
    format!("server {server_id}")
}

#[invalidate_cache("server:get_server_details:{server_id}")]
async fn update_server(server_id: u64) -> Result<(), String> {
    let _ = server_id;
    Ok(())
}

/// What the recorder holds: (kind, name, sorted labels) -> value.
type Seen = HashMap<(MetricKind, String, Vec<(String, String)>), DebugValue>;

fn seen(snapshotter: &Snapshotter) -> Seen {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            ((kind, key.name().to_owned(), labels), value)
        })
        .collect()
}

fn counter(seen: &Seen, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    match seen.get(&(MetricKind::Counter, name.to_owned(), labels)) {
        Some(DebugValue::Counter(n)) => *n,
        _ => 0,
    }
}

fn histogram_len(seen: &Seen, name: &str, space: &str) -> usize {
    let labels = vec![("space".to_owned(), space.to_owned())];
    match seen.get(&(MetricKind::Histogram, name.to_owned(), labels)) {
        Some(DebugValue::Histogram(values)) => values.len(),
        _ => 0,
    }
}

fn gauge(seen: &Seen, name: &str) -> Option<f64> {
    match seen.get(&(MetricKind::Gauge, name.to_owned(), Vec::new())) {
        Some(DebugValue::Gauge(v)) => Some(v.into_inner()),
        _ => None,
    }
}

/// A writer into a shared buffer, for the subscriber.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn counters_histograms_gauges_and_spans_carry_the_key_space() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let logs = Buffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("cache_core=debug")
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();
    let space = "server:get_server_details";

    assert_eq!(get_server_details(4242).await, "server 4242"); // miss, body, store
    assert_eq!(get_server_details(4242).await, "server 4242"); // hit
    assert_eq!(get_server_details(4242).await, "server 4242"); // hit
    update_server(4242).await.unwrap();
    assert_eq!(get_server_details(4242).await, "server 4242"); // miss again

    // A key written by hand in the function's space counts there too (write-through).
    cache
        .set("server:get_server_details:7", &"seven".to_owned(), None)
        .await
        .unwrap();
    // A key of no registered space.
    let _: Option<String> = cache.get("scratch:1").await.unwrap();

    let s = seen(&snapshotter);
    let at = [("space", space)];
    assert_eq!(counter(&s, "cache_hits_total", &at), 2, "{s:#?}");
    assert_eq!(counter(&s, "cache_misses_total", &at), 2);
    assert_eq!(counter(&s, "cache_sets_total", &at), 3);
    assert_eq!(counter(&s, "cache_body_runs_total", &at), 2);
    assert_eq!(RUNS.load(SeqCst), 2);
    assert_eq!(counter(&s, "cache_invalidations_total", &at), 1);
    assert_eq!(counter(&s, "cache_deletes_total", &at), 1);
    assert_eq!(
        counter(&s, "cache_misses_total", &[("space", "(other)")]),
        1
    );
    assert_eq!(histogram_len(&s, "cache_read_seconds", space), 4);
    assert_eq!(histogram_len(&s, "cache_store_seconds", space), 2);
    assert_eq!(histogram_len(&s, "cache_body_seconds", space), 2);
    // One span per call, closed with its space and outcome; the body's time when it ran.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let closed = |outcome: &str| {
        text.lines()
            .filter(|l| l.contains("cache.read_through") && l.contains("close"))
            .filter(|l| {
                l.contains(&format!("space=\"{space}\"")) || l.contains(&format!("space={space}"))
            })
            .filter(|l| {
                l.contains(&format!("outcome=\"{outcome}\""))
                    || l.contains(&format!("outcome={outcome}"))
            })
            .count()
    };
    assert_eq!(closed("hit"), 2, "{text}");
    assert_eq!(closed("miss"), 2, "{text}");
    assert!(text.contains("body_ms="), "{text}");
    assert!(text.contains("cache.invalidate"), "{text}");
    assert!(!text.contains("4242"), "a key reached the logs: {text}");

    // No label value is a key or an argument.
    for (_, _, labels) in s.keys() {
        for (_, value) in labels {
            assert!(
                !value.contains("4242") && !value.contains(":7"),
                "{labels:?}"
            );
        }
    }

    // Redis gone: errors by kind, and the breaker's state as a gauge once it opens.
    server.kill();
    for _ in 0..10 {
        assert_eq!(get_server_details(1).await, "server 1");
        if cache.stats().circuit_open {
            break;
        }
    }
    assert!(cache.stats().circuit_open, "{:?}", cache.stats());
    let s = seen(&snapshotter);
    let errors: u64 = ["connection", "timeout"]
        .iter()
        .map(|kind| {
            counter(
                &s,
                "cache_errors_total",
                &[("kind", kind), ("space", space)],
            )
        })
        .sum();
    assert!(errors > 0, "{s:#?}");
    assert_eq!(gauge(&s, "cache_breaker_state"), Some(2.0));
}
