//! The commands in flight on each connection of a pool: how many, to pick the connection for the
//! next command, and since when, so that one watchdog per pool bounds them all by the socket
//! timeout.
//!
//! fred can bound each command itself (its per-command `timeout` option), but it arms a tokio
//! timer per command to do so: about 700 of the ~1,500 instructions a cached hit cost over a bare
//! GET (callgrind of cache-bench's `hit_load`). Instead, a command here stamps a slot with its
//! start time and leaves its waker there, and a watchdog that wakes a few dozen times per socket
//! timeout looks for stamps that are too old. It marks each such slot and wakes its command,
//! which gives up with a timeout; and since a command past the timeout means its connection is
//! stuck (a frozen server, a socket left half-open by a partition), the pool replaces its
//! connections.
//!
//! The watchdog also fails at once the commands in flight on a connection that fred reports
//! disconnected: a command handed to fred just before its connection closed (Redis killed,
//! restarted) waits in fred's queue while fred reconnects, and without this it would wait out
//! the whole socket timeout, holding its caller, with the breaker still closed.
//!
//! A command that finds no free slot (all 256 taken on one connection) falls back to fred's own
//! timer.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::Weak;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

/// Stamps per connection: four times the load at which a pool spills onto its next connection.
const SLOTS: usize = 256;
/// A slot no command holds.
const FREE: u64 = 0;
/// A slot whose command the watchdog found past the timeout.
const EXPIRED: u64 = u64::MAX;
/// A slot whose command the watchdog failed because its connection is down.
const LOST: u64 = u64::MAX - 1;

/// The commands in flight on the connections of one pool.
pub(crate) struct InFlight {
    /// The origin of the stamps.
    origin: Instant,
    timeout: Duration,
    connections: Box<[Connection]>,
}

/// The commands in flight on one connection.
struct Connection {
    count: AtomicUsize,
    slots: Box<[Slot]>,
}

/// Where one watched command waits; one cache line each, so that commands finishing on two
/// threads do not contend for neighbouring slots.
#[repr(align(64))]
struct Slot {
    /// The command's start, in microseconds after `origin` (at least 1, so that no start is
    /// [`FREE`]); or [`FREE`], [`EXPIRED`] or [`LOST`].
    stamp: AtomicU64,
    /// Wakes the command when the watchdog expires it.
    waker: AtomicWaker,
}

/// One command in flight, counted and (when a slot was free) watched until dropped.
pub(crate) struct Ticket<'a> {
    connection: &'a Connection,
    slot: Option<&'a Slot>,
}

/// Why the watchdog ended a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// It was in flight longer than the socket timeout.
    Timeout,
    /// Its connection is down.
    Lost,
}

impl InFlight {
    /// Nothing in flight on `connections` connections whose commands must answer within `timeout`.
    pub(crate) fn new(connections: usize, timeout: Duration) -> Self {
        let connections = (0..connections)
            .map(|_| Connection {
                count: AtomicUsize::new(0),
                slots: (0..SLOTS)
                    .map(|_| Slot {
                        stamp: AtomicU64::new(FREE),
                        waker: AtomicWaker::new(),
                    })
                    .collect(),
            })
            .collect();
        InFlight {
            origin: Instant::now(),
            timeout,
            connections,
        }
    }

    /// How many commands are in flight on connection `i`.
    pub(crate) fn load(&self, i: usize) -> usize {
        self.connections[i].count.load(Relaxed)
    }

    /// Counts a command on connection `i` and stamps a free slot with its start.
    pub(crate) fn start(&self, i: usize) -> Ticket<'_> {
        let connection = &self.connections[i];
        connection.count.fetch_add(1, Relaxed);
        let hint = next_hint();
        let now = self.now();
        // Usually the first slot tried is free; the walk goes on through every slot (two threads
        // whose walks meet would otherwise both find their few tries taken, and fall back to the
        // timer, which a lost connection does not end early).
        let slot = (0..SLOTS)
            .map(|p| &connection.slots[hint.wrapping_add(p) % SLOTS])
            .find(|slot| {
                slot.stamp
                    .compare_exchange(FREE, now, Relaxed, Relaxed)
                    .is_ok()
            });
        Ticket { connection, slot }
    }

    /// Ends and wakes the commands that have been in flight longer than the timeout
    /// ([`Expired::Timeout`]) and those on a connection that `down(i)` says is disconnected
    /// ([`Expired::Lost`]); whether any timed out.
    pub(crate) fn expire_overdue(&self, down: impl Fn(usize) -> bool) -> bool {
        let now = self.now();
        let limit = u64::try_from(self.timeout.as_micros()).unwrap_or(u64::MAX);
        let mut timed_out = false;
        for (i, connection) in self.connections.iter().enumerate() {
            if connection.count.load(Relaxed) == 0 {
                continue;
            }
            let lost = down(i);
            for slot in connection.slots.iter() {
                let stamp = slot.stamp.load(Relaxed);
                if stamp == FREE || stamp == EXPIRED || stamp == LOST {
                    continue;
                }
                let end = if now.saturating_sub(stamp) > limit {
                    EXPIRED
                } else if lost {
                    LOST
                } else {
                    continue;
                };
                if slot
                    .stamp
                    .compare_exchange(stamp, end, AcqRel, Relaxed)
                    .is_ok()
                {
                    slot.waker.wake();
                    timed_out |= end == EXPIRED;
                }
            }
        }
        timed_out
    }

    /// Now as a stamp: never [`FREE`], [`LOST`] nor [`EXPIRED`].
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .clamp(FREE + 1, LOST - 1)
    }
}

impl Ticket<'_> {
    /// Whether the watchdog bounds this command (otherwise it needs a timer of its own).
    pub(crate) fn watched(&self) -> bool {
        self.slot.is_some()
    }

    /// Awaits the command that `send` sends, unless the watchdog expires this ticket first.
    ///
    /// The command is made here, in place: a future passed by value would be copied into each
    /// future that awaits it, and fred's are large.
    pub(crate) async fn watch<F: Future>(
        &self,
        send: impl FnOnce() -> F,
    ) -> Result<F::Output, Expired> {
        let mut command = std::pin::pin!(send());
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = command.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            if let Some(slot) = self.slot {
                // Registered before the check, so that an expiry in between still wakes us.
                slot.waker.register(cx.waker());
                match slot.stamp.load(Acquire) {
                    EXPIRED => return Poll::Ready(Err(Expired::Timeout)),
                    LOST => return Poll::Ready(Err(Expired::Lost)),
                    _ => {}
                }
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            drop(slot.waker.take());
            slot.stamp.store(FREE, Release);
        }
        self.connection.count.fetch_sub(1, Relaxed);
    }
}

/// Where this thread tries for a free slot next: each thread walks the slots round robin from
/// its own starting point, so that the slot it finds was most likely freed long ago and no two
/// threads race for it (a shared counter would be one more contended write per command).
fn next_hint() -> usize {
    thread_local! {
        static NEXT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    NEXT.with(|next| {
        let mut hint = next.get();
        if hint == usize::MAX {
            // A starting point that differs between threads: where this thread's cell lives.
            hint = (next as *const std::cell::Cell<usize> as usize) >> 6;
        }
        next.set(hint.wrapping_add(1) % (SLOTS * 1024));
        hint
    })
}

/// How often the watchdog of a pool with this socket timeout looks: a fiftieth of it, so that a
/// stuck command fails within 2% of the timeout, between 2 ms and 50 ms.
pub(crate) fn tick(timeout: Duration) -> Duration {
    (timeout / 50).clamp(Duration::from_millis(2), Duration::from_millis(50))
}

/// Runs the watchdog of `in_flight` on the current runtime until the pool is dropped: each
/// tick, ends the commands past the timeout or on a connection that `down(i)` says is
/// disconnected and, when any timed out, calls `stuck`.
pub(crate) fn watch(
    in_flight: Weak<InFlight>,
    every: Duration,
    down: impl Fn(usize) -> bool + Send + 'static,
    stuck: impl Fn() + Send + 'static,
) {
    drop(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let Some(in_flight) = in_flight.upgrade() else {
                return;
            };
            if in_flight.expire_overdue(&down) {
                stuck();
            }
        }
    }));
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn a_ticket_counts_and_frees_its_slot() {
        let in_flight = InFlight::new(2, Duration::from_secs(1));
        let first = in_flight.start(1);
        let second = in_flight.start(1);
        assert_eq!((in_flight.load(0), in_flight.load(1)), (0, 2));
        assert!(first.watched() && second.watched());
        drop(first);
        drop(second);
        assert_eq!(in_flight.load(1), 0);
        let stamped = in_flight.connections[1]
            .slots
            .iter()
            .filter(|s| s.stamp.load(Relaxed) != FREE)
            .count();
        assert_eq!(stamped, 0);
    }

    #[tokio::test]
    async fn only_commands_past_the_timeout_expire_and_wake() {
        let in_flight = InFlight::new(1, Duration::from_millis(30));
        let old = in_flight.start(0);
        let waiting = old.watch(std::future::pending::<()>);
        let mut waiting = std::pin::pin!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none());
        std::thread::sleep(Duration::from_millis(40));
        let young = in_flight.start(0);
        assert!(in_flight.expire_overdue(|_| false));
        // Woken, and done with a timeout.
        assert!(matches!(waiting.await, Err(Expired::Timeout)));
        assert!(matches!(young.watch(|| async { 7 }).await, Ok(7)));
        // Expired once: a second look finds nothing new.
        assert!(!in_flight.expire_overdue(|_| false));
    }

    #[tokio::test]
    async fn commands_on_a_lost_connection_end_at_once() {
        let in_flight = InFlight::new(2, Duration::from_secs(60));
        let on_lost = in_flight.start(0);
        let on_live = in_flight.start(1);
        let lost = on_lost.watch(std::future::pending::<()>);
        let mut live = std::pin::pin!(on_live.watch(std::future::pending::<()>));
        // Not a timeout: the stuck callback is not due.
        assert!(!in_flight.expire_overdue(|i| i == 0));
        assert!(matches!(lost.await, Err(Expired::Lost)));
        assert!(live.as_mut().now_or_never().is_none());
    }

    #[test]
    fn a_full_connection_falls_back_to_a_timer() {
        let in_flight = InFlight::new(1, Duration::from_secs(1));
        let tickets: Vec<Ticket<'_>> = (0..SLOTS).map(|_| in_flight.start(0)).collect();
        assert!(tickets.iter().all(Ticket::watched));
        let extra = in_flight.start(0);
        assert!(!extra.watched());
        assert_eq!(in_flight.load(0), SLOTS + 1);
    }

    #[test]
    fn the_tick_is_a_fiftieth_of_the_timeout_within_bounds() {
        assert_eq!(tick(Duration::from_secs(1)), Duration::from_millis(20));
        assert_eq!(tick(Duration::from_secs(5)), Duration::from_millis(50));
        assert_eq!(tick(Duration::from_millis(50)), Duration::from_millis(2));
    }
}
