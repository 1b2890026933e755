//! The cache's own I/O runtime: one thread that drives the cache's background work (breaker
//! probe, replay of pending invalidations, lease releases) and its *home* Redis pool, which also
//! serves calls made outside any tokio runtime. Its life is the cache's, whichever runtimes come
//! and go around it (see [`runtimes`](crate::backend::runtimes)).

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use crate::CacheError;

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

/// Runs `future` so that tokio's timers and `spawn` work in it even when it is polled outside
/// any tokio runtime (another executor, a plain thread): each poll then enters the context of
/// the runtime `fallback` names, whose thread drives the timers. Inside a runtime it is `future`
/// itself, and `fallback` is not called.
pub(crate) async fn within<'h, F: Future>(
    fallback: impl FnOnce() -> Option<&'h Handle>,
    future: F,
) -> F::Output {
    if Handle::try_current().is_ok() {
        return future.await;
    }
    match fallback() {
        Some(handle) => {
            Entered {
                handle: handle.clone(),
                future: std::pin::pin!(future),
            }
            .await
        }
        None => future.await,
    }
}

/// A future polled inside a runtime's context ([`within`]).
struct Entered<'f, F> {
    handle: Handle,
    future: std::pin::Pin<&'f mut F>,
}

impl<F: Future> Future for Entered<'_, F> {
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
