//! Reads gathered into one `MGET` under load (`cache-core/src/backend/redis/batch.rs`): each
//! caller gets its own key's value, a lone read stays a GET, `CACHE_READ_BATCH=1` turns
//! gathering off, a hung Redis costs a batch one timeout, and a read cancelled while it was
//! sending its batch does not strand the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig, CacheConfigBuilder, CacheError};
use integration_tests::RedisServer;

const KEYS: usize = 200;
/// The read that opens the first batch: as many reads are under way before it as the cache
/// waits for before it gathers (`GATHER_FROM` in `batch.rs`).
const OPENER: usize = 4;
/// Reads spawned at once by the cancellation tests: the opener and twelve that join its batch.
const SPAWNED: usize = OPENER + 13;
const TTL: Option<Duration> = Some(Duration::from_secs(600));

/// How many times Redis ran `command` (INFO commandstats), 0 before the first.
fn calls(server: &RedisServer, command: &str) -> u64 {
    server
        .info_field("commandstats", &format!("cmdstat_{command}"))
        .and_then(|stats| {
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls=").map(str::to_owned))
        })
        .map_or(0, |n| n.parse().expect("a count"))
}

async fn cache(
    server: &RedisServer,
    configure: impl FnOnce(CacheConfigBuilder) -> CacheConfigBuilder,
) -> Cache {
    let builder = CacheConfig::builder()
        .url(server.url())
        .fail_silently(false);
    Cache::new(configure(builder).build().unwrap())
        .await
        .unwrap()
}

fn key(i: usize) -> String {
    format!("batch:{i}")
}

/// Every seventh key is absent; the others hold their own value.
async fn fill(cache: &Cache) {
    for i in (0..KEYS).filter(|i| i % 7 != 0) {
        cache
            .set(&key(i), &format!("value-{i}"), TTL)
            .await
            .unwrap();
    }
}

fn expected(i: usize) -> Option<String> {
    (i % 7 != 0).then(|| format!("value-{i}"))
}

/// `tasks` tasks, each reading `per_task` keys in turn and checking each value; the number of
/// reads.
async fn read_concurrently(cache: &Cache, tasks: usize, per_task: usize) -> u64 {
    let readers: Vec<_> = (0..tasks)
        .map(|t| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for j in 0..per_task {
                    let i = (t * per_task + j) % KEYS;
                    let value: Option<String> = cache.get(&key(i)).await.unwrap();
                    assert_eq!(value, expected(i), "the value of key {i}");
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    (tasks * per_task) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_gather_into_mgets_and_each_caller_gets_its_own_value() {
    let server = RedisServer::start();
    let cache = cache(&server, |b| b).await;
    fill(&cache).await;
    let (gets, mgets) = (calls(&server, "get"), calls(&server, "mget"));
    let reads = read_concurrently(&cache, 64, 50).await;
    let (gets, mgets) = (calls(&server, "get") - gets, calls(&server, "mget") - mgets);
    assert!(mgets > 0, "no MGET for {reads} concurrent reads");
    assert!(
        gets + mgets <= reads / 2,
        "{reads} reads took {gets} GETs and {mgets} MGETs: hardly gathered"
    );
    let stats = cache.stats();
    let absent = (0..reads as usize)
        .filter(|n| {
            let (t, j) = (n / 50, n % 50);
            expected((t * 50 + j) % KEYS).is_none()
        })
        .count() as u64;
    assert_eq!((stats.hits, stats.misses), (reads - absent, absent));
}

#[tokio::test]
async fn a_lone_read_is_a_get() {
    let server = RedisServer::start();
    let cache = cache(&server, |b| b).await;
    fill(&cache).await;
    let (gets, mgets) = (calls(&server, "get"), calls(&server, "mget"));
    for i in 0..100 {
        let value: Option<String> = cache.get(&key(i)).await.unwrap();
        assert_eq!(value, expected(i));
    }
    assert_eq!(calls(&server, "get") - gets, 100);
    assert_eq!(calls(&server, "mget") - mgets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_batch_of_one_sends_each_read_alone() {
    let server = RedisServer::start();
    let cache = cache(&server, |b| b.read_batch(1)).await;
    fill(&cache).await;
    let (gets, mgets) = (calls(&server, "get"), calls(&server, "mget"));
    let reads = read_concurrently(&cache, 64, 20).await;
    assert_eq!(calls(&server, "get") - gets, reads);
    assert_eq!(calls(&server, "mget") - mgets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_on_a_hung_redis_costs_its_readers_one_timeout() {
    let server = RedisServer::start();
    let timeout = Duration::from_secs(1);
    let cache = cache(&server, |b| b.socket_timeout(timeout)).await;
    fill(&cache).await;
    let paused = server.pause();
    let started = Instant::now();
    let readers: Vec<_> = (0..32)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let read = cache.get::<String>(&key(i)).await;
                (read, started.elapsed())
            })
        })
        .collect();
    for reader in readers {
        let (read, took) = reader.await.unwrap();
        assert!(
            matches!(
                read,
                Err(CacheError::Timeout(_)) | Err(CacheError::CircuitOpen)
            ),
            "{read:?}"
        );
        assert!(took < timeout + Duration::from_millis(500), "took {took:?}");
    }
    drop(paused);
}

/// Spawns [`SPAWNED`] reads of keys 0.. on this (current-thread) runtime. They run in order:
/// the first [`OPENER`] are GETs (fewer reads were under way when each started), the next opens a
/// batch and yields, the rest join it, then the opener sends it.
fn spawn_reads(cache: &Cache) -> Vec<tokio::task::JoinHandle<Option<String>>> {
    (0..SPAWNED)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get::<String>(&key(i)).await.unwrap() })
        })
        .collect()
}

async fn assert_answered(
    readers: Vec<tokio::task::JoinHandle<Option<String>>>,
    cancelled: &[usize],
) {
    for (i, reader) in readers.into_iter().enumerate() {
        let read = tokio::time::timeout(Duration::from_secs(3), reader)
            .await
            .unwrap_or_else(|_| panic!("read {i} stranded"));
        if cancelled.contains(&i) {
            assert!(read.is_err(), "read {i} was cancelled");
        } else {
            assert_eq!(read.unwrap(), expected(i), "read {i}");
        }
    }
}

#[tokio::test]
async fn a_read_cancelled_while_sending_its_batch_does_not_strand_the_others() {
    let server = RedisServer::start();
    let cache = cache(&server, |b| b.socket_timeout(Duration::from_secs(5))).await;
    fill(&cache).await;
    let paused = server.pause();
    let readers = spawn_reads(&cache);
    // Every read is under way and the batch is on the (paused) server's socket.
    tokio::time::sleep(Duration::from_millis(200)).await;
    readers[OPENER].abort(); // the read that sends the batch
    readers[OPENER + 4].abort(); // one that waits in it
    drop(paused);
    assert_answered(readers, &[OPENER, OPENER + 4]).await;
}

#[tokio::test]
async fn a_read_cancelled_before_sending_its_batch_does_not_strand_the_others() {
    let server = RedisServer::start();
    let cache = Arc::new(cache(&server, |b| b).await);
    fill(&cache).await;
    let paused = server.pause();
    let readers = spawn_reads(&cache);
    // Spawned behind the reads, so it runs once the opener has yielded (to the back of the
    // queue, behind this task) and before the opener takes its batch.
    let opener = readers[OPENER].abort_handle();
    tokio::spawn(async move { opener.abort() }).await.unwrap();
    drop(paused);
    assert_answered(readers, &[OPENER]).await;
}
