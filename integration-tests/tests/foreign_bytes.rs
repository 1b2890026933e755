//! Bytes that other writers stored under the cache's keys (another program, another codec, a
//! truncated write, a length prefix claiming 4 GiB) are counted misses, and reading them again
//! and again does not grow the process' memory; a store repairs each.
//!
//! Its own test binary: it measures the resident memory of the whole process, which the tests
//! of a shared binary, running beside it, would grow.

use std::time::Duration;

use cache_core::{Cache, CacheConfig};
use integration_tests::{resident_bytes, RedisServer, Reply};

async fn cache_on(url: &str) -> Cache {
    let config = CacheConfig::builder()
        .url(url)
        .fail_silently(false)
        .socket_timeout(Duration::from_secs(2))
        .pool_size(2)
        .build()
        .unwrap();
    Cache::new(config).await.unwrap()
}

#[tokio::test]
async fn bytes_from_other_writers_are_counted_misses_and_memory_stays_low() {
    let server = RedisServer::start();
    // A String's header, then a varint length prefix claiming a 4 GiB string.
    let header = cache_core::codec::encode_value(cache_core::codec::CodecKind::Bincode, "")
        .unwrap()[..cache_core::codec::HEADER_LEN]
        .to_vec();
    let mut huge = header.clone();
    huge.push(0xFC);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut truncated = header.clone();
    truncated.extend_from_slice(&[0x05, b'a']);
    let writes: [(&str, &[u8]); 5] = [
        ("foreign", b"{\"name\":\"from python\"}"),
        ("truncated", &truncated),
        ("huge", &huge),
        ("header-only", &header[..7]),
        ("number", b"42"),
    ];
    for (key, bytes) in writes {
        assert_eq!(
            server.command(&[b"SET", key.as_bytes(), bytes]),
            Reply::Status("OK".into())
        );
    }
    let cache = cache_on(&server.url()).await;
    let before = resident_bytes();
    for _ in 0..100 {
        for (key, _) in writes {
            assert_eq!(cache.get::<String>(key).await.unwrap(), None, "{key}");
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "resident memory grew by {grown} bytes");
    let stats = cache.stats();
    assert_eq!(
        (stats.corrupt, stats.misses, stats.hits, stats.errors),
        (500, 500, 0, 0)
    );
    for (key, _) in writes {
        cache.set(key, "repaired", None).await.unwrap();
        assert_eq!(
            cache.get::<String>(key).await.unwrap().as_deref(),
            Some("repaired")
        );
    }
}
