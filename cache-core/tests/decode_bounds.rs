//! A forged compressed value that claims to inflate to 510 MiB (2 MiB of bytes: within LZ4's best
//! ratio, so only the size limit can refuse it) is a counted corrupt miss, and reading it from
//! many tasks at once, as the waiters of a hot key do, allocates nothing of that size.
//!
//! The measure is the process's peak virtual size (`VmPeak`): every large allocation maps its
//! pages (even untouched, zeroed ones), so a peak that stays small proves none was made. Alone in
//! its binary so that no other test moves the peak.
// Test code: unwrap is how a test fails.
#![allow(clippy::unwrap_used)]
#![cfg(all(feature = "compression", target_os = "linux"))]

use bytes::Bytes;
use cache_core::codec::{encode_value, CodecKind, HEADER_LEN};
use cache_core::{Cache, CacheConfig};

/// The process's peak virtual memory size, in bytes.
fn vm_peak() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
    let kb: u64 = line
        .trim_start_matches("VmPeak:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// A `String` value's header flagged as LZ4, a size prefix claiming `claimed` bytes, then
/// `packed` bytes that are not LZ4.
fn forged(claimed: u32, packed: usize) -> Bytes {
    let mut bytes = encode_value(CodecKind::Bincode, "").unwrap()[..HEADER_LEN].to_vec();
    bytes[4] |= 0x01; // the LZ4 flag
    bytes.extend_from_slice(&claimed.to_le_bytes());
    bytes.resize(bytes.len() + packed, 0x1F);
    Bytes::from(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_size_claim_is_a_corrupt_miss_that_allocates_nothing() {
    const READERS: u64 = 8;
    let cache = Cache::new(
        CacheConfig::builder()
            .memory(64 << 20)
            .compress_min_bytes(1024)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    cache
        .set_bytes("hot", forged(510 << 20, 2 << 20), None)
        .await
        .unwrap();
    // Warm every worker (its thread, its allocator arena) so that only the decodes move the peak.
    let warm: Vec<_> = (0..32)
        .map(|_| tokio::spawn(async { std::hint::black_box(vec![1u8; 1 << 16]).len() }))
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    let before = vm_peak();

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get::<String>("hot").await.unwrap() })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), None);
    }

    let grown = vm_peak().saturating_sub(before);
    eprintln!("VmPeak grew by {} KiB", grown >> 10);
    assert!(grown < 128 << 20, "the peak grew by {} MiB", grown >> 20);
    let stats = cache.stats();
    assert_eq!(
        (stats.corrupt, stats.misses, stats.hits),
        (READERS, READERS, 0)
    );
}
