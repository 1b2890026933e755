//! Concurrent reads of one pool gathered into one `MGET`.
//!
//! Under load many callers read at once. fred already writes their GETs to the socket together,
//! but Redis and fred still handle each as a command of its own (parse, dispatch, reply; a
//! command, a channel and a wake-up per read), and on a small machine that work is what bounds
//! the hits per second. So once [`GATHER_FROM`] (4) reads are under way on a pool, the next read
//! joins the open batch instead of sending a GET. The read that opened the batch yields, so that
//! the tasks ready to run now (callers that got their previous value in the same burst of
//! replies) join it too, then sends the batch as one `MGET` and hands each read its value. A
//! batch that reaches `CACHE_READ_BATCH` keys is sent at once by the read that filled it.
//!
//! With fewer reads under way (one caller, a quiet service) each read is a plain GET, sent at
//! once: gathering costs nothing at low load.
//!
//! A gathered read is as fresh as a GET: each key is read after its caller asked for it (a batch
//! is sent only after its last key joined), so what the policy layer guarantees about
//! invalidations holds unchanged. The batch is one command, bounded by the socket timeout like
//! any other, and its error is each read's error. A read that goes away (its future dropped)
//! leaves its key unread; if it was the one to send the batch, a task of the pool's runtime sends
//! it in its place, so the others never wait for a read that is gone.
//!
//! Not on a cluster, where the keys of one `MGET` must share a hash slot: there each read is a
//! GET, routed by its key.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use bytes::Bytes;
use fred::interfaces::KeysInterface;
use fred::types::Key;
use tokio::sync::oneshot;

use super::RedisPool;
use crate::backend::Backend;
use crate::error::CacheError;

/// How many reads must be under way on a pool before the next one joins a batch. Measured with
/// `hit_load cache 2 TASKS 2`, a key per task, three runs each, thousands of hits per second
/// (the opener yielding with [`behind_ready_tasks`]):
///
/// | gather from | 2 tasks | 4 tasks | 8 tasks | 16 tasks | 32 tasks | 64 tasks |
/// |---|---|---|---|---|---|---|
/// | 2 | 42-44 | 67-78 | 117-119 | 203-210 | 303-323 | 346-356 |
/// | 4 | 38-43 | 59-68 | 117-121 | 208-215 | 298-315 | 355-372 |
/// | 8 | 41-45 | 55-69 | 113-116 | 201-220 | 294-316 | 352-370 |
/// | never | 39-45 | 56-69 | 109-111 | 207-216 | 227-233 | 287-294 |
/// | bare fred | 38-45 | 55-75 | 109-115 | 242-248 | 248-258 | 288-298 |
///
/// Gathering costs nothing at low concurrency (a batch needs this many reads under way, and
/// then it is sent as soon as the callers ready to run joined) and gains a third at 32 tasks and
/// more. Four keeps the batches from being mostly pairs.
const GATHER_FROM: usize = 4;

/// Lets the tasks that are ready to run now go first: this task wakes itself and goes to the
/// back of its worker's run queue. Not [`tokio::task::yield_now`], which holds the task back
/// until the worker ran out of tasks and polled the I/O driver: the batch then waited for a
/// driver poll (a syscall, and wake-ups of the other worker), and gathering from the eighth
/// read cost a fifth of the hits at 16 tasks (161-165k/s against 207-216k/s not gathering).
async fn behind_ready_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// The reads waiting for the next `MGET` of one pool.
pub(super) struct Batches {
    /// The most keys one `MGET` carries; a full batch is sent at once.
    max_keys: usize,
    open: Mutex<Vec<Waiting>>,
    /// Reads of this pool under way (sent alone or waiting in a batch).
    reading: AtomicUsize,
}

/// A read in a batch.
struct Waiting {
    /// In fred's form already: the one copy of the key a gathered read makes.
    key: Key,
    reply: oneshot::Sender<Result<Option<Bytes>, CacheError>>,
}

/// Where a read that joined the open batch stands.
enum Joined {
    /// It filled the batch: this read sends it now.
    Full(Vec<Waiting>),
    /// It opened the batch: this read sends it once the reads that are ready to run joined.
    Opened,
    /// Another read sends it.
    Waiting,
}

impl Batches {
    /// Batches of at most `max_keys` keys.
    pub(super) fn new(max_keys: usize) -> Self {
        Batches {
            max_keys,
            open: Mutex::new(Vec::new()),
            reading: AtomicUsize::new(0),
        }
    }

    fn join(&self, waiting: Waiting) -> Joined {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.push(waiting);
        if open.len() >= self.max_keys {
            Joined::Full(std::mem::take(&mut *open))
        } else if open.len() == 1 {
            Joined::Opened
        } else {
            Joined::Waiting
        }
    }

    /// Takes the open batch.
    fn take(&self) -> Vec<Waiting> {
        std::mem::take(&mut *self.open.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Counts a read as under way until dropped.
struct Reading<'a>(&'a AtomicUsize);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl RedisPool {
    /// GET of `key`, gathered with the other reads of this pool when many are under way (see the
    /// module docs).
    pub(crate) async fn get_gathered(
        self: &Arc<Self>,
        key: &str,
    ) -> Result<Option<Bytes>, CacheError> {
        let Some(batches) = &self.batches else {
            return self.get(key).await;
        };
        let under_way = batches.reading.fetch_add(1, Relaxed);
        let _reading = Reading(&batches.reading);
        if under_way < GATHER_FROM {
            return self.get(key).await;
        }
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            key: Key::from(key),
            reply,
        };
        match batches.join(waiting) {
            Joined::Full(batch) => Sending::new(self, batch).run().await,
            Joined::Opened => {
                let opener = Opener(Some(self));
                // Each of the tasks ready to run now that reads joins this batch.
                behind_ready_tasks().await;
                Sending::new(self, opener.take(batches)).run().await;
            }
            Joined::Waiting => {}
        }
        answer.await.unwrap_or_else(|_| {
            Err(CacheError::Connection(
                "the runtime that drives this connection pool shut down".to_owned(),
            ))
        })
    }
}

/// The read that opened a batch, until it takes it: if it goes away first (its future dropped),
/// a task sends the batch in its place.
struct Opener<'a>(Option<&'a Arc<RedisPool>>);

impl Opener<'_> {
    /// Takes the open batch, to send it.
    fn take(mut self, batches: &Batches) -> Vec<Waiting> {
        self.0 = None;
        batches.take()
    }
}

impl Drop for Opener<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.0 {
            if let Some(batches) = &pool.batches {
                hand_over(pool, batches.take());
            }
        }
    }
}

/// A batch being sent; dropped before its replies were handed out (the read sending it went
/// away), a task sends it again in its place.
struct Sending<'a> {
    pool: &'a Arc<RedisPool>,
    batch: Vec<Waiting>,
}

impl<'a> Sending<'a> {
    fn new(pool: &'a Arc<RedisPool>, batch: Vec<Waiting>) -> Self {
        Sending { pool, batch }
    }

    async fn run(mut self) {
        let replies = read(self.pool, &self.batch).await;
        answer(std::mem::take(&mut self.batch), replies);
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        hand_over(self.pool, std::mem::take(&mut self.batch));
    }
}

/// Sends `batch` from a task of the pool's runtime (if that runtime is gone, the task never runs
/// and the waiting reads learn it from their dropped replies).
fn hand_over(pool: &Arc<RedisPool>, batch: Vec<Waiting>) {
    if batch.iter().all(|w| w.reply.is_closed()) {
        return;
    }
    let pool = Arc::clone(pool);
    drop(pool.runtime.clone().spawn(async move {
        let replies = read(&pool, &batch).await;
        answer(batch, replies);
    }));
}

/// Reads the keys of `batch` whose callers still wait: a GET for one key, an `MGET` for more.
/// The values come in the order of `batch`, `None` for a caller that went away.
async fn read(pool: &RedisPool, batch: &[Waiting]) -> Result<Vec<Option<Bytes>>, CacheError> {
    // The positions of the callers still waiting, taken once: another may go away while the
    // command is out, and the values must still land on the callers they were read for.
    let (live, mut keys): (Vec<usize>, Vec<Key>) = batch
        .iter()
        .enumerate()
        .filter(|(_, w)| !w.reply.is_closed())
        .map(|(i, w)| (i, w.key.clone()))
        .unzip();
    // Batches are never on a cluster, so never read from replicas: the primary's GET or MGET.
    let values = match keys.len() {
        0 => Vec::new(),
        1 => {
            let key = keys.swap_remove(0);
            vec![pool.client().read(pool, |c| c.get(key)).await?]
        }
        sent => {
            let values: Vec<Option<Bytes>> = pool.client().read(pool, |c| c.mget(keys)).await?;
            if values.len() != sent {
                return Err(CacheError::Redis(format!(
                    "MGET answered {} values for {sent} keys",
                    values.len()
                )));
            }
            values
        }
    };
    let mut replies = vec![None; batch.len()];
    for (i, value) in live.into_iter().zip(values) {
        replies[i] = value;
    }
    Ok(replies)
}

/// Hands each read of `batch` its value, or the batch's error.
fn answer(batch: Vec<Waiting>, replies: Result<Vec<Option<Bytes>>, CacheError>) {
    match replies {
        Ok(values) => {
            for (waiting, value) in batch.into_iter().zip(values) {
                let _ = waiting.reply.send(Ok(value));
            }
        }
        Err(error) => {
            for waiting in batch {
                let _ = waiting.reply.send(Err(error.clone()));
            }
        }
    }
}
