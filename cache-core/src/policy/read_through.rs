//! Read-through: check the cache, and on a miss compute the value once and store it, fenced.
//!
//! 1. **Check**: one plain `GET`. A hit ends here. A failed read (down, timed out, skipped by the
//!    breaker) ends the cache's part of the call: the body runs, nothing is read again or stored,
//!    so a hung Redis costs one socket timeout per call at most.
//! 2. **Single flight** in this cache: the first caller of a cold key leads; the others wait for
//!    the bytes it stored (or read: another process's value, which only the waiters that joined
//!    before the read was sent may take, since it may predate an invalidation that returned
//!    before the others joined; those read the cache again), or, when it has none to share (an `Err`, an uncached `None`, a panic, a
//!    cancellation, a refused store), run their own bodies at once, as they would without a cache.
//!    A call for a key that its own task is computing (a recursive body) runs its body directly,
//!    and so does a call whose wait would close a cycle of tasks waiting on each other (crossed
//!    bodies); a waiter whose leader has not published within the wait's bound (four times the
//!    body time measured for the key space, see [`flight`](super::flight)) stops waiting and runs
//!    its body. None of these store: they hold no lease.
//! 3. **Lease**: the leader reads again and, when the key is still empty, takes its lease in the
//!    same round trip ([`lease`](crate::lease)). When another caller (another process) holds the
//!    lease, the leader waits for that caller's value, at most the same bound, then computes
//!    without storing; a holder that died stops renewing its lease, which lapses within the
//!    lease's liveness, and the leader then takes it.
//! 4. **Execute** the body while a task beside it renews the lease every third of its liveness
//!    (for at most the lease TTL in all), then **store** only if the key still holds the lease: an
//!    invalidation that ran meanwhile deleted it, so the value, which may predate the change, is
//!    dropped. The flight is closed to new waiters before the store is sent, so that nobody who
//!    starts after an invalidation can be handed a value stored before it. A leader dropped before
//!    its store stops renewing and releases its lease in the background.
//!
//! A key that a pending invalidation covers is computed and never stored until the invalidation
//! has been replayed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument as _;

use super::flight::{Join, Leader, Outcome, Waiter};
use super::{Policy, Read};
use crate::backend::Backend;
use crate::backend::Store;
use crate::error::CacheError;
use crate::lease;
use crate::stats::Event;
use crate::telemetry::{self, At, Timed};

tokio::task_local! {
    /// The keys the current task computes as a leader, each with the address of its cache.
    static LEADING: Vec<(usize, String)>;
}

/// The longest pause between two looks at a key whose lease another caller holds.
const MAX_LEASE_POLL: Duration = Duration::from_millis(50);

/// How the return value `R` of a computation meets the cache.
pub(crate) trait Cacheable<R> {
    /// What is stored.
    type Stored: Serialize + DeserializeOwned;
    /// What to store for `ret` and for how long (`None`: the default TTL), or `None` when `ret`
    /// is not cached.
    fn store_as<'r>(&self, ret: &'r R) -> Option<(&'r Self::Stored, Option<Duration>)>;
    /// The return value for a stored value.
    fn load(&self, stored: Self::Stored) -> R;
    /// What a cache error becomes when it reaches the caller: `Some(return value)` to return it
    /// instead of running or returning the body's, `None` to go on (the error is then logged).
    fn on_error(&self, error: CacheError) -> Option<R>;
}

/// What the leader found when it went for the lease.
enum Taken<S> {
    Lease(LeaseGuard),
    /// A value another caller stored meanwhile, read by a request sent at that instant.
    Value(Bytes, S, Instant),
    /// Neither: compute without storing (another caller's lease outlived the wait, or bytes that
    /// could not be cleared).
    Nothing,
    Failed(CacheError),
}

/// What waiting for another caller's lease gave.
enum Waited<S> {
    /// The holder's value, read by a request sent at that instant.
    Value(Bytes, S, Instant),
    /// The lease went without a value: take it.
    Free,
    TimedOut,
    Failed(CacheError),
}

impl Policy {
    /// The body of `#[cached]`, `get_or_compute` and `try_get_or_compute`: see the module docs.
    ///
    /// Each call is a `cache.read_through` span at debug level, with the key's space (never the
    /// key), its `outcome` (`hit`, `miss`, `joined`, `failed`, `disabled`) and `body_ms` when the
    /// body ran. Without a subscriber listening at debug, the span costs one check.
    pub(crate) async fn read_through<R, P, F>(self: &Arc<Self>, key: &str, plan: &P, body: F) -> R
    where
        P: Cacheable<R>,
        F: Future<Output = R>,
    {
        let span = tracing::debug_span!(
            "cache.read_through",
            space = At::Key(key).space(),
            outcome = tracing::field::Empty,
            body_ms = tracing::field::Empty,
        );
        // Polled outside any runtime (another executor), its timers and tasks use the cache's.
        if span.is_disabled() {
            crate::runtime::anywhere!(self, self.check_then_compute(key, plan, body))
        } else {
            crate::runtime::anywhere!(
                self,
                self.check_then_compute(key, plan, body).instrument(span)
            )
        }
    }

    /// [`read_through`](Self::read_through) without its span.
    async fn check_then_compute<R, P, F>(self: &Arc<Self>, key: &str, plan: &P, body: F) -> R
    where
        P: Cacheable<R>,
        F: Future<Output = R>,
    {
        if self.store.is_none() {
            outcome("disabled");
            tokio::task::coop::consume_budget().await;
            return body.await;
        }
        // 1. Check: no lock, no map entry, no key copy on a hit. An absent value is counted as
        // a miss once per flight, by the leader, however many callers share it.
        let mut miss_counted = false;
        let at = At::Key(key).resolved();
        match self.read(key, at).await {
            Read::Value(bytes) => {
                if let Some(stored) = self.decode::<P::Stored>(key, at, &bytes) {
                    outcome("hit");
                    return plan.load(stored);
                }
                // Unreadable (another type, version or program): a miss, counted by the decode,
                // that the store repairs.
                miss_counted = true;
            }
            Read::Absent | Read::Leased => {}
            Read::Failed(error) => {
                outcome("failed");
                self.count(Event::Miss, At::Key(key), 1);
                return match self.fail(plan, key, "cache read failed", error) {
                    Some(ret) => ret,
                    None => timed(key, body).await,
                };
            }
        }
        outcome("miss");
        if self.leading(key) {
            // A recursive call for the key this task is computing: waiting would never end.
            self.count_miss(key, miss_counted);
            return timed(key, body).await;
        }
        // 2. Single flight.
        match self.flights.join(key) {
            // Boxed: the lead's future (lease scripts, store) is large, and inline it would be
            // part of every call's future, which is copied on every call, hits included.
            Join::Leader(leader) => {
                Box::pin(self.lead(key, plan, leader, miss_counted, body)).await
            }
            // Boxed too: the bounded wait's timer would otherwise grow every call's future.
            Join::Waiter(waiter) => {
                outcome("joined");
                telemetry::joined(At::Key(key));
                Box::pin(self.wait_then_compute(key, plan, waiter, miss_counted, body)).await
            }
            Join::Cycle => {
                // The leader waits, through a chain of tasks, on this one: waiting would never
                // end. Compute as the recursive case does, without storing.
                tracing::debug!(
                    space = At::Key(key).space(),
                    "crossed computations: ran the body instead of waiting"
                );
                telemetry::gave_up(At::Key(key));
                self.count_miss(key, miss_counted);
                self.compute(key, body).await
            }
        }
    }

    /// Waits, at most the bound, for the leader of `key`; decodes what it published, or computes
    /// (without storing) when it published nothing usable or did not publish in time.
    async fn wait_then_compute<R, P, F>(
        &self,
        key: &str,
        plan: &P,
        waiter: Waiter,
        miss_counted: bool,
        body: F,
    ) -> R
    where
        P: Cacheable<R>,
        F: Future<Output = R>,
    {
        let bound = self.wait_bound(key);
        match waiter.outcome(bound).await {
            Outcome::Done(Some(bytes)) => {
                if let Some(stored) = self.decode::<P::Stored>(key, At::Key(key), &bytes) {
                    return plan.load(stored);
                }
            }
            Outcome::Done(None) => {}
            Outcome::Late => {
                // The leader's value was read before this call began: read it again.
                if let Read::Value(bytes) = self.read(key, At::Key(key)).await {
                    if let Some(stored) = self.decode::<P::Stored>(key, At::Key(key), &bytes) {
                        return plan.load(stored);
                    }
                }
            }
            Outcome::TimedOut => {
                // The leader may be waiting, out of sight, for this very call (a body that
                // spawned it and awaits it): compute, without storing.
                tracing::debug!(
                    space = At::Key(key).space(),
                    ?bound,
                    "gave up waiting for another caller's computation"
                );
                telemetry::gave_up(At::Key(key));
            }
        }
        self.count_miss(key, miss_counted);
        self.compute(key, body).await
    }

    /// The longest a caller of `key` waits for another caller's computation of it: see
    /// [`flight`](super::flight).
    fn wait_bound(&self, key: &str) -> Duration {
        self.flights
            .wait_bound(At::Key(key).space(), self.config.lease_ttl())
    }

    /// Steps 3 and 4, as the key's leader in this cache.
    async fn lead<R, P, F>(
        self: &Arc<Self>,
        key: &str,
        plan: &P,
        leader: Leader<'_>,
        miss_counted: bool,
        body: F,
    ) -> R
    where
        P: Cacheable<R>,
        F: Future<Output = R>,
    {
        if !self.trusted(key) {
            // Redis may still hold a value from before an invalidation it has not seen yet (or
            // lost: reads are held off after a node change).
            self.count_miss(key, miss_counted);
            drop(leader);
            return self.compute(key, body).await;
        }
        let lease = match self.take_lease::<P::Stored>(key).await {
            Taken::Lease(lease) => lease,
            Taken::Value(bytes, stored, sent) => {
                leader.publish_read(bytes, sent);
                return plan.load(stored);
            }
            Taken::Nothing => {
                self.count_miss(key, miss_counted);
                drop(leader);
                return self.compute(key, body).await;
            }
            Taken::Failed(error) => {
                self.count_miss(key, miss_counted);
                drop(leader);
                return match self.fail(plan, key, "cache read failed", error) {
                    Some(ret) => ret,
                    None => self.compute(key, body).await,
                };
            }
        };
        self.count_miss(key, miss_counted);
        let ret = self.compute(key, body).await;

        // The borrow of `ret` ends in this block, before any `.await`, so the future stays `Send`
        // for values that are `Send` but not `Sync`.
        let encoded = plan
            .store_as(&ret)
            .map(|(stored, ttl)| self.encode(stored).map(|bytes| (bytes, ttl)));
        let (bytes, ttl) = match encoded {
            Some(Ok(encoded)) => encoded,
            None => {
                drop(leader);
                lease.release().await;
                return ret;
            }
            Some(Err(error)) => {
                drop(leader);
                lease.release().await;
                return self
                    .route(
                        plan,
                        key,
                        "value not cached: it could not be encoded",
                        error,
                    )
                    .unwrap_or(ret);
            }
        };
        if let Err(error) = self.check_size(bytes.len()) {
            // Too large to store: the caller still gets its value; the waiters compute theirs.
            tracing::warn!(space = At::Key(key).space(), %error, "value not cached");
            drop(leader);
            lease.release().await;
            return ret;
        }
        leader.close();
        if leader.invalidated() || self.pending.covers(key) {
            // An invalidation ran while the body did: the value may predate it.
            drop(leader);
            lease.release().await;
            return ret;
        }
        let ttl = ttl.unwrap_or(self.config.default_ttl());
        let started = Instant::now();
        let stored = lease.store(bytes.clone(), ttl).await;
        telemetry::duration(Timed::Store, At::Key(key), started.elapsed());
        match stored {
            Ok(true) => {
                self.count(Event::Set, At::Key(key), 1);
                leader.publish(Some(bytes));
            }
            // The lease is gone: an invalidation deleted it (or it expired). Not stored.
            Ok(false) => {}
            Err(error) => {
                self.count_failure("set", At::Key(key), &error);
                if let Some(ret) = self.fail(plan, key, "cache write failed", error) {
                    return ret;
                }
            }
        }
        ret
    }

    /// Reads the key again as its leader and takes its lease when it is empty.
    async fn take_lease<S: DeserializeOwned + Serialize>(self: &Arc<Self>, key: &str) -> Taken<S> {
        let Some(store) = &self.store else {
            return Taken::Nothing;
        };
        let liveness = self.config.lease_liveness();
        let deadline = Instant::now() + self.wait_bound(key);
        let mut cleared = false;
        loop {
            // Armed before the request is sent: a caller cancelled while it is on its way (or
            // timed out waiting for the reply) releases the lease it may have taken.
            let guard = LeaseGuard {
                policy: Arc::clone(self),
                key: key.to_owned(),
                marker: lease::new_marker(),
                armed: true,
                renewal: None,
            };
            let marker = &guard.marker;
            let sent = Instant::now();
            let found = self
                .guarded(store, |s| async move {
                    s.get_or_lease(key, marker, liveness).await
                })
                .await;
            let bytes = match found {
                Ok(None) => {
                    let mut guard = guard;
                    guard.keep_alive();
                    return Taken::Lease(guard);
                }
                Ok(Some(bytes)) => {
                    // The key held something, so the script did not take the lease.
                    guard.disarm();
                    bytes
                }
                Err(error) => {
                    self.count_failure("get", At::Key(key), &error);
                    return Taken::Failed(error);
                }
            };
            if !self.trusted(key) {
                // A node change since the first read: these bytes may be a value Redis lost
                // the invalidation of.
                return Taken::Nothing;
            }
            if lease::is_marker(&bytes) {
                match self.await_holder::<S>(key, deadline).await {
                    Waited::Value(bytes, stored, sent) => return Taken::Value(bytes, stored, sent),
                    Waited::Free => continue,
                    Waited::TimedOut => {
                        tracing::debug!(
                            space = At::Key(key).space(),
                            "gave up waiting for another process's computation"
                        );
                        telemetry::gave_up(At::Key(key));
                        return Taken::Nothing;
                    }
                    Waited::Failed(error) => return Taken::Failed(error),
                }
            }
            if let Some(stored) = self.decode_quietly::<S>(key, &bytes) {
                return Taken::Value(bytes, stored, sent);
            }
            // Unreadable bytes (already counted by the first read): clear them, once, so that
            // the lease can be taken and the store repairs the key.
            if cleared {
                return Taken::Nothing;
            }
            cleared = true;
            let bytes = &bytes;
            let _ = self
                .guarded(
                    store,
                    |s| async move { s.delete_if_holds(key, bytes).await },
                )
                .await;
        }
    }

    /// Waits for the caller that holds `key`'s lease to store its value, looking again after
    /// growing pauses, until `deadline`. A holder that died stops renewing its lease, which then
    /// lapses within its liveness: the key reads empty, and the lease is free.
    async fn await_holder<S: DeserializeOwned + Serialize>(
        &self,
        key: &str,
        deadline: Instant,
    ) -> Waited<S> {
        let mut pause = Duration::from_millis(2);
        loop {
            if Instant::now() + pause > deadline {
                return Waited::TimedOut;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_LEASE_POLL);
            let sent = Instant::now();
            match self.read(key, At::Key(key)).await {
                Read::Leased => {}
                Read::Absent => return Waited::Free,
                Read::Value(bytes) => {
                    return match self.decode_quietly::<S>(key, &bytes) {
                        Some(stored) => Waited::Value(bytes, stored, sent),
                        None => Waited::Free,
                    }
                }
                Read::Failed(error) => return Waited::Failed(error),
            }
        }
    }

    /// Decodes bytes a leader found, counting a hit; unreadable bytes are not counted again.
    fn decode_quietly<S: DeserializeOwned + Serialize>(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Option<S> {
        let stored = self.decode_bytes::<S>(bytes).ok()?;
        self.count(Event::Hit, At::Key(key), 1);
        Some(stored)
    }

    fn count_miss(&self, key: &str, already_counted: bool) {
        if !already_counted {
            self.count(Event::Miss, At::Key(key), 1);
        }
    }

    /// Runs `body` as the computation of `key`, so that a call for the same key from inside it
    /// does not wait for itself, and records how long it took for the bound on waits.
    async fn compute<F: Future>(&self, key: &str, body: F) -> F::Output {
        let mut leading = LEADING.try_with(Clone::clone).unwrap_or_default();
        leading.push((self.address(), key.to_owned()));
        let started = Instant::now();
        let ret = LEADING.scope(leading, timed(key, body)).await;
        self.flights
            .record_body(At::Key(key).space(), started.elapsed());
        ret
    }

    /// Whether the current task computes `key` of this cache.
    fn leading(&self, key: &str) -> bool {
        LEADING
            .try_with(|leading| {
                leading
                    .iter()
                    .any(|(cache, k)| *cache == self.address() && k == key)
            })
            .unwrap_or(false)
    }

    /// Tells this cache apart from the others in [`LEADING`].
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// A cache failure met by a computation: ignored when failing silently; otherwise
    /// [routed](Self::route).
    fn fail<R, P: Cacheable<R>>(
        &self,
        plan: &P,
        key: &str,
        what: &str,
        error: CacheError,
    ) -> Option<R> {
        if self.config.fail_silently() {
            return None;
        }
        self.route(plan, key, what, error)
    }

    /// Hands an error to the plan: its replacement return value, or `None` after logging it.
    fn route<R, P: Cacheable<R>>(
        &self,
        plan: &P,
        key: &str,
        what: &str,
        error: CacheError,
    ) -> Option<R> {
        match plan.on_error(error.clone()) {
            Some(ret) => Some(ret),
            None => {
                tracing::error!(space = At::Key(key).space(), %error, "{what}");
                None
            }
        }
    }
}

/// Runs a cached function's body, recording how long it took in the metrics and the span.
async fn timed<F: Future>(key: &str, body: F) -> F::Output {
    let started = Instant::now();
    let ret = body.await;
    let took = started.elapsed();
    telemetry::duration(Timed::Body, At::Key(key), took);
    tracing::Span::current().record("body_ms", took.as_secs_f64() * 1000.0);
    ret
}

/// Records how a read-through went in its span.
fn outcome(what: &'static str) {
    tracing::Span::current().record("outcome", what);
}

/// A lease this process holds on a key. Kept alive while it is held ([`keep_alive`]). Spent by
/// a store, given back by `release`, or, dropped with neither (a cancelled or panicking caller),
/// released in the background, so that the next caller need not wait for it to expire.
///
/// [`keep_alive`]: LeaseGuard::keep_alive
struct LeaseGuard {
    policy: Arc<Policy>,
    key: String,
    marker: Bytes,
    armed: bool,
    /// The task renewing the lease, stopped when the guard goes (after the store or release).
    renewal: Option<tokio::task::AbortHandle>,
}

/// How many renewals, one every `liveness / 3`, keep a lease at most `lease_ttl` in all.
fn renewals(lease_ttl: Duration, liveness: Duration) -> u32 {
    let period = liveness / 3;
    if period.is_zero() {
        return 0;
    }
    let rounds = lease_ttl.saturating_sub(liveness).as_nanos() / period.as_nanos();
    u32::try_from(rounds).unwrap_or(u32::MAX)
}

impl LeaseGuard {
    /// Starts renewing the lease every third of its liveness, beside the body: on the cache's
    /// I/O runtime (Redis), or on the caller's (the memory backend), so that a body that holds
    /// up its own thread does not lose its lease. A renewal that finds the lease gone (an
    /// invalidation deleted it) or fails (Redis down) ends the renewals; so does the lease TTL,
    /// the longest a body may hold a lease. Without any runtime to run on, the lease simply
    /// lapses after its liveness, and the store is refused.
    fn keep_alive(&mut self) {
        let config = &self.policy.config;
        let (liveness, rounds) = (
            config.lease_liveness(),
            renewals(config.lease_ttl(), config.lease_liveness()),
        );
        let (policy, key, marker) = (
            Arc::clone(&self.policy),
            self.key.clone(),
            self.marker.clone(),
        );
        let renew = async move {
            for _ in 0..rounds {
                tokio::time::sleep(liveness / 3).await;
                let renewed = match &policy.store {
                    Some(store) => store.renew_if_holds(&key, &marker, liveness).await,
                    None => return,
                };
                if !matches!(renewed, Ok(true)) {
                    return;
                }
            }
        };
        let handle = match &self.policy.io {
            Some(io) => Some(io.handle().spawn(renew)),
            None => tokio::runtime::Handle::try_current()
                .ok()
                .map(|h| h.spawn(renew)),
        };
        self.renewal = handle.map(|h| h.abort_handle());
    }

    /// Stores `value` if the key still holds this lease; whether it did. The lease is spent
    /// either way, unless the store failed (then it is released in the background).
    async fn store(mut self, value: Bytes, ttl: Duration) -> Result<bool, CacheError> {
        let Some(store) = &self.policy.store else {
            return Ok(false);
        };
        let (key, marker) = (&self.key, &self.marker);
        let result = self
            .policy
            .guarded(store, |s| async move {
                s.set_if_holds(key, marker, value, ttl).await
            })
            .await;
        self.armed = result.is_err();
        result
    }

    /// Gives the lease back now, so that the key is empty again when the caller returns and the
    /// next caller need not wait for the lease to expire. The waiters were released before.
    async fn release(mut self) {
        self.armed = false;
        if let Some(store) = &self.policy.store {
            let (key, marker) = (&self.key, &self.marker);
            let _ = self
                .policy
                .guarded(
                    store,
                    |s| async move { s.delete_if_holds(key, marker).await },
                )
                .await;
        }
    }

    /// Forgets a lease that was not taken.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        if !self.armed {
            return;
        }
        // Cancelled or panicked with the lease taken: release it without the caller.
        let (policy, key, marker) = (
            Arc::clone(&self.policy),
            std::mem::take(&mut self.key),
            self.marker.clone(),
        );
        match (&policy.store, &policy.io) {
            (Some(Store::Memory(b)), _) => {
                // The memory backend never awaits: this completes at once.
                let _ = b.delete_if_holds(&key, &marker).now_or_never();
            }
            (Some(Store::Redis(_)), Some(io)) => {
                let task_policy = Arc::clone(&policy);
                io.spawn(async move {
                    if let Some(Store::Redis(b)) = &task_policy.store {
                        let _ = b.delete_if_holds(&key, &marker).await;
                    }
                });
            }
            _ => {}
        }
    }
}
