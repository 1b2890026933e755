//! The staleness checker: two processes share one cache Redis and one "database" (a second
//! redis-server), write and read 40 versioned ids, and every read is checked against the newest
//! update that had already returned, in either process, when the read began.
//!
//! The guarantee: after an invalidation returned, no reader anywhere (this process or another)
//! gets a value computed from data older than that update.
//!
//! - Database: `ver:{id}`, bumped with `INCR` by the `#[invalidate_cache]` function `update`, read
//!   with `GET` by the `#[cached]` function `read` (key `stale:read:{id}`), over a tiny RESP
//!   client of this file, never through cache-core.
//! - Writers (4 per process): once `update(id)` returned version `v`, they record when and in
//!   which process (`HSET committed_at {id}:{v} <micros>:<process>`) and then publish it:
//!   `ZADD committed GT v id`. The caches fail loudly, so an update whose invalidation did not
//!   reach Redis returns `Err` and is not published (the guarantee is about invalidations that
//!   returned); such updates are counted as "not confirmed".
//! - Readers (16 per process): `ZSCORE committed id` is the floor, read before the call begins;
//!   the call returns `(id, version)`. Stale: `version < floor`. Wrong: another id, or a version
//!   the database has not reached yet.
//! - The second process is this test binary run again with `STALENESS_CHILD` set; it loads from
//!   the parent's go to its stop, prints its counts (and its cache's) as one `STALENESS_RESULT`
//!   line, and exits when its stdin closes (the parent died) or past a deadline.
//! - Phases of `staleness_across_two_processes`, each with both processes under load: no fault; the cache server SIGKILLed and
//!   restarted with its data (AOF, fsync always); the cache server restarted from an older state
//!   (its AOF frozen, then a SIGKILL a second or more later: every write it acknowledged since,
//!   invalidations included, undone); the cache server hung (SIGSTOP for 1.5 s);
//!   every connection to it blackholed for 1.5 s by the fault proxy both processes go through
//!   (bytes held and delivered late, as after a healed partition); and half the readers calling
//!   under random 0-5 ms deadlines, so leaders are dropped at every await point (timed-out reads
//!   are not counted; every later read is checked).
//! - A second test, `staleness_across_a_sentinel_failover`, runs the same load and checks with
//!   both processes' caches on a sentinel group (a primary, its replica, three sentinels): no
//!   fault, then a replica promoted that never received the invalidations of the last second or
//!   more (replication cut: the replica SIGSTOPped and its link killed on the primary, writers
//!   going on; then the primary SIGKILLed, the replica continued and promoted by the sentinels).
//!   The writers are quiet from just before the kill until both processes have seen the new
//!   primary and their replay hold has passed: only the replay of the lost invalidations then
//!   keeps the promoted replica's old values from being served. Both load processes are children
//!   there: this process' cache, the one the macros use, is the first test's and cannot be
//!   pointed elsewhere. The two tests take turns.
//!
//! Why a stale read it reports is real: the database is one redis-server, so its commands have
//! one order. The floor's `ZADD` was sent after `update` returned (its invalidation included) and
//! was executed before the reader's `ZSCORE`, whose reply came before the read began: the update
//! returned before the read began. Versions come from `INCR`, one per update and never reused, so
//! a read that returned `version < floor` ran its `GET` before the `INCR` to `floor`: its value
//! was computed from data older than an update that had returned. Both servers are fresh per
//! run and the cache is flushed between phases, so no value comes from another run.
//!
//! `STALENESS_SECONDS` sets each phase's length (default 5 s; about 30 s for the first test, 20
//! to 30 s for the second, whose failover takes the time it takes). The caches take
//! `CACHE_REPLAY_WINDOW` and `CACHE_REPLAY_HOLD` (seconds) from the environment when set, to see
//! the phases fail without the replay: with `CACHE_REPLAY_WINDOW=0` the old-restart and
//! promoted-replica phases report stale reads (thousands each; their writers stay quiet past
//! the hold, so that no new invalidation hides a lost one).

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_core::{cached, invalidate_cache, CacheConfig};
use integration_tests::proxy::{Fault, FaultProxy};
use integration_tests::sentinel::SentinelGroup;
use integration_tests::{wait_until, RedisServer, Reply};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// This test's name, as the child is asked to run it.
const TEST_NAME: &str = "staleness_across_two_processes";
/// Set in the child: `<cache url>|<database port>|<seconds>|<phase>`.
const CHILD_ENV: &str = "STALENESS_CHILD";
/// How the child reports: this prefix, then `name=value` pairs.
const RESULT_PREFIX: &str = "STALENESS_RESULT";
const IDS: u64 = 40;
const WRITERS: u64 = 4;
const READERS: u64 = 16;
/// The fewest checked reads (both processes) a phase must make for its zero to mean something.
/// A sanity bound, far below what a phase makes here (15,000 to 23,000, 3,000 under deadlines):
/// the machine is shared, and a slow run must not fail a correctness check.
const MIN_CHECKED: u64 = 1_000;

/// Runs a blocking harness call (a `redis-server` command, a restart, the child's pipes) on the
/// test's runtime without holding up the load's tasks: the worker hands them to the other one.
fn blocking<T>(call: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(call)
}

// ---------------------------------------------------------------------------------------------
// The database: a second redis-server, over a minimal async RESP client with a small pool.

#[derive(Debug, PartialEq, Eq)]
enum Resp {
    Status,
    Int(i64),
    Bulk(Option<Vec<u8>>),
}

struct Conn {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl Conn {
    async fn connect(port: u16) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: tokio::io::BufReader::new(stream),
        })
    }

    async fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Resp> {
        let request = integration_tests::resp::encode(args);
        self.stream.get_mut().write_all(&request).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let line = line.trim_end_matches("\r\n");
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("database answered {line:?}"),
            )
        };
        let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        Ok(match kind {
            "+" => Resp::Status,
            ":" => Resp::Int(rest.parse().map_err(|_| bad())?),
            "$" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                if len < 0 {
                    Resp::Bulk(None)
                } else {
                    let mut buf = vec![0; len as usize + 2];
                    self.stream.read_exact(&mut buf).await?;
                    buf.truncate(len as usize);
                    Resp::Bulk(Some(buf))
                }
            }
            _ => return Err(bad()),
        })
    }
}

/// Idle connections to the database. A call takes one and puts it back only once the reply is
/// read in full: a call dropped half-way (a cancelled reader) closes its connection.
struct Db {
    port: u16,
    idle: Mutex<Vec<Conn>>,
}

static DB: OnceLock<Db> = OnceLock::new();

fn db() -> &'static Db {
    DB.get().expect("the database is set up")
}

fn io_error(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl Db {
    async fn call(&self, args: &[&[u8]]) -> std::io::Result<Resp> {
        let idle = self.idle.lock().unwrap().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => Conn::connect(self.port).await?,
        };
        let reply = tokio::time::timeout(Duration::from_secs(5), conn.call(args))
            .await
            .map_err(|_| io_error("database: no answer in 5 s".into()))??;
        self.idle.lock().unwrap().push(conn);
        Ok(reply)
    }

    /// A bulk reply as text (nil: `None`).
    async fn text(&self, args: &[&[u8]]) -> std::io::Result<Option<String>> {
        match self.call(args).await? {
            Resp::Bulk(bytes) => Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned())),
            other => Err(io_error(format!("not text: {other:?}"))),
        }
    }

    /// A reply that is a number: an integer, a bulk string holding one, or nil (0).
    async fn number(&self, args: &[&[u8]]) -> std::io::Result<u64> {
        match self.call(args).await? {
            Resp::Int(n) => u64::try_from(n).map_err(|_| io_error(format!("negative {n}"))),
            Resp::Bulk(None) => Ok(0),
            Resp::Bulk(Some(bytes)) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .map(|f| f as u64)
                .ok_or_else(|| io_error(format!("not a number: {bytes:?}"))),
            other => Err(io_error(format!("not a number: {other:?}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The functions under test.

/// Which process this is: 1 the parent, 2 the child.
static PROCESS: AtomicU64 = AtomicU64::new(0);

/// The cached read: the id, its version from the database, and the process that computed it.
#[cached(ttl = 600, key_prefix = "stale")]
async fn read(id: u64) -> Result<(u64, u64, u64), String> {
    let version = db()
        .number(&[b"GET", format!("ver:{id}").as_bytes()])
        .await
        .map_err(|e| e.to_string())?;
    Ok((id, version, PROCESS.load(Relaxed)))
}

/// Why an update did not return a committed version.
#[derive(Debug, PartialEq)]
enum UpdateError {
    Database(String),
    /// The database changed, but the invalidation did not reach Redis (it is pending).
    Cache,
}

impl From<cache_core::CacheError> for UpdateError {
    fn from(_: cache_core::CacheError) -> Self {
        UpdateError::Cache
    }
}

/// The versioned update: bumps the version in the database, then invalidates `read(id)`.
///
/// Failing loudly, an invalidation that did not reach Redis is an `Err`: the guarantee is about
/// invalidations that returned `Ok`. (Failing silently they return `Ok` anyway, and other
/// processes may read the old value until this one replays the delete: the window that
/// docs/src/failure-modes.md describes.)
#[invalidate_cache("stale:read:{id}")]
async fn update(id: u64) -> Result<u64, UpdateError> {
    db().number(&[b"INCR", format!("ver:{id}").as_bytes()])
        .await
        .map_err(|e| UpdateError::Database(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// The load and its counts.

#[derive(Debug, Default)]
struct Counts {
    checked: AtomicU64,
    stale: AtomicU64,
    /// Of stale reads: those where one process did it all (computed the value, returned the
    /// update, read): what the in-process guarantee alone should have prevented.
    stale_local: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
    timed_out: AtomicU64,
    writes: AtomicU64,
    /// Updates whose invalidation did not reach Redis (`Err`, not published as committed).
    unconfirmed: AtomicU64,
    /// Of stale reads: the longest time from the floor's commit to the read's start.
    max_lag_us: AtomicU64,
    /// Of stale reads: the largest `floor - version`.
    max_gap: AtomicU64,
    /// The process' cache: the Redis node changes (restarts, failovers) it acted on.
    node_changes: AtomicU64,
    /// The process' cache: the invalidations it made again after a node change or an outage.
    replayed: AtomicU64,
    /// The process' cache: hits and misses.
    hits: AtomicU64,
    misses: AtomicU64,
}

const FIELDS: [&str; 14] = [
    "checked",
    "stale",
    "stale_local",
    "wrong",
    "errors",
    "timed_out",
    "writes",
    "unconfirmed",
    "max_lag_us",
    "max_gap",
    "node_changes",
    "replayed",
    "hits",
    "misses",
];

impl Counts {
    fn fields(&self) -> [&AtomicU64; 14] {
        [
            &self.checked,
            &self.stale,
            &self.stale_local,
            &self.wrong,
            &self.errors,
            &self.timed_out,
            &self.writes,
            &self.unconfirmed,
            &self.max_lag_us,
            &self.max_gap,
            &self.node_changes,
            &self.replayed,
            &self.hits,
            &self.misses,
        ]
    }

    fn to_line(&self) -> String {
        let pairs: Vec<String> = FIELDS
            .iter()
            .zip(self.fields())
            .map(|(name, value)| format!("{name}={}", value.load(Relaxed)))
            .collect();
        format!("{RESULT_PREFIX} {}", pairs.join(" "))
    }

    fn parse(line: &str) -> Counts {
        let counts = Counts::default();
        let rest = line.strip_prefix(RESULT_PREFIX).expect("a result line");
        for pair in rest.split_whitespace() {
            let (name, value) = pair.split_once('=').expect("name=value");
            let i = FIELDS
                .iter()
                .position(|f| *f == name)
                .expect("a known field");
            counts.fields()[i].store(value.parse().expect("a number"), Relaxed);
        }
        counts
    }

    /// Adds `other` in: sums, except the maxima.
    fn add(&self, other: &Counts) {
        for (i, (mine, theirs)) in self.fields().into_iter().zip(other.fields()).enumerate() {
            let theirs = theirs.load(Relaxed);
            if FIELDS[i].starts_with("max_") {
                mine.fetch_max(theirs, Relaxed);
            } else {
                mine.fetch_add(theirs, Relaxed);
            }
        }
    }

    fn get(&self, name: &str) -> u64 {
        let i = FIELDS
            .iter()
            .position(|f| *f == name)
            .expect("a known field");
        self.fields()[i].load(Relaxed)
    }
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64
}

/// A cheap per-task pseudo-random sequence (xorshift).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `process` tells the two processes apart (1: the parent, 2: the child).
/// Set in the database while writers must not start updates (`Phase::FrozenRestart`).
const QUIET: &[u8] = b"writers:quiet";

async fn writer(process: u64, seed: u64, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut rng = Rng::new(seed);
    while !stop.load(Relaxed) {
        if db().number(&[b"EXISTS", QUIET]).await.unwrap_or(0) == 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let id = rng.next() % IDS;
        match update(id).await {
            Ok(version) => {
                // `update` has returned: record when and where, then publish the version.
                let at = format!("{}:{process}", wall_us());
                let field = format!("{id}:{version}");
                let (v, id) = (version.to_string(), id.to_string());
                let committed = async {
                    db().call(&[b"HSET", b"committed_at", field.as_bytes(), at.as_bytes()])
                        .await?;
                    db().call(&[b"ZADD", b"committed", b"GT", v.as_bytes(), id.as_bytes()])
                        .await
                };
                match committed.await {
                    Ok(_) => counts.writes.fetch_add(1, Relaxed),
                    Err(_) => counts.errors.fetch_add(1, Relaxed),
                };
            }
            Err(UpdateError::Cache) => {
                counts.unconfirmed.fetch_add(1, Relaxed);
            }
            Err(UpdateError::Database(_)) => {
                counts.errors.fetch_add(1, Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_micros(rng.next() % 2000)).await;
    }
}

async fn reader(process: u64, seed: u64, cancel: bool, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let mut rng = Rng::new(seed);
    while !stop.load(Relaxed) {
        let id = rng.next() % IDS;
        let id_text = id.to_string();
        // The floor: the newest version whose update had returned before this read begins.
        let floor = match db()
            .number(&[b"ZSCORE", b"committed", id_text.as_bytes()])
            .await
        {
            Ok(floor) => floor,
            Err(_) => {
                counts.errors.fetch_add(1, Relaxed);
                continue;
            }
        };
        let began = wall_us();
        let got = if cancel {
            let deadline = Duration::from_micros(rng.next() % 5001);
            match tokio::time::timeout(deadline, read(id)).await {
                Ok(got) => got,
                Err(_) => {
                    counts.timed_out.fetch_add(1, Relaxed);
                    continue;
                }
            }
        } else {
            read(id).await
        };
        let (got_id, version, computed_by) = match got {
            Ok(got) => got,
            Err(_) => {
                counts.errors.fetch_add(1, Relaxed);
                continue;
            }
        };
        counts.checked.fetch_add(1, Relaxed);
        if got_id != id || !(1..=2).contains(&computed_by) {
            counts.wrong.fetch_add(1, Relaxed);
        } else if version < floor {
            counts.stale.fetch_add(1, Relaxed);
            counts.max_gap.fetch_max(floor - version, Relaxed);
            let field = format!("{id}:{floor}");
            // Written before the floor was published, so it is there.
            if let Ok(Some(at)) = db()
                .text(&[b"HGET", b"committed_at", field.as_bytes()])
                .await
            {
                let (at, by) = at.split_once(':').expect("<micros>:<process>");
                let at: u64 = at.parse().expect("micros");
                counts
                    .max_lag_us
                    .fetch_max(began.saturating_sub(at), Relaxed);
                if by == process.to_string() && computed_by == process {
                    counts.stale_local.fetch_add(1, Relaxed);
                }
            }
        } else {
            // A version the database has not reached is garbage, not data.
            match db().number(&[b"GET", format!("ver:{id}").as_bytes()]).await {
                Ok(now) if version > now => {
                    counts.wrong.fetch_add(1, Relaxed);
                }
                Ok(_) => {}
                Err(_) => {
                    counts.errors.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts 4 writers and 16 readers on the test's runtime (half the readers under deadlines
/// when `cancel`). `process` (1: the parent, 2: the child) also keeps their random sequences apart.
fn start_load(cancel: bool, process: u64) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let seed = process * 1000 + w;
        tasks.push(tokio::spawn(writer(
            process,
            seed,
            stop.clone(),
            counts.clone(),
        )));
    }
    for r in 0..READERS {
        let seed = process * 1000 + 100 + r;
        let cancel = cancel && r % 2 == 0;
        tasks.push(tokio::spawn(reader(
            process,
            seed,
            cancel,
            stop.clone(),
            counts.clone(),
        )));
    }
    Load {
        stop,
        counts,
        tasks,
    }
}

impl Load {
    async fn finish(self) -> Arc<Counts> {
        self.stop.store(true, Relaxed);
        for task in self.tasks {
            task.await.expect("no load task panicked");
        }
        self.counts
    }
}

// ---------------------------------------------------------------------------------------------
// Phases, the child process, the test.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NoFault,
    KillRestart,
    FrozenRestart,
    Hang,
    Blackhole,
    Cancel,
    PromotedReplica,
}

impl Phase {
    /// The phases of `staleness_across_two_processes`: one cache server, behind the proxy.
    const ON_ONE_SERVER: [Phase; 6] = [
        Phase::NoFault,
        Phase::KillRestart,
        Phase::FrozenRestart,
        Phase::Hang,
        Phase::Blackhole,
        Phase::Cancel,
    ];

    /// The phases of `staleness_across_a_sentinel_failover`: a primary, its replica, sentinels.
    const ON_SENTINELS: [Phase; 2] = [Phase::NoFault, Phase::PromotedReplica];

    fn name(self) -> &'static str {
        match self {
            Phase::NoFault => "no-fault",
            Phase::KillRestart => "kill-restart",
            Phase::FrozenRestart => "old-restart",
            Phase::Hang => "hang",
            Phase::Blackhole => "blackhole",
            Phase::Cancel => "cancel",
            Phase::PromotedReplica => "promoted-replica",
        }
    }

    fn from_name(name: &str) -> Phase {
        *Phase::ON_ONE_SERVER
            .iter()
            .chain(&Phase::ON_SENTINELS)
            .find(|p| p.name() == name)
            .expect("a phase name")
    }
}

/// The tests take turns: each starts its own servers and processes, and both at once would
/// share two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Each phase's length, from `STALENESS_SECONDS` (default 5 s).
fn phase_seconds() -> f64 {
    std::env::var("STALENESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0)
}

/// A duration in seconds from the environment variable `name`, when it is set.
fn env_seconds(name: &str) -> Option<Duration> {
    let value = std::env::var(name).ok()?;
    let seconds: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("{name}={value:?}: expected seconds"));
    Some(Duration::from_secs_f64(seconds))
}

/// The caches' configuration: failing loudly, short timeouts, and the replay settings of the
/// environment when it has them (`CACHE_REPLAY_WINDOW=0` turns the replay off).
fn config(url: &str) -> CacheConfig {
    let mut builder = CacheConfig::builder()
        .url(url)
        .fail_silently(false)
        .socket_timeout(Duration::from_millis(500))
        .breaker_probe_interval(Duration::from_millis(200));
    if let Some(window) = env_seconds("CACHE_REPLAY_WINDOW") {
        builder = builder.replay_window(window);
    }
    if let Some(hold) = env_seconds("CACHE_REPLAY_HOLD") {
        builder = builder.replay_hold(hold);
    }
    builder.build().expect("config")
}

/// Points this process at the database, as process 1 (the parent) or 2 (the child).
fn set_up_database(port: u16, process: u64) {
    PROCESS.store(process, Relaxed);
    DB.set(Db {
        port,
        idle: Mutex::new(Vec::new()),
    })
    .ok()
    .expect("the database is set up once");
}

/// The child: the same load, from the parent's go to its stop, then its counts on stdout.
async fn child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let [cache_url, db_port, seconds, phase, process] = parts[..] else {
        panic!("{CHILD_ENV}={spec:?}: expected <cache url>|<db port>|<seconds>|<phase>|<process>");
    };
    let seconds: f64 = seconds.parse().expect("seconds");
    let phase = Phase::from_name(phase);
    let process: u64 = process.parse().expect("process");
    // Die with the parent, or after a deadline whatever happens.
    let limit = Duration::from_secs_f64(seconds + 60.0);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("staleness child: past its deadline, exiting");
        std::process::exit(4);
    });
    set_up_database(db_port.parse().expect("db port"), process);
    let cache = cache_core::init(config(cache_url))
        .await
        .expect("the child's cache");
    println!("STALENESS_READY");
    // Each line the parent writes (its go, then its stop) is passed on.
    let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut line = String::new();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            let _ = line_tx.send(());
        }
        // The parent went away.
        std::process::exit(3);
    });
    line_rx.recv().await.expect("the parent's go");
    let load = start_load(phase == Phase::Cancel, process);
    let publisher = tokio::spawn(publish_node_changes(cache.clone(), process));
    line_rx.recv().await.expect("the parent's stop");
    publisher.abort();
    let counts = load.finish().await;
    let stats = cache.stats();
    counts.node_changes.store(stats.redis_node_changes, Relaxed);
    counts.replayed.store(stats.invalidations_replayed, Relaxed);
    counts.hits.store(stats.hits, Relaxed);
    counts.misses.store(stats.misses, Relaxed);
    println!("{}", counts.to_line());
    std::io::stdout().flush().unwrap();
}

/// The database key where `process` tells the parent how many node changes its cache acted on.
fn node_changes_key(process: u64) -> String {
    format!("node_changes:{process}")
}

/// Tells the parent, through the database, each time this process' cache has acted on a Redis
/// node change (a restart, a failover): the parent waits for it before the writers go on.
async fn publish_node_changes(cache: cache_core::Cache, process: u64) {
    let key = node_changes_key(process);
    let mut published = 0;
    loop {
        let seen = cache.stats().redis_node_changes;
        if seen > published {
            let n = seen.to_string();
            if db()
                .call(&[b"SET", key.as_bytes(), n.as_bytes()])
                .await
                .is_ok()
            {
                published = seen;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct ChildProcess {
    process: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ChildProcess {
    /// Runs this test binary again as load process `process`, for a phase of at most
    /// `seconds`; returns once its cache is up.
    fn spawn(
        cache_url: &str,
        db_port: u16,
        seconds: f64,
        phase: Phase,
        process: u64,
    ) -> ChildProcess {
        let exe = std::env::current_exe().expect("this test binary");
        // Either test runs the child's part when `STALENESS_CHILD` is set.
        let mut process = Command::new(exe)
            .args([TEST_NAME, "--exact", "--nocapture"])
            .env(
                CHILD_ENV,
                format!("{cache_url}|{db_port}|{seconds}|{}|{process}", phase.name()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the child process");
        let stdin = process.stdin.take().expect("stdin");
        let stdout = BufReader::new(process.stdout.take().expect("stdout"));
        let mut child = ChildProcess {
            process,
            stdin,
            stdout,
        };
        child.expect_line("STALENESS_READY");
        child
    }

    fn expect_line(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .expect("the child's stdout");
            assert!(n > 0, "the child ended before printing {prefix}");
            if line.starts_with(prefix) {
                return line.trim_end().to_owned();
            }
        }
    }

    /// Writes one line to the child: its go, then its stop.
    fn tell(&mut self, what: &str) {
        writeln!(self.stdin, "{what}").expect("the child's stdin");
        self.stdin.flush().unwrap();
    }

    fn go(&mut self) {
        self.tell("go");
    }

    fn stop(&mut self) {
        self.tell("stop");
    }

    fn result(mut self) -> Counts {
        let line = self.expect_line(RESULT_PREFIX);
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let status = self.process.wait().expect("the child's exit");
        assert!(status.success(), "the child exited with {status}");
        drop(self.stdin);
        Counts::parse(&line)
    }
}

/// Sleeps until `at` after `start`.
async fn sleep_until(start: Instant, at: Duration) {
    tokio::time::sleep_until((start + at).into()).await;
}

fn cache_exists(server: &RedisServer, key: &str) -> bool {
    server.command(&[b"EXISTS", key.as_bytes()]) == Reply::Integer(1)
}

/// The counts of both processes' reads, one line: what the report shows of every phase.
fn describe(phase: Phase, total: &Counts, first: &Counts, second: &Counts) -> String {
    format!(
        "{:<16} reads checked {} ({} and {} by the two processes), stale {} ({} all in one process), \
         wrong {}, oldest stale lag {:.1} ms (version gap up to {}), errors {}, timed out {}, \
         updates {} (+{} not confirmed); ",
        phase.name(),
        total.get("checked"),
        first.get("checked"),
        second.get("checked"),
        total.get("stale"),
        total.get("stale_local"),
        total.get("wrong"),
        total.get("max_lag_us") as f64 / 1000.0,
        total.get("max_gap"),
        total.get("errors"),
        total.get("timed_out"),
        total.get("writes"),
        total.get("unconfirmed"),
    )
}

/// Adds to `failures` what `phase`'s counts (both processes) show broken: a stale or wrong read,
/// or too few reads checked for its zero to mean something.
fn check(phase: Phase, total: &Counts, failures: &mut Vec<String>) {
    if total.get("stale") > 0 || total.get("wrong") > 0 {
        failures.push(format!(
            "{}: {} stale and {} wrong of {} reads",
            phase.name(),
            total.get("stale"),
            total.get("wrong"),
            total.get("checked")
        ));
    }
    // Under deadlines half the readers mostly time out, and timed-out reads are not checked.
    let min_checked = if phase == Phase::Cancel {
        MIN_CHECKED / 2
    } else {
        MIN_CHECKED
    };
    if total.get("checked") < min_checked {
        failures.push(format!(
            "{}: only {} reads checked (at least {min_checked})",
            phase.name(),
            total.get("checked")
        ));
    }
}

/// The parent's phases, or the child's load when this process is the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_across_two_processes() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec).await;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let seconds = phase_seconds();
    let test_started = Instant::now();
    let database = blocking(RedisServer::start);
    let mut cache_server =
        blocking(|| RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "no"]));

    // `restart()` keeps the port, the arguments and the directory: with AOF the data survives.
    cache_server.cmd("SET aof-probe 1");
    blocking(|| cache_server.restart());
    assert_eq!(
        cache_server.cmd("GET aof-probe"),
        Reply::Bulk(Some(b"1".to_vec())),
        "the cache server's data survives a restart"
    );
    cache_server.cmd("FLUSHALL");

    // Both processes reach the cache server through one proxy, which the blackhole phase uses.
    let proxy = FaultProxy::start(cache_server.port());
    set_up_database(database.port(), 1);
    let cache = cache_core::init(config(&proxy.url()))
        .await
        .expect("the cache");

    // The key layout: `read(7)` is stored under `stale:read:7`, and `update(7)` removes it.
    assert_eq!(read(7).await, Ok((7, 0, 1)));
    assert!(cache_exists(&cache_server, "stale:read:7"));
    assert_eq!(update(7).await, Ok(1));
    assert!(!cache_exists(&cache_server, "stale:read:7"));
    assert_eq!(read(7).await, Ok((7, 1, 1)));

    let mut report = Vec::new();
    let mut failures = Vec::new();
    for phase in Phase::ON_ONE_SERVER {
        // Each phase starts from an empty cache and a cache that answers.
        cache_server.cmd("FLUSHALL");
        if phase == Phase::KillRestart {
            // Every acknowledged write on disk before it returns: what the SIGKILL finds is
            // all there after the restart (which starts with the launch arguments again).
            assert_eq!(
                cache_server.cmd("CONFIG SET appendfsync always"),
                Reply::Status("OK".into())
            );
        }
        assert!(
            blocking(|| wait_until(Duration::from_secs(5), || !cache.stats().circuit_open)),
            "the circuit closes before the phase"
        );
        let before = cache.stats();
        let mut child =
            blocking(|| ChildProcess::spawn(&proxy.url(), database.port(), seconds, phase, 2));
        child.go();
        let load = start_load(phase == Phase::Cancel, 1);
        let start = Instant::now();
        let mut fault = String::new();
        match phase {
            Phase::NoFault | Phase::Cancel => {}
            Phase::PromotedReplica => unreachable!("a phase of the sentinel test"),
            Phase::KillRestart => {
                sleep_until(start, Duration::from_secs_f64(seconds * 0.4)).await;
                let keys = cache_server.dbsize();
                blocking(|| cache_server.kill());
                let killed = Instant::now();
                tokio::time::sleep(Duration::from_secs(1)).await;
                blocking(|| cache_server.restart());
                fault = format!(
                    "SIGKILL with {keys} keys, down {:?}, {} keys back after the restart; ",
                    killed.elapsed(),
                    cache_server.dbsize()
                );
            }
            Phase::FrozenRestart => {
                // The AOF stops being written (its files stay as they are), writes and
                // invalidations go on for a while, then a SIGKILL and a restart that loads the
                // frozen AOF: every write Redis acknowledged since, invalidations and lease
                // releases included, is undone, as after a restart from an older snapshot.
                sleep_until(start, Duration::from_secs_f64(seconds * 0.3)).await;
                assert_eq!(
                    cache_server.cmd("CONFIG SET appendonly no"),
                    Reply::Status("OK".into())
                );
                let frozen = Instant::now();
                sleep_until(start, Duration::from_secs_f64(seconds * 0.5)).await;
                // No update starts while the server is down: an update whose invalidation
                // failed would be pending, and its replay would delete the value the restart
                // brings back, hiding what this phase is about (acknowledged invalidations
                // undone). Readers go on throughout.
                database.cmd("SET writers:quiet 1");
                tokio::time::sleep(Duration::from_millis(100)).await;
                let keys = cache_server.dbsize();
                blocking(|| cache_server.kill());
                let undone = frozen.elapsed();
                blocking(|| cache_server.restart());
                // The writers stay quiet past the processes' hold (they see the restart within
                // a few hundred milliseconds, at their next read): an update made meanwhile
                // would invalidate its id again, so that only the replay of the undone
                // invalidations keeps the restored values from being served.
                let hold = cache.config().replay_hold();
                tokio::time::sleep(hold + Duration::from_secs(1)).await;
                database.cmd("DEL writers:quiet");
                fault = format!(
                    "persistence frozen, SIGKILL {undone:?} later with {keys} keys, restarted \
                     from the frozen state ({} keys when asked after the caches' replays); ",
                    cache_server.dbsize()
                );
            }
            Phase::Hang => {
                sleep_until(start, Duration::from_secs_f64(seconds * 0.4)).await;
                let paused = cache_server.pause();
                tokio::time::sleep(Duration::from_millis(1500)).await;
                drop(paused);
                fault = "SIGSTOP for 1.5 s; ".into();
            }
            Phase::Blackhole => {
                sleep_until(start, Duration::from_secs_f64(seconds * 0.4)).await;
                proxy.set(Fault::Blackhole);
                tokio::time::sleep(Duration::from_millis(1500)).await;
                proxy.set(Fault::None);
                fault =
                    "every connection blackholed for 1.5 s (bytes held, then delivered); ".into();
            }
        }
        sleep_until(start, Duration::from_secs_f64(seconds)).await;
        child.stop();
        let mine = load.finish().await;
        let total = Counts::default();
        total.add(&mine);
        let theirs = blocking(|| child.result());
        total.add(&theirs);
        let after = cache.stats();
        let line = format!(
            "{}{fault}this process' cache: hits {}, misses {}, errors {}",
            describe(phase, &total, &mine, &theirs),
            after.hits - before.hits,
            after.misses - before.misses,
            after.errors - before.errors,
        );
        println!("{line}");
        check(phase, &total, &mut failures);
        report.push(line);
    }
    println!(
        "staleness: {} phases of {seconds} s in {:.1?}\n{}",
        report.len(),
        test_started.elapsed(),
        report.join("\n")
    );
    assert!(
        failures.is_empty(),
        "the guarantee was broken:\n{}\n{}",
        failures.join("\n"),
        report.join("\n")
    );
}

/// Stops `server` (SIGSTOP) until it is resumed, or dropped.
fn freeze(server: &RedisServer) {
    let pid = server.pid().expect("a running server").to_string();
    let stopped = Command::new("kill").args(["-STOP", &pid]).status();
    assert!(stopped.is_ok_and(|s| s.success()), "SIGSTOP {pid}");
}

/// The updates that returned so far (both processes): each writes its `committed_at` field.
fn updates_returned(database: &RedisServer) -> i64 {
    match database.cmd("HLEN committed_at") {
        Reply::Integer(n) => n,
        other => panic!("HLEN answered {other:?}"),
    }
}

/// The same load and checks with both processes' caches on a sentinel group: no fault, then a
/// replica promoted that never received the invalidations of the last second or more.
///
/// Both load processes are children: this process' own cache, the process-wide one the macros
/// use, is the first test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_across_a_sentinel_failover() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec).await;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let seconds = phase_seconds();
    let test_started = Instant::now();
    let database = blocking(RedisServer::start);
    let mut group = blocking(SentinelGroup::start);
    let url = group.url();
    let (victim, heir) = (group.servers[0].port(), group.servers[1].port());
    // How long each process holds reads off after it saw the new primary.
    let hold = config(&url).replay_hold();
    // The writers' time on the primary after the replica was cut off, and on the new primary.
    let writing = Duration::from_secs_f64((seconds * 0.2).max(1.0));

    let mut report = Vec::new();
    let mut failures = Vec::new();
    for phase in Phase::ON_SENTINELS {
        // Each phase starts from an empty cache (the replica empties with its primary).
        group.server(victim).cmd("FLUSHALL");
        // The failover takes the time it takes: the children's deadline allows for it.
        let longest = match phase {
            Phase::PromotedReplica => seconds + 60.0,
            _ => seconds,
        };
        let mut children: Vec<ChildProcess> = (1..=2)
            .map(|process| {
                blocking(|| ChildProcess::spawn(&url, database.port(), longest, phase, process))
            })
            .collect();
        for child in &mut children {
            child.go();
        }
        let start = Instant::now();
        let mut fault = String::new();
        match phase {
            Phase::NoFault => sleep_until(start, Duration::from_secs_f64(seconds)).await,
            Phase::PromotedReplica => {
                sleep_until(start, Duration::from_secs_f64(seconds * 0.3)).await;
                // The replica stops receiving: frozen, and its link cut on the primary's side
                // too (a frozen process still receives into its socket buffer).
                blocking(|| {
                    freeze(group.server(heir));
                    assert_eq!(
                        group.server(victim).cmd("CLIENT KILL TYPE replica"),
                        Reply::Integer(1),
                        "the replica's link is cut"
                    );
                });
                let cut = Instant::now();
                let before_cut = updates_returned(&database);
                // The writers go on: the primary acknowledges invalidations the replica never
                // receives.
                tokio::time::sleep(writing).await;
                // No update starts from here until both processes have seen the new primary:
                // an update whose invalidation failed while no primary answers would be
                // pending, and its replay would delete the value the promoted replica brings
                // back, hiding what this phase is about (acknowledged invalidations lost).
                // Readers go on throughout.
                database.cmd("SET writers:quiet 1");
                tokio::time::sleep(Duration::from_millis(100)).await;
                let lost = updates_returned(&database) - before_cut;
                let keys = group.server(victim).dbsize();
                let killed = blocking(|| {
                    group.kill(victim);
                    group.server(heir).resume();
                    Instant::now()
                });
                let cut_for = killed - cut;
                let promoted = blocking(|| {
                    wait_until(Duration::from_secs(30), || group.is_writable_primary(heir))
                });
                assert!(
                    promoted,
                    "the sentinels did not promote the replica in 30 s"
                );
                let promoted_after = killed.elapsed();
                // Both processes reach the new primary and see that it is another node.
                let seen = blocking(|| {
                    wait_until(Duration::from_secs(30), || {
                        (1..=2).all(|process| {
                            let key = node_changes_key(process);
                            matches!(
                                database.command(&[b"GET", key.as_bytes()]),
                                Reply::Bulk(Some(_))
                            )
                        })
                    })
                });
                assert!(seen, "both processes see the new primary within 30 s");
                let seen_after = killed.elapsed();
                // The writers stay quiet past the processes' hold: the promoted replica's old
                // values are then read, and only the replay of the lost invalidations keeps
                // them from being served.
                tokio::time::sleep(hold + Duration::from_millis(500)).await;
                database.cmd("DEL writers:quiet");
                let quiet_for = killed.elapsed();
                tokio::time::sleep(writing).await;
                fault = format!(
                    "replication cut for {cut_for:.1?} ({lost} updates returned meanwhile), \
                     primary SIGKILLed with {keys} keys, replica promoted {promoted_after:.1?} \
                     after the kill, seen by both processes after {seen_after:.1?}, writers \
                     quiet until {quiet_for:.1?}; "
                );
            }
            _ => unreachable!("a phase of the first test"),
        }
        for child in &mut children {
            child.stop();
        }
        let counts: Vec<Counts> = children
            .into_iter()
            .map(|child| blocking(|| child.result()))
            .collect();
        let total = Counts::default();
        for c in &counts {
            total.add(c);
        }
        let line = format!(
            "{}{fault}the caches: node changes {} and {}, invalidations replayed {} and {}, \
             hits {}, misses {}",
            describe(phase, &total, &counts[0], &counts[1]),
            counts[0].get("node_changes"),
            counts[1].get("node_changes"),
            counts[0].get("replayed"),
            counts[1].get("replayed"),
            total.get("hits"),
            total.get("misses"),
        );
        println!("{line}");
        check(phase, &total, &mut failures);
        report.push(line);
    }
    println!(
        "staleness on sentinels: {} phases in {:.1?}\n{}",
        report.len(),
        test_started.elapsed(),
        report.join("\n")
    );
    assert!(
        failures.is_empty(),
        "the guarantee was broken:\n{}\n{}",
        failures.join("\n"),
        report.join("\n")
    );
}
