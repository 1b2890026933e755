//! `cachectl health`: the library's own health report ([`Cache::health_check`]), as text or JSON;
//! exit code 0 when healthy, 1 when not.

use std::time::Instant;

use super::{Failure, EXIT_FAILED};
use crate::config::BackendConfig;
use crate::{cache::Cache, config::CacheConfig, health::HealthReport};

pub(super) async fn run(config: CacheConfig, json: bool) -> Result<(), Failure> {
    let target = match config.backend() {
        BackendConfig::Redis(url) => url.redacted(),
        BackendConfig::Memory { .. } => "in-process memory".to_owned(),
    };
    let started = Instant::now();
    let report = match Cache::new(config).await {
        Ok(cache) => cache.health_check().await,
        Err(e) => HealthReport::failed(
            "redis",
            started.elapsed().as_secs_f64() * 1000.0,
            e.to_string(),
        ),
    };
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::failed(format!("cannot write the report as JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&report, &target));
    }
    if report.healthy {
        Ok(())
    } else {
        Err(Failure::silent(EXIT_FAILED))
    }
}

/// The report as aligned `name: value` lines, one block per node.
fn render(report: &HealthReport, target: &str) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: &str| out.push_str(&format!("{name:<24}{value}\n"));
    line(
        "status:",
        if report.healthy {
            "healthy"
        } else {
            "UNHEALTHY"
        },
    );
    line("redis:", target);
    line("backend:", report.backend);
    line("latency:", &format!("{:.2} ms", report.latency_ms));
    if let Some(error) = &report.error {
        line("error:", error);
    }
    if let Some(version) = &report.version {
        line("version:", version);
    }
    if let Some(memory) = &report.used_memory {
        line("used memory:", memory);
    }
    if let Some(clients) = report.connected_clients {
        line("connected clients:", &clients.to_string());
    }
    if let Some(uptime) = report.uptime_seconds {
        line("uptime:", &format!("{uptime} s"));
    }
    line("circuit:", report.circuit);
    line(
        "pending invalidations:",
        &report.invalidations_pending.to_string(),
    );
    if report.nodes.len() > 1 {
        for node in &report.nodes {
            let mut parts = vec![
                node.role.to_owned(),
                if node.healthy { "healthy" } else { "UNHEALTHY" }.to_owned(),
            ];
            if let Some(ms) = node.latency_ms {
                parts.push(format!("{ms:.2} ms"));
            }
            if let Some(slots) = node.slots {
                parts.push(format!("{slots} slots"));
            }
            if let Some(error) = &node.error {
                parts.push(error.clone());
            }
            line(&format!("node {}:", node.address), &parts.join(", "));
        }
    }
    out
}
