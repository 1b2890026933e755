//! Counters of what the cache did: hits, misses, corrupt values, errors, writes and deletes.
//!
//! Kept per [`Cache`](crate::Cache) in relaxed atomics (cheap on the hit path). The same events
//! go to the `metrics` facade with their key space (see [`telemetry`](crate::telemetry)).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found nothing usable (absent, expired, corrupt, or Redis failing silently).
    pub misses: u64,
    /// Misses caused by bytes that could not be decoded (foreign, truncated, another format).
    pub corrupt: u64,
    /// Misses caused by a value written under another schema: it decoded, but into a value of
    /// another shape than the one written (the type changed since, or it is another type).
    pub schema_mismatches: u64,
    /// Backend failures (unreachable, timeout, server errors), whether or not they reached callers.
    pub errors: u64,
    /// Values written.
    pub sets: u64,
    /// Keys removed by `delete`, `clear_pattern` and invalidation.
    pub deletes: u64,
    /// Calls that skipped Redis because the circuit breaker was open.
    pub short_circuited: u64,
    /// How many times the circuit breaker has opened.
    pub circuit_opens: u64,
    /// Whether the circuit breaker is open now: calls skip Redis. (Half-open, a few trial calls
    /// go through; `health_check().circuit` tells the three states apart.)
    pub circuit_open: bool,
    /// Invalidations that could not reach Redis and wait to be replayed; reads of the keys they
    /// cover are misses in this process meanwhile.
    pub invalidations_pending: u64,
    /// Pending invalidations replayed once Redis answered again.
    pub invalidations_replayed: u64,
    /// Invalidations that could neither reach Redis nor be kept (the pending set was full).
    pub invalidations_dropped: u64,
    /// Acknowledged invalidations forgotten before `CACHE_REPLAY_WINDOW` ended, to keep the
    /// replay log within its 10,000 entries: a node change would not replay them.
    pub invalidations_forgotten: u64,
    /// How many times a Redis node was found to be another incarnation than before (restarted,
    /// or another node promoted): each time, the recent invalidations were replayed.
    pub redis_node_changes: u64,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 before the first read.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    schema_mismatches: AtomicU64,
    errors: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    short_circuited: AtomicU64,
    replayed: AtomicU64,
    forgotten: AtomicU64,
    dropped: AtomicU64,
}

/// The events that are counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    Hit,
    Miss,
    Corrupt,
    SchemaMismatch,
    Error,
    Set,
    Delete,
    ShortCircuit,
    Replayed,
    Forgotten,
    /// Stays last: the metrics size their table of keys by it.
    Dropped,
}

impl Event {
    /// The name of its counter in the `metrics` facade.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn metric(self) -> &'static str {
        match self {
            Event::Hit => "cache_hits_total",
            Event::Miss => "cache_misses_total",
            Event::Corrupt => "cache_corrupt_total",
            Event::SchemaMismatch => "cache_schema_mismatches_total",
            Event::Error => "cache_errors_total",
            Event::Set => "cache_sets_total",
            Event::Delete => "cache_deletes_total",
            Event::ShortCircuit => "cache_short_circuited_total",
            Event::Replayed => "cache_invalidations_replayed_total",
            Event::Forgotten => "cache_invalidations_forgotten_total",
            Event::Dropped => "cache_invalidations_dropped_total",
        }
    }
}

impl Counters {
    /// Counts `n` occurrences of `event`.
    pub(crate) fn add(&self, event: Event, n: u64) {
        let counter = match event {
            Event::Hit => &self.hits,
            Event::Miss => &self.misses,
            Event::Corrupt => &self.corrupt,
            Event::SchemaMismatch => &self.schema_mismatches,
            Event::Error => &self.errors,
            Event::Set => &self.sets,
            Event::Delete => &self.deletes,
            Event::ShortCircuit => &self.short_circuited,
            Event::Replayed => &self.replayed,
            Event::Forgotten => &self.forgotten,
            Event::Dropped => &self.dropped,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: load(&self.hits),
            misses: load(&self.misses),
            corrupt: load(&self.corrupt),
            schema_mismatches: load(&self.schema_mismatches),
            errors: load(&self.errors),
            sets: load(&self.sets),
            deletes: load(&self.deletes),
            short_circuited: load(&self.short_circuited),
            circuit_opens: 0,
            circuit_open: false,
            invalidations_pending: 0,
            invalidations_replayed: load(&self.replayed),
            invalidations_dropped: load(&self.dropped),
            invalidations_forgotten: load(&self.forgotten),
            redis_node_changes: 0,
        }
    }
}

/// What [`shutdown`](crate::shutdown) delivered and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Pending invalidations delivered to Redis during the shutdown.
    pub delivered: u64,
    /// The key space of each invalidation that could not be delivered before the deadline (the
    /// patterns themselves are not shown: they may hold argument values). Each was logged at
    /// error; the values it covers may be served until they expire.
    pub undelivered: Vec<String>,
}

impl ShutdownReport {
    /// Whether every pending invalidation was delivered.
    pub fn is_clean(&self) -> bool {
        self.undelivered.is_empty()
    }
}
