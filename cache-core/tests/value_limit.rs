//! `CACHE_MAX_VALUE_BYTES` bounds a value before compression: a value that would compress under
//! the limit is refused all the same, since no reader would inflate it.
// Test code: unwrap is how a test fails.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "compression")]

use cache_core::{Cache, CacheConfig, CacheError};

#[tokio::test]
async fn a_value_over_the_limit_before_compression_is_refused() {
    let cache = Cache::new(
        CacheConfig::builder()
            .memory(16 << 20)
            .max_value_bytes(1 << 20)
            .compress_min_bytes(1024)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    // 2 MiB of one letter: a few KiB compressed.
    let big = "a".repeat(2 << 20);
    let err = cache.set("big", &big, None).await.unwrap_err();
    assert!(
        matches!(err, CacheError::ValueTooLarge { max, .. } if max == 1 << 20),
        "{err}"
    );
    assert!(!cache.exists("big").await.unwrap());
    // Under the limit before compression: stored compressed, read back.
    let fits = "a".repeat(1 << 19);
    cache.set("fits", &fits, None).await.unwrap();
    assert_eq!(cache.get::<String>("fits").await.unwrap(), Some(fits));
}
