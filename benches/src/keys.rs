//! The keys of the hit scenarios: one per load task, so that concurrent reads are of different
//! keys, as a service's requests are.

use std::sync::LazyLock;

/// How many keys each hit scenario reads: one per task at the highest concurrency.
pub const KEYS: u64 = 64;

/// The key a call reads: its task's (the load generator puts the task in the call number's high
/// bits).
pub fn id(call: u64) -> u64 {
    (call >> 40) % KEYS
}

fn keys(prefix: &str) -> Vec<String> {
    (0..KEYS).map(|id| format!("{prefix}:{id}")).collect()
}

/// `#[cached]`'s keys of `hit_small`, read directly by the `Cache::get` scenarios.
pub static SMALL: LazyLock<Vec<String>> = LazyLock::new(|| keys("bench:hit_small"));
/// `#[cached]`'s keys of `hit_large`.
pub static LARGE: LazyLock<Vec<String>> = LazyLock::new(|| keys("bench:hit_large"));
/// The bare bincode copies the fred scenarios read.
pub static RAW_SMALL: LazyLock<Vec<String>> = LazyLock::new(|| keys("raw:small"));
/// The bare bincode copies of the large value.
pub static RAW_LARGE: LazyLock<Vec<String>> = LazyLock::new(|| keys("raw:large"));
