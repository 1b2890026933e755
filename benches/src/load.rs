//! Closed-loop load: N tasks, each issuing its next call as soon as the previous one returns, for a
//! fixed time after a warm-up; throughput and latency percentiles of the measured window.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

/// One measurement of one scenario at one concurrency.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// Runs `op` from `tasks` concurrent tasks: `warmup` unmeasured, then `window` measured.
/// `op(i)` gets a number unique to the call (scenarios that need fresh keys use it).
pub async fn closed_loop<F, Fut>(tasks: usize, warmup: Duration, window: Duration, op: F) -> Sample
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Each task reads the clock around every call anyway, so it also decides by the clock when to
    // start measuring and when to stop: no timer has to fire while tasks that never yield (an
    // in-process backend answers without waiting) keep both workers busy.
    let start = Instant::now() + warmup;
    let end = start + window;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
                let mut i = (t as u64) << 40;
                loop {
                    let started = Instant::now();
                    if started >= end {
                        break;
                    }
                    op(i).await;
                    i += 1;
                    if started >= start {
                        let ns = started.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                        latencies.push(ns);
                    }
                    if i % 32 == 0 {
                        // Fairness between tasks whose calls complete without yielding.
                        tokio::task::yield_now().await;
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("load task"));
    }
    let elapsed = window;
    summarize(all, elapsed)
}

/// Runs `op` once per iteration, sequentially, `warmup` then `window`: for operations that are
/// themselves batches (get_many against 100 gets).
pub fn summarize(mut latencies: Vec<u32>, elapsed: Duration) -> Sample {
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    Sample {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
    }
}

/// The median of `xs` (NaN-free input assumed).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
