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
//!
//! No wait is unbounded:
//! - **Cycles.** Each flight knows the tokio task that leads it, and a process-wide wait-for graph
//!   says which leaders each task is waiting on. A caller whose wait would close a cycle (task A
//!   leads k1 and waits on k2, whose leader B now calls k1) does not wait: [`Join::Cycle`] tells
//!   it to compute at once, without storing. The check and the caller's edge are made under one
//!   lock, so two tasks crossing at the same moment cannot both miss the cycle. A task waiting on
//!   a flight that another branch of the same task leads (`join!` of two calls for one key) is
//!   not a cycle: that branch runs on. A cycle through two branches of one task can be reported
//!   where there is none; that costs one extra run of a body, never a hang.
//! - **Time.** A wait the graph cannot see (a body that spawns a task calling its own key and
//!   awaits it; a caller outside any tokio task) ends after a bound: four times the body time
//!   measured for the key space in this cache (an EWMA), within [1 s, the lease TTL], and the
//!   lease TTL before the first measurement, so that the cold callers of a slow body still share
//!   one run. Past it the waiter computes for itself, without storing ([`Outcome::TimedOut`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::Id as TaskId;

/// How many times the measured body time a waiter waits before it computes for itself.
const WAIT_FACTOR: u32 = 4;
/// The shortest bound on a wait, however quick the bodies measured: a leader's trip to Redis
/// (its lease, its store) is part of what its waiters wait for.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// The most tasks a cycle check visits; a longer chain is left to the time bound.
const MAX_WALK: usize = 1024;

/// What a leader published: the encoded value, or nothing.
#[derive(Clone, Debug)]
enum State {
    Running,
    /// The value, and, for a value the leader read from Redis rather than stored, when that
    /// read was sent: only the waiters that joined before may take it.
    Done(Option<Bytes>, Option<Instant>),
}

#[derive(Debug)]
struct Flight {
    state: watch::Sender<State>,
    /// Set when an invalidation matched the key while the flight ran.
    invalidated: AtomicBool,
    /// The task that leads the flight; `None` outside a tokio task.
    leader: Option<TaskId>,
}

/// The in-flight keys of one cache, and the body times measured in it.
#[derive(Debug, Default)]
pub(crate) struct FlightTable {
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    /// Per key space, a moving average of how long its bodies took.
    bodies: Mutex<HashMap<&'static str, Duration>>,
}

/// The outcome of [`FlightTable::join`].
#[derive(Debug)]
pub(crate) enum Join<'t> {
    /// Nobody is working on the key: the caller leads.
    Leader(Leader<'t>),
    /// Someone is: wait with [`Waiter::outcome`].
    Waiter(Waiter),
    /// Someone is, but waiting for them would close a cycle of tasks waiting on each other:
    /// compute without waiting (and without storing).
    Cycle,
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
    /// This wait in the wait-for graph, removed when the waiter goes.
    _edge: Option<Edge>,
    /// When it joined the flight.
    joined: Instant,
}

/// What a wait gave.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// What the leader published: its encoded value, or `None` when it has nothing to share.
    Done(Option<Bytes>),
    /// The leader was still running when the bound passed.
    TimedOut,
    /// The leader published a value it read from Redis by a request sent before this waiter
    /// joined: read the cache again rather than take it.
    Late,
}

/// For each task that waits on flights, the tasks leading them (one entry per wait).
static WAITS: LazyLock<Mutex<HashMap<TaskId, Vec<TaskId>>>> = LazyLock::new(Default::default);

fn waits() -> MutexGuard<'static, HashMap<TaskId, Vec<TaskId>>> {
    // Nothing panics while the lock is held, but a poisoned map is still a valid map.
    WAITS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A task waiting on a leader, in [`WAITS`] while it lives.
#[derive(Debug)]
struct Edge {
    waiter: TaskId,
    leader: TaskId,
}

impl Edge {
    /// Adds `waiter -> leader` to the graph, unless `leader` already waits, through any chain,
    /// on `waiter`: then `None`, and nothing is added.
    fn add(waiter: TaskId, leader: TaskId) -> Option<Edge> {
        let mut waits = waits();
        if leader != waiter && reaches(&waits, leader, waiter) {
            return None;
        }
        waits.entry(waiter).or_default().push(leader);
        Some(Edge { waiter, leader })
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let mut waits = waits();
        if let Some(leaders) = waits.get_mut(&self.waiter) {
            if let Some(at) = leaders.iter().position(|l| *l == self.leader) {
                leaders.swap_remove(at);
            }
            if leaders.is_empty() {
                waits.remove(&self.waiter);
            }
        }
    }
}

/// Whether `from` waits, directly or through other tasks, on `to`; visits at most
/// [`MAX_WALK`] tasks (a longer chain counts as none).
fn reaches(waits: &HashMap<TaskId, Vec<TaskId>>, from: TaskId, to: TaskId) -> bool {
    let mut seen = HashSet::new();
    let mut next = vec![from];
    while let Some(task) = next.pop() {
        if task == to {
            return true;
        }
        if seen.len() >= MAX_WALK {
            return false;
        }
        if seen.insert(task) {
            next.extend(waits.get(&task).into_iter().flatten().copied());
        }
    }
    false
}

impl FlightTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        // Nothing panics while the lock is held, but a poisoned map is still a valid map.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leads `key` if nobody does, or waits for the one who does, unless that would close a
    /// cycle of waits.
    pub(crate) fn join(&self, key: &str) -> Join<'_> {
        let me = tokio::task::try_id();
        let mut flights = self.lock();
        if let Some(flight) = flights.get(key) {
            let state = flight.state.subscribe();
            let leader = flight.leader;
            drop(flights);
            let edge = match (me, leader) {
                (Some(me), Some(leader)) => match Edge::add(me, leader) {
                    Some(edge) => Some(edge),
                    None => return Join::Cycle,
                },
                _ => None,
            };
            return Join::Waiter(Waiter {
                state,
                _edge: edge,
                joined: Instant::now(),
            });
        }
        let flight = Arc::new(Flight {
            state: watch::Sender::new(State::Running),
            invalidated: AtomicBool::new(false),
            leader: me,
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

    fn bodies(&self) -> MutexGuard<'_, HashMap<&'static str, Duration>> {
        self.bodies.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that a body of key space `space` took `took`.
    pub(crate) fn record_body(&self, space: &'static str, took: Duration) {
        let mut bodies = self.bodies();
        let average = bodies.entry(space).or_insert(took);
        // Each new time counts for a quarter: one slow run moves the bound, but does not set it.
        *average = (*average * 3 + took) / 4;
    }

    /// The longest a caller of key space `space` waits for another caller's computation: see
    /// the module docs. `ceiling` is the lease TTL.
    pub(crate) fn wait_bound(&self, space: &'static str, ceiling: Duration) -> Duration {
        match self.bodies().get(space) {
            Some(average) => (*average * WAIT_FACTOR).clamp(MIN_WAIT.min(ceiling), ceiling),
            None => ceiling,
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
        self.end(value, None);
    }

    /// Ends the flight with a value read from Redis by a request sent at `sent`, rather than one
    /// this leader stored: the waiters that joined after `sent` are told to read again
    /// ([`Outcome::Late`]). That read may have run before an invalidation (in another process)
    /// that returned before they joined.
    pub(crate) fn publish_read(self, value: Bytes, sent: Instant) {
        self.end(Some(value), Some(sent));
    }

    fn end(self, value: Option<Bytes>, read_sent: Option<Instant>) {
        self.close();
        let value = value.filter(|_| !self.invalidated());
        self.flight
            .state
            .send_replace(State::Done(value, read_sent));
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
                *state = State::Done(None, None);
                true
            }
            State::Done(..) => false,
        });
    }
}

impl Waiter {
    /// What the leader published, or [`Outcome::TimedOut`] when it has not after `bound`.
    /// Cancel-safe: dropping the future only stops waiting.
    pub(crate) async fn outcome(mut self, bound: Duration) -> Outcome {
        let joined = self.joined;
        let done = self
            .state
            .wait_for(|state| matches!(state, State::Done(..)));
        match tokio::time::timeout(bound, done).await {
            Ok(Ok(state)) => match &*state {
                State::Done(Some(_), Some(sent)) if joined > *sent => Outcome::Late,
                State::Done(value, _) => Outcome::Done(value.clone()),
                State::Running => Outcome::Done(None),
            },
            // The leader vanished without a word (it cannot, but then nothing was published).
            Ok(Err(_)) => Outcome::Done(None),
            Err(_) => Outcome::TimedOut,
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
            other => panic!("expected to lead: {other:?}"),
        }
    }

    fn waiter(join: Join<'_>) -> Waiter {
        match join {
            Join::Waiter(w) => w,
            other => panic!("expected to wait: {other:?}"),
        }
    }

    /// What the leader published, within a minute.
    async fn done(waiter: Waiter) -> Option<Bytes> {
        match waiter.outcome(Duration::from_secs(60)).await {
            Outcome::Done(value) => value,
            Outcome::TimedOut => panic!("the leader published nothing within a minute"),
            Outcome::Late => panic!("a value read before the waiter joined"),
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
        assert_eq!(done(w1).await.as_deref(), Some(&b"v"[..]));
        assert_eq!(done(w2).await.as_deref(), Some(&b"v"[..]));
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
        assert_eq!(done(w).await, None);
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
        assert_eq!(done(wait).await, None);
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
        assert_eq!(done(early).await.as_deref(), Some(&b"v"[..]));
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
        assert_eq!(done(w).await, None);
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
                        Join::Waiter(w) => done(w).await,
                        Join::Cycle => panic!("no cycle here"),
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

    /// Two tasks that each lead a key and then call the other's: the second to join sees the
    /// cycle instead of waiting, and once it has gone the graph is empty again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crossed_waits_are_a_cycle() {
        static TABLE: LazyLock<FlightTable> = LazyLock::new(FlightTable::default);
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let (first, second) = (Arc::clone(&barrier), barrier);
        let a = tokio::spawn(async move {
            let lead = leader(TABLE.join("k1"));
            first.wait().await;
            // k2 is B's: A waits for it (B sees the cycle, so B never waits on A).
            let value = done(waiter(TABLE.join("k2"))).await;
            lead.publish(Some(Bytes::from_static(b"a")));
            value
        });
        let b = tokio::spawn(async move {
            let lead = leader(TABLE.join("k2"));
            second.wait().await;
            // Give A the time to start waiting on k2.
            while waits().is_empty() {
                tokio::task::yield_now().await;
            }
            let cycle = matches!(TABLE.join("k1"), Join::Cycle);
            lead.publish(Some(Bytes::from_static(b"b")));
            cycle
        });
        assert!(b.await.unwrap(), "B's call for k1 closes the cycle");
        assert_eq!(a.await.unwrap().as_deref(), Some(&b"b"[..]));
        assert!(waits().is_empty(), "every edge went with its waiter");
    }

    /// A task waiting on a flight that another branch of the same task leads waits: it is
    /// not a cycle, and that branch publishes.
    #[tokio::test]
    async fn a_sibling_branch_is_not_a_cycle() {
        let table = FlightTable::default();
        let value = tokio::spawn(async move {
            let lead = leader(table.join("k"));
            let wait = waiter(table.join("k"));
            let publish = async move { lead.publish(Some(Bytes::from_static(b"v"))) };
            let (value, ()) = tokio::join!(done(wait), publish);
            value
        })
        .await
        .unwrap();
        assert_eq!(value.as_deref(), Some(&b"v"[..]));
    }

    /// A value the leader read (another process stored it) goes only to the waiters that
    /// joined before the read was sent; a value it stored goes to every waiter.
    #[tokio::test]
    async fn a_read_value_goes_only_to_the_waiters_that_joined_before_the_read() {
        let table = FlightTable::default();
        let lead = leader(table.join("k"));
        let early = waiter(table.join("k"));
        let sent = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let late = waiter(table.join("k"));
        lead.publish_read(Bytes::from_static(b"read"), sent);
        assert_eq!(done(early).await.as_deref(), Some(&b"read"[..]));
        assert!(
            matches!(late.outcome(Duration::from_secs(60)).await, Outcome::Late),
            "it may predate what the late waiter saw return"
        );

        let lead = leader(table.join("k"));
        let w = waiter(table.join("k"));
        lead.publish(Some(Bytes::from_static(b"stored")));
        assert_eq!(done(w).await.as_deref(), Some(&b"stored"[..]));
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_bound() {
        let table = FlightTable::default();
        let _lead = leader(table.join("k"));
        let wait = waiter(table.join("k"));
        let started = std::time::Instant::now();
        assert!(matches!(
            wait.outcome(Duration::from_millis(200)).await,
            Outcome::TimedOut
        ));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn the_bound_follows_the_measured_body_time() {
        let table = FlightTable::default();
        let ttl = Duration::from_secs(10);
        assert_eq!(table.wait_bound("s", ttl), ttl, "unmeasured: the lease TTL");
        table.record_body("s", Duration::from_millis(500));
        assert_eq!(table.wait_bound("s", ttl), Duration::from_secs(2));
        table.record_body("q", Duration::from_millis(1));
        assert_eq!(
            table.wait_bound("q", ttl),
            MIN_WAIT,
            "never below the floor"
        );
        for _ in 0..20 {
            table.record_body("s", Duration::from_secs(30));
        }
        assert_eq!(table.wait_bound("s", ttl), ttl, "never above the lease TTL");
        assert_eq!(
            table.wait_bound("q", Duration::from_millis(300)),
            Duration::from_millis(300),
            "a lease TTL below the floor wins"
        );
    }
}
