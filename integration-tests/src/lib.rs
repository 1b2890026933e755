//! Test harness: real `redis-server` processes on free loopback ports, and a raw RESP client that
//! does not share code with the library under test. Tests are written as users write theirs:
//! `#[tokio::test]` functions, each on a runtime of its own (the cache works from any runtime).
//!
//! Servers are stopped by pid when their [`RedisServer`] is dropped (also on panic), and a
//! watchdog shell kills them when the test process dies any other way, so no server outlives
//! its test binary. The Redis on 127.0.0.1:6379 is never used.
//!
//! [`server`] runs one `redis-server`, [`cluster`] a 3-primary cluster, [`sentinel`] a primary,
//! a replica and sentinels, [`proxy`] a fault-injecting TCP proxy, [`resp`] writes and reads the
//! protocol.

use std::net::TcpListener;
use std::time::{Duration, Instant};

pub mod cluster;
pub mod proxy;
pub mod resp;
pub mod sentinel;
pub mod server;

pub use resp::{reply_text, Reply};
pub use server::{require_binary, RedisServer, Watched, INSTALL};

/// A loopback port that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    let port = listener.local_addr().expect("local address").port();
    assert_ne!(port, 6379, "the shared Redis port must never be used");
    port
}

/// A `redis://` URL to a loopback *tarpit*: a listener that accepts every connection and holds it
/// open, answering nothing, until the test process ends (a hung server, seen from the client).
pub fn tarpit_url() -> String {
    let tarpit = TcpListener::bind("127.0.0.1:0").expect("bind a loopback tarpit");
    let port = tarpit.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for socket in tarpit.incoming().flatten() {
            held.push(socket);
        }
    });
    format!("redis://127.0.0.1:{port}/0")
}

/// A `redis://` URL to a loopback port where nothing listens.
pub fn closed_port_url() -> String {
    format!("redis://127.0.0.1:{}/0", free_port())
}

/// The resident memory of this process in bytes, from /proc.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; whether it held.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends one command to whatever listens on `127.0.0.1:{port}` (a server, a sentinel, a cluster
/// node), over a fresh connection with a 5 s timeout.
pub fn command_at(port: u16, args: &[&str]) -> std::io::Result<Reply> {
    assert_ne!(port, 6379, "the shared Redis port must never be used");
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp::request(port, &args)
}

/// A binary of this workspace that a test runs as a child process (an example, another
/// package's binary), at `relative` under the test's `target/<profile>` directory.
///
/// `cargo test --workspace --all-features` builds every example and binary before running any
/// test, so in a full run this only finds it. When it is missing or older than the test binary
/// (a test run on its own, after a change), it is built first with `cargo build --all-features`
/// and `build_args` (the same features, so nothing else is compiled twice).
pub fn workspace_binary(relative: &str, build_args: &[&str]) -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test binary's path");
    // The test runs as target/<profile>/deps/<name>-<hash>.
    let profile_dir = test
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join(format!("{relative}{}", std::env::consts::EXE_SUFFIX));
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified());
    let fresh = match (modified(&binary), modified(&test)) {
        (Ok(built), Ok(test)) => built >= test,
        _ => false,
    };
    if !fresh {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .arg("build")
            .arg("--all-features")
            .args(build_args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build {build_args:?} failed");
    }
    assert!(binary.is_file(), "no binary at {}", binary.display());
    binary
}

/// The sum of every sample of the metric `name` (any labels) in a Prometheus text page.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of `name{...space="space"...}` in a Prometheus text page, if it has that sample.
pub fn metric_sample(text: &str, name: &str, space: &str) -> Option<f64> {
    let label = format!("space=\"{space}\"");
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(&label))
        .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
}
