//! The axum routes of `cache_core::web` over real HTTP: `GET /health/cache` against a healthy,
//! a closed and a hung (SIGSTOP'd) Redis, and `GET /metrics` after hits.
//!
//! Each test serves its router on `127.0.0.1:0` in a task of its own runtime and asks it with
//! reqwest. Its own test binary: one test sets up the process-wide cache and the process'
//! Prometheus recorder.

use std::time::{Duration, Instant};

use axum::Router;
use cache_core::{cached, web, Cache, CacheConfig};
use integration_tests::{closed_port_url, metric_sample, metric_sum, RedisServer};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling and HTTP slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(500);

/// Serves `app` on a free loopback port; its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `GET base/health/cache`: status, `Cache-Control` and the JSON body.
async fn health(base: &str) -> (u16, Option<String>, Value) {
    let response = client()
        .get(format!("{base}/health/cache"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cache_control = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    (status, cache_control, body)
}

async fn cache_at(url: String) -> Cache {
    let config = CacheConfig::builder()
        .url(url)
        .socket_timeout(TIMEOUT)
        .build()
        .unwrap();
    Cache::new(config).await.unwrap()
}

/// Asserts the guide's shape: `{"status": word, "cache": {"healthy": .., "latency_ms": .., ...}}`.
fn assert_shape(body: &Value, word: &str, healthy: bool) {
    assert_eq!(body["status"], word, "{body}");
    let cache = &body["cache"];
    assert_eq!(cache["healthy"], healthy, "{body}");
    assert!(cache["latency_ms"].is_number(), "{body}");
    for field in [
        "version",
        "used_memory",
        "connected_clients",
        "uptime_seconds",
        "error",
        "backend",
        "circuit",
        "invalidations_pending",
    ] {
        assert!(cache.get(field).is_some(), "no {field} in {body}");
    }
    assert_eq!(cache["backend"], "redis", "{body}");
}

#[tokio::test]
async fn a_healthy_redis_answers_200_with_the_report() {
    let server = RedisServer::start();
    let base = serve(web::health_router_for(cache_at(server.url()).await)).await;

    let (status, cache_control, body) = health(&base).await;
    println!("{status} {body}");
    assert_eq!(status, 200);
    assert_eq!(cache_control.as_deref(), Some("no-store"));
    assert_shape(&body, "healthy", true);
    assert!(body["cache"]["version"].is_string(), "{body}");
    assert!(body["cache"]["error"].is_null(), "{body}");
}

#[tokio::test]
async fn a_closed_port_answers_503_with_the_error() {
    let base = serve(web::health_router_for(cache_at(closed_port_url()).await)).await;

    let started = Instant::now();
    let (status, _, body) = health(&base).await;
    println!("{status} in {:?}: {body}", started.elapsed());
    assert_eq!(status, 503);
    assert_shape(&body, "unhealthy", false);
    assert!(body["cache"]["error"].is_string(), "{body}");
    assert!(started.elapsed() < TIMEOUT + SLACK);
}

#[tokio::test]
async fn a_hung_redis_answers_503_within_the_socket_timeout() {
    let server = RedisServer::start();
    let base = serve(web::health_router_for(cache_at(server.url()).await)).await;
    assert_eq!(health(&base).await.0, 200);

    let _paused = server.pause();
    let started = Instant::now();
    let (status, _, body) = health(&base).await;
    let took = started.elapsed();
    println!("{status} in {took:?}: {body}");
    assert_eq!(status, 503);
    assert_shape(&body, "unhealthy", false);
    assert!(
        took < TIMEOUT + SLACK,
        "the health route took {took:?} against a hung Redis"
    );
}

#[cached(ttl = 60, key_prefix = "web")]
async fn triple(id: u64) -> u64 {
    id * 3
}

/// The process-wide routes: `health_router()` on the cache `init` set up, and `/metrics` after
/// misses and hits of a `#[cached]` function.
#[tokio::test]
async fn metrics_show_the_cache_counters_after_hits() {
    let server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .socket_timeout(TIMEOUT)
        .build()
        .unwrap();
    cache_core::init(config).await.unwrap();
    let handle = web::install_prometheus().unwrap();
    // Installing again hands back the same recorder's handle, without an error.
    let again = web::install_prometheus().unwrap();

    for id in 0..3 {
        for _ in 0..4 {
            assert_eq!(triple(id).await, id * 3);
        }
    }
    let base = serve(
        Router::new()
            .merge(web::health_router())
            .merge(web::metrics_router(handle)),
    )
    .await;

    let (status, _, body) = health(&base).await;
    assert_eq!(status, 200, "{body}");
    assert_shape(&body, "healthy", true);

    let response = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    println!("{text}");
    assert!(
        again.render().contains("cache_hits_total"),
        "both handles read the same recorder"
    );

    let hits = metric_sum(&text, "cache_hits_total");
    let misses = metric_sum(&text, "cache_misses_total");
    assert!(hits >= 9.0, "3 keys x 3 hits; got {hits}:\n{text}");
    assert!(misses >= 3.0, "3 keys x 1 miss; got {misses}:\n{text}");
    assert!(text.contains("# TYPE cache_hits_total counter"), "{text}");

    // Per function: the counters carry the key space of `triple`.
    assert_eq!(
        metric_sample(&text, "cache_hits_total", "web:triple"),
        Some(9.0),
        "{text}"
    );
    assert_eq!(
        metric_sample(&text, "cache_misses_total", "web:triple"),
        Some(3.0),
        "{text}"
    );
}
