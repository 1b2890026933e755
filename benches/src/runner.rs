//! The runner: settings, scenarios, and the interleaved rounds that compare them.

use std::collections::BTreeMap;
use std::future::Future;
use std::hint::black_box;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{Cache, CacheConfig};
use fred::prelude::{Builder, ClientLike, Config, KeysInterface, Pool};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::load::{closed_loop, median, Sample};
use crate::{keys, values};

pub(crate) struct Settings {
    pub(crate) rounds: usize,
    pub(crate) window: Duration,
    pub(crate) warmup: Duration,
    pub(crate) pools: Vec<usize>,
    pub(crate) clear_keys: u64,
    pub(crate) out: PathBuf,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Settings {
    pub(crate) fn from_env() -> Settings {
        Settings {
            rounds: env_or("BENCH_ROUNDS", 3usize).max(1),
            window: Duration::from_secs_f64(env_or("BENCH_SECONDS", 0.8)),
            warmup: Duration::from_secs_f64(env_or("BENCH_WARMUP", 0.2)),
            pools: std::env::var("BENCH_POOLS")
                .unwrap_or_else(|_| "1,2,4,10,32".into())
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect(),
            clear_keys: env_or("BENCH_CLEAR_KEYS", 1_000_000u64),
            out: std::env::var("BENCH_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from("target/cache-bench")),
        }
    }
}

/// Every sample of one scenario at one concurrency, one per round.
#[derive(Debug, Default, Serialize)]
struct Cell {
    samples: Vec<Sample>,
    /// Ratio of ops/s against the comparison's floor in the same round.
    ratios: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) comparison: String,
    pub(crate) scenario: String,
    pub(crate) concurrency: usize,
    pub(crate) ops_per_sec: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    /// A baseline scenario.
    pub(crate) baseline: bool,
    /// Median over rounds of the per-round ratio against the floor (NaN: no floor).
    pub(crate) ratio: f64,
    pub(crate) rounds: Vec<Sample>,
}

type Op = Box<dyn Fn(u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A scenario: a name and what one call does. Boxed so that all scenarios share one runner; the
/// box costs every scenario the same (one allocation and an indirect call, ~50 ns).
pub(crate) struct Scenario {
    name: String,
    op: &'static Op,
    /// A baseline: the ratios of its comparison are taken against the best baseline of each
    /// round.
    baseline: bool,
}

/// A scenario measured against the baselines.
pub(crate) fn scenario<F, Fut>(name: impl Into<String>, f: F) -> Scenario
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let op: Op = Box::new(move |i| Box::pin(f(i)));
    Scenario {
        name: name.into(),
        op: Box::leak(Box::new(op)),
        baseline: false,
    }
}

/// A baseline scenario (the bare client, or the naive way).
pub(crate) fn baseline<F, Fut>(name: impl Into<String>, f: F) -> Scenario
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Scenario {
        baseline: true,
        ..scenario(name, f)
    }
}

/// `Cache::get` of the key of each call's task among `keys`, decoded as `V`.
pub(crate) fn cache_get<V>(
    name: impl Into<String>,
    cache: &'static Cache,
    keys: &'static [String],
) -> Scenario
where
    V: DeserializeOwned + Serialize + Send + 'static,
{
    scenario(name, move |i| async move {
        let key = keys[keys::id(i) as usize].as_str();
        black_box(cache.get::<V>(key).await.expect("get"));
    })
}

/// The floor: bare fred's GET of the raw bincode copy of each call's task among `keys`,
/// decoded as `V`.
pub(crate) fn fred_get<V>(
    name: impl Into<String>,
    pool: &'static Pool,
    keys: &'static [String],
) -> Scenario
where
    V: DeserializeOwned + Send + 'static,
{
    baseline(name, move |i| async move {
        let key = keys[keys::id(i) as usize].as_str();
        let bytes: Bytes = pool.get(key).await.expect("get");
        black_box(values::bincode_decode::<V>(&bytes));
    })
}

/// Runs `scenarios` at each concurrency, interleaved, for the configured rounds. The floor of
/// each round and concurrency is the best of the [`baseline`] scenarios.
pub(crate) async fn compare(
    settings: &Settings,
    comparison: &str,
    scenarios: &[Scenario],
    concurrency: &[usize],
) -> Vec<Row> {
    let mut cells: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    for round in 0..settings.rounds {
        for &tasks in concurrency {
            let mut ops = BTreeMap::new();
            for k in 0..scenarios.len() {
                // Rotate the order each round, so drift does not always favour the same one.
                let s = (k + round) % scenarios.len();
                let op = scenarios[s].op;
                let sample = closed_loop(tasks, settings.warmup, settings.window, op).await;
                eprintln!(
                    "  [{comparison}] round {} c={tasks:<3} {:<34} {:>10.0} ops/s  p50 {:>7.1} µs  p99 {:>7.1} µs",
                    round + 1,
                    scenarios[s].name,
                    sample.ops_per_sec,
                    sample.p50_us,
                    sample.p99_us
                );
                ops.insert(s, sample.ops_per_sec);
                cells.entry((s, tasks)).or_default().samples.push(sample);
            }
            let best_floor = scenarios
                .iter()
                .enumerate()
                .filter(|(_, sc)| sc.baseline)
                .map(|(s, _)| ops[&s])
                .fold(f64::NAN, f64::max);
            for (s, v) in ops {
                cells
                    .entry((s, tasks))
                    .or_default()
                    .ratios
                    .push(v / best_floor);
            }
        }
    }
    let mut rows = Vec::new();
    for (s, sc) in scenarios.iter().enumerate() {
        for &tasks in concurrency {
            let cell = &cells[&(s, tasks)];
            let pick =
                |f: fn(&Sample) -> f64| median(&cell.samples.iter().map(f).collect::<Vec<_>>());
            rows.push(Row {
                comparison: comparison.to_owned(),
                scenario: sc.name.clone(),
                baseline: sc.baseline,
                concurrency: tasks,
                ops_per_sec: pick(|s| s.ops_per_sec),
                p50_us: pick(|s| s.p50_us),
                p99_us: pick(|s| s.p99_us),
                p999_us: pick(|s| s.p999_us),
                ratio: median(&cell.ratios),
                rounds: cell.samples.clone(),
            });
        }
    }
    rows
}

/// A bare fred pool of `size` connections, connected.
pub(crate) async fn fred_pool(url: &str, size: usize) -> &'static Pool {
    let config = Config::from_url(url).expect("url");
    let pool = Builder::from_config(config)
        .build_pool(size)
        .expect("fred pool");
    pool.init().await.expect("fred connects");
    Box::leak(Box::new(pool))
}

/// A cache of its own with `size` connections.
pub(crate) async fn cache_with_pool(url: &str, size: usize) -> &'static Cache {
    cache_with(CacheConfig::builder().url(url).pool_size(size)).await
}

/// A separate cache, failing loudly, as `builder` configures it.
pub(crate) async fn cache_with(builder: cache_core::CacheConfigBuilder) -> &'static Cache {
    let config = builder.fail_silently(false).build().expect("config");
    Box::leak(Box::new(Cache::new(config).await.expect("cache")))
}
