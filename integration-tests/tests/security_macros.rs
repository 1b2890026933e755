//! Hostile arguments through the attributes: NUL, newlines, unicode, 10 KB strings and glob
//! characters make distinct keys, and an invalidation with such an argument removes only its key.
//! Values over the size limit are returned but not stored. Stored bytes that forge a length over
//! elements that encode to zero bytes are corrupt misses at once, for every concurrent caller.
//!
//! Its own test binary: it sets up the process-wide cache that the attributes use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_core::{cached, invalidate_cache, Cache, CacheConfig};
use integration_tests::{RedisServer, Reply};
use serde::{Deserialize, Serialize};

static RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 60, key_prefix = "echo")]
async fn echo(text: String) -> String {
    RUNS.fetch_add(1, Ordering::Relaxed);
    format!("<{text}>")
}

#[invalidate_cache("echo:echo:{text}")]
async fn forget(text: String) {}

#[cached(ttl = 60, key_prefix = "blob")]
async fn blob(len: usize) -> Vec<u8> {
    RUNS.fetch_add(1, Ordering::Relaxed);
    vec![7; len]
}

#[cached(ttl = 60, key_prefix = "forged")]
async fn units(n: usize) -> Vec<()> {
    RUNS.fetch_add(1, Ordering::Relaxed);
    vec![(); n]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Empty {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shelf {
    name: String,
    slots: Vec<Empty>,
}

#[cached(ttl = 60, key_prefix = "forged")]
async fn shelf(n: usize) -> Shelf {
    RUNS.fetch_add(1, Ordering::Relaxed);
    Shelf {
        name: "s".to_owned(),
        slots: vec![Empty {}; n],
    }
}

#[tokio::test]
async fn hostile_arguments_make_distinct_keys_and_narrow_invalidations() {
    let server = RedisServer::start();
    let config = CacheConfig::builder()
        .url(server.url())
        .max_value_bytes(1 << 20)
        // The size limit applies to what is stored: keep values as they are.
        .compress_min_bytes(0)
        .build()
        .unwrap();
    let cache = cache_core::init(config).await.unwrap();
    let hostile = [
        "nul\0byte".to_owned(),
        "line\nbreak".to_owned(),
        "*".to_owned(),
        "?".to_owned(),
        "[a-z]".to_owned(),
        "\\".to_owned(),
        "a:b".to_owned(),
        "ключ 🔑".to_owned(),
        "y".repeat(10_000),
        String::new(),
    ];
    for text in &hostile {
        assert_eq!(echo(text.clone()).await, format!("<{text}>"));
        assert_eq!(echo(text.clone()).await, format!("<{text}>"));
    }
    assert_eq!(
        RUNS.load(Ordering::Relaxed),
        hostile.len() as u64,
        "each computed once"
    );
    assert_eq!(server.dbsize(), hostile.len() as i64, "one key each");

    // "*" as an argument is a literal star: only its own key goes.
    forget("*".to_owned()).await;
    assert_eq!(server.dbsize(), hostile.len() as i64 - 1);
    forget("[a-z]".to_owned()).await;
    forget("\\".to_owned()).await;
    assert_eq!(server.dbsize(), hostile.len() as i64 - 3);
    assert_eq!(echo("?".to_owned()).await, "<?>");
    assert_eq!(
        RUNS.load(Ordering::Relaxed),
        hostile.len() as u64,
        "`?` was not invalidated"
    );

    // 2 MB is over the 1 MB limit: returned every time, never stored, no error.
    let before = RUNS.load(Ordering::Relaxed);
    assert_eq!(blob(2 << 20).await.len(), 2 << 20);
    assert_eq!(blob(2 << 20).await.len(), 2 << 20);
    assert_eq!(RUNS.load(Ordering::Relaxed), before + 2);
    assert_eq!(cache.stats().errors, 0);
    assert_eq!(blob(10).await.len(), 10);
    assert_eq!(blob(10).await.len(), 10);
    assert_eq!(RUNS.load(Ordering::Relaxed), before + 3);

    forged_lengths_are_corrupt_misses(&server, &cache).await;
}

/// The only key matching `pattern`, and its bytes.
fn stored(server: &RedisServer, pattern: &str) -> (Vec<u8>, Vec<u8>) {
    let Reply::Array(Some(keys)) = server.command(&[b"KEYS", pattern.as_bytes()]) else {
        panic!("KEYS {pattern}");
    };
    let [Reply::Bulk(Some(key))] = &keys[..] else {
        panic!("{pattern}: {keys:?}");
    };
    let Reply::Bulk(Some(bytes)) = server.command(&[b"GET", key]) else {
        panic!("GET {key:?}");
    };
    (key.clone(), bytes)
}

/// bincode's varint for a length of `u64::MAX` (a marker, then the little-endian integer).
fn claim_u64_max() -> Vec<u8> {
    [vec![0xFD], u64::MAX.to_le_bytes().to_vec()].concat()
}

/// Overwrites the value of `#[cached]` fn `call` with `forged` (after the honest header) and
/// checks that 16 concurrent callers each get the body's value within a second, that each
/// forged read is a counted corrupt miss, and that the store repairs the key.
async fn refused_for_every_caller<T, F, Fut>(
    server: &RedisServer,
    cache: &Cache,
    pattern: &str,
    forged: &[u8],
    call: F,
    expected: T,
) where
    T: PartialEq + std::fmt::Debug + Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    assert_eq!(call().await, expected);
    let (key, honest) = stored(server, pattern);
    let bytes = [&honest[..13], forged].concat();
    assert_eq!(
        server.command(&[b"SET", &key, &bytes]),
        Reply::Status("OK".into())
    );
    let corrupt = cache.stats().corrupt;
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let call = call();
            tokio::spawn(async move {
                let start = Instant::now();
                let value = call.await;
                (value, start.elapsed())
            })
        })
        .collect();
    for caller in callers {
        let (value, took) = caller.await.unwrap();
        assert_eq!(value, expected);
        assert!(took < Duration::from_secs(1), "{pattern}: {took:?}");
    }
    assert!(
        cache.stats().corrupt > corrupt,
        "{pattern}: counted corrupt"
    );
    // Repaired: the key holds an honest value again, and the next call is a hit.
    assert_eq!(stored(server, pattern).1, honest, "{pattern}");
    let hits = cache.stats().hits;
    assert_eq!(call().await, expected);
    assert_eq!(cache.stats().hits, hits + 1);
}

async fn forged_lengths_are_corrupt_misses(server: &RedisServer, cache: &Cache) {
    refused_for_every_caller(
        server,
        cache,
        "forged:units:*",
        &claim_u64_max(),
        || units(3),
        vec![(); 3],
    )
    .await;
    // A struct holding the vector: its name (one byte long, "s"), then the forged length.
    let forged = [vec![1, b's'], claim_u64_max()].concat();
    refused_for_every_caller(
        server,
        cache,
        "forged:shelf:*",
        &forged,
        || shelf(2),
        Shelf {
            name: "s".to_owned(),
            slots: vec![Empty {}; 2],
        },
    )
    .await;
}
