//! Leases: what fences a store against the invalidations that ran while its value was computed,
//! across processes (the technique of memcache's leases, Nishtala et al., NSDI 2013).
//!
//! A caller that misses takes a lease by writing a *marker* into the key's own slot, only if the
//! key is empty (`SET NX`, in the same round trip as the read). It then computes the value and
//! stores it only if the slot still holds its marker (a compare-and-set). An invalidation deletes
//! the key, and the marker with it, so a value computed from data read before the invalidation
//! can never land after it, whichever process computed it and whether or not its caller is still
//! there to see the store. A caller that finds another caller's marker waits for its value instead
//! of computing it too: stampede protection across processes.
//!
//! A marker lives only the lease's *liveness* (`CACHE_LEASE_LIVENESS`), and its holder renews it
//! while it computes (a compare-and-`PEXPIRE`), for at most the lease TTL: a holder that died
//! (a killed process) or that never learnt it held the lease (a lease script whose caller was
//! cancelled) leaves a marker that lapses within the liveness, not the lease TTL.
//!
//! A marker starts with the value header's magic and a format version no value uses, so that a
//! marker is never decoded as a value and no value is mistaken for a marker.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use bytes::Bytes;

/// The first bytes of every marker: the value magic, then a version byte values never have.
pub(crate) const PREFIX: [u8; 4] = [0xCA, 0xCE, 0xFF, b'L'];
/// The prefix, then 8 bytes unique to this process and 8 counting its leases.
pub(crate) const MARKER_LEN: usize = PREFIX.len() + 16;

/// A random seed from std's per-process hasher keys, so that no other process makes the same
/// markers. A process forked from this one inherits it (and the count below): the pid, read for
/// each marker, tells their markers apart.
static PROCESS_SEED: LazyLock<u64> = LazyLock::new(|| {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
});
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh marker, different from every other marker of any process.
pub(crate) fn new_marker() -> Bytes {
    marker_of(
        *PROCESS_SEED,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
    )
}

/// The marker of lease number `n` of process `pid` with seed `seed`.
fn marker_of(seed: u64, pid: u32, n: u64) -> Bytes {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    hasher.write_u64(seed);
    hasher.write_u32(pid);
    let mut marker = Vec::with_capacity(MARKER_LEN);
    marker.extend_from_slice(&PREFIX);
    marker.extend_from_slice(&hasher.finish().to_le_bytes());
    marker.extend_from_slice(&n.to_le_bytes());
    Bytes::from(marker)
}

/// Whether stored bytes are a lease marker rather than a value.
pub(crate) fn is_marker(bytes: &[u8]) -> bool {
    bytes.len() == MARKER_LEN && bytes.starts_with(&PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forked child has its parent's seed and count, not its pid.
    #[test]
    fn a_forked_process_makes_other_markers() {
        let (seed, n) = (0x5eed, 41);
        assert_ne!(marker_of(seed, 100, n), marker_of(seed, 101, n));
        assert_eq!(marker_of(seed, 100, n), marker_of(seed, 100, n));
        assert!(is_marker(&marker_of(seed, 100, n)));
    }

    #[test]
    fn markers_are_unique_and_recognised() {
        let a = new_marker();
        let b = new_marker();
        assert_ne!(a, b);
        assert!(is_marker(&a) && is_marker(&b));
        let value = crate::codec::encode_value(crate::codec::CodecKind::Bincode, &42u64).unwrap();
        assert!(!is_marker(&value));
        assert!(
            crate::codec::decode_value::<u64>(&a, usize::MAX).is_err(),
            "a marker never decodes as a value"
        );
    }
}
