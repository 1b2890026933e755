//! Keeping the CPU work of (de)serializing large values off the async executor's workers.
//!
//! Decoding a value of known size at or above `CACHE_OFFLOAD_MIN_BYTES` runs in
//! `tokio::task::block_in_place`, so the worker's other tasks move to another thread meanwhile.
//! An encoded size is only known afterwards, so encoding is offloaded for a type whose previous
//! value (on this thread) was that large. On a current-thread runtime, or outside tokio, the work
//! runs inline: there is no other worker to hand the tasks to.

use std::cell::RefCell;
use std::collections::HashSet;

use tokio::runtime::{Handle, RuntimeFlavor};

thread_local! {
    /// Fingerprints of the types whose last encoded value was large.
    static LARGE_TYPES: RefCell<HashSet<u64>> = RefCell::new(HashSet::new());
}

/// Runs `work`, in `block_in_place` when `offload` is set and the runtime can spare the worker.
pub(crate) fn run<T>(offload: bool, work: impl FnOnce() -> T) -> T {
    // Asked only when offloading: finding the runtime costs two atomic writes to a counter
    // every worker shares, on every hit.
    let multi_thread =
        || Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if offload && multi_thread() {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Whether the last value of the type with this fingerprint was large.
pub(crate) fn was_large(fingerprint: u64) -> bool {
    LARGE_TYPES.with(|large| large.borrow().contains(&fingerprint))
}

/// Records whether the value just encoded for this type was large.
pub(crate) fn remember(fingerprint: u64, large: bool) {
    LARGE_TYPES.with(|set| {
        let mut set = set.borrow_mut();
        if large {
            set.insert(fingerprint);
        } else if !set.is_empty() {
            set.remove(&fingerprint);
        }
    });
}
