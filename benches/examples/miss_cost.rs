//! Issue 19 item 7: could Redis 7's `SET key marker NX GET PX ttl`, which reads a value or takes
//! the lease in one command, replace the first `GET` of a `#[cached]` call? A miss would then
//! cost two round trips instead of three, but every hit would be a write command.
//!
//! Bare fred (the workspace's version and features), a pool of 2 connections, a 2-worker
//! runtime and a redis-server of its own (no persistence), side by side and interleaved (the
//! order of the two alternates from round to round), each variant run for the same time:
//!
//! - hit, 1 key per task: `GET` against `SET k marker NX GET PX 10000` on a key that holds a
//!   ~100-byte value, at 1, 16 and 64 tasks;
//! - hit, 16 keys at once: one `MGET` (what `backend/redis/batch.rs` sends for gathered reads)
//!   against 16 `SET NX GET` pipelined (a write cannot join an `MGET`), at 1 and 4 tasks;
//! - miss: `GET`, `EVALSHA` get-or-lease, `EVALSHA` set-if-holds (today, the scripts of
//!   `backend/redis/commands.rs`) against `SET NX GET` then `EVALSHA` set-if-holds, on a fresh key
//!   each time, with no body in between, at 1 and 16 tasks.
//!
//! Then it checks what a `SET NX GET` that finds a value does besides reading, on its own
//! primary and replica (`facts`): what it writes, propagates, notifies and counts, and where
//! Redis refuses it while it serves `GET`.
//!
//! ```text
//! cargo run --release -p cache-bench --example miss_cost                 # 5 rounds of 1 s
//! cargo run --release -p cache-bench --example miss_cost -- ROUNDS SECONDS
//! cargo run --release -p cache-bench --example miss_cost -- facts        # the checks only
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::clients::Pool;
use fred::prelude::{Builder, ClientLike, Config, Expiration, KeysInterface, SetOptions};
use fred::types::scripts::Script;
use fred::types::Value;
use integration_tests::{wait_until, RedisServer, Reply};

/// `backend/redis/commands.rs`'s `GET_OR_LEASE`: GET, or, when the key is empty, SET the lease
/// marker (ARGV[1]) with NX for ARGV[2] ms.
const GET_OR_LEASE: &str = "local v = redis.call('GET', KEYS[1]) \
if v then return v end \
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) \
return false";
/// `backend/redis/commands.rs`'s `SET_IF_HOLDS`: SET the value (ARGV[2]) for ARGV[3] ms only if
/// the key holds the marker (ARGV[1]).
const SET_IF_HOLDS: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end \
return 0";

/// The lease TTL (`CACHE_LEASE_LIVENESS`, 1 s, would do as well: it only has to outlive the
/// run) and the value TTL, in ms.
const LEASE_MS: i64 = 10_000;
const VALUE_MS: i64 = 60_000;
/// Keys of one gathered read.
const BATCH: usize = 16;
const POOL: usize = 2;

/// The scripts, hashed once as cache-core's are.
static SCRIPTS: LazyLock<[Script; 2]> = LazyLock::new(|| {
    [
        Script::from_lua(GET_OR_LEASE),
        Script::from_lua(SET_IF_HOLDS),
    ]
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Get,
    SetNxGet,
    Mget,
    PipelinedSetNxGet,
    MissThreeTrips,
    MissTwoTrips,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Get => "GET",
            Variant::SetNxGet => "SET NX GET",
            Variant::Mget => "MGET 16",
            Variant::PipelinedSetNxGet => "16 SET NX GET pipelined",
            Variant::MissThreeTrips => "GET+lease+store",
            Variant::MissTwoTrips => "SET NX GET+store",
        }
    }
}

/// Two variants compared at one concurrency: `a` is today's, `b` the alternative.
struct Scenario {
    what: &'static str,
    a: Variant,
    b: Variant,
    tasks: usize,
}

const SCENARIOS: [Scenario; 7] = [
    Scenario {
        what: "hit, 1 key",
        a: Variant::Get,
        b: Variant::SetNxGet,
        tasks: 1,
    },
    Scenario {
        what: "hit, 1 key",
        a: Variant::Get,
        b: Variant::SetNxGet,
        tasks: 16,
    },
    Scenario {
        what: "hit, 1 key",
        a: Variant::Get,
        b: Variant::SetNxGet,
        tasks: 64,
    },
    Scenario {
        what: "hit, 16 keys",
        a: Variant::Mget,
        b: Variant::PipelinedSetNxGet,
        tasks: 1,
    },
    Scenario {
        what: "hit, 16 keys",
        a: Variant::Mget,
        b: Variant::PipelinedSetNxGet,
        tasks: 4,
    },
    Scenario {
        what: "miss",
        a: Variant::MissThreeTrips,
        b: Variant::MissTwoTrips,
        tasks: 1,
    },
    Scenario {
        what: "miss",
        a: Variant::MissThreeTrips,
        b: Variant::MissTwoTrips,
        tasks: 16,
    },
];

/// One run of one variant: operations (a hit, a batch of 16, a miss) per second and the
/// median and 99th percentile of their latencies.
#[derive(Debug, Clone, Copy)]
struct Sample {
    per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if args.first().map(String::as_str) == Some("facts") {
        facts();
        return;
    }
    let rounds: usize = args.first().map_or(5, |a| a.parse().expect("rounds"));
    let seconds: f64 = args.get(1).map_or(1.0, |a| a.parse().expect("seconds"));
    let run_for = Duration::from_secs_f64(seconds);
    let server = RedisServer::start();
    runtime.block_on(async {
        let pool = Builder::from_config(Config::from_url(&server.url()).expect("url"))
            .build_pool(POOL)
            .expect("pool");
        pool.init().await.expect("connect");
        let value = Bytes::from(vec![7u8; 100]);
        for task in 0..64 {
            for key in std::iter::once(hit_key(task)).chain((0..BATCH).map(|j| batch_key(task, j)))
            {
                let _: () = pool
                    .set(key, value.clone(), Some(Expiration::PX(600_000)), None, false)
                    .await
                    .expect("set");
            }
        }
        let pool = Arc::new(pool);
        let value = Arc::new(value);
        let fresh = Arc::new(AtomicU64::new(0));
        // Warm up: connections, scripts loaded, allocator.
        for s in &SCENARIOS {
            for v in [s.a, s.b] {
                run(&pool, &value, &fresh, v, s.tasks, Duration::from_millis(200)).await;
            }
        }
        let mut results: Vec<Vec<(Sample, Sample)>> = vec![Vec::new(); SCENARIOS.len()];
        for round in 0..rounds {
            for (i, s) in SCENARIOS.iter().enumerate() {
                let (a, b) = if round % 2 == 0 {
                    let a = run(&pool, &value, &fresh, s.a, s.tasks, run_for).await;
                    (a, run(&pool, &value, &fresh, s.b, s.tasks, run_for).await)
                } else {
                    let b = run(&pool, &value, &fresh, s.b, s.tasks, run_for).await;
                    (run(&pool, &value, &fresh, s.a, s.tasks, run_for).await, b)
                };
                println!(
                    "round {} {:<13} {:>2} tasks  {:<16} {:>8.0}/s p50 {:>6.1} µs | {:<24} {:>8.0}/s p50 {:>6.1} µs",
                    round + 1,
                    s.what,
                    s.tasks,
                    s.a.name(),
                    a.per_sec,
                    a.p50_us,
                    s.b.name(),
                    b.per_sec,
                    b.p50_us
                );
                results[i].push((a, b));
            }
        }
        // The hit keys still hold their values: SET NX GET never overwrote one.
        let held: Option<Bytes> = pool.get(hit_key(0)).await.expect("get");
        assert_eq!(held.as_ref(), Some(&*value), "SET NX GET left the value as it was");

        println!(
            "\n{rounds} rounds of {seconds} s per variant, pool {POOL}, medians of the rounds \
             (ratio: the alternative / today, median of each round's ratio)\n"
        );
        println!(
            "| operation | tasks | today | per s | p50 µs | p99 µs | alternative | per s | p50 µs | p99 µs | per s ratio | p50 ratio |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (s, samples) in SCENARIOS.iter().zip(&results) {
            let med = |f: &dyn Fn(&(Sample, Sample)) -> f64| {
                median(samples.iter().map(f).collect())
            };
            println!(
                "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {} | {:.0} | {:.1} | {:.1} | {:.2} ({:.2}-{:.2}) | {:.2} |",
                s.what,
                s.tasks,
                s.a.name(),
                med(&|(a, _)| a.per_sec),
                med(&|(a, _)| a.p50_us),
                med(&|(a, _)| a.p99_us),
                s.b.name(),
                med(&|(_, b)| b.per_sec),
                med(&|(_, b)| b.p50_us),
                med(&|(_, b)| b.p99_us),
                med(&|(a, b)| b.per_sec / a.per_sec),
                samples
                    .iter()
                    .map(|(a, b)| b.per_sec / a.per_sec)
                    .fold(f64::INFINITY, f64::min),
                samples
                    .iter()
                    .map(|(a, b)| b.per_sec / a.per_sec)
                    .fold(0.0, f64::max),
                med(&|(a, b)| b.p50_us / a.p50_us),
            );
        }
    });
}

fn hit_key(task: usize) -> String {
    format!("hit:{task}")
}

fn batch_key(task: usize, j: usize) -> String {
    format!("hit:{task}:{j}")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A marker as unique as cache-core's (its prefix, then 16 bytes), from a counter.
fn marker(n: u64) -> Bytes {
    let mut marker = vec![0xCA, 0xCE, 0xFF, b'L'];
    marker.extend_from_slice(&u64::from(std::process::id()).to_le_bytes());
    marker.extend_from_slice(&n.to_le_bytes());
    Bytes::from(marker)
}

/// Runs `variant` from `tasks` tasks for `run_for`, each task timing each of its operations.
async fn run(
    pool: &Arc<Pool>,
    value: &Arc<Bytes>,
    fresh: &Arc<AtomicU64>,
    variant: Variant,
    tasks: usize,
    run_for: Duration,
) -> Sample {
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let (pool, value, fresh) = (pool.clone(), value.clone(), fresh.clone());
            tokio::spawn(async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
                let batch: Vec<String> = (0..BATCH).map(|j| batch_key(task, j)).collect();
                let key = hit_key(task);
                while started.elapsed() < run_for {
                    let began = Instant::now();
                    once(&pool, &value, &fresh, variant, &key, &batch).await;
                    latencies.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)));
    Sample {
        per_sec: all.len() as f64 / elapsed,
        p50_us: at(0.5).copied().unwrap_or(0) as f64,
        p99_us: at(0.99).copied().unwrap_or(0) as f64,
    }
}

/// One operation of `variant`, its replies checked.
async fn once(
    pool: &Pool,
    value: &Bytes,
    fresh: &AtomicU64,
    variant: Variant,
    key: &str,
    batch: &[String],
) {
    match variant {
        Variant::Get => {
            let got: Option<Bytes> = pool.get(key).await.expect("GET");
            assert!(got.is_some());
        }
        Variant::SetNxGet => {
            let got: Option<Bytes> = pool
                .set(
                    key,
                    marker(0),
                    Some(Expiration::PX(LEASE_MS)),
                    Some(SetOptions::NX),
                    true,
                )
                .await
                .expect("SET NX GET");
            assert!(got.is_some());
        }
        Variant::Mget => {
            let got: Vec<Option<Bytes>> = pool.mget(batch.to_vec()).await.expect("MGET");
            assert!(got.iter().all(Option::is_some));
        }
        Variant::PipelinedSetNxGet => {
            let pipeline = pool.next().pipeline();
            for key in batch {
                let _: () = pipeline
                    .set(
                        key.as_str(),
                        marker(0),
                        Some(Expiration::PX(LEASE_MS)),
                        Some(SetOptions::NX),
                        true,
                    )
                    .await
                    .expect("queued");
            }
            let got: Vec<Value> = pipeline.all().await.expect("pipeline");
            assert!(got.iter().all(|v| !v.is_null()));
        }
        Variant::MissThreeTrips | Variant::MissTwoTrips => {
            let n = fresh.fetch_add(1, Ordering::Relaxed);
            let key = format!("miss:{n}");
            let marker = marker(n);
            let client = pool.next();
            let found: Option<Bytes> = if variant == Variant::MissThreeTrips {
                let first: Option<Bytes> = client.get(key.as_str()).await.expect("GET");
                assert!(first.is_none());
                let client = pool.next();
                SCRIPTS[0]
                    .evalsha_with_reload(
                        client,
                        key.as_str(),
                        vec![Value::Bytes(marker.clone()), LEASE_MS.into()],
                    )
                    .await
                    .expect("EVALSHA get-or-lease")
            } else {
                client
                    .set(
                        key.as_str(),
                        marker.clone(),
                        Some(Expiration::PX(LEASE_MS)),
                        Some(SetOptions::NX),
                        true,
                    )
                    .await
                    .expect("SET NX GET")
            };
            assert!(found.is_none(), "the lease is taken");
            let stored: i64 = SCRIPTS[1]
                .evalsha_with_reload(
                    pool.next(),
                    key.as_str(),
                    vec![
                        Value::Bytes(marker),
                        Value::Bytes(value.clone()),
                        VALUE_MS.into(),
                    ],
                )
                .await
                .expect("EVALSHA set-if-holds");
            assert_eq!(stored, 1, "stored under the lease");
        }
    }
}

// -------------------------------------------------------------------------------------------
// What a SET NX GET that finds a value does besides reading.

/// A field of `INFO {section}` as a number.
fn info_number(server: &RedisServer, section: &str, field: &str) -> i64 {
    server
        .info_field(section, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} {field}"))
}

/// The `{what}=` of `cmdstat_{command}` in `INFO commandstats` (`calls`, `usec_per_call`).
fn cmdstat(server: &RedisServer, command: &str, what: &str) -> f64 {
    server
        .info_field("commandstats", &format!("cmdstat_{command}"))
        .and_then(|v| {
            v.split(',').find_map(|kv| {
                kv.strip_prefix(what)
                    .and_then(|rest| rest.strip_prefix('='))
                    .and_then(|n| n.parse().ok())
            })
        })
        .unwrap_or(0.0)
}

fn set_nx_get(key: &str) -> Vec<Vec<u8>> {
    ["SET", key, "marker", "NX", "GET", "PX", "10000"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
}

/// A reply as redis-cli would show it, roughly.
fn show(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(Some(bytes)) => format!("{:?}", String::from_utf8_lossy(bytes)),
        Reply::Bulk(None) => "nil".into(),
        Reply::Status(status) => status.clone(),
        Reply::Error(error) => format!("error {error:?}"),
        Reply::Integer(n) => n.to_string(),
        Reply::Array(_) => format!("{reply:?}"),
    }
}

fn send(server: &RedisServer, args: &[Vec<u8>]) -> Reply {
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    server.command(&args)
}

/// A raw connection, for pushes (RESP3 invalidations, pub/sub messages) the harness' one-shot
/// client does not read.
struct Raw(TcpStream);

impl Raw {
    fn connect(server: &RedisServer) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Raw(stream)
    }

    fn send(&mut self, line: &str) {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.0
            .write_all(&integration_tests::resp::encode(&args))
            .expect("write");
    }

    /// What arrives within `within` (or until `until` is in it).
    fn read(&mut self, until: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if !until.is_empty() && String::from_utf8_lossy(&seen).contains(until) {
                break;
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }
}

fn facts() {
    let primary = RedisServer::start();
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            replica
                .info_field("replication", "master_link_status")
                .as_deref()
                == Some("up")
        }),
        "the replica syncs"
    );
    let fact = |what: &str, found: String| println!("{what:<58} {found}");

    // Replies.
    primary.cmd("SET held value PX 600000");
    let pttl_before = primary.cmd("PTTL held");
    fact(
        "SET held marker NX GET PX 10000, held holding a value:",
        show(&send(&primary, &set_nx_get("held"))),
    );
    fact(
        "  then GET held, PTTL held:",
        format!(
            "{}, {} (before: {})",
            show(&primary.cmd("GET held")),
            show(&primary.cmd("PTTL held")),
            show(&pttl_before)
        ),
    );
    fact(
        "SET absent marker NX GET PX 10000:",
        format!(
            "{}, then GET absent: {}",
            show(&send(&primary, &set_nx_get("absent"))),
            show(&primary.cmd("GET absent"))
        ),
    );

    // Side effects of 1,000 of each on a key that holds a value.
    let mut notes = Raw::connect(&primary);
    primary.cmd("CONFIG SET notify-keyspace-events KEA");
    notes.send("PSUBSCRIBE __key*__:*");
    notes.read("psubscribe", Duration::from_millis(500));
    for (name, args) in [
        ("GET", vec![b"GET".to_vec(), b"held".to_vec()]),
        ("SET NX GET", set_nx_get("held")),
    ] {
        let before = |s: &RedisServer| {
            [
                info_number(s, "persistence", "rdb_changes_since_last_save"),
                info_number(s, "replication", "master_repl_offset"),
                info_number(s, "stats", "keyspace_hits"),
                info_number(s, "stats", "keyspace_misses"),
                cmdstat(s, "get", "calls") as i64,
                cmdstat(s, "set", "calls") as i64,
            ]
        };
        primary.cmd("CONFIG RESETSTAT");
        let was = before(&primary);
        for _ in 0..1000 {
            send(&primary, &args);
        }
        let now = before(&primary);
        let d: Vec<i64> = now.iter().zip(was).map(|(n, w)| n - w).collect();
        let events = notes
            .read("", Duration::from_millis(300))
            .matches("pmessage")
            .count();
        let command = if name == "GET" { "get" } else { "set" };
        fact(
            &format!("1,000 x {name} on held:"),
            format!(
                "dirty +{}, repl offset +{}, keyspace_hits +{}, keyspace_misses +{}, \
                 cmdstat get +{} set +{}, keyspace events {events}, {:.2} µs per call in Redis",
                d[0],
                d[1],
                d[2],
                d[3],
                d[4],
                d[5],
                cmdstat(&primary, command, "usec_per_call")
            ),
        );
    }
    send(&primary, &set_nx_get("fresh-for-events"));
    fact(
        "  (the subscriber works: one SET NX GET that sets:",
        format!(
            "{} events)",
            notes
                .read("", Duration::from_millis(300))
                .matches("pmessage")
                .count()
        ),
    );

    // The LRU clock: idle 2 s, then each command.
    for (name, args) in [
        ("GET", vec![b"GET".to_vec(), b"held".to_vec()]),
        ("SET NX GET", set_nx_get("held")),
    ] {
        std::thread::sleep(Duration::from_millis(2100));
        let idle = primary.cmd("OBJECT IDLETIME held");
        send(&primary, &args);
        fact(
            &format!("OBJECT IDLETIME held, idle, then after {name}:"),
            format!(
                "{} -> {}",
                show(&idle),
                show(&primary.cmd("OBJECT IDLETIME held"))
            ),
        );
    }

    // Client-side caching (RESP3, default mode: keys read are tracked).
    for (name, line) in [
        ("GET", "GET t1"),
        ("SET NX GET", "SET t2 marker NX GET PX 10000"),
    ] {
        let key = if name == "GET" { "t1" } else { "t2" };
        primary.cmd(&format!("SET {key} value"));
        let mut tracked = Raw::connect(&primary);
        tracked.send("HELLO 3");
        tracked.send("CLIENT TRACKING ON");
        tracked.send(line);
        tracked.read("value", Duration::from_millis(500));
        primary.cmd(&format!("SET {key} changed"));
        tracked.send("PING");
        let pushed = tracked.read("PONG", Duration::from_millis(500));
        fact(
            &format!("tracking on, {name} {key}, {key} changed elsewhere:"),
            if pushed.contains("invalidate") {
                "invalidation pushed".into()
            } else {
                "no invalidation".into()
            },
        );
    }

    // Where Redis refuses it while it serves GET.
    primary.cmd("SET held value");
    assert!(wait_until(Duration::from_secs(5), || {
        replica.cmd("GET held") == Reply::Bulk(Some(b"value".to_vec()))
    }));
    fact(
        "on the replica: GET held / SET NX GET held:",
        format!(
            "{} / {}",
            show(&replica.cmd("GET held")),
            show(&send(&replica, &set_nx_get("held")))
        ),
    );
    let load: Vec<Vec<u8>> = vec![b"SCRIPT".to_vec(), b"LOAD".to_vec(), GET_OR_LEASE.into()];
    let Reply::Bulk(Some(sha)) = send(&replica, &load) else {
        panic!("SCRIPT LOAD")
    };
    let evalsha = |key: &str| -> Vec<Vec<u8>> {
        vec![
            b"EVALSHA".to_vec(),
            sha.clone(),
            b"1".to_vec(),
            key.into(),
            b"marker".to_vec(),
            b"10000".to_vec(),
        ]
    };
    fact(
        "on the replica: EVALSHA get-or-lease held / absent2:",
        format!(
            "{} / {}",
            show(&send(&replica, &evalsha("held"))),
            show(&send(&replica, &evalsha("absent2")))
        ),
    );
    primary.cmd("CONFIG SET min-replicas-to-write 2");
    fact(
        "min-replicas-to-write 2 (1 replica): GET / SET NX GET:",
        format!(
            "{} / {}",
            show(&primary.cmd("GET held")),
            show(&send(&primary, &set_nx_get("held")))
        ),
    );
    primary.cmd("CONFIG SET min-replicas-to-write 0");
    primary.cmd("CONFIG SET maxmemory-policy noeviction");
    primary.cmd("CONFIG SET maxmemory 1");
    fact(
        "over maxmemory, noeviction: GET / SET NX GET:",
        format!(
            "{} / {}",
            show(&primary.cmd("GET held")),
            show(&send(&primary, &set_nx_get("held")))
        ),
    );
    primary.cmd("CONFIG SET maxmemory 0");
}
