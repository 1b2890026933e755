//! The behaviour suite: written once, run against a real redis-server and the in-process backend.
//!
//! Every test takes a [`Subject`] and must pass on both; `behaviour_suite!` at the bottom
//! generates the `#[tokio::test]` functions `on_redis::name` and `on_memory::name` for each.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::{Cache, CacheConfig, CacheConfigBuilder, CacheError};
use integration_tests::RedisServer;
use serde::{Deserialize, Serialize};

/// The backend a test runs against; a Redis subject owns its own server.
enum Subject {
    Redis(RedisServer),
    Memory,
}

impl Subject {
    /// A cache on this subject that fails loudly (so errors are seen), after `tweak`.
    async fn cache_with(
        &self,
        tweak: impl FnOnce(CacheConfigBuilder) -> CacheConfigBuilder,
    ) -> Cache {
        let builder = match self {
            Subject::Redis(server) => CacheConfig::builder().url(server.url()),
            Subject::Memory => CacheConfig::builder().memory(1 << 30),
        };
        let config = tweak(builder.fail_silently(false)).build().unwrap();
        Cache::new(config).await.unwrap()
    }

    async fn cache(&self) -> Cache {
        self.cache_with(|b| b).await
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Server {
    id: i64,
    name: String,
    tags: Vec<String>,
    owner: Option<String>,
}

fn server(id: i64) -> Server {
    Server {
        id,
        name: format!("server-{id}"),
        tags: vec!["mcp".into(), "rust".into()],
        owner: None,
    }
}

async fn set_get_round_trip(s: Subject) {
    let cache = s.cache().await;
    cache.set("server:1", &server(1), None).await.unwrap();
    assert_eq!(
        cache.get::<Server>("server:1").await.unwrap(),
        Some(server(1))
    );
    assert_eq!(cache.get::<Server>("server:2").await.unwrap(), None);
    // Overwrite replaces.
    cache.set("server:1", &server(9), None).await.unwrap();
    assert_eq!(
        cache.get::<Server>("server:1").await.unwrap(),
        Some(server(9))
    );
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.sets, stats.errors),
        (2, 1, 2, 0)
    );
}

async fn ttl_is_set_and_values_expire(s: Subject) {
    let cache = s.cache().await;
    cache
        .set("short", "gone soon", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    cache
        .set("long", "stays", Some(Duration::from_secs(600)))
        .await
        .unwrap();
    let ttl = cache.get_ttl("short").await.unwrap().unwrap();
    assert!(
        ttl <= Duration::from_millis(300) && ttl > Duration::from_millis(100),
        "{ttl:?}"
    );
    let ttl = cache.get_ttl("long").await.unwrap().unwrap();
    assert!(ttl > Duration::from_secs(595), "{ttl:?}");
    assert!(cache.exists("short").await.unwrap());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(cache.get::<String>("short").await.unwrap(), None);
    assert!(!cache.exists("short").await.unwrap());
    assert_eq!(cache.get_ttl("short").await.unwrap(), None);
    assert_eq!(
        cache.get::<String>("long").await.unwrap().as_deref(),
        Some("stays")
    );
}

async fn default_ttl_applies_when_none_is_given(s: Subject) {
    let cache = s
        .cache_with(|b| b.default_ttl(Duration::from_secs(42)))
        .await;
    cache.set("k", &1u8, None).await.unwrap();
    let ttl = cache.get_ttl("k").await.unwrap().unwrap();
    assert!(
        ttl <= Duration::from_secs(42) && ttl > Duration::from_secs(40),
        "{ttl:?}"
    );
    cache
        .set_many([("a", 1u8), ("b", 2u8)], None)
        .await
        .unwrap();
    let ttl = cache.get_ttl("b").await.unwrap().unwrap();
    assert!(
        ttl <= Duration::from_secs(42) && ttl > Duration::from_secs(40),
        "{ttl:?}"
    );
}

async fn delete_counts_only_existing_keys(s: Subject) {
    let cache = s.cache().await;
    for k in ["user:1", "user:2", "user:3"] {
        cache.set(k, k, None).await.unwrap();
    }
    assert_eq!(cache.delete(["user:1"]).await.unwrap(), 1);
    assert_eq!(cache.delete(["user:1"]).await.unwrap(), 0);
    assert_eq!(
        cache
            .delete(vec![
                "user:2".to_string(),
                "user:3".into(),
                "user:404".into()
            ])
            .await
            .unwrap(),
        2
    );
    assert_eq!(cache.delete(Vec::<String>::new()).await.unwrap(), 0);
    assert_eq!(cache.stats().deletes, 3);
    assert!(!cache.exists("user:2").await.unwrap());
}

async fn clear_pattern_removes_exactly_the_matching_keys(s: Subject) {
    let cache = s.cache().await;
    const N: usize = 100_000;
    let started = Instant::now();
    for chunk in (0..N).collect::<Vec<_>>().chunks(10_000) {
        cache
            .set_many(chunk.iter().map(|i| (format!("user:{i}"), *i as u32)), None)
            .await
            .unwrap();
    }
    let others = ["users:1", "user", "profile:user:1", "USER:1", "xuser:1"];
    cache
        .set_many(others.iter().map(|k| (*k, 0u8)), None)
        .await
        .unwrap();
    let filled = started.elapsed();
    let started = Instant::now();
    let removed = cache.clear_pattern("user:*").await.unwrap();
    let cleared = started.elapsed();
    println!("clear_pattern of {N} keys: {cleared:?} (filling them with set_many: {filled:?})");
    assert_eq!(removed, N as u64);
    assert_eq!(cache.stats().deletes, N as u64);
    let left: Vec<Option<u8>> = cache.get_many(others).await.unwrap();
    assert!(left.iter().all(Option::is_some), "{left:?}");
    assert_eq!(cache.get::<u32>("user:77").await.unwrap(), None);
    assert_eq!(cache.clear_pattern("user:*").await.unwrap(), 0);
}

async fn clear_pattern_follows_glob_rules(s: Subject) {
    let cache = s.cache().await;
    for k in ["a:1", "a:2", "a:10", "b:1", "a*b", "a?b", "a[1]"] {
        cache.set(k, &0u8, None).await.unwrap();
    }
    assert_eq!(cache.clear_pattern("a:?").await.unwrap(), 2);
    assert_eq!(cache.clear_pattern("a:[0-9]*").await.unwrap(), 1);
    // Escaped glob characters match only themselves; without glob syntax it is a direct delete.
    assert_eq!(cache.clear_pattern("a\\*b").await.unwrap(), 1);
    assert!(cache.exists("a?b").await.unwrap());
    assert_eq!(cache.clear_pattern("a\\[1\\]").await.unwrap(), 1);
    assert_eq!(cache.clear_pattern("b:1").await.unwrap(), 1);
    for bad in ["", "*", "**", "a[", "a\\"] {
        let err = cache.clear_pattern(bad).await.unwrap_err();
        assert!(
            matches!(err, CacheError::InvalidPattern { .. }),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(cache.clear_all().await.unwrap(), 1);
    assert!(!cache.exists("a?b").await.unwrap());
}

async fn clear_pattern_stays_correct_under_concurrent_writes(s: Subject) {
    let cache = s.cache().await;
    const N: usize = 20_000;
    cache
        .set_many((0..N).map(|i| (format!("p:{i}"), 0u8)), None)
        .await
        .unwrap();
    let writer = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let (mut removed, mut added) = (0u64, 0u64);
            for i in 0..2_000 {
                removed += cache.delete([format!("p:{}", i * 7)]).await.unwrap();
                cache.set(&format!("p:new:{i}"), &0u8, None).await.unwrap();
                added += 1;
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            (removed, added)
        })
    };
    let ours = cache.clear_pattern("p:*").await.unwrap();
    let (theirs, added) = writer.await.unwrap();
    // Keys added after the scan passed their slot may remain; count them with a final sweep.
    let remaining = cache.clear_pattern("p:*").await.unwrap();
    // Every key is removed exactly once, by someone: nothing counted twice, nothing missed.
    assert_eq!(ours + theirs + remaining, N as u64 + added);
    let originals: Vec<Option<u8>> = cache
        .get_many((0..N).map(|i| format!("p:{i}")))
        .await
        .unwrap();
    assert!(originals.iter().all(Option::is_none));
}

async fn increment_counts_from_absent_and_existing(s: Subject) {
    let cache = s.cache().await;
    assert_eq!(cache.increment("post:1:views", 1).await.unwrap(), 1);
    assert_eq!(cache.increment("post:1:views", 1).await.unwrap(), 2);
    assert_eq!(cache.increment("post:1:views", 5).await.unwrap(), 7);
    assert_eq!(cache.increment("post:2:views", 5).await.unwrap(), 5);
    assert_eq!(cache.increment("post:2:views", -7).await.unwrap(), -2);
    assert_eq!(cache.increment("post:2:views", 0).await.unwrap(), -2);
    // A counter has no expiry of its own.
    assert_eq!(cache.get_ttl("post:1:views").await.unwrap(), None);
    assert!(cache.exists("post:1:views").await.unwrap());
    // Not an integer, and overflow: errors, and the value is left as it was.
    cache.set("name", "alice", None).await.unwrap();
    let err = cache.increment("name", 1).await.unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
    assert_eq!(
        cache.get::<String>("name").await.unwrap().as_deref(),
        Some("alice")
    );
    cache.increment("big", i64::MAX).await.unwrap();
    let err = cache.increment("big", 1).await.unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
    assert_eq!(cache.increment("big", 0).await.unwrap(), i64::MAX);
}

async fn increment_keeps_the_ttl_and_is_atomic(s: Subject) {
    let cache = s.cache().await;
    cache.increment("hits", 0).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    cache.increment("hits", 1).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(cache.increment("hits", 0).await.unwrap(), 1000);
}

async fn get_many_mixes_present_absent_and_corrupt(s: Subject) {
    let cache = s.cache().await;
    cache.set("s:1", &server(1), None).await.unwrap();
    cache.set("s:3", &server(3), None).await.unwrap();
    cache
        .set_bytes("s:4", Bytes::from_static(b"{\"id\":4}"), None)
        .await
        .unwrap();
    cache
        .set("s:5", &"a string, not a Server", None)
        .await
        .unwrap();
    let got: Vec<Option<Server>> = cache
        .get_many(["s:1", "s:2", "s:3", "s:4", "s:5"])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![Some(server(1)), None, Some(server(3)), None, None]
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.corrupt), (2, 3, 2));
    assert_eq!(cache.get_many::<Server, &str>([]).await.unwrap(), vec![]);
    assert_eq!(
        cache.get_many::<Server, _>(["s:3"]).await.unwrap(),
        vec![Some(server(3))]
    );
    assert_eq!(
        cache.get_many::<Server, _>(["s:404"]).await.unwrap(),
        vec![None]
    );
    // set_many then get_many round trip, in order.
    cache
        .set_many((10..20).map(|i| (format!("s:{i}"), server(i))), None)
        .await
        .unwrap();
    let got: Vec<Option<Server>> = cache
        .get_many((10..20).map(|i| format!("s:{i}")))
        .await
        .unwrap();
    assert_eq!(got, (10..20).map(|i| Some(server(i))).collect::<Vec<_>>());
}

async fn corrupt_values_are_misses_that_a_set_repairs(s: Subject) {
    let cache = s.cache().await;
    let good = cache_core::codec::encode_value(cache.config().codec(), &server(1)).unwrap();
    // Server's header, `id` = 0, then a `name` whose length prefix claims 4 GiB.
    let mut huge_claim = good[..cache_core::codec::HEADER_LEN].to_vec();
    huge_claim.extend_from_slice(&[0x00, 0xFC]);
    huge_claim.extend_from_slice(&u32::MAX.to_le_bytes());
    let garbage: [(&str, Vec<u8>); 4] = [
        ("foreign", b"pickle\x80\x04".to_vec()),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("huge-claim", huge_claim),
        ("empty", Vec::new()),
    ];
    for (key, bytes) in &garbage {
        cache
            .set_bytes(key, Bytes::from(bytes.clone()), None)
            .await
            .unwrap();
        assert_eq!(cache.get::<Server>(key).await.unwrap(), None, "{key}");
        cache.set(key, &server(2), None).await.unwrap();
        assert_eq!(
            cache.get::<Server>(key).await.unwrap(),
            Some(server(2)),
            "{key}"
        );
    }
    let stats = cache.stats();
    assert_eq!((stats.corrupt, stats.hits), (4, 4));
}

async fn unicode_and_empty_values_round_trip(s: Subject) {
    let cache = s.cache().await;
    let key = "ключ:🔑:キー:\u{0}:\n:tab\t";
    cache.set(key, "значение ✓ 値 🦀", None).await.unwrap();
    assert_eq!(
        cache.get::<String>(key).await.unwrap().as_deref(),
        Some("значение ✓ 値 🦀")
    );
    assert!(cache.exists(key).await.unwrap());
    cache.set("empty-string", "", None).await.unwrap();
    assert_eq!(
        cache
            .get::<String>("empty-string")
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    cache
        .set("empty-vec", &Vec::<u64>::new(), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<Vec<u64>>("empty-vec").await.unwrap(),
        Some(vec![])
    );
    cache.set("unit", &(), None).await.unwrap();
    assert_eq!(cache.get::<()>("unit").await.unwrap(), Some(()));
    cache.set("none", &Option::<u8>::None, None).await.unwrap();
    assert_eq!(cache.get::<Option<u8>>("none").await.unwrap(), Some(None));
    assert_eq!(cache.clear_pattern("ключ:*").await.unwrap(), 1);
}

async fn disabled_cache_is_a_no_op(s: Subject) {
    let cache = s.cache_with(|b| b.enabled(false)).await;
    cache.set("k", &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
    assert!(!cache.exists("k").await.unwrap());
    assert_eq!(cache.increment("n", 1).await.unwrap(), 0);
    assert_eq!(cache.clear_pattern("k*").await.unwrap(), 0);
    assert_eq!(cache.backend_name(), "disabled");
    assert!(cache.health_check().await.healthy);
    // Nothing reached the backend: a second, enabled cache on the same subject sees nothing.
    let enabled = s.cache().await;
    assert!(!enabled.exists("k").await.unwrap());
}

async fn health_reports_the_backend(s: Subject) {
    let cache = s.cache().await;
    let report = cache.health_check().await;
    assert!(report.healthy, "{report:?}");
    assert!(report.error.is_none());
    assert!(report.latency_ms >= 0.0 && report.latency_ms < 1000.0);
    assert!(
        report.version.is_some() && report.used_memory.is_some() && report.uptime_seconds.is_some()
    );
    assert_eq!(report.backend, cache.backend_name());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["healthy"], true);
}

/// While a miss is computed, its key holds a lease marker: not a value, so `exists` says no and
/// `get_ttl` has nothing; bytes shaped like a marker cannot be stored by hand.
async fn a_key_being_computed_has_no_value_yet(s: Subject) {
    let cache = s.cache().await;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let computing = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_compute("computing:1", None, || async move {
                    let _ = released.await;
                    7u64
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Subject::Redis(server) = &s {
        assert_eq!(
            server.cmd("EXISTS computing:1"),
            integration_tests::Reply::Integer(1),
            "the lease marker is in place"
        );
    }
    assert!(!cache.exists("computing:1").await.unwrap());
    assert_eq!(cache.get_ttl("computing:1").await.unwrap(), None);
    release.send(()).unwrap();
    assert_eq!(computing.await.unwrap(), 7);
    assert!(cache.exists("computing:1").await.unwrap());
    assert!(cache.get_ttl("computing:1").await.unwrap().is_some());

    let mut shaped = vec![0xCA, 0xCE, 0xFF, b'L'];
    shaped.extend_from_slice(&[0; 16]);
    assert!(matches!(
        cache
            .set_bytes("computing:2", Bytes::from(shaped), None)
            .await,
        Err(CacheError::Encode(_))
    ));
    assert!(!cache.exists("computing:2").await.unwrap());
}

macro_rules! behaviour_suite {
    (
        current_thread: [$($name:ident),* $(,)?],
        multi_thread: [$($parallel:ident),* $(,)?] $(,)?
    ) => {
        mod on_redis {
            $(#[tokio::test]
            async fn $name() {
                let subject = super::Subject::Redis(integration_tests::RedisServer::start());
                super::$name(subject).await;
            })*
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $parallel() {
                let subject = super::Subject::Redis(integration_tests::RedisServer::start());
                super::$parallel(subject).await;
            })*
        }
        mod on_memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Subject::Memory).await;
            })*
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $parallel() {
                super::$parallel(super::Subject::Memory).await;
            })*
        }
    };
}

behaviour_suite!(
    current_thread: [
        set_get_round_trip,
        ttl_is_set_and_values_expire,
        default_ttl_applies_when_none_is_given,
        delete_counts_only_existing_keys,
        clear_pattern_removes_exactly_the_matching_keys,
        clear_pattern_follows_glob_rules,
        increment_counts_from_absent_and_existing,
        get_many_mixes_present_absent_and_corrupt,
        corrupt_values_are_misses_that_a_set_repairs,
        unicode_and_empty_values_round_trip,
        disabled_cache_is_a_no_op,
        health_reports_the_backend,
        a_key_being_computed_has_no_value_yet,
    ],
    // Their spawned writers must run beside the test's own calls, on another worker.
    multi_thread: [
        clear_pattern_stays_correct_under_concurrent_writes,
        increment_keeps_the_ttl_and_is_atomic,
    ],
);
