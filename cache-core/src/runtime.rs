//! The cache's own I/O runtime: one thread that drives the cache's background work (breaker
//! probe, replay of pending invalidations, lease releases) and its *home* Redis pool, which also
//! serves calls made outside any tokio runtime. Its life is the cache's, whichever runtimes come
//! and go around it (see [`redis`](crate::backend::redis)).

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use crate::error::CacheError;

/// A current-thread runtime driven by a thread of its own, until this value is dropped.
#[derive(Debug)]
pub(crate) struct IoRuntime {
    handle: Handle,
    /// Dropping it ends the driving thread's `block_on`; the thread then drops the runtime
    /// (outside any async context, where that is allowed) and with it every task.
    stop: Option<oneshot::Sender<()>>,
}

impl IoRuntime {
    /// Starts the thread. Fails only when the OS refuses a thread or the I/O driver.
    pub(crate) fn start() -> Result<IoRuntime, CacheError> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                CacheError::Connection(format!("cannot start the cache's I/O runtime: {e}"))
            })?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("cache-io".to_owned())
            .spawn(move || {
                // Ends when the sender is dropped (the error is the signal).
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| {
                CacheError::Connection(format!("cannot start the cache's I/O thread: {e}"))
            })?;
        Ok(IoRuntime {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `future` on the I/O runtime and waits for it from whatever runtime the caller is on.
    pub(crate) async fn run<F>(&self, future: F) -> Result<F::Output, CacheError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .map_err(|e| CacheError::Connection(format!("the cache's I/O runtime stopped: {e}")))
    }

    /// The I/O runtime, to start a task that the caller stops itself.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Starts `future` on the I/O runtime without waiting for it.
    pub(crate) fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(future));
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// The runtime whose context a call must enter, when it is polled outside any tokio runtime
/// (another executor, a plain thread): `fallback`'s, whose thread drives the timers. `None`
/// inside a runtime, where `fallback` is not called.
pub(crate) fn outside<'h>(fallback: impl FnOnce() -> Option<&'h Handle>) -> Option<Handle> {
    // A task id is a thread-local read; `Handle::try_current` clones the runtime's handle (an
    // atomic count that every worker shares), so it is asked only outside a task (`block_on`).
    if tokio::task::try_id().is_some() || Handle::try_current().is_ok() {
        return None;
    }
    fallback().cloned()
}

/// Awaits `$future` within the context of the runtime [`outside`] names for `$policy`'s timers
/// when there is no current one, boxed so that this rare path takes no room in the future of
/// the common one; as it is otherwise.
macro_rules! anywhere {
    ($policy:expr, $future:expr) => {
        match $crate::runtime::outside(|| $policy.timers()) {
            Some(handle) => $crate::runtime::Entered::new(handle, $future).await,
            None => $future.await,
        }
    };
}
pub(crate) use anywhere;

/// A future polled inside a runtime's context ([`anywhere`]).
pub(crate) struct Entered<F> {
    handle: Handle,
    future: std::pin::Pin<Box<F>>,
}

impl<F: Future> Entered<F> {
    pub(crate) fn new(handle: Handle, future: F) -> Self {
        Entered {
            handle,
            future: Box::pin(future),
        }
    }
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        // Left again before `poll` returns: the context never outlives one poll on one thread.
        let _entered = this.handle.enter();
        this.future.as_mut().poll(cx)
    }
}

/// A runtime for caches that have none of their own (the in-process backend), to drive the
/// timers of calls polled outside any runtime; started on first need.
pub(crate) fn fallback() -> Option<&'static Handle> {
    static FALLBACK: std::sync::OnceLock<Option<IoRuntime>> = std::sync::OnceLock::new();
    FALLBACK
        .get_or_init(|| IoRuntime::start().ok())
        .as_ref()
        .map(IoRuntime::handle)
}
