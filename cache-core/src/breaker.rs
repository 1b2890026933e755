//! The circuit breaker between the policy layer and Redis.
//!
//! After `threshold` consecutive connection failures or timeouts it opens: calls then skip Redis
//! at once instead of each paying the socket timeout. A background probe checks Redis every
//! `probe_interval` and closes the breaker when it answers. Command errors (out of memory, wrong
//! type) say nothing about reachability and do not count.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Consecutive-failure counter with an open flag; cheap enough for every call (one relaxed load
/// on the happy path).
#[derive(Debug)]
pub(crate) struct Breaker {
    /// Consecutive failures that open the breaker; 0 disables it.
    threshold: u32,
    probe_interval: Duration,
    failures: AtomicU32,
    open: AtomicBool,
    opened: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, probe_interval: Duration) -> Self {
        Breaker {
            threshold,
            probe_interval,
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    /// True when calls may go to the backend.
    #[inline]
    pub(crate) fn allows(&self) -> bool {
        !self.open.load(Ordering::Relaxed)
    }

    /// Records a call that reached the backend and got an answer.
    #[inline]
    pub(crate) fn on_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Records a connection failure or timeout; true when this one opened the breaker (the caller
    /// then starts the probe).
    pub(crate) fn on_failure(&self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures >= self.threshold && !self.open.swap(true, Ordering::AcqRel) {
            self.opened.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Closes the breaker after a successful probe.
    pub(crate) fn close(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open.store(false, Ordering::Release);
    }

    /// How long the probe waits between checks.
    pub(crate) fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    /// How many times the breaker has opened.
    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// `open` or `closed`, for reports.
    pub(crate) fn state(&self) -> &'static str {
        if self.allows() {
            "closed"
        } else {
            "open"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let b = Breaker::new(3, Duration::from_secs(1));
        assert!(!b.on_failure());
        assert!(!b.on_failure());
        b.on_success();
        assert!(!b.on_failure());
        assert!(!b.on_failure());
        assert!(b.allows());
        assert!(b.on_failure(), "the third consecutive failure opens it");
        assert!(!b.allows());
        assert!(!b.on_failure(), "opening is reported once");
        assert_eq!((b.state(), b.times_opened()), ("open", 1));
        b.close();
        assert!(b.allows());
        assert_eq!(b.state(), "closed");
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let b = Breaker::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert!(!b.on_failure());
        }
        assert!(b.allows());
    }
}
