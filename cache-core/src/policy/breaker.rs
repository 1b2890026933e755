//! The circuit breaker between the policy layer and Redis.
//!
//! - **Closed**: calls go to Redis. `threshold` consecutive connection failures open it, and so
//!   does one timeout: a call that timed out cost a full socket timeout, and the next would too.
//!   Command errors (out of memory, wrong type) say nothing about reachability and do not count.
//! - **Open**: calls skip Redis at once instead of each paying the socket timeout. A background
//!   probe checks Redis every `probe_interval`; when it answers, the breaker half-opens.
//! - **Half-open**: at most [`TRIAL_CALLS`] calls at a time go through as trials; the others still
//!   skip Redis. [`SUCCESSES_TO_CLOSE`] successful trials close it; one connection failure opens it
//!   again. Probes do not close it: a Redis that answers PING may still fail the calls that
//!   matter, and only those calls can tell. So a sick Redis costs a handful of calls per probe,
//!   not every pending caller, and the breaker does not flap.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use crate::telemetry;

/// How many calls may be in flight as trials while half-open.
pub(crate) const TRIAL_CALLS: u32 = 4;
/// How many successes in a row close a half-open breaker.
pub(crate) const SUCCESSES_TO_CLOSE: u32 = 3;

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The breaker's state in atomics: one relaxed load on the happy path.
#[derive(Debug)]
pub(crate) struct Breaker {
    /// Consecutive failures that open the breaker; 0 disables it.
    threshold: u32,
    probe_interval: Duration,
    state: AtomicU8,
    /// Consecutive failures while closed.
    failures: AtomicU32,
    /// Trials in flight in the current half-open phase.
    trials: AtomicU32,
    /// Counts the half-open phases, so that a trial of an earlier phase that ends late does not
    /// free a slot of the current one.
    phase: AtomicU32,
    /// Successes since the breaker half-opened.
    successes: AtomicU32,
    opened: AtomicU64,
}

/// How a call that went to Redis ended, as far as reachability goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Redis answered, even with an error.
    Answered,
    /// The connection failed (refused, reset, not connected).
    Failed,
    /// No answer within the socket timeout.
    TimedOut,
}

/// Whether a call may go to Redis, and as what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: go ahead.
    Call,
    /// Half-open: go ahead as one of the trials of this phase.
    Trial(u32),
    /// Open, or half-open with every trial slot taken: skip Redis.
    Skip,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, probe_interval: Duration) -> Self {
        Breaker {
            threshold,
            probe_interval,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            trials: AtomicU32::new(0),
            phase: AtomicU32::new(0),
            successes: AtomicU32::new(0),
            opened: AtomicU64::new(0),
        }
    }

    /// Whether a call may go to the backend now.
    #[inline]
    pub(crate) fn admit(&self) -> Admission {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Admission::Call,
            HALF_OPEN => {
                let phase = self.phase.load(Ordering::Acquire);
                let taken = self.trials.fetch_add(1, Ordering::AcqRel);
                if taken < TRIAL_CALLS {
                    Admission::Trial(phase)
                } else {
                    self.release_trial();
                    Admission::Skip
                }
            }
            _ => Admission::Skip,
        }
    }

    /// Records how a call that went to Redis ended. True when this call opened the breaker (the
    /// caller then wakes the probe).
    pub(crate) fn record(&self, admission: Admission, outcome: Outcome) -> bool {
        if let Admission::Trial(phase) = admission {
            if phase == self.phase.load(Ordering::Acquire) {
                self.release_trial();
            }
        }
        match outcome {
            Outcome::Answered => {
                self.on_success();
                false
            }
            Outcome::Failed => self.on_failure(1),
            Outcome::TimedOut => self.on_failure(self.threshold),
        }
    }

    /// Gives a trial slot back (never below zero: a probe may have reset the count meanwhile).
    fn release_trial(&self) {
        let _ = self
            .trials
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1));
    }

    fn on_success(&self) {
        match self.state.load(Ordering::Acquire) {
            CLOSED if self.failures.load(Ordering::Relaxed) != 0 => {
                self.failures.store(0, Ordering::Relaxed);
            }
            HALF_OPEN
                if self.successes.fetch_add(1, Ordering::AcqRel) + 1 >= SUCCESSES_TO_CLOSE =>
            {
                self.close();
            }
            _ => {}
        }
    }

    /// Counts `weight` failures.
    fn on_failure(&self, weight: u32) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let reopen = self
            .state
            .compare_exchange(HALF_OPEN, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if reopen {
            self.note_opened();
            return true;
        }
        let failures = self
            .failures
            .fetch_add(weight, Ordering::Relaxed)
            .saturating_add(weight);
        if failures >= self.threshold
            && self
                .state
                .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.note_opened();
            return true;
        }
        false
    }

    /// A probe got an answer: an open breaker half-opens (a half-open one waits for its trials).
    pub(crate) fn probe_succeeded(&self) {
        if self
            .state
            .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.successes.store(0, Ordering::Release);
            self.trials.store(0, Ordering::Release);
            self.phase.fetch_add(1, Ordering::AcqRel);
            telemetry::breaker(1);
        }
    }

    /// A probe failed: a half-open breaker opens again.
    pub(crate) fn probe_failed(&self) {
        if self
            .state
            .compare_exchange(HALF_OPEN, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.note_opened();
        }
    }

    /// Closes the breaker: calls go to Redis again.
    pub(crate) fn close(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.state.store(CLOSED, Ordering::Release);
        telemetry::breaker(0);
    }

    /// Counts an opening, and says so in the `cache_breaker_state` gauge.
    fn note_opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        telemetry::breaker(2);
    }

    /// True unless the breaker is closed (the probe keeps running).
    pub(crate) fn is_tripped(&self) -> bool {
        self.state.load(Ordering::Acquire) != CLOSED
    }

    /// True while calls skip Redis altogether (open, not half-open).
    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    /// How long the probe waits between checks.
    pub(crate) fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    /// How many times the breaker has opened.
    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// `closed`, `open` or `half-open`, for reports.
    pub(crate) fn state(&self) -> &'static str {
        match self.state.load(Ordering::Acquire) {
            CLOSED => "closed",
            HALF_OPEN => "half-open",
            _ => "open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(b: &Breaker) -> bool {
        let admission = b.admit();
        b.record(admission, Outcome::Failed)
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let b = Breaker::new(3, Duration::from_secs(1));
        assert!(!fail(&b));
        assert!(!fail(&b));
        b.record(b.admit(), Outcome::Answered);
        assert!(!fail(&b));
        assert!(!fail(&b));
        assert_eq!(b.admit(), Admission::Call);
        assert!(
            b.record(Admission::Call, Outcome::Failed),
            "the third consecutive failure opens it"
        );
        assert_eq!(b.admit(), Admission::Skip);
        assert!(
            !b.record(Admission::Call, Outcome::Failed),
            "opening is reported once"
        );
        assert_eq!((b.state(), b.times_opened()), ("open", 1));
    }

    #[test]
    fn half_open_admits_a_few_trials_and_closes_after_successes() {
        let b = Breaker::new(1, Duration::from_secs(1));
        assert!(fail(&b));
        b.probe_succeeded();
        assert_eq!(b.state(), "half-open");
        let trials: Vec<Admission> = (0..TRIAL_CALLS + 2).map(|_| b.admit()).collect();
        assert_eq!(
            trials
                .iter()
                .filter(|a| matches!(a, Admission::Trial(_)))
                .count(),
            TRIAL_CALLS as usize,
            "only {TRIAL_CALLS} trials at a time: {trials:?}"
        );
        for trial in trials.iter().take(SUCCESSES_TO_CLOSE as usize) {
            b.record(*trial, Outcome::Answered);
        }
        assert_eq!(b.state(), "closed");
        assert_eq!(b.admit(), Admission::Call);
    }

    #[test]
    fn a_failed_trial_or_probe_reopens() {
        let b = Breaker::new(1, Duration::from_secs(1));
        assert!(fail(&b));
        b.probe_succeeded();
        let trial = b.admit();
        assert!(matches!(trial, Admission::Trial(_)));
        let late = b.admit();
        assert!(
            b.record(trial, Outcome::Failed),
            "a failed trial reopens, and says so"
        );
        assert_eq!((b.state(), b.times_opened()), ("open", 2));
        b.probe_succeeded();
        // A trial of the earlier phase that ends now frees no slot of this one.
        let taken: Vec<Admission> = (0..TRIAL_CALLS).map(|_| b.admit()).collect();
        assert!(taken.iter().all(|a| matches!(a, Admission::Trial(_))));
        b.record(late, Outcome::TimedOut);
        assert_eq!(
            b.admit(),
            Admission::Skip,
            "still {TRIAL_CALLS} trials in flight"
        );
        b.probe_failed();
        assert_eq!((b.state(), b.times_opened()), ("open", 3));
        // Probes alone do not close it: only calls that succeed do.
        for _ in 0..=SUCCESSES_TO_CLOSE {
            b.probe_succeeded();
        }
        assert_eq!(b.state(), "half-open");
    }

    #[test]
    fn one_timeout_opens_it() {
        let b = Breaker::new(5, Duration::from_secs(1));
        assert!(b.record(b.admit(), Outcome::TimedOut));
        assert_eq!(b.admit(), Admission::Skip);
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let b = Breaker::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert!(!fail(&b));
        }
        assert_eq!(b.admit(), Admission::Call);
    }
}
