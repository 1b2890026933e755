//! Hostile arguments through the attributes: NUL, newlines, unicode, 10 KB strings and glob
//! characters make distinct keys, and an invalidation with such an argument removes only its key.
//! Values over the size limit are returned but not stored.
//!
//! Its own test binary: it sets up the process-wide cache that the attributes use.

use std::sync::atomic::{AtomicU64, Ordering};

use cache_core::{cached, invalidate_cache, CacheConfig};
use integration_tests::RedisServer;

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
}
