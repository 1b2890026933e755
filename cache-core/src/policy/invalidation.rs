//! Deletes and invalidation, and the replay of the ones that could not reach the backend.
//!
//! A delete is idempotent, and a lost one leaves a stale value behind: a failed one is tried
//! again after [`RETRY_PAUSES`] (not after a timeout or with the breaker open: Redis is sick, and
//! the call must not pay another timeout), then kept in the [pending set](super::pending) and
//! replayed by the background task as soon as Redis answers. That happens whatever the failure
//! policy: failing loudly, the caller also gets the error.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;
use tracing::Instrument as _;

use cache_keys::pattern;

use super::pending::Added;
use super::Policy;
use crate::backend::{Backend, Resume};
use crate::error::CacheError;
use crate::stats::{Event, ShutdownReport};
use crate::telemetry::{self, At};

/// Pauses before the second and third tries of a failed delete.
const RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(100)];

/// Whether a failed delete is worth another try now.
fn retryable<T>(result: &Result<T, CacheError>) -> bool {
    matches!(
        result,
        Err(e) if !matches!(
            e,
            CacheError::CircuitOpen
                | CacheError::Timeout(_)
                | CacheError::InvalidPattern { .. }
                | CacheError::Incomplete { .. }
                | CacheError::NotDurable(_)
        )
    )
}

/// Refuses malformed patterns and patterns that match every key (emptying the cache takes
/// `clear_all`, or `allow_all` on the attribute).
pub(crate) fn check_pattern(glob: &str) -> Result<(), CacheError> {
    let invalid = |reason: String| CacheError::InvalidPattern {
        pattern: glob.to_owned(),
        reason,
    };
    pattern::validate(glob).map_err(|e| invalid(e.to_string()))?;
    if pattern::matches_everything(glob) {
        return Err(invalid(
            "it matches every key; call clear_all() to empty the cache on purpose".to_owned(),
        ));
    }
    Ok(())
}

impl Policy {
    /// Removes `keys`; how many existed.
    pub(crate) async fn delete_keys(&self, keys: &[&str]) -> Result<u64, CacheError> {
        let Some(store) = &self.store else {
            tokio::task::coop::consume_budget().await;
            return Ok(0);
        };
        // The backend's future on the heap: an invalidation is awaited inside the caller's own
        // future (an `#[invalidate_cache]` body's), whose type would otherwise nest every level
        // down to fred's, past rustc's default query depth in a user's crate.
        let delete =
            retried(|| self.guarded(store, |s| async move { Box::pin(s.delete(keys)).await }));
        let result = crate::runtime::anywhere!(self, delete);
        let at = At::of_keys(keys);
        match result {
            Ok(removed) => {
                self.count(Event::Delete, at, removed);
                for key in keys {
                    self.remember(&pattern::escape(key), At::Key(key));
                }
                Ok(removed)
            }
            Err(error) => {
                for key in keys {
                    self.keep(self.pending.add_key(key), At::Key(key), &error);
                }
                self.count_failure("delete", at, &error);
                self.settle(Err(error), 0)
            }
        }
    }

    /// Removes every key matching the (checked) glob `pattern`; how many were removed.
    pub(crate) async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let Some(store) = &self.store else {
            tokio::task::coop::consume_budget().await;
            return Ok(0);
        };
        // Where the walk stopped, when it did not finish: the replay goes on from there.
        let stopped = std::sync::Mutex::new(Resume::default());
        let clear = retried(|| {
            self.guarded(store, |s| async {
                let mut from = Resume::default();
                let result = Box::pin(s.clear_pattern(pattern, &mut from)).await;
                *stopped.lock().unwrap_or_else(PoisonError::into_inner) = from;
                result
            })
        });
        let result = crate::runtime::anywhere!(self, clear);
        let at = At::Pattern(pattern);
        match result {
            Ok(removed) => {
                self.count(Event::Delete, at, removed);
                self.remember(pattern, at);
                Ok(removed)
            }
            Err(error) => {
                self.keep(self.pending.add(pattern), at, &error);
                let stopped = stopped.into_inner().unwrap_or_else(PoisonError::into_inner);
                self.pending.stopped(pattern, stopped);
                self.count_failure("clear_pattern", at, &error);
                self.settle(Err(error), 0)
            }
        }
    }

    /// After an `#[invalidate_cache]` body succeeded: marks the running computations of matching
    /// keys (before and after the delete, so none of them shares a value that may predate it)
    /// and deletes what each pattern matches. Every pattern is tried; failing loudly, the first
    /// error is returned after all were tried (the failed ones are pending either way).
    pub(crate) async fn invalidate(
        &self,
        patterns: &[String],
        allow_all: bool,
    ) -> Result<(), CacheError> {
        let mut first_error = None;
        for glob in patterns {
            let at = At::Pattern(glob);
            telemetry::invalidation(at);
            self.flights.invalidate_matching(glob);
            let delete = async {
                match pattern::literal_key(glob) {
                    Some(key) => self.delete_keys(&[key.as_str()]).await,
                    None if allow_all && pattern::matches_everything(glob) => {
                        self.delete_matching("*").await
                    }
                    None => match check_pattern(glob) {
                        Ok(()) => self.delete_matching(glob).await,
                        Err(error) => Err(error),
                    },
                }
            };
            // The pattern's space, never the pattern: it may hold an argument's value.
            let span = tracing::debug_span!("cache.invalidate", space = at.space());
            let result = delete.instrument(span).await;
            self.flights.invalidate_matching(glob);
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Records an invalidation Redis acknowledged, for a replay if Redis loses it.
    fn remember(&self, glob: &str, at: At<'_>) {
        let forgotten = self.recent.record(glob);
        if forgotten > 0 {
            self.count(Event::Forgotten, at, forgotten);
        }
    }

    /// Makes `globs` pending: invalidations made before this cache existed, that could not
    /// reach Redis then.
    pub(crate) fn adopt_pending(&self, globs: &[String]) {
        let error =
            CacheError::Connection("made before the cache could connect to Redis".to_owned());
        for glob in globs {
            self.keep(self.pending.add(glob), At::Pattern(glob), &error);
        }
    }

    /// Keeps an invalidation that failed for replay, or reports that it could not.
    pub(super) fn keep(&self, added: Added, at: At<'_>, error: &CacheError) {
        match added {
            Added::Kept => {
                // Rate-limited at warn with the other failures; each one at debug.
                self.log_failure("invalidation kept for replay", error);
                tracing::debug!(space = at.space(), %error, "invalidation kept for replay");
                telemetry::pending(self.pending.len());
                self.wake.notify_one();
            }
            Added::Dropped => {
                self.count(Event::Dropped, at, 1);
                tracing::error!(
                    space = at.space(),
                    %error,
                    "invalidation lost: Redis is unreachable and the pending set is full; \
                     the keys it covers may serve old values until they expire"
                );
            }
        }
    }

    /// Replays the pending invalidations; true when none is left. Called by the background task
    /// once Redis answers, before the breaker lets calls through again.
    pub(crate) async fn replay_pending(&self) -> bool {
        let Some(store) = &self.store else {
            return true;
        };
        let mut replayed = 0;
        for (glob, number) in self.pending.snapshot() {
            let result = match pattern::literal_key(&glob) {
                Some(key) => store.delete(&[key.as_str()]).await.map(drop),
                None => {
                    // A walk longer than CACHE_CLEAR_TIMEOUT finishes over several replays.
                    let mut from = self.pending.resume(&glob);
                    let result = store.clear_pattern(&glob, &mut from).await;
                    if result.is_err() {
                        self.pending.stopped(&glob, from);
                    }
                    result.map(drop)
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "replay of pending invalidations interrupted");
                return false;
            }
            self.pending.remove(&glob, number);
            self.remember(&glob, At::Pattern(&glob));
            self.count(Event::Replayed, At::Pattern(&glob), 1);
            telemetry::pending(self.pending.len());
            replayed += 1;
        }
        if replayed > 0 {
            tracing::info!(replayed, "pending invalidations replayed");
        }
        self.pending.len() == 0
    }
}

impl Policy {
    /// Replays the pending invalidations until none is left or `deadline` has passed, then
    /// reports (and logs at error, and counts) those that could not be delivered.
    pub(crate) async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        crate::runtime::anywhere!(self, self.deliver_pending(deadline))
    }

    /// [`shutdown`](Self::shutdown) within a runtime's context.
    async fn deliver_pending(&self, deadline: Duration) -> ShutdownReport {
        let until = tokio::time::Instant::now() + deadline;
        let replayed_before = self.counters.snapshot().invalidations_replayed;
        // Bounded by the deadline: each try is cut off by it, and the pause between tries is
        // a tenth of a second.
        while self.pending.len() > 0 {
            if let Ok(true) = tokio::time::timeout_at(until, self.replay_pending()).await {
                break;
            }
            let next = tokio::time::Instant::now() + Duration::from_millis(100);
            if next >= until {
                break;
            }
            tokio::time::sleep_until(next).await;
        }
        let delivered = self.counters.snapshot().invalidations_replayed - replayed_before;
        self.shut_down.store(true, Ordering::Release);
        ShutdownReport {
            delivered,
            undelivered: self.report_undelivered("the shutdown's deadline passed"),
        }
    }

    /// Whether [`shutdown`](Self::shutdown) ran: the exit reports nothing more then.
    pub(crate) fn was_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// Logs at error and counts each pending invalidation: `when` says why they will not be
    /// delivered. Their key spaces, one per invalidation.
    pub(crate) fn report_undelivered(&self, when: &str) -> Vec<String> {
        let mut spaces = Vec::new();
        for (glob, _) in self.pending.snapshot() {
            let at = At::Pattern(&glob);
            self.count(Event::Dropped, at, 1);
            tracing::error!(
                space = at.space(),
                "invalidation not delivered: {when} with Redis unreachable; the keys it covers \
                 may serve old values until they expire"
            );
            spaces.push(at.space().to_owned());
        }
        spaces
    }
}

/// Runs `call`, then again after each of [`RETRY_PAUSES`] while it fails retryably.
async fn retried<T, F, Fut>(mut call: F) -> Result<T, CacheError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CacheError>>,
{
    let mut result = call().await;
    for pause in RETRY_PAUSES {
        if !retryable(&result) {
            break;
        }
        tokio::time::sleep(pause).await;
        result = call().await;
    }
    result
}
