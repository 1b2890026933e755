//! The policy layer: everything between the public API and the backends that decides *whether*
//! and *how* the backend is asked, and what a failure becomes.
//!
//! It owns, for one cache: caching on or off, fail silently or loudly, the circuit breaker, the
//! retries of deletes, the counters and the rate-limited logging ([`Policy`], this file); the
//! read-through with its single flight and leases ([`read_through`]); invalidation with the set of
//! pending invalidations replayed after an outage ([`invalidation`]); and the background task that
//! probes Redis and replays. The layers above only encode, decode and delegate.
//!
//! The guarantees it keeps (each has a test in `integration-tests`):
//! - after an invalidation returned, no caller in this process gets a value computed before it,
//!   even when Redis was down at the time (the delete is kept and replayed, and the keys it covers
//!   are misses meanwhile), and no process stores such a value afterwards (stores are fenced by
//!   leases);
//! - a call pays at most one socket timeout: a read that timed out means Redis is sick, so that
//!   call neither reads again nor stores, and the breaker opens at once;
//! - paths that do not await the backend still yield to tokio's scheduler (cooperative budget),
//!   so callers in a tight loop cannot starve the runtime.

mod breaker;
mod flight;
mod invalidation;
mod offload;
mod operations;
mod pending;
mod read_through;
mod recent;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{self, Backend, Connected, Store};
use crate::codec::{decoded_len, DecodeError, Envelope};
use crate::config::BackendConfig;
use crate::lease;
use crate::runtime::IoRuntime;
use crate::stats::{Counters, Event};
use crate::telemetry::{self, At, Timed};
use crate::{config::CacheConfig, error::CacheError, health::HealthReport, stats::CacheStats};

use breaker::{Admission, Breaker};
use flight::FlightTable;
use pending::Pending;
use recent::Recent;

pub(crate) use invalidation::check_pattern;
pub(crate) use read_through::Cacheable;

/// How often an idle cache sends a PING on its home connection, so that a Redis restart is
/// noticed (and the recent invalidations replayed) within about this long, even by a process
/// that reads nothing.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long to keep quiet about backend failures after logging one at warn.
const WARN_EVERY: Duration = Duration::from_secs(10);
/// How many keys with corrupt values are remembered so that each is logged once.
const CORRUPT_KEYS_REMEMBERED: u64 = 10_000;

/// One cache's policy and state. [`Cache`](crate::Cache) is a handle on an `Arc` of it.
pub(crate) struct Policy {
    config: CacheConfig,
    /// How values are written and read, from `config`, made once.
    envelope: Envelope,
    /// `None` when caching is disabled.
    store: Option<Store>,
    breaker: Breaker,
    counters: Counters,
    pending: Pending,
    /// The invalidations of the last `CACHE_REPLAY_WINDOW`, replayed when Redis may have lost them.
    recent: Recent,
    /// The backend's count of node changes (restarts, failovers) this policy has acted on.
    node_changes_seen: AtomicU64,
    /// Milliseconds after `created` until which reads are held off after a node change (0: none).
    hold_until_ms: AtomicU64,
    /// Whether `shutdown` ran (and reported what it could not deliver).
    shut_down: AtomicBool,
    flights: FlightTable,
    /// Wakes the background task (a failure to replay, the breaker opening).
    wake: Arc<tokio::sync::Notify>,
    created: Instant,
    /// Milliseconds after `created` of the last failure logged at warn, for rate limiting.
    last_warned_ms: AtomicU64,
    /// Keys whose corrupt value was already logged.
    corrupt_logged: moka::sync::Cache<String, ()>,
    /// The runtime of the Redis connections and the background task; declared last so that it
    /// stops after the store is dropped.
    io: Option<IoRuntime>,
}

/// What a read found.
pub(crate) enum Read {
    /// Stored bytes (a value, possibly unreadable).
    Value(Bytes),
    /// Nothing, or something that is not a value yet (a lease marker).
    Absent,
    /// Another caller holds the key's lease.
    Leased,
    /// The backend failed (counted and logged); the failure policy is the caller's to apply.
    Failed(CacheError),
}

impl Policy {
    /// Connects the backend `config` names and starts the background task.
    pub(crate) async fn start(config: CacheConfig) -> Result<Arc<Policy>, CacheError> {
        let (store, io) = if config.enabled() {
            // Boxed: connecting nests every backend level, and the future of a caller's first
            // `get_cache()` (inside its own async fns) would carry that depth in its type.
            let Connected { store, io, started } = Box::pin(backend::connect(&config)).await?;
            if let BackendConfig::Redis(url) = config.backend() {
                match started {
                    Ok(()) => tracing::info!(url = %url, "connected to Redis"),
                    Err(e) if config.fail_silently() => tracing::warn!(
                        url = %url,
                        error = %e,
                        "Redis is not reachable yet; caching is off until it is (reconnecting in the background)"
                    ),
                    Err(e) => return Err(e),
                }
            }
            (Some(store), io)
        } else {
            (None, None)
        };
        tracing::debug!(config = %config, "cache created");
        let recent = Recent::new(config.replay_window());
        let policy = Arc::new(Policy {
            breaker: Breaker::new(config.breaker_threshold(), config.breaker_probe_interval()),
            envelope: config.envelope(),
            config,
            store,
            counters: Counters::default(),
            pending: Pending::default(),
            recent,
            node_changes_seen: AtomicU64::new(0),
            hold_until_ms: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
            flights: FlightTable::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
            created: Instant::now(),
            last_warned_ms: AtomicU64::new(u64::MAX),
            corrupt_logged: moka::sync::Cache::builder()
                .max_capacity(CORRUPT_KEYS_REMEMBERED)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            io,
        });
        if let (Some(io), Some(Store::Redis(b))) = (&policy.io, &policy.store) {
            io.spawn(background(
                Arc::downgrade(&policy),
                Arc::clone(&policy.wake),
                Arc::clone(b.lineage()),
            ));
        }
        Ok(policy)
    }

    pub(crate) fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// `redis`, `memory`, or `disabled`.
    pub(crate) fn backend_name(&self) -> &'static str {
        match self.store {
            Some(Store::Redis(_)) => "redis",
            Some(Store::Memory(_)) => "memory",
            None => "disabled",
        }
    }

    /// The store, when caching is enabled.
    pub(crate) fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            circuit_open: self.breaker.is_open(),
            circuit_opens: self.breaker.times_opened(),
            invalidations_pending: self.pending.len() as u64,
            redis_node_changes: self.node_changes_seen.load(Ordering::Relaxed),
            ..self.counters.snapshot()
        }
    }

    /// Counts `n` occurrences of `event` in the stats and, with its key space, in the metrics.
    pub(crate) fn count(&self, event: Event, at: At<'_>, n: u64) {
        self.counters.add(event, n);
        telemetry::count(event, at, n);
    }

    /// Whether what Redis holds under `key` may be served: no pending invalidation covers it
    /// (reads of it are misses until it is replayed), and reads are not held off after a node
    /// change. Two atomic loads when neither is the case.
    pub(crate) fn trusted(&self, key: &str) -> bool {
        !self.pending.covers(key) && !self.holding()
    }

    /// Whether reads are held off: for `CACHE_REPLAY_HOLD` after a Redis node was found to be
    /// another incarnation, so that the other processes replay their own recent invalidations
    /// before this one serves what Redis holds.
    fn holding(&self) -> bool {
        let until = self.hold_until_ms.load(Ordering::Acquire);
        until != 0 && self.now_ms() < until
    }

    fn now_ms(&self) -> u64 {
        self.created.elapsed().as_millis() as u64
    }

    /// Acts on node changes the backend found since the last look (see
    /// `backend/redis/lineage.rs`): the invalidations of the replay window become pending, and
    /// reads are held off for `CACHE_REPLAY_HOLD`. One atomic load per call otherwise.
    fn follow_lineage(&self, store: &Store) {
        let Store::Redis(backend) = store else {
            return;
        };
        let changes = backend.lineage().changes();
        let seen = self.node_changes_seen.load(Ordering::Acquire);
        if changes == seen
            || self
                .node_changes_seen
                .compare_exchange(seen, changes, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let hold = self.config.replay_hold().as_millis() as u64;
        self.hold_until_ms
            .store(self.now_ms().saturating_add(hold).max(1), Ordering::Release);
        let globs = self.recent.within_window();
        let error = CacheError::Connection(
            "Redis restarted or failed over and may have lost this invalidation".to_owned(),
        );
        for glob in &globs {
            self.keep(self.pending.add(glob), At::Pattern(glob), &error);
        }
        tracing::warn!(
            replaying = globs.len(),
            hold_ms = hold,
            "Redis may have lost acknowledged writes (a node restarted or failed over): \
             replaying this process's recent invalidations; reads are misses meanwhile"
        );
        self.wake.notify_one();
    }

    /// How many keys are being computed right now.
    pub(crate) fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The runtime whose context a call polled outside any runtime enters, for its timers: the
    /// cache's I/O runtime, or a process-wide one for the in-process backend.
    pub(crate) fn timers(&self) -> Option<&tokio::runtime::Handle> {
        match &self.io {
            Some(io) => Some(io.handle()),
            None => crate::runtime::fallback(),
        }
    }

    /// Runs `call` on the store through the breaker: skipped (without awaiting the backend, but
    /// yielding to the scheduler) while it is open, and its outcome recorded.
    pub(crate) async fn guarded<'s, T, F, Fut>(
        &'s self,
        store: &'s Store,
        call: F,
    ) -> Result<T, CacheError>
    where
        F: FnOnce(&'s Store) -> Fut,
        Fut: std::future::Future<Output = Result<T, CacheError>>,
    {
        if let Store::Memory(_) = store {
            // Completes without awaiting anything: keep the cooperative budget honest.
            tokio::task::coop::consume_budget().await;
            return call(store).await;
        }
        let admission = self.breaker.admit();
        if admission == Admission::Skip {
            tokio::task::coop::consume_budget().await;
            return Err(CacheError::CircuitOpen);
        }
        let result = crate::runtime::anywhere!(self, call(store));
        self.follow_lineage(store);
        let outcome = match &result {
            Err(CacheError::Timeout(_)) => breaker::Outcome::TimedOut,
            Err(e) if e.is_connection() => breaker::Outcome::Failed,
            _ => breaker::Outcome::Answered,
        };
        if self.breaker.record(admission, outcome) {
            if let Err(e) = &result {
                tracing::warn!(
                    error = %e,
                    probe_every = ?self.breaker.probe_interval(),
                    "circuit breaker opened: Redis is skipped until it answers a probe"
                );
            }
            self.wake.notify_one();
        }
        result
    }

    /// A plain read of `key` (reported `at`): absent when a pending invalidation covers it; a
    /// lease marker reads as [`Read::Leased`]. Counts failures, not misses.
    pub(crate) async fn read(&self, key: &str, at: At<'_>) -> Read {
        let Some(store) = &self.store else {
            tokio::task::coop::consume_budget().await;
            return Read::Absent;
        };
        if !self.trusted(key) {
            tokio::task::coop::consume_budget().await;
            return Read::Absent;
        }
        let started = Instant::now();
        let read = self
            .guarded(store, |s| async move {
                // Matched here rather than through `Store`'s own `get`: one async level less in
                // the type of every `#[cached]` future, which users' crates lay out (rustc's
                // query depth, 128 by default, was reached with it).
                match s {
                    Store::Redis(b) => b.get(key).await,
                    Store::Memory(b) => b.get(key).await,
                }
            })
            .await;
        telemetry::duration(Timed::Read, at, started.elapsed());
        match read {
            Ok(Some(bytes)) if lease::is_marker(&bytes) => Read::Leased,
            // Redis may have lost an invalidation of this key since the read began.
            Ok(Some(_)) if !self.trusted(key) => Read::Absent,
            Ok(Some(bytes)) => Read::Value(bytes),
            Ok(None) => Read::Absent,
            Err(e) => {
                self.count_failure("get", at, &e);
                Read::Failed(e)
            }
        }
    }

    /// Encodes a value for storing ([`Envelope::encode`](crate::codec::Envelope::encode)), off
    /// the executor's worker when values of its type were large before.
    pub(crate) fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Bytes, CacheError> {
        let config = &self.config;
        let min = config.offload_min_bytes();
        // Which type this is, for the offloading heuristic: one `type_name` string per type.
        let type_key = std::any::type_name::<V>().as_ptr() as u64;
        let bytes = offload::run(min > 0 && offload::was_large(type_key), || {
            self.envelope.encode(value)
        })?;
        offload::remember(type_key, min > 0 && bytes.len() >= min);
        Ok(Bytes::from(bytes))
    }

    /// Decodes the bytes stored under `key` (reported `at`), counting a hit, a schema mismatch,
    /// or a corrupt miss (logged once per key).
    pub(crate) fn decode<V: DeserializeOwned + Serialize>(
        &self,
        key: &str,
        at: At<'_>,
        bytes: &[u8],
    ) -> Option<V> {
        let error = match self.decode_bytes(bytes) {
            Ok(value) => {
                self.count(Event::Hit, at, 1);
                return Some(value);
            }
            Err(error) => error,
        };
        self.count(Event::Miss, at, 1);
        let mismatch = matches!(error, DecodeError::SchemaMismatch { .. });
        self.count(
            if mismatch {
                Event::SchemaMismatch
            } else {
                Event::Corrupt
            },
            at,
            1,
        );
        if !self.corrupt_logged.contains_key(key) {
            self.corrupt_logged.insert(key.to_owned(), ());
            if mismatch {
                // Expected after a deploy that changed a cached type: one per old entry.
                tracing::debug!(space = at.space(), error = %error, "cached value of another schema treated as a miss");
            } else {
                tracing::warn!(
                    space = at.space(),
                    error = %error,
                    bytes = bytes.len(),
                    "unreadable cached value treated as a miss (logged once per key)"
                );
            }
        }
        None
    }

    /// Decodes stored bytes under this cache's `CACHE_MAX_VALUE_BYTES`, off the executor's
    /// worker when the decoded value is large (its size known from the header and the LZ4
    /// prefix); counts nothing.
    pub(crate) fn decode_bytes<V: DeserializeOwned + Serialize>(
        &self,
        bytes: &[u8],
    ) -> Result<V, DecodeError> {
        let (min, limit) = (
            self.config.offload_min_bytes(),
            self.config.max_value_bytes(),
        );
        // A value over the limit is refused at once: not worth a thread.
        let len = decoded_len(bytes);
        offload::run(min > 0 && len >= min && len <= limit, || {
            self.envelope.decode(bytes)
        })
    }

    /// Refuses values over `CACHE_MAX_VALUE_BYTES`, whatever the failure policy: a value that
    /// size is the caller's to fix, not a Redis failure to hide.
    pub(crate) fn check_size(&self, size: usize) -> Result<(), CacheError> {
        let max = self.config.max_value_bytes();
        if size > max {
            return Err(CacheError::ValueTooLarge { size, max });
        }
        Ok(())
    }

    /// Counts a failure (a skipped call apart from the others) and logs it, rate-limited.
    pub(crate) fn count_failure(&self, op: &'static str, at: At<'_>, error: &CacheError) {
        if let CacheError::CircuitOpen = error {
            self.count(Event::ShortCircuit, at, 1);
        } else {
            self.counters.add(Event::Error, 1);
            telemetry::error(error.kind(), at);
            self.log_failure(op, error);
        }
    }

    /// The failure policy for an error already counted: `fallback` when failing silently, the
    /// error otherwise.
    pub(crate) fn settle<T>(
        &self,
        result: Result<T, CacheError>,
        fallback: T,
    ) -> Result<T, CacheError> {
        match result {
            Err(_) if self.config.fail_silently() => Ok(fallback),
            result => result,
        }
    }

    /// Counts and logs a failure, then applies the failure policy.
    pub(crate) fn policy<T>(
        &self,
        op: &'static str,
        at: At<'_>,
        result: Result<T, CacheError>,
        fallback: T,
    ) -> Result<T, CacheError> {
        if let Err(error) = &result {
            self.count_failure(op, at, error);
        }
        self.settle(result, fallback)
    }

    /// Logs a backend failure at warn at most once per [`WARN_EVERY`], at debug otherwise, so an
    /// outage does not flood the logs.
    pub(crate) fn log_failure(&self, op: &'static str, error: &CacheError) {
        let now_ms = self.created.elapsed().as_millis() as u64;
        let last = self.last_warned_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now_ms.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_warned_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let errors = self.counters.snapshot().errors;
            tracing::warn!(op, %error, errors, fail_silently = self.config.fail_silently(), "cache backend failure");
        } else {
            tracing::debug!(op, %error, "cache backend failure");
        }
    }

    /// Asks the backend how it is, within one socket timeout. An answer half-opens a tripped
    /// breaker and wakes the replay of pending invalidations.
    pub(crate) async fn health(&self) -> HealthReport {
        let mut report = match &self.store {
            Some(Store::Redis(b)) => crate::runtime::anywhere!(self, b.health()),
            Some(Store::Memory(b)) => b.health().await,
            None => HealthReport {
                uptime_seconds: Some(self.created.elapsed().as_secs()),
                ..HealthReport::up("disabled", 0.0)
            },
        };
        if let Some(Store::Redis(_)) = &self.store {
            if report.healthy && (self.breaker.is_tripped() || self.pending.len() > 0) {
                self.wake.notify_one();
            }
            report.circuit = self.breaker.state();
        }
        report.invalidations_pending = self.pending.len() as u64;
        report
    }
}

/// The background task of a Redis cache, on its I/O runtime: while the breaker is tripped or
/// invalidations are pending, every probe interval it asks Redis (it sleeps until woken
/// otherwise); when Redis answers it lets calls through again (half-open) and replays the
/// pending invalidations, whose keys stay misses until then. When a node turns out to be another incarnation (`lineage`), it
/// makes the recent invalidations pending and replays them at once. Otherwise it pings Redis
/// every [`HEARTBEAT`]. Ends when the cache is dropped.
async fn background(
    policy: Weak<Policy>,
    wake: Arc<tokio::sync::Notify>,
    lineage: Arc<crate::backend::redis::Lineage>,
) {
    // Whether to replay without waiting a probe interval first: Redis answered a moment ago.
    let mut at_once = false;
    loop {
        // Holds no strong reference while it waits, so the cache can be dropped meanwhile.
        let busy = match policy.upgrade() {
            Some(p) if p.breaker.is_tripped() || p.pending.len() > 0 => {
                Some(p.breaker.probe_interval())
            }
            Some(_) => None,
            None => return,
        };
        let Some(interval) = busy else {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(HEARTBEAT) => {
                    // fred notices a connection that closed while idle only when it sends on it.
                    if let Some(p) = policy.upgrade() {
                        if let Some(Store::Redis(b)) = &p.store {
                            let _ = b.home().ping().await;
                        }
                    }
                }
                () = lineage.changed() => {
                    if let Some(p) = policy.upgrade() {
                        if let Some(store) = &p.store {
                            p.follow_lineage(store);
                        }
                    }
                    at_once = true;
                }
            }
            continue;
        };
        // A probe interval after the breaker opened (or the last try), never at once: an open
        // breaker stays open for at least that long.
        if !std::mem::take(&mut at_once) {
            tokio::time::sleep(interval).await;
        }
        let Some(policy) = policy.upgrade() else {
            return;
        };
        if let Some(store) = &policy.store {
            policy.follow_lineage(store);
        }
        if !policy.breaker.is_tripped() && policy.pending.len() == 0 {
            continue;
        }
        let healthy = match &policy.store {
            Some(Store::Redis(b)) => b.home().ping().await.is_ok(),
            _ => true,
        };
        if !healthy {
            policy.breaker.probe_failed();
            continue;
        }
        // Calls go through again before the replay, which may take long (patterns walk the
        // key space): the keys still pending are misses, never stored, until it deleted them.
        if policy.breaker.is_open() {
            tracing::info!("Redis answers again; circuit breaker half-open");
        }
        policy.breaker.probe_succeeded();
        if !policy.replay_pending().await {
            policy.breaker.probe_failed();
        }
    }
}
