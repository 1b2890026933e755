//! `cachectl`, run as an operator runs it: the binary, against a real redis-server, with the
//! configuration in the environment, checked by its output and exit code.
//!
//! The binary belongs to cache-core (feature `cli`); [`binary`] builds it first when it is
//! missing or stale.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use cache_core::codec::CodecKind;
use cache_core::{Cache, CacheConfig};
use integration_tests::{closed_port_url, RedisServer, Reply};

/// The `cachectl` binary (cache-core's, so `cargo test -p integration-tests` alone does not
/// build it), built first when it is missing or stale.
fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        integration_tests::workspace_binary("cachectl", &["-p", "cache-core", "--bin", "cachectl"])
    })
}

/// `cachectl` pointed at `url`, in an empty working directory (no stray `.env`), with no other
/// cache settings inherited from the test's environment.
fn cachectl(url: &str) -> Command {
    let dir = std::env::temp_dir().join(format!("cachectl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", url)
        .env("REDIS_SOCKET_TIMEOUT", "2")
        .timeout(Duration::from_secs(40));
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn cache(url: &str, codec: CodecKind) -> Cache {
    let config = CacheConfig::builder()
        .url(url)
        .codec(codec)
        .fail_silently(false)
        .build()
        .unwrap();
    Cache::new(config).await.unwrap()
}

/// `n` keys `{prefix}{i}` with the value `value`, written raw in one MSET.
fn populate(server: &RedisServer, prefix: &str, n: usize, value: &str) {
    let pairs: Vec<String> = (0..n)
        .flat_map(|i| [format!("{prefix}{i}"), value.to_owned()])
        .collect();
    let mut args: Vec<&[u8]> = vec![b"MSET"];
    args.extend(pairs.iter().map(|s| s.as_bytes()));
    assert_eq!(server.command(&args), Reply::Status("OK".into()));
}

fn exists(server: &RedisServer, key: &str) -> bool {
    server.command(&[b"EXISTS", key.as_bytes()]) == Reply::Integer(1)
}

#[test]
fn health_is_0_with_a_live_server_in_text_and_json() {
    let server = RedisServer::start();
    let out = cachectl(&server.url()).arg("health").assert().success();
    let stdout = text(&out.get_output().stdout);
    assert!(
        stdout.contains("status:") && stdout.contains("healthy"),
        "{stdout}"
    );
    assert!(stdout.contains("version:"), "{stdout}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{}", server.port())),
        "{stdout}"
    );

    let out = cachectl(&server.url())
        .args(["health", "--json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["healthy"], true, "{json}");
    assert_eq!(json["backend"], "redis", "{json}");
    assert!(json["latency_ms"].as_f64().is_some(), "{json}");
}

#[test]
fn health_is_1_with_a_dead_port_and_never_prints_the_password() {
    let url = closed_port_url().replace("redis://", "redis://:s3cret@");
    let out = cachectl(&url).arg("health").assert().code(1);
    let stdout = text(&out.get_output().stdout);
    assert!(stdout.contains("UNHEALTHY"), "{stdout}");
    assert!(stdout.contains("error:"), "{stdout}");
    assert!(!stdout.contains("s3cret"), "{stdout}");
    let out = cachectl(&url).args(["health", "--json"]).assert().code(1);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["healthy"], false, "{json}");
    assert!(json["error"].is_string(), "{json}");
}

#[test]
fn a_bad_configuration_is_exit_2_naming_the_variable() {
    let out = cachectl("redis://127.0.0.1:1/0")
        .env("REDIS_POOL_SIZE", "many")
        .arg("health")
        .assert()
        .code(2);
    let stderr = text(&out.get_output().stderr);
    assert!(stderr.contains("REDIS_POOL_SIZE"), "{stderr}");
}

#[tokio::test]
async fn stats_tables_the_key_spaces_by_memory() {
    let server = RedisServer::start();
    let cache = cache(&server.url(), CodecKind::Bincode).await;
    for i in 0..40 {
        cache
            .set(&format!("user:get_user:{i}"), &format!("user {i}"), None)
            .await
            .unwrap();
    }
    for i in 0..5 {
        cache
            .set(
                &format!("server:get_server_details:{i}"),
                &"x".repeat(4000),
                None,
            )
            .await
            .unwrap();
    }
    // An escaped `:` stays inside its segment.
    cache.set(r"odd\:prefix:f:1", &1, None).await.unwrap();

    let out = cachectl(&server.url()).arg("stats").assert().success();
    let stdout = text(&out.get_output().stdout);
    assert!(
        stdout.contains("sample: 46 of 46 keys (DBSIZE)"),
        "{stdout}"
    );
    let row = |space: &str| {
        stdout
            .lines()
            .position(|l| l.split_whitespace().next() == Some(space))
            .unwrap_or_else(|| panic!("no row for {space}:\n{stdout}"))
    };
    let (server_row, user_row) = (row("server:get_server_details"), row("user:get_user"));
    assert!(server_row < user_row, "sorted by memory:\n{stdout}");
    row(r"odd\:prefix:f");
    let user_line = stdout.lines().nth(user_row).unwrap();
    assert_eq!(user_line.split_whitespace().nth(1), Some("40"), "{stdout}");
    let header = stdout.lines().find(|l| l.starts_with("KEY SPACE")).unwrap();
    assert!(
        header.contains("KEYS") && header.contains("MEMORY"),
        "{stdout}"
    );

    // A smaller sample says so.
    let out = cachectl(&server.url())
        .args(["stats", "--sample", "10"])
        .assert()
        .success();
    let stdout = text(&out.get_output().stdout);
    assert!(
        stdout.contains("sample: 10 of 46 keys (DBSIZE)"),
        "{stdout}"
    );
    assert!(stdout.contains("for the sample only"), "{stdout}");
}

#[tokio::test]
async fn inspect_shows_a_json_value_decoded() {
    let server = RedisServer::start();
    let cache = cache(&server.url(), CodecKind::Json).await;
    let value = serde_json::json!({"id": 7, "name": "web-7", "tags": ["a", "b"]});
    cache
        .set(
            "server:get_server_details:7",
            &value,
            Some(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    let out = cachectl(&server.url())
        .args(["inspect", "server:get_server_details:7"])
        .assert()
        .success();
    let stdout = text(&out.get_output().stdout);
    for expected in [
        "envelope:           valid",
        "format version:",
        "codec:              json (id 2)",
        "flags:              none",
        "schema fingerprint: 0x",
        "\"name\": \"web-7\"",
    ] {
        assert!(stdout.contains(expected), "{expected}:\n{stdout}");
    }
    let ttl_line = stdout.lines().find(|l| l.starts_with("ttl:")).unwrap();
    let ttl: f64 = ttl_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(ttl > 590.0 && ttl <= 600.0, "{stdout}");
}

#[tokio::test]
async fn inspect_shows_a_bincode_header_and_a_hex_preview() {
    let server = RedisServer::start();
    let cache = cache(&server.url(), CodecKind::Bincode).await;
    cache
        .set("user:get_user:1", &(1u8, "Alice"), None)
        .await
        .unwrap();
    let out = cachectl(&server.url())
        .args(["inspect", "user:get_user:1"])
        .assert()
        .success();
    let stdout = text(&out.get_output().stdout);
    assert!(
        stdout.contains("codec:              bincode (id 1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cannot be decoded without the Rust type"),
        "{stdout}"
    );
    assert!(stdout.contains("|..Alice|"), "{stdout}");
}

#[test]
fn inspect_a_missing_key_or_foreign_bytes_is_exit_1() {
    let server = RedisServer::start();
    let out = cachectl(&server.url())
        .args(["inspect", "no:such:key"])
        .assert()
        .code(1);
    assert!(text(&out.get_output().stderr).contains("no key \"no:such:key\""));

    server.command(&[b"SET", b"foreign", b"{\"from\":\"python\"}"]);
    server.command(&[b"SET", b"truncated", &[0xCA, 0xCE, 3]]);
    for key in ["foreign", "truncated"] {
        let out = cachectl(&server.url())
            .args(["inspect", key])
            .assert()
            .code(1);
        let (stdout, stderr) = (
            text(&out.get_output().stdout),
            text(&out.get_output().stderr),
        );
        assert!(stdout.contains("envelope:           INVALID"), "{stdout}");
        assert!(stderr.contains("is not a cache value"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A JSON value's header (any JSON value's: inspect shows whatever the header's codec reads)
/// followed by `payload`, as forged bytes written with a plain Redis client.
fn forged_json(payload: &[u8]) -> Vec<u8> {
    let header = &cache_core::codec::encode_value(CodecKind::Json, &serde_json::json!([])).unwrap()
        [..cache_core::codec::HEADER_LEN];
    [header, payload].concat()
}

/// `cachectl inspect key` with `env`: its exit code, stdout and stderr, and how long it took.
fn inspect(server: &RedisServer, key: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = cachectl(&server.url());
    command.args(["inspect", key]);
    for (name, value) in env {
        command.env(name, value);
    }
    let start = Instant::now();
    let out = command.output().unwrap();
    let took = start.elapsed();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stderr.contains("panicked"), "{key}: {stderr}");
    assert!(took < Duration::from_secs(10), "{key}: {took:?}");
    (out.status.code().unwrap(), stdout, stderr)
}

#[tokio::test]
async fn inspect_reads_json_within_the_bounds_the_runtime_reads_it_in() {
    let server = RedisServer::start();
    let limits = [
        ("CACHE_MAX_VALUE_BYTES", "1048576"),
        ("CACHE_MAX_DECODED_BYTES", "4194304"),
    ];

    // A 2 MiB string: over CACHE_MAX_VALUE_BYTES, which the runtime refuses before reading.
    let big = [b"\"".as_slice(), &vec![b'a'; 2 << 20], b"\""].concat();
    server.command(&[b"SET", b"forged:big", &forged_json(&big)]);
    let (code, stdout, stderr) = inspect(&server, "forged:big", &limits);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("CACHE_MAX_VALUE_BYTES"), "{stderr}");
    assert!(stdout.len() < 4096, "{} bytes printed", stdout.len());

    // 500,000 zeros in 1 MB: 16 MB once decoded (each element a `serde_json::Value`), over
    // CACHE_MAX_DECODED_BYTES; and the same compressed, 4 KB stored.
    let zeros = [b"[".as_slice(), &b"0,".repeat(499_999), b"0]"].concat();
    server.command(&[b"SET", b"forged:zeros", &forged_json(&zeros)]);
    let compressed = cache_core::codec::Envelope::new(CodecKind::Json, 1 << 20)
        .compress_from(64)
        .encode(&vec![0u8; 500_000])
        .unwrap();
    assert!(compressed.len() < 8192, "{}", compressed.len());
    server.command(&[b"SET", b"forged:zeros.lz4", &compressed]);
    for key in ["forged:zeros", "forged:zeros.lz4"] {
        let (code, stdout, stderr) = inspect(&server, key, &limits);
        assert_eq!(code, 1, "{key}: {stderr}");
        assert!(
            stderr.contains("CACHE_MAX_DECODED_BYTES"),
            "{key}: {stderr}"
        );
        assert!(stdout.len() < 4096, "{key}: {} bytes printed", stdout.len());
    }

    // 100,000 nested arrays: refused at the runtime's depth, never near the stack's end.
    let deep = [b"[".repeat(100_000), b"]".repeat(100_000)].concat();
    server.command(&[b"SET", b"forged:deep", &forged_json(&deep)]);
    let (code, _, stderr) = inspect(&server, "forged:deep", &limits);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nests more than 127 levels"), "{stderr}");

    // Within every bound, yet 100 levels deep around 200,000 zeros: pretty-printed, each zero
    // on a line indented 200 spaces, 40 MB of text from 400 KB. Shown cut, with a word.
    let wide = [
        b"[".repeat(100),
        b"0,".repeat(199_999),
        b"0".to_vec(),
        b"]".repeat(100),
    ]
    .concat();
    server.command(&[b"SET", b"forged:wide", &forged_json(&wide)]);
    let roomy = [("CACHE_MAX_DECODED_BYTES", "67108864")];
    let (code, stdout, stderr) = inspect(&server, "forged:wide", &roomy);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.len() < 2 << 20, "{} bytes printed", stdout.len());
    assert!(
        stdout.contains("cut after"),
        "{}",
        &stdout[stdout.len() - 300..]
    );
}

#[test]
fn invalidate_dry_run_counts_and_deletes_nothing_then_deletes_exactly_the_matches() {
    let server = RedisServer::start();
    populate(&server, "user:get_user:", 300, "v");
    populate(&server, "user:other:", 20, "v");
    populate(&server, "server:get:", 50, "v");
    let out = cachectl(&server.url())
        .args(["invalidate", "user:get_user:*", "--dry-run"])
        .assert()
        .success();
    let stdout = text(&out.get_output().stdout);
    assert!(
        stdout.contains("300 keys match 'user:get_user:*'"),
        "{stdout}"
    );
    assert_eq!(server.dbsize(), 370);

    let out = cachectl(&server.url())
        .args(["invalidate", "user:get_user:*"])
        .assert()
        .success();
    let stdout = text(&out.get_output().stdout);
    assert!(
        stdout.contains("deleted 300 keys matching 'user:get_user:*'"),
        "{stdout}"
    );
    assert_eq!(server.dbsize(), 70);
    assert!(exists(&server, "user:other:0") && exists(&server, "server:get:49"));
    assert!(!exists(&server, "user:get_user:0"));
}

#[test]
fn invalidate_asks_above_the_threshold_and_obeys_the_answer() {
    let server = RedisServer::start();
    populate(&server, "big:", 1500, "v");
    populate(&server, "small:", 5, "v");

    // Above the default threshold (1000): "n" refuses, nothing is deleted.
    let out = cachectl(&server.url())
        .args(["invalidate", "big:*"])
        .write_stdin("n\n")
        .assert()
        .code(1);
    let (stdout, stderr) = (
        text(&out.get_output().stdout),
        text(&out.get_output().stderr),
    );
    assert!(
        stderr.contains("delete 1500 keys matching 'big:*'? [y/N]"),
        "{stderr}"
    );
    assert!(stdout.contains("aborted"), "{stdout}");
    assert_eq!(server.dbsize(), 1505);

    // No answer at all (end of input) is a no too.
    cachectl(&server.url())
        .args(["invalidate", "big:*"])
        .write_stdin("")
        .assert()
        .code(1);
    assert_eq!(server.dbsize(), 1505);

    // "y" proceeds.
    let out = cachectl(&server.url())
        .args(["invalidate", "big:*"])
        .write_stdin("y\n")
        .assert()
        .success();
    assert!(text(&out.get_output().stdout).contains("deleted 1500 keys matching 'big:*'"));
    assert_eq!(server.dbsize(), 5);

    // Below the threshold: no question.
    let out = cachectl(&server.url())
        .args(["invalidate", "small:*", "--confirm-above", "10"])
        .assert()
        .success();
    assert!(!text(&out.get_output().stderr).contains("[y/N]"));
    assert_eq!(server.dbsize(), 0);
}

#[test]
fn invalidate_yes_skips_the_question_and_star_is_no_exception() {
    let server = RedisServer::start();
    populate(&server, "a:", 20, "v");
    populate(&server, "b:", 20, "v");
    // `*` asks like any other pattern.
    cachectl(&server.url())
        .args(["invalidate", "*", "--confirm-above", "5"])
        .write_stdin("no\n")
        .assert()
        .code(1);
    assert_eq!(server.dbsize(), 40);
    let out = cachectl(&server.url())
        .args(["invalidate", "*", "--confirm-above", "5", "--yes"])
        .assert()
        .success();
    assert!(!text(&out.get_output().stderr).contains("[y/N]"));
    assert!(text(&out.get_output().stdout).contains("deleted 40 keys matching '*'"));
    assert_eq!(server.dbsize(), 0);
}

#[test]
fn invalidate_refuses_an_empty_or_malformed_pattern() {
    let server = RedisServer::start();
    populate(&server, "a:", 3, "v");
    let out = cachectl(&server.url())
        .args(["invalidate", "", "--yes"])
        .assert()
        .code(2);
    assert!(text(&out.get_output().stderr).contains("empty pattern"));
    cachectl(&server.url())
        .args(["invalidate", "a:[x", "--yes"])
        .assert()
        .code(2);
    assert_eq!(server.dbsize(), 3);
}

#[test]
fn a_million_key_dry_run_counts_exactly_and_reports_progress() {
    let server = RedisServer::start_with(&["--enable-debug-command", "local"]);
    assert_eq!(
        server.cmd("DEBUG POPULATE 1000000 key"),
        Reply::Status("OK".into())
    );
    populate(&server, "other:", 1000, "v");
    assert_eq!(server.dbsize(), 1_001_000);
    let started = Instant::now();
    let out = cachectl(&server.url())
        .args([
            "invalidate",
            "key:*",
            "--dry-run",
            "--progress",
            "--progress-every",
            "250000",
        ])
        .assert()
        .success();
    let elapsed = started.elapsed();
    let (stdout, stderr) = (
        text(&out.get_output().stdout),
        text(&out.get_output().stderr),
    );
    assert!(
        stdout.contains("dry run: 1000000 keys match 'key:*'; nothing deleted"),
        "{stdout}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("progress: ~"))
        .collect();
    assert!(lines.len() >= 2, "{stderr}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("of 1001000 keys scanned") && l.contains("keys/s, ETA")),
        "{stderr}"
    );
    assert!(
        stderr.contains("progress: scan complete in ")
            && stderr.contains(": 1000000 matching; 1001000 keys in the database (DBSIZE)"),
        "{stderr}"
    );
    assert_eq!(server.dbsize(), 1_001_000);
    eprintln!("1,000,000-key dry run: {elapsed:?}");
}

/// On a cluster, `stats` and `invalidate` walk every primary: the counts are exact although the
/// keys hash to slots on all three, and UNLINK removes each key on its own node.
#[tokio::test]
async fn stats_and_invalidate_walk_every_primary_of_a_cluster() {
    let cluster = integration_tests::cluster::RedisCluster::start();
    let url = cluster.url();
    let cache = cache(&url, CodecKind::Bincode).await;
    cache
        .set_many((0..300).map(|i| (format!("team:get_team:{i}"), i)), None)
        .await
        .unwrap();
    cache
        .set_many((0..50).map(|i| (format!("user:get_user:{i}"), i)), None)
        .await
        .unwrap();
    let primaries: std::collections::BTreeSet<u16> = (0..300)
        .map(|i| cluster.primary_port_of(&format!("team:get_team:{i}")))
        .collect();
    assert_eq!(primaries.len(), 3, "the keys should span every primary");

    let out = cachectl(&url).arg("stats").assert().success();
    let stdout = text(&out.get_output().stdout);
    assert!(stdout.contains("of 350 keys"), "{stdout}");
    assert!(stdout.contains("team:get_team"), "{stdout}");

    let out = cachectl(&url)
        .args(["invalidate", "team:*", "--dry-run"])
        .assert()
        .success();
    let stdout = text(&out.get_output().stdout);
    assert!(stdout.contains("300 keys match 'team:*'"), "{stdout}");

    let out = cachectl(&url)
        .args(["invalidate", "team:*", "--yes"])
        .assert()
        .success();
    let stdout = text(&out.get_output().stdout);
    assert!(stdout.contains("deleted 300 keys"), "{stdout}");
    for i in [0, 150, 299] {
        assert!(!cache.exists(&format!("team:get_team:{i}")).await.unwrap());
    }
    assert!(cache.exists("user:get_user:7").await.unwrap());
}
