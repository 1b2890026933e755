//! The report: a table on stdout, `report.json`, `report.md` and the charts.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::plot;
use crate::runner::{Row, Settings};
use crate::CONCURRENCY;

/// Writes the table, `report.json`, `report.md` and the charts into `BENCH_OUT`.
pub(crate) fn report(
    settings: &Settings,
    rows: &[Row],
    extra: &BTreeMap<String, serde_json::Value>,
    elapsed: Duration,
) {
    let mut md = String::new();
    md.push_str(&format!(
        "{} rounds of {:.1} s (+{:.1} s warm-up) per scenario and concurrency; medians over rounds; \
         ratio: ops/s over the best bare fred GET+decode pool of the same round (batch: over 100 sequential gets)\n\n",
        settings.rounds,
        settings.window.as_secs_f64(),
        settings.warmup.as_secs_f64()
    ));
    md.push_str("| comparison | scenario | tasks | ops/s | p50 µs | p99 µs | p99.9 µs | ratio |\n");
    md.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} |\n",
            r.comparison,
            r.scenario,
            r.concurrency,
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.ratio
        ));
    }
    md.push('\n');
    if let Some(c) = extra.get("clear_pattern") {
        md.push_str(&format!(
            "clear_pattern of {} keys: Cache::clear_pattern {:.2} s, redis-cli --scan | xargs unlink {:.2} s (median ratio {:.2})\n\n",
            c["keys"], c["median_cache_s"].as_f64().unwrap_or(f64::NAN),
            c["median_cli_s"].as_f64().unwrap_or(f64::NAN),
            c["median_ratio_cache_over_cli"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    if let Some(a) = extra.get("allocations") {
        md.push_str(&format!("allocations per call: {a}\n\n"));
    }
    md.push_str(&format!("suite wall time {:.0} s\n", elapsed.as_secs_f64()));
    println!("{md}");
    std::fs::write(settings.out.join("report.md"), &md).expect("report.md");
    let json = serde_json::json!({
        "rounds": settings.rounds,
        "window_s": settings.window.as_secs_f64(),
        "warmup_s": settings.warmup.as_secs_f64(),
        "machine": machine(),
        "rows": rows,
        "extra": extra,
        "wall_time_s": elapsed.as_secs_f64(),
    });
    std::fs::write(
        settings.out.join("report.json"),
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("report.json");

    // Charts: hits of each value size, and the pool study at every concurrency.
    let groups: Vec<String> = CONCURRENCY.iter().map(|c| format!("{c} tasks")).collect();
    for (comparison, file) in [
        ("hit ~100 B", "hits-100b.svg"),
        ("hit ~10 KB", "hits-10kb.svg"),
    ] {
        let best_floor = |c: usize| {
            rows.iter()
                .filter(|r| r.comparison == comparison && r.concurrency == c && r.baseline)
                .map(|r| r.ops_per_sec)
                .fold(f64::NAN, f64::max)
        };
        let pick = |name: &str, c: usize| {
            rows.iter()
                .find(|r| r.comparison == comparison && r.concurrency == c && r.scenario == name)
                .map_or(f64::NAN, |r| r.ops_per_sec)
        };
        let series = vec![
            "#[cached] hit (default pool)".to_owned(),
            "bare fred GET + bincode (best pool)".to_owned(),
            "cached crate #[concurrent_cached] (redis-rs)".to_owned(),
        ];
        let values = vec![
            CONCURRENCY
                .iter()
                .map(|&c| pick("1 #[cached] hit", c))
                .collect(),
            CONCURRENCY.iter().map(|&c| best_floor(c)).collect(),
            CONCURRENCY
                .iter()
                .map(|&c| pick("3 cached crate #[concurrent_cached]", c))
                .collect(),
        ];
        let svg = plot::grouped_bars(
            &format!(
                "Cache hits per second, {comparison} value (median of {} rounds)",
                settings.rounds
            ),
            "hits per second",
            &groups,
            &series,
            &values,
        );
        std::fs::write(settings.out.join(file), svg).expect("svg");
    }
    let pool_groups: Vec<String> = settings.pools.iter().map(|p| format!("pool {p}")).collect();
    let mut series = Vec::new();
    let mut values = Vec::new();
    for (prefix, label) in [
        ("2 fred GET+decode pool ", "fred"),
        ("1b Cache::get pool ", "Cache::get"),
    ] {
        for &c in &CONCURRENCY {
            series.push(format!("{label}, {c} tasks"));
            values.push(
                settings
                    .pools
                    .iter()
                    .map(|p| {
                        rows.iter()
                            .find(|r| {
                                r.comparison == "hit ~100 B"
                                    && r.concurrency == c
                                    && r.scenario == format!("{prefix}{p}")
                            })
                            .map_or(f64::NAN, |r| r.ops_per_sec)
                    })
                    .collect(),
            );
        }
    }
    let svg = plot::grouped_bars(
        "Pool size study: GET of a ~100 B value, ops/s",
        "ops per second",
        &pool_groups,
        &series,
        &values,
    );
    std::fs::write(settings.out.join("pools.svg"), svg).expect("svg");
    eprintln!("wrote {}", settings.out.display());
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let redis = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    serde_json::json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "redis": redis,
        "os": std::env::consts::OS,
    })
}
