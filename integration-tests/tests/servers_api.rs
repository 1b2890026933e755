//! The example service (`examples/servers_api`) as a child process, against its own
//! `redis-server` and a temporary SQLite file, over real HTTP: the health route's shape, hits
//! and misses in `/metrics`, never a stale read after an update, and answers from the database
//! with `/health/cache` at 503 once Redis is killed.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use integration_tests::{free_port, metric_sample, metric_sum, RedisServer};
use serde_json::{json, Value};

/// The example's socket timeout in these tests.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling and HTTP slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(700);

/// The example's binary, built first when it is missing or stale.
fn example_binary() -> PathBuf {
    integration_tests::workspace_binary(
        "examples/servers_api",
        &["-p", "integration-tests", "--example", "servers_api"],
    )
}

/// The running example; killed, and its scratch directory removed, when dropped.
struct Service {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Service {
    fn start(redis_url: &str) -> Service {
        let binary = example_binary();
        let dir = std::env::temp_dir().join(format!("servers-api-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("service.log")).unwrap();
        let port = free_port();
        let database_url = format!("sqlite://{}?mode=rwc", dir.join("servers.db").display());
        let child = Command::new(binary)
            // No `.env` of the repository is read: the example runs in the scratch directory.
            .current_dir(&dir)
            .env("REDIS_URL", redis_url)
            .env("REDIS_SOCKET_TIMEOUT", TIMEOUT.as_secs_f64().to_string())
            .env("CACHE_ENABLED", "true")
            .env("CACHE_FAIL_SILENTLY", "true")
            .env("DATABASE_URL", database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("SEED_SERVERS", "1000")
            // Server 1 has 2,919 stars: not among the 10 most popular, so not warmed.
            .env("CACHE_WARM_COUNT", "10")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the example");
        Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("service.log")).unwrap_or_default()
    }

    /// Waits until the service answers HTTP (it seeds and warms first).
    async fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the example exited ({status}):\n{}", self.log());
            }
            if client().get(self.url("/health/cache")).send().await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not answer within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`: the status and the JSON body, and how long it took.
    async fn get(&self, path: &str) -> (u16, Value, Duration) {
        let started = Instant::now();
        let response = client().get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap();
        (status, body, started.elapsed())
    }

    async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = client()
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn metrics(&self) -> String {
        let response = client().get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("example log:\n{}", self.log());
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_from_the_cache_and_survives_redis() {
    let started = Instant::now();
    let mut redis = RedisServer::start();
    let mut service = Service::start(&redis.url());
    service.wait_ready(Duration::from_secs(30)).await;
    println!("built and started in {:?}", started.elapsed());
    let log = service.log();
    assert!(log.contains("cache warmed"), "{log}");
    assert!(log.contains("seeded=1000"), "{log}");

    // The guide's health shape.
    let (status, health, _) = service.get("/health/cache").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["cache"]["healthy"], true, "{health}");
    assert!(health["cache"]["latency_ms"].is_number(), "{health}");
    assert!(health["cache"]["version"].is_string(), "{health}");
    assert_eq!(health["cache"]["backend"], "redis", "{health}");

    // One miss, then hits, of the read-through.
    let (status, first, _) = service.get("/servers/1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["id"], 1);
    for _ in 0..3 {
        let (status, again, _) = service.get("/servers/1").await;
        assert_eq!(status, 200);
        assert_eq!(again, first);
    }
    let (status, _, _) = service.get("/servers/999999").await;
    assert_eq!(status, 404);
    let (status, trending, _) = service.get("/servers/trending?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(trending.as_array().map(Vec::len), Some(5), "{trending}");
    let (status, stats, _) = service.get("/stats/daily").await;
    assert_eq!(status, 200);
    assert_eq!(stats["total_servers"], 1000, "{stats}");

    let text = service.metrics().await;
    assert!(metric_sum(&text, "cache_hits_total") >= 3.0, "{text}");
    assert!(metric_sum(&text, "cache_misses_total") >= 1.0, "{text}");
    assert!(
        metric_sum(&text, "cache_sets_total") >= 10.0,
        "the warming: {text}"
    );
    // Per function: server 1's reads, exactly.
    let space = "server:get_server_details";
    assert_eq!(
        metric_sample(&text, "cache_hits_total", space),
        Some(3.0),
        "{text}"
    );
    // The miss of server 1 and of the server that does not exist.
    assert_eq!(
        metric_sample(&text, "cache_misses_total", space),
        Some(2.0),
        "{text}"
    );

    // Write-through with invalidation: never a stale read after an update.
    for round in 0..3 {
        let name = format!("renamed-{round}");
        let (status, updated) = service
            .put("/servers/1", &json!({ "name": name, "stars": 100 + round }))
            .await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["name"], name.as_str());
        let (status, read, _) = service.get("/servers/1").await;
        assert_eq!(status, 200);
        assert_eq!(read, updated, "a stale read after the update");
    }

    // Redis killed: answers come from the database, within the socket timeout, and the health
    // route says so.
    redis.kill();
    for id in [1, 2, 3, 1] {
        let (status, server, took) = service.get(&format!("/servers/{id}")).await;
        assert_eq!(status, 200, "{server}");
        assert_eq!(server["id"], id);
        assert!(took < TIMEOUT + SLACK, "GET /servers/{id} took {took:?}");
    }
    let (_, read, _) = service.get("/servers/1").await;
    assert_eq!(read["name"], "renamed-2");
    let (status, updated) = service
        .put("/servers/1", &json!({ "name": "renamed-without-redis" }))
        .await;
    assert_eq!(status, 200, "{updated}");
    let (status, read, took) = service.get("/servers/1").await;
    assert_eq!(status, 200);
    assert_eq!(read["name"], "renamed-without-redis", "{read}");
    assert!(took < TIMEOUT + SLACK, "took {took:?}");

    let (status, health, took) = service.get("/health/cache").await;
    println!("without Redis: {status} in {took:?}: {health}");
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["cache"]["healthy"], false, "{health}");
    assert!(health["cache"]["error"].is_string(), "{health}");
    assert!(took < TIMEOUT + SLACK, "the health route took {took:?}");
    println!("the whole test: {:?}", started.elapsed());
}
