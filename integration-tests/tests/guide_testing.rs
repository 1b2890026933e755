//! The example of docs/src/testing.md, "Testing your own code": a service's cached functions and
//! their tests, written as plain `#[tokio::test]` functions against a real Redis. It passes with
//! `--test-threads=1` and in parallel: each test works in a key space of its own (a tenant id that
//! is part of every key), so tests never see each other's entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use cache_core::{cached, invalidate_cache, CacheConfig};

// ---- The code under test: in your crate, your service module. ----

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub id: u64,
    pub name: String,
}

/// Stands for the database.
static DATABASE: LazyLock<Mutex<HashMap<(String, u64), String>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// How many times the database was read, per tenant.
static READS: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

#[cached(ttl = 300, key_prefix = "profile")]
pub async fn get_profile(tenant: &str, id: u64) -> Option<Profile> {
    *READS.lock().unwrap().entry(tenant.to_owned()).or_default() += 1;
    let name = DATABASE
        .lock()
        .unwrap()
        .get(&(tenant.to_owned(), id))
        .cloned()?;
    Some(Profile { id, name })
}

#[invalidate_cache("profile:get_profile:{tenant}:{id}")]
pub async fn rename(tenant: &str, id: u64, name: &str) -> Result<(), String> {
    DATABASE
        .lock()
        .unwrap()
        .insert((tenant.to_owned(), id), name.to_owned());
    Ok(())
}

// ---- The tests. ----

/// The process-wide cache, on the test Redis. `init` with an equal configuration returns the
/// cache that exists, so every test may call it, in any order, on its own runtime.
///
/// Here the harness starts a `redis-server`; in your crate, read `REDIS_URL` from the
/// environment your CI provides (`cache_core::init_from_env()`).
async fn cache() -> cache_core::Cache {
    static REDIS: LazyLock<integration_tests::RedisServer> =
        LazyLock::new(integration_tests::RedisServer::start);
    let config = CacheConfig::builder().url(REDIS.url()).build().unwrap();
    cache_core::init(config).await.unwrap()
}

/// How many times the database was read for `tenant`. Each test has a tenant of its own, so its
/// keys (`profile:get_profile:<tenant>:...`) and counts are its own.
fn reads(tenant: &str) -> u64 {
    READS.lock().unwrap().get(tenant).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_profile_is_read_from_the_database_once() {
    cache().await;
    let tenant = "test-read-once";
    rename(tenant, 1, "Ada").await.unwrap();
    for _ in 0..3 {
        let profile = get_profile(tenant, 1).await;
        assert_eq!(profile.map(|p| p.name).as_deref(), Some("Ada"));
    }
    assert_eq!(reads(tenant), 1);
}

#[tokio::test]
async fn a_rename_is_seen_at_once() {
    cache().await;
    let tenant = "test-rename";
    rename(tenant, 7, "Grace").await.unwrap();
    assert_eq!(get_profile(tenant, 7).await.unwrap().name, "Grace");
    rename(tenant, 7, "Grace Hopper").await.unwrap();
    assert_eq!(get_profile(tenant, 7).await.unwrap().name, "Grace Hopper");
    assert_eq!(reads(tenant), 2);
}

#[tokio::test]
async fn an_unknown_profile_is_not_cached() {
    cache().await;
    let tenant = "test-unknown";
    assert_eq!(get_profile(tenant, 404).await, None);
    assert_eq!(get_profile(tenant, 404).await, None);
    assert_eq!(reads(tenant), 2, "None is not cached without none_ttl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_share_one_database_read() {
    cache().await;
    let tenant = "test-concurrent";
    rename(tenant, 3, "Edsger").await.unwrap();
    static DONE: AtomicU64 = AtomicU64::new(0);
    let readers: Vec<_> = (0..32)
        .map(|_| {
            tokio::spawn(async move {
                let profile = get_profile(tenant, 3).await.unwrap();
                DONE.fetch_add(1, Ordering::Relaxed);
                profile.name
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), "Edsger");
    }
    assert_eq!(DONE.load(Ordering::Relaxed), 32);
    assert_eq!(reads(tenant), 1);
}
