//! The in-process backend: a bounded moka map with a TTL per entry and Redis' semantics.
//!
//! Eviction is least-recently-used with no admission filter, as Redis' `allkeys-lru`: past
//! `max_bytes` (keys plus values) the entries read or written longest ago go first, and a value
//! just written is never the one dropped to make room. moka's default policy, TinyLFU, could
//! instead refuse a new key whose estimated popularity is below that of the entries it would
//! replace, so that a `set` or a counter's first `increment` vanished right away. The only write
//! that is not kept is one larger than `max_bytes` on its own.

use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;
use moka::sync::Cache as Map;
use moka::Expiry;

use super::{Backend, Resume, NOT_AN_INTEGER, OVERFLOW};
use crate::lease;
use crate::{error::CacheError, health::HealthReport};

/// One stored value and when it expires.
#[derive(Clone, Debug)]
struct Entry {
    value: Bytes,
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// Tells moka to drop each entry at its own `expires_at`.
struct PerEntryExpiry;

impl Expiry<String, Entry> for PerEntryExpiry {
    fn expire_after_create(&self, _: &String, entry: &Entry, now: Instant) -> Option<Duration> {
        entry.expires_at.map(|t| t.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        entry.expires_at.map(|t| t.saturating_duration_since(now))
    }
}

/// Values in this process' memory, evicting the least recently used past `max_bytes`.
#[derive(Clone)]
pub(crate) struct MemoryBackend {
    map: Map<String, Entry>,
    started: Instant,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("entries", &self.map.entry_count())
            .finish()
    }
}

impl MemoryBackend {
    pub(crate) fn new(max_bytes: u64) -> Self {
        let map = Map::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Entry| {
                u32::try_from(key.len() + entry.value.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryExpiry)
            .eviction_policy(EvictionPolicy::lru())
            .build();
        MemoryBackend {
            map,
            started: Instant::now(),
        }
    }

    fn live(&self, key: &str) -> Option<Entry> {
        self.map.get(key).filter(|e| e.live(Instant::now()))
    }
}

impl Backend for MemoryBackend {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.live(key).map(|e| e.value))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let expires_at = Instant::now().checked_add(ttl);
        self.map.insert(key.to_owned(), Entry { value, expires_at });
        Ok(())
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        Ok(keys.iter().map(|k| self.live(k).map(|e| e.value)).collect())
    }

    async fn set_many(&self, items: Vec<(String, Bytes)>, ttl: Duration) -> Result<(), CacheError> {
        let expires_at = Instant::now().checked_add(ttl);
        for (key, value) in items {
            self.map.insert(key, Entry { value, expires_at });
        }
        Ok(())
    }

    async fn delete(&self, keys: &[&str]) -> Result<u64, CacheError> {
        let now = Instant::now();
        let removed = keys
            .iter()
            .filter(|k| self.map.remove(**k).is_some_and(|e| e.live(now)))
            .count();
        Ok(removed as u64)
    }

    async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.live(key).is_some_and(|e| !lease::is_marker(&e.value)))
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let now = Instant::now();
        Ok(self
            .live(key)
            .filter(|e| !lease::is_marker(&e.value))
            .and_then(|e| e.expires_at)
            .map(|t| t.saturating_duration_since(now)))
    }

    async fn increment(&self, key: &str, amount: i64) -> Result<i64, CacheError> {
        // One atomic read-modify-write per key, as INCRBY is: concurrent increments never lose one.
        let mut outcome = Err(CacheError::Redis(NOT_AN_INTEGER.to_owned()));
        let result = self.map.entry_by_ref(key).and_compute_with(|current| {
            let now = Instant::now();
            let current = current.map(|e| e.into_value()).filter(|e| e.live(now));
            let (base, expires_at) = match &current {
                Some(e) => match std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(n) => (n, e.expires_at),
                    None => return Op::Nop,
                },
                None => (0, None),
            };
            match base.checked_add(amount) {
                Some(n) => {
                    outcome = Ok(n);
                    Op::Put(Entry {
                        value: Bytes::from(n.to_string()),
                        expires_at,
                    })
                }
                None => {
                    outcome = Err(CacheError::Redis(OVERFLOW.to_owned()));
                    Op::Nop
                }
            }
        });
        debug_assert!(!matches!(result, CompResult::Removed(_)));
        outcome
    }

    async fn get_or_lease(
        &self,
        key: &str,
        marker: &Bytes,
        lease_ttl: Duration,
    ) -> Result<Option<Bytes>, CacheError> {
        let mut found = None;
        self.map.entry_by_ref(key).and_compute_with(|current| {
            let now = Instant::now();
            match current.map(|e| e.into_value()).filter(|e| e.live(now)) {
                Some(entry) => {
                    found = Some(entry.value);
                    Op::Nop
                }
                None => Op::Put(Entry {
                    value: marker.clone(),
                    expires_at: now.checked_add(lease_ttl),
                }),
            }
        });
        Ok(found)
    }

    async fn set_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let mut stored = false;
        self.map.entry_by_ref(key).and_compute_with(|current| {
            let now = Instant::now();
            match current.map(|e| e.into_value()).filter(|e| e.live(now)) {
                Some(entry) if entry.value == marker => {
                    stored = true;
                    Op::Put(Entry {
                        value,
                        expires_at: now.checked_add(ttl),
                    })
                }
                _ => Op::Nop,
            }
        });
        Ok(stored)
    }

    async fn delete_if_holds(&self, key: &str, expected: &Bytes) -> Result<bool, CacheError> {
        let mut removed = false;
        self.map.entry_by_ref(key).and_compute_with(|current| {
            match current
                .map(|e| e.into_value())
                .filter(|e| e.live(Instant::now()))
            {
                Some(entry) if entry.value == expected => {
                    removed = true;
                    Op::Remove
                }
                _ => Op::Nop,
            }
        });
        Ok(removed)
    }

    async fn renew_if_holds(
        &self,
        key: &str,
        marker: &Bytes,
        liveness: Duration,
    ) -> Result<bool, CacheError> {
        let mut renewed = false;
        self.map.entry_by_ref(key).and_compute_with(|current| {
            let now = Instant::now();
            match current.map(|e| e.into_value()).filter(|e| e.live(now)) {
                Some(entry) if entry.value == marker => {
                    renewed = true;
                    Op::Put(Entry {
                        value: entry.value,
                        expires_at: now.checked_add(liveness),
                    })
                }
                _ => Op::Nop,
            }
        });
        Ok(renewed)
    }

    async fn clear_pattern(&self, pattern: &str, _: &mut Resume) -> Result<u64, CacheError> {
        // Parsed once: the same tokens, and so the same meaning, as `pattern::matches`.
        let glob = cache_keys::pattern::tokens(pattern.as_bytes());
        let matching: Vec<std::sync::Arc<String>> = self
            .map
            .iter()
            .filter(|(key, _)| cache_keys::pattern::matches_tokens(&glob, key.as_bytes()))
            .map(|(key, _)| key)
            .collect();
        let now = Instant::now();
        let removed = matching
            .iter()
            .filter(|k| self.map.remove(k.as_str()).is_some_and(|e| e.live(now)))
            .count();
        Ok(removed as u64)
    }

    async fn health(&self) -> HealthReport {
        let started = Instant::now();
        self.map.run_pending_tasks();
        let bytes = self.map.weighted_size();
        HealthReport {
            version: Some(concat!("cache-core ", env!("CARGO_PKG_VERSION")).to_owned()),
            used_memory: Some(human_bytes(bytes)),
            uptime_seconds: Some(self.started.elapsed().as_secs()),
            ..HealthReport::up("memory", started.elapsed().as_secs_f64() * 1000.0)
        }
    }
}

/// Bytes the way Redis' `used_memory_human` writes them: `812B`, `2.50K`, `1.25M`, `3.00G`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("G", 1073741824.0), ("M", 1048576.0), ("K", 1024.0)];
    for (unit, size) in UNITS {
        if bytes as f64 >= size {
            return format!("{:.2}{unit}", bytes as f64 / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend filled to about 90% of `capacity` with 1 KiB values that were each read a few
    /// times, so that a frequency-based admission filter would rate them above any new key.
    async fn nearly_full(capacity: u64) -> MemoryBackend {
        let backend = MemoryBackend::new(capacity);
        let entries = capacity * 9 / 10 / 1024;
        for i in 0..entries {
            let key = format!("old:{i}");
            backend
                .set(
                    &key,
                    Bytes::from(vec![b'x'; 1000]),
                    Duration::from_secs(600),
                )
                .await
                .unwrap();
            for _ in 0..4 {
                backend.get(&key).await.unwrap();
            }
        }
        backend
    }

    #[tokio::test]
    async fn a_fresh_value_is_read_back_when_the_map_is_nearly_full() {
        let backend = nearly_full(64 * 1024).await;
        for i in 0..2_000 {
            let key = format!("fresh:{i}");
            let value = Bytes::from(format!("value {i}"));
            backend
                .set(&key, value.clone(), Duration::from_secs(600))
                .await
                .unwrap();
            // Maintenance runs whenever moka decides (on another caller's write, for one); run
            // it here so that an admission decision against the new key is visible at once.
            backend.map.run_pending_tasks();
            assert_eq!(backend.get(&key).await.unwrap(), Some(value), "write {i}");
        }
    }

    #[tokio::test]
    async fn a_counter_keeps_counting_when_the_map_is_nearly_full() {
        let backend = nearly_full(64 * 1024).await;
        for i in 0..2_000 {
            let key = format!("counter:{i}");
            assert_eq!(backend.increment(&key, 1).await.unwrap(), 1);
            backend.map.run_pending_tasks();
            assert_eq!(backend.increment(&key, 1).await.unwrap(), 2, "counter {i}");
        }
    }
}
