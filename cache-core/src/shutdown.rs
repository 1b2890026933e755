//! A graceful end: deliver the invalidations still pending before the process exits, and say
//! which could not be.
//!
//! An invalidation that could not reach Redis is kept in memory and replayed when Redis answers
//! (`policy/pending.rs`); its caller was told `Ok` (failing silently). A process that exits
//! first takes it along, and the old values it covers stay in Redis until they expire. So:
//! - [`shutdown`](crate::shutdown) (and [`Cache::shutdown`]) replays what is pending, within a deadline, and
//!   reports what it could not deliver, each logged at error with its key space and counted in
//!   `invalidations_dropped`;
//! - without it, when the runtime that set up the process-wide cache from the main thread ends
//!   (`main` returning under `#[tokio::main]`), each invalidation still pending is logged at error
//!   and counted the same way. A process that ends otherwise (`std::process::exit`, a signal),
//!   or whose cache was set up off the main thread, says nothing.

use std::sync::{Arc, Weak};

use crate::cache::Cache;
use crate::policy::Policy;

/// Watches the runtime that set up the process-wide cache from the main thread (`main` under
/// `#[tokio::main]`): when it ends, the process is exiting, and the invalidations still pending
/// are reported (see the module docs). A cache set up elsewhere (a `#[tokio::test]`, a spawned
/// task) is not watched: its runtime may end while the process goes on replaying.
pub(crate) fn watch_exit(cache: &Cache) {
    if std::thread::current().name() != Some("main") {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let guard = AtExit(Arc::downgrade(cache.policy()));
    drop(runtime.spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    }));
}

/// Dropped with the task that holds it, when its runtime shuts down.
struct AtExit(Weak<Policy>);

impl Drop for AtExit {
    fn drop(&mut self) {
        if let Some(policy) = self.0.upgrade().filter(|p| !p.was_shut_down()) {
            policy.report_undelivered("the process exits");
        }
    }
}
