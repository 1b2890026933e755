//! A leader cancelled at each of its await points, deterministically: the fault proxy holds its
//! commands (or their replies) while the test cancels it, then lets them through.
//!
//! Two caches on one Redis stand for two processes: `leader` reaches Redis through the proxy,
//! `other` directly. The guarantee under test: once an invalidation returned, no value computed
//! from the data it replaced is in Redis, whether or not the caller that computed it is still
//! there; and a cancelled leader does not make the next caller wait for its lease to expire.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use integration_tests::proxy::{Fault, FaultProxy};
use integration_tests::RedisServer;
use tokio::sync::Notify;

const TTL: Option<Duration> = Some(Duration::from_secs(60));

struct Setup {
    server: RedisServer,
    proxy: FaultProxy,
    leader: Cache,
    other: Cache,
}

async fn setup() -> Setup {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port());
    let config = |url: String| {
        CacheConfig::builder()
            .url(url)
            .socket_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    let leader = Cache::new(config(proxy.url())).await.unwrap();
    let other = Cache::new(config(server.url())).await.unwrap();
    Setup {
        server,
        proxy,
        leader,
        other,
    }
}

/// A leader whose body reads the "database" once it is told to go on, then returns it.
fn spawn_leader(
    cache: &Cache,
    database: &Arc<AtomicU64>,
    started: &Arc<Notify>,
    proceed: &Arc<Notify>,
) -> tokio::task::JoinHandle<u64> {
    let (cache, database) = (cache.clone(), database.clone());
    let (started, proceed) = (started.clone(), proceed.clone());
    tokio::spawn(async move {
        cache
            .get_or_compute("item", TTL, || async move {
                let value = database.load(SeqCst);
                started.notify_one();
                proceed.notified().await;
                value
            })
            .await
    })
}

/// What the next caller (in the other "process") gets for the item, asserting that it did not
/// wait for a lease that nobody will fill.
async fn computes_at_once(cache: &Cache, database: &Arc<AtomicU64>) -> u64 {
    let asked = Instant::now();
    let value = tokio::time::timeout(
        Duration::from_secs(5),
        cache.get_or_compute("item", TTL, || async { database.load(SeqCst) }),
    )
    .await
    .expect("the next caller waited for the cancelled leader's lease");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "the next caller waited {:?}",
        asked.elapsed()
    );
    value
}

/// Cancelled while its fenced store is on its way to Redis (held by the proxy): the
/// invalidation that returns meanwhile removes the lease, so the store, delivered afterwards,
/// is refused. Without the fence the old value lands after the invalidation returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_held_in_flight_cannot_land_after_an_invalidation() {
    let s = setup().await;
    let database = Arc::new(AtomicU64::new(1));
    let (started, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let leader = spawn_leader(&s.leader, &database, &started, &proceed);
    started.notified().await; // the lease is taken and the old value read

    s.proxy.set(Fault::DropClientToServer);
    proceed.notify_one();
    tokio::time::sleep(Duration::from_millis(200)).await; // the store is held at the proxy
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());

    database.store(2, SeqCst);
    s.other.delete(["item"]).await.unwrap(); // the invalidation returns
    s.proxy.set(Fault::None); // the held store reaches Redis now
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(
        s.other.get::<u64>("item").await.unwrap(),
        None,
        "the cancelled leader's value landed after the invalidation returned"
    );
    let fresh = s
        .other
        .get_or_compute("item", TTL, || async { database.load(SeqCst) })
        .await;
    assert_eq!(fresh, 2);
}

/// Cancelled while waiting for the reply to its store (the store ran; the reply is held): the
/// invalidation that follows removes what it stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_reply_is_held_is_removed_by_the_invalidation() {
    let s = setup().await;
    let database = Arc::new(AtomicU64::new(1));
    let (started, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let leader = spawn_leader(&s.leader, &database, &started, &proceed);
    started.notified().await;

    s.proxy.set(Fault::DropServerToClient);
    proceed.notify_one();
    tokio::time::sleep(Duration::from_millis(200)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());

    database.store(2, SeqCst);
    s.other.delete(["item"]).await.unwrap();
    s.proxy.set(Fault::None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.other.get::<u64>("item").await.unwrap(), None);
}

/// Cancelled while its body runs: it gives its lease back, so a caller elsewhere computes at
/// once instead of waiting up to the lease TTL (10 s) for a value that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cancelled_in_its_body_releases_its_lease() {
    let s = setup().await;
    let database = Arc::new(AtomicU64::new(7));
    let (started, proceed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let leader = spawn_leader(&s.leader, &database, &started, &proceed);
    started.notified().await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());

    assert_eq!(computes_at_once(&s.other, &database).await, 7);
}

/// Cancelled while its lease request waits at the server (`CLIENT PAUSE WRITE` holds the
/// script that takes the lease; plain GETs still pass): the request takes the lease after the
/// cancellation, and the released guard gives it back, so the next caller does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cancelled_while_asking_for_the_lease_leaves_none_behind() {
    let s = setup().await;
    let database = Arc::new(AtomicU64::new(3));
    // Load the lease scripts first, so that the paused request is the script itself.
    assert_eq!(
        s.leader
            .get_or_compute("warm", TTL, || async { 0u64 })
            .await,
        0
    );

    s.server.cmd("CLIENT PAUSE 5000 WRITE");
    let cache = s.leader.clone();
    let db = database.clone();
    let leader = tokio::spawn(async move {
        cache
            .get_or_compute("item", TTL, || async move { db.load(SeqCst) })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await; // GET answered, the script waits
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    s.server.cmd("CLIENT UNPAUSE");
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(computes_at_once(&s.other, &database).await, 3);
}
