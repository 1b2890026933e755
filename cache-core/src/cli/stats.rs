//! `cachectl stats`: keys and memory per key space, from a sample of the keyspace (SCAN, then
//! MEMORY USAGE of each sampled key), as a table sorted by memory; and [`key_space`], what a key
//! space is for it.

use std::collections::HashMap;
use std::time::Instant;

use fred::prelude::MemoryInterface;
use fred::types::scan::Scanner;
use fred::types::{Key, Value};
use futures_util::StreamExt;

use super::connect::Redis;
use super::Failure;
use crate::config::CacheConfig;

/// The sample size when `--sample` is not given.
pub(super) const DEFAULT_SAMPLE: u64 = 10_000;
/// Keys asked for per SCAN step.
const SCAN_COUNT: u32 = 1000;

/// The key space of `key`: its first two `:`-separated segments, `prefix:function` for the keys
/// `#[cached]` writes (`user:get_user:42` is in `user:get_user`), or the whole key when it has
/// fewer.
///
/// A `\` escapes the character after it (cache-keys' text escaping), so an escaped `\:` inside
/// a segment does not end it. `#[cached]` keys without a `key_prefix` start with the function's
/// name, so their space is `function:first-argument`; the same holds for keys other programs
/// wrote: the first two segments are the best guess for any `a:b:c` naming scheme.
///
/// ```
/// use cache_core::cli::key_space;
///
/// assert_eq!(key_space("user:get_user:42"), "user:get_user");
/// assert_eq!(key_space("user:get_user"), "user:get_user");
/// assert_eq!(key_space(r"a\:b:c:d"), r"a\:b:c");
/// assert_eq!(key_space("session"), "session");
/// ```
pub fn key_space(key: &str) -> &str {
    let mut segments = 0;
    let mut escaped = false;
    for (at, c) in key.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ':' => {
                segments += 1;
                if segments == 2 {
                    return &key[..at];
                }
            }
            _ => {}
        }
    }
    key
}

/// Keys and bytes of one key space in the sample.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    keys: u64,
    bytes: u64,
}

pub(super) async fn run(config: &CacheConfig, sample: u64) -> Result<(), Failure> {
    if sample == 0 {
        return Err(Failure::usage("--sample must be at least 1"));
    }
    let redis = Redis::connect(config, "stats").await?;
    let result = collect(&redis, sample).await;
    let total = redis.dbsize().await;
    redis.close().await;
    let (spaces, sampled, elapsed) = result?;
    let total = total?;
    print!("{}", render(&spaces, sampled, total, elapsed));
    Ok(())
}

/// SCANs up to `sample` keys and tallies MEMORY USAGE per key space.
async fn collect(
    redis: &Redis,
    sample: u64,
) -> Result<(HashMap<String, Tally>, u64, std::time::Duration), Failure> {
    let started = Instant::now();
    let mut spaces: HashMap<String, Tally> = HashMap::new();
    let mut sampled = 0u64;
    let mut pages = redis.scan("*", SCAN_COUNT);
    while sampled < sample {
        let next = tokio::time::timeout(redis.timeout, pages.next()).await;
        let mut page = match next {
            Err(_) => {
                return Err(Failure::failed(format!(
                    "SCAN on {}: no answer within {:?}",
                    redis.url, redis.timeout
                )))
            }
            Ok(None) => break,
            Ok(Some(page)) => page.map_err(|e| redis.error("SCAN", &e))?,
        };
        let mut keys = page.take_results().unwrap_or_default();
        let room = usize::try_from(sample - sampled).unwrap_or(usize::MAX);
        keys.truncate(room);
        page.next();
        if keys.is_empty() {
            continue;
        }
        let sizes = memory_usage(redis, &keys).await?;
        for (key, bytes) in keys.iter().zip(sizes) {
            // Expired or deleted between SCAN and MEMORY USAGE.
            let Some(bytes) = bytes else { continue };
            let name = String::from_utf8_lossy(key.as_bytes());
            let tally = spaces.entry(key_space(&name).to_owned()).or_default();
            tally.keys += 1;
            tally.bytes += bytes;
            sampled += 1;
        }
    }
    Ok((spaces, sampled, started.elapsed()))
}

/// MEMORY USAGE of each key, in one pipeline; `None` for a key that is gone.
async fn memory_usage(redis: &Redis, keys: &[Key]) -> Result<Vec<Option<u64>>, Failure> {
    let pipeline = redis.client.pipeline();
    for key in keys {
        let _: () = pipeline
            .memory_usage(key.clone(), None)
            .await
            .map_err(|e| redis.error("MEMORY USAGE", &e))?;
    }
    let replies: Vec<Value> = tokio::time::timeout(redis.timeout, pipeline.all())
        .await
        .map_err(|_| {
            Failure::failed(format!(
                "MEMORY USAGE on {}: no answer within {:?}",
                redis.url, redis.timeout
            ))
        })?
        .map_err(|e| redis.error("MEMORY USAGE", &e))?;
    Ok(replies
        .into_iter()
        .map(|v| match v {
            Value::Integer(n) => u64::try_from(n).ok(),
            _ => None,
        })
        .collect())
}

/// The table: one row per key space, largest memory first.
fn render(
    spaces: &HashMap<String, Tally>,
    sampled: u64,
    total: u64,
    elapsed: std::time::Duration,
) -> String {
    let mut rows: Vec<(&String, &Tally)> = spaces.iter().collect();
    rows.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then_with(|| a.0.cmp(b.0)));
    let all_bytes: u64 = rows.iter().map(|(_, t)| t.bytes).sum();
    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .chain(["KEY SPACE".len(), "total (sample)".len()])
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "sample: {sampled} of {total} keys (DBSIZE), sampled with SCAN + MEMORY USAGE in {:.2} s\n",
        elapsed.as_secs_f64()
    );
    if sampled < total {
        out.push_str(
            "figures are for the sample only; raise --sample to cover more of the keyspace\n",
        );
    }
    out.push('\n');
    let row = |name: &str, keys: &str, bytes: &str, avg: &str, share: &str| {
        format!("{name:<width$}  {keys:>10}  {bytes:>11}  {avg:>11}  {share:>6}\n")
    };
    out.push_str(&row("KEY SPACE", "KEYS", "MEMORY", "AVG/KEY", "SHARE"));
    for (name, tally) in &rows {
        out.push_str(&row(
            name,
            &tally.keys.to_string(),
            &human_bytes(tally.bytes),
            &human_bytes(tally.bytes.checked_div(tally.keys).unwrap_or(0)),
            &share(tally.bytes, all_bytes),
        ));
    }
    let keys: u64 = rows.iter().map(|(_, t)| t.keys).sum();
    out.push_str(&row(
        "total (sample)",
        &keys.to_string(),
        &human_bytes(all_bytes),
        &human_bytes(all_bytes.checked_div(keys).unwrap_or(0)),
        &share(all_bytes, all_bytes),
    ));
    out
}

/// `part` as a percentage of `whole`, one decimal.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// Bytes in B, KiB, MiB or GiB.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_space_is_the_first_two_unescaped_segments() {
        assert_eq!(
            key_space("server:get_server_details:123"),
            "server:get_server_details"
        );
        assert_eq!(key_space("a:b"), "a:b");
        assert_eq!(key_space("a"), "a");
        assert_eq!(key_space(""), "");
        assert_eq!(key_space(r"user\:x:get:1"), r"user\:x:get");
        assert_eq!(key_space(r"a:b\\:c"), r"a:b\\");
        assert_eq!(key_space("é:ü:ß"), "é:ü");
    }

    #[test]
    fn the_table_is_sorted_by_memory_and_aligned() {
        let spaces = HashMap::from([
            (
                "small:f".to_owned(),
                Tally {
                    keys: 10,
                    bytes: 500,
                },
            ),
            (
                "big:function".to_owned(),
                Tally {
                    keys: 2,
                    bytes: 4096,
                },
            ),
        ]);
        let table = render(&spaces, 12, 100, std::time::Duration::from_millis(5));
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("sample: 12 of 100 keys (DBSIZE)"),
            "{table}"
        );
        let big = lines
            .iter()
            .position(|l| l.starts_with("big:function"))
            .unwrap();
        let small = lines.iter().position(|l| l.starts_with("small:f")).unwrap();
        assert!(big < small, "{table}");
        assert!(lines[big].contains("4.0 KiB"), "{table}");
        let widths: Vec<usize> = lines[3..].iter().map(|l| l.len()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{table}");
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
