//! Invalidations that could not reach the backend (down, timed out, skipped by the open
//! breaker), kept until they can be replayed.
//!
//! A lost delete leaves the old value in Redis, and Redis may come back with its data (AOF, a
//! replica promoted): so every failed delete is kept here as a glob pattern (an exact key is
//! kept escaped) and replayed when Redis answers. Until then, reads in this process of a key that
//! a pending pattern matches are misses whose results are not stored. The set is bounded; what
//! does not fit is dropped, counted and logged at error, since it can no longer be guaranteed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cache_keys::pattern::{self, Token};

use crate::backend::Resume;

/// At most this many distinct patterns are kept.
pub(crate) const MAX_PENDING: usize = 10_000;

/// The pending patterns, with a count readable without the lock (the hit path checks it).
///
/// Each pattern carries the number of the failure that last added it, so that a replay that
/// raced with a newer failure of the same pattern does not forget the newer one.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    kept: Mutex<Kept>,
    len: AtomicUsize,
    added: AtomicU64,
}

/// Exact keys apart from patterns, so that a read looks an exact key up at once and matches only
/// the patterns, each parsed once, when it is kept.
#[derive(Debug, Default)]
struct Kept {
    /// Exact keys (kept unescaped) and their numbers.
    exact: HashMap<String, u64>,
    /// Patterns with wildcards, their tokens and their numbers.
    globs: BTreeMap<String, (Vec<Token>, u64)>,
    /// Where the last walk of a pending pattern stopped, for the next try to go on from there.
    stopped: HashMap<String, Resume>,
}

impl Kept {
    fn len(&self) -> usize {
        self.exact.len() + self.globs.len()
    }
}

/// What [`Pending::add`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// Kept (or already covered by a kept pattern).
    Kept,
    /// The set is full: not kept.
    Dropped,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Kept> {
        // Nothing panics while the lock is held, but a poisoned set is still a valid set.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the glob `glob` for replay. Exact patterns already covered by it are folded into it.
    pub(crate) fn add(&self, glob: &str) -> Added {
        let number = self.added.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.lock();
        let added = match pattern::literal_key(glob) {
            Some(key) => {
                if let Some(n) = kept.exact.get_mut(&key) {
                    *n = number;
                    return Added::Kept;
                }
                if kept.len() < MAX_PENDING {
                    kept.exact.insert(key, number);
                    Added::Kept
                } else {
                    Added::Dropped
                }
            }
            None => {
                if let Some((_, n)) = kept.globs.get_mut(glob) {
                    *n = number;
                    return Added::Kept;
                }
                let tokens = pattern::tokens(glob.as_bytes());
                // A wider pattern replaces the exact keys it covers.
                kept.exact
                    .retain(|key, _| !pattern::matches_tokens(&tokens, key.as_bytes()));
                if kept.len() < MAX_PENDING {
                    kept.globs.insert(glob.to_owned(), (tokens, number));
                    Added::Kept
                } else {
                    Added::Dropped
                }
            }
        };
        self.len.store(kept.len(), Ordering::Release);
        added
    }

    /// Keeps the exact key `key` for replay.
    pub(crate) fn add_key(&self, key: &str) -> Added {
        let mut glob = String::with_capacity(key.len() + 4);
        pattern::push_escaped(&mut glob, key);
        self.add(&glob)
    }

    /// How many patterns are pending.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether a pending invalidation covers `key`. One atomic load when nothing is pending; a
    /// look-up of the exact keys and a match of each pattern otherwise.
    #[inline]
    pub(crate) fn covers(&self, key: &str) -> bool {
        if self.len() == 0 {
            return false;
        }
        let kept = self.lock();
        kept.exact.contains_key(key)
            || kept
                .globs
                .values()
                .any(|(tokens, _)| pattern::matches_tokens(tokens, key.as_bytes()))
    }

    /// A copy of the pending patterns with their numbers, for a replay (exact keys escaped).
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        let kept = self.lock();
        let mut all: Vec<(String, u64)> = kept
            .exact
            .iter()
            .map(|(key, n)| (pattern::escape(key), *n))
            .chain(kept.globs.iter().map(|(g, (_, n))| (g.clone(), *n)))
            .collect();
        all.sort_unstable();
        all
    }

    /// Where the last walk of the pending pattern `glob` stopped (taken: a walk that does not
    /// finish gives it back with [`stopped`](Self::stopped)); empty when none did.
    pub(crate) fn resume(&self, glob: &str) -> Resume {
        self.lock().stopped.remove(glob).unwrap_or_default()
    }

    /// Records where a walk of `glob` stopped, while `glob` is pending.
    pub(crate) fn stopped(&self, glob: &str, at: Resume) {
        let mut kept = self.lock();
        if kept.globs.contains_key(glob) {
            kept.stopped.insert(glob.to_owned(), at);
        }
    }

    /// Forgets `glob` after a successful replay, unless it failed again since `number`.
    pub(crate) fn remove(&self, glob: &str, number: u64) {
        let mut kept = self.lock();
        kept.stopped.remove(glob);
        match pattern::literal_key(glob) {
            Some(key) => {
                if kept.exact.get(&key) == Some(&number) {
                    kept.exact.remove(&key);
                }
            }
            None => {
                if kept.globs.get(glob).is_some_and(|(_, n)| *n == number) {
                    kept.globs.remove(glob);
                }
            }
        }
        self.len.store(kept.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_exact_keys_and_patterns() {
        let p = Pending::default();
        assert!(!p.covers("user:1"));
        p.add_key("user:[1]");
        assert!(
            p.covers("user:[1]"),
            "an exact key with glob characters is kept escaped"
        );
        assert!(!p.covers("user:1"));
        p.add("post:*");
        assert!(p.covers("post:9") && !p.covers("user:9"));
        assert_eq!(p.len(), 2);
        let (glob, number) = p
            .snapshot()
            .into_iter()
            .find(|(g, _)| g == "post:*")
            .unwrap();
        p.remove(&glob, number);
        assert!(!p.covers("post:9"));
    }

    #[test]
    fn a_read_against_a_full_set_is_cheap() {
        let p = Pending::default();
        for i in 0..MAX_PENDING - 10 {
            p.add_key(&format!("user:{i}"));
        }
        for i in 0..10 {
            p.add(&format!("post:{i}:*"));
        }
        assert_eq!(p.len(), MAX_PENDING);
        let started = std::time::Instant::now();
        let mut covered = 0;
        for i in 0..1_000 {
            covered += usize::from(p.covers(&format!("user:{}", i * 7)));
            covered += usize::from(p.covers(&format!("other:{i}")));
        }
        let took = started.elapsed();
        println!("2,000 reads against {MAX_PENDING} pending invalidations: {took:?}");
        assert_eq!(covered, 1_000);
        // Every pattern parsed on every read took seconds here; a look-up and ten matches take
        // about a millisecond. Bounded loosely for a loaded machine.
        assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn a_replay_does_not_forget_a_newer_failure() {
        let p = Pending::default();
        p.add("user:*");
        let (glob, number) = p.snapshot().remove(0);
        p.add("user:*"); // failed again while the replay ran
        p.remove(&glob, number);
        assert!(p.covers("user:1"));
    }

    #[test]
    fn a_pattern_folds_the_keys_it_covers_and_the_set_is_bounded() {
        let p = Pending::default();
        for i in 0..100 {
            p.add_key(&format!("user:{i}"));
        }
        p.add_key("post:1");
        assert_eq!(p.len(), 101);
        p.add("user:*");
        let globs: Vec<String> = p.snapshot().into_iter().map(|(g, _)| g).collect();
        assert_eq!(globs, ["post:1", "user:*"]);
        for i in 0..MAX_PENDING {
            p.add_key(&format!("k:{i}"));
        }
        assert_eq!(p.len(), MAX_PENDING);
        assert_eq!(p.add_key("one:more"), Added::Dropped);
        assert_eq!(
            p.add("post:1"),
            Added::Kept,
            "an equal pattern is already kept"
        );
    }
}
