//! Single flight: the callers of one key in one cache share one trip to the cache and, on a
//! miss, one run of the body.
//!
//! The first caller of a key becomes its *leader* and gets a [`Leader`] guard; callers that arrive
//! while it runs become *waiters* and wait for what it publishes: the encoded bytes of a value
//! that is in the cache (each waiter decodes its own copy, so values need no `Clone`), or nothing
//! (an `Err`, a `None` that is not cached, a panic, a cancelled leader, a value whose store was
//! refused), after which every waiter runs its own body at once, as it would without a cache.
//!
//! The table holds an entry only while its leader is alive: the leader closes it before it
//! stores, and its `Drop` removes it when the leader is cancelled or panics. A std `Mutex`
//! guards the map and is never held across an `.await`.
//!
//! Invalidation marks the flights whose keys a pattern matches
//! ([`FlightTable::invalidate_matching`]): a marked leader's value may predate the change, so it
//! publishes nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

/// What a leader published: the encoded value, or nothing.
#[derive(Clone, Debug)]
enum State {
    Running,
    Done(Option<Bytes>),
}

#[derive(Debug)]
struct Flight {
    state: watch::Sender<State>,
    /// Set when an invalidation matched the key while the flight ran.
    invalidated: AtomicBool,
}

/// The in-flight keys of one cache.
#[derive(Debug, Default)]
pub(crate) struct FlightTable {
    flights: Mutex<HashMap<String, Arc<Flight>>>,
}

/// The outcome of [`FlightTable::join`].
#[derive(Debug)]
pub(crate) enum Join<'t> {
    /// Nobody is working on the key: the caller leads.
    Leader(Leader<'t>),
    /// Someone is: wait with [`Waiter::outcome`].
    Waiter(Waiter),
}

/// Held by the caller that runs the body; publishing or dropping it ends the flight.
#[derive(Debug)]
pub(crate) struct Leader<'t> {
    table: &'t FlightTable,
    key: String,
    flight: Arc<Flight>,
}

/// Held by a caller waiting for a leader.
#[derive(Debug)]
pub(crate) struct Waiter {
    state: watch::Receiver<State>,
}

impl FlightTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        // Nothing panics while the lock is held, but a poisoned map is still a valid map.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leads `key` if nobody does, or waits for the one who does.
    pub(crate) fn join(&self, key: &str) -> Join<'_> {
        let mut flights = self.lock();
        if let Some(flight) = flights.get(key) {
            return Join::Waiter(Waiter {
                state: flight.state.subscribe(),
            });
        }
        let flight = Arc::new(Flight {
            state: watch::Sender::new(State::Running),
            invalidated: AtomicBool::new(false),
        });
        flights.insert(key.to_owned(), Arc::clone(&flight));
        drop(flights);
        Join::Leader(Leader {
            table: self,
            key: key.to_owned(),
            flight,
        })
    }

    /// Marks every flight whose key matches the glob `pattern` as invalidated; returns how many.
    pub(crate) fn invalidate_matching(&self, pattern: &str) -> usize {
        let flights = self.lock();
        let mut marked = 0;
        for (_, flight) in flights
            .iter()
            .filter(|(key, _)| cache_keys::pattern::matches(pattern, key))
        {
            flight.invalidated.store(true, Ordering::SeqCst);
            marked += 1;
        }
        marked
    }

    /// How many keys are in flight.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Removes `flight` under `key`, unless another flight has taken the key since.
    fn remove(&self, key: &str, flight: &Arc<Flight>) {
        let mut flights = self.lock();
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(key);
        }
    }
}

impl Leader<'_> {
    /// How many callers are waiting for this leader right now.
    #[allow(dead_code)] // used by the tests; kept for diagnostics
    pub(crate) fn waiters(&self) -> usize {
        self.flight.state.receiver_count()
    }

    /// True when an invalidation matched this key while the flight ran.
    pub(crate) fn invalidated(&self) -> bool {
        self.flight.invalidated.load(Ordering::SeqCst)
    }

    /// Takes the flight out of the table: callers arriving from now on read the cache instead
    /// of waiting for this leader. Called before the store, so that nobody who starts after the
    /// store was sent is handed its value: an invalidation may have run in between.
    pub(crate) fn close(&self) {
        self.table.remove(&self.key, &self.flight);
    }

    /// Ends the flight, handing `value` (encoded) to the waiters; `None` sends them to run their
    /// own bodies. An invalidated flight hands out nothing: its value may predate the
    /// invalidation.
    pub(crate) fn publish(self, value: Option<Bytes>) {
        self.close();
        let value = value.filter(|_| !self.invalidated());
        self.flight.state.send_replace(State::Done(value));
        // `Drop` runs next and finds the flight done.
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // Cancelled, panicked, or finished without a value: free the key and release the
        // waiters. After `publish` this removes nothing and sends nothing.
        self.table.remove(&self.key, &self.flight);
        self.flight.state.send_if_modified(|state| match state {
            State::Running => {
                *state = State::Done(None);
                true
            }
            State::Done(_) => false,
        });
    }
}

impl Waiter {
    /// What the leader published: its encoded value, or `None` when it has nothing to share.
    /// Cancel-safe: dropping the future only stops waiting.
    pub(crate) async fn outcome(mut self) -> Option<Bytes> {
        let state = self
            .state
            .wait_for(|state| matches!(state, State::Done(_)))
            .await;
        match state.as_deref() {
            Ok(State::Done(value)) => value.clone(),
            // The leader vanished without a word (it cannot, but then nothing was published).
            Ok(State::Running) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::LazyLock;
    use std::time::Duration;

    fn leader(join: Join<'_>) -> Leader<'_> {
        match join {
            Join::Leader(l) => l,
            Join::Waiter(_) => panic!("expected to lead"),
        }
    }

    fn waiter(join: Join<'_>) -> Waiter {
        match join {
            Join::Waiter(w) => w,
            Join::Leader(_) => panic!("expected to wait"),
        }
    }

    #[tokio::test]
    async fn waiters_get_the_published_bytes_and_the_entry_goes() {
        let table = FlightTable::default();
        let lead = leader(table.join("k"));
        let w1 = waiter(table.join("k"));
        let w2 = waiter(table.join("k"));
        assert_eq!(lead.waiters(), 2);
        assert_eq!(table.len(), 1);
        lead.publish(Some(Bytes::from_static(b"v")));
        assert_eq!(table.len(), 0);
        assert_eq!(w1.outcome().await.as_deref(), Some(&b"v"[..]));
        assert_eq!(w2.outcome().await.as_deref(), Some(&b"v"[..]));
        // A new caller leads a new flight.
        let _again = leader(table.join("k"));
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_waiters_with_nothing() {
        let table = FlightTable::default();
        let lead = leader(table.join("k"));
        let w = waiter(table.join("k"));
        drop(lead);
        assert_eq!(table.len(), 0);
        assert_eq!(w.outcome().await, None);
    }

    #[tokio::test]
    async fn invalidated_flights_publish_nothing() {
        let table = FlightTable::default();
        let lead = leader(table.join("user:1"));
        let other = leader(table.join("post:1"));
        let wait = waiter(table.join("user:1"));
        assert_eq!(table.invalidate_matching("user:*"), 1);
        assert!(lead.invalidated() && !other.invalidated());
        lead.publish(Some(Bytes::from_static(b"old")));
        assert_eq!(wait.outcome().await, None);
        other.publish(Some(Bytes::from_static(b"new")));
        assert_eq!(table.invalidate_matching("*"), 0);
    }

    #[tokio::test]
    async fn a_closed_flight_takes_no_new_waiters_but_serves_its_own() {
        let table = FlightTable::default();
        let lead = leader(table.join("k"));
        let early = waiter(table.join("k"));
        lead.close();
        let late = leader(table.join("k"));
        lead.publish(Some(Bytes::from_static(b"v")));
        assert_eq!(early.outcome().await.as_deref(), Some(&b"v"[..]));
        assert_eq!(table.len(), 1, "the late caller leads a flight of its own");
        drop(late);
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn keys_are_independent() {
        let table = FlightTable::default();
        let _a = leader(table.join("a"));
        let _b = leader(table.join("b"));
        assert_eq!(table.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_and_panicking_leaders_leave_no_entry() {
        static TABLE: LazyLock<FlightTable> = LazyLock::new(FlightTable::default);
        // Cancelled: the leader's task is aborted while it holds the guard.
        let task = tokio::spawn(async {
            let _lead = leader(TABLE.join("k"));
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        while TABLE.len() == 0 {
            tokio::task::yield_now().await;
        }
        let w = waiter(TABLE.join("k"));
        task.abort();
        assert!(task.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(w.outcome().await, None);
        assert_eq!(TABLE.len(), 0);

        // Panicking: the guard is dropped while unwinding.
        let task = tokio::spawn(async {
            let _lead = leader(TABLE.join("k"));
            tokio::task::yield_now().await;
            panic!("body failed");
        });
        assert!(task.await.is_err_and(|e| e.is_panic()));
        assert_eq!(TABLE.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_callers_one_leader() {
        static TABLE: LazyLock<FlightTable> = LazyLock::new(FlightTable::default);
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                tokio::spawn(async {
                    match TABLE.join("hot") {
                        Join::Leader(lead) => {
                            RUNS.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            lead.publish(Some(Bytes::from_static(b"x")));
                            Some(Bytes::from_static(b"x"))
                        }
                        Join::Waiter(w) => w.outcome().await,
                    }
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.ok().flatten().as_deref(), Some(&b"x"[..]));
        }
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
        assert_eq!(TABLE.len(), 0);
    }
}
