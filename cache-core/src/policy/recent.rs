//! The invalidations this cache made in the last `CACHE_REPLAY_WINDOW`, kept so that they can be
//! made again when Redis may have lost them.
//!
//! An invalidation that Redis acknowledged can still be undone: a restart from a snapshot taken
//! before it, an AOF that lost its last second, a replica promoted before it received it (see
//! `backend/redis/lineage.rs`, which notices). Each acknowledged invalidation is recorded here, as
//! a glob (an exact key escaped), with the time it returned. When a node turns out to be another
//! incarnation, every entry still within the window goes to the pending set, which makes the keys
//! it covers misses in this process and replays it, exactly as for a delete that never reached
//! Redis.
//!
//! Bounded in time (entries older than the window are dropped as new ones come) and in count
//! ([`MAX_RECENT`]; past it the oldest entry is dropped before its window ends, and counted).
//! Invalidations made by processes that have since exited are in no log: they are not replayed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// At most this many invalidations are remembered.
pub(crate) const MAX_RECENT: usize = 10_000;

/// The recent invalidations of one cache.
#[derive(Debug)]
pub(crate) struct Recent {
    window: Duration,
    log: Mutex<Log>,
}

/// Each glob with the time of its newest invalidation, and the same in order of time. An entry
/// of `order` whose glob was invalidated again since is left where it is and skipped (its time
/// is not the glob's newest); `order` is compacted when such entries are more than half of it.
#[derive(Debug, Default)]
struct Log {
    newest: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl Log {
    /// Whether `entry` is its glob's newest invalidation.
    fn current(&self, (at, glob): &(Instant, String)) -> bool {
        self.newest.get(glob) == Some(at)
    }

    /// Drops the oldest entry that is current; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        while let Some(entry) = self.order.pop_front() {
            if self.current(&entry) {
                self.newest.remove(&entry.1);
                return true;
            }
        }
        false
    }

    /// Drops the entries older than `window`.
    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > window)
        {
            self.drop_oldest();
        }
    }
}

impl Recent {
    /// Remembers invalidations for `window` (zero: none).
    pub(crate) fn new(window: Duration) -> Self {
        Recent {
            window,
            log: Mutex::new(Log::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // Nothing panics while the lock is held, but a poisoned log is still a valid log.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the invalidation of the glob `glob`, made now; how many other globs had to be
    /// forgotten before their window ended to make room (0 or 1).
    pub(crate) fn record(&self, glob: &str) -> u64 {
        if self.window.is_zero() {
            return 0;
        }
        let now = Instant::now();
        let mut log = self.lock();
        log.expire(now, self.window);
        let mut evicted = 0;
        if !log.newest.contains_key(glob) && log.newest.len() >= MAX_RECENT && log.drop_oldest() {
            evicted = 1;
        }
        log.newest.insert(glob.to_owned(), now);
        log.order.push_back((now, glob.to_owned()));
        if log.order.len() > 2 * log.newest.len() + 64 {
            let Log { newest, order } = &mut *log;
            order.retain(|(at, g)| newest.get(g) == Some(at));
        }
        evicted
    }

    /// The globs invalidated within the window, oldest first.
    pub(crate) fn within_window(&self) -> Vec<String> {
        let mut log = self.lock();
        log.expire(Instant::now(), self.window);
        log.order
            .iter()
            .filter(|entry| log.current(entry))
            .map(|(_, glob)| glob.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_window_newest_last_and_each_glob_once() {
        let recent = Recent::new(Duration::from_millis(200));
        recent.record("user:*");
        recent.record("post:1");
        recent.record("user:*");
        assert_eq!(recent.within_window(), ["post:1", "user:*"]);
        std::thread::sleep(Duration::from_millis(250));
        assert!(recent.within_window().is_empty(), "past the window");
        assert!(Recent::new(Duration::ZERO).within_window().is_empty());
        assert_eq!(Recent::new(Duration::ZERO).record("a"), 0);
    }

    #[test]
    fn is_bounded_in_count() {
        let recent = Recent::new(Duration::from_secs(60));
        let evicted: u64 = (0..MAX_RECENT + 5)
            .map(|i| recent.record(&format!("k:{i}")))
            .sum();
        assert_eq!(evicted, 5);
        let kept = recent.within_window();
        assert_eq!(kept.len(), MAX_RECENT);
        assert_eq!(kept[0], "k:5", "the oldest went first");
    }

    #[test]
    fn a_hot_glob_takes_one_entry() {
        let recent = Recent::new(Duration::from_secs(60));
        recent.record("cold");
        for _ in 0..10_000 {
            recent.record("hot:*");
        }
        assert_eq!(recent.within_window(), ["cold", "hot:*"]);
        assert!(recent.lock().order.len() <= 2 * 2 + 64 + 1);
    }
}
