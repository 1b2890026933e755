//! Our own CPU cost per cache hit, without the network: key building, the value header and
//! codec, and the whole `#[cached]` hit path over the in-process backend (the stub: a moka
//! lookup that returns the stored bytes).
//!
//! `cargo bench -p cache-bench --bench hot_path` (see docs/src/benchmarks.md).

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::hint::black_box;

use cache_core::__private::KeyBuf;
use cache_core::codec::{decode_value, encode_value, CodecKind};
use cache_core::{cached, Cache, CacheConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The default `CACHE_MAX_VALUE_BYTES`, the limit a cache decodes under.
const LIMIT: usize = 16 << 20;

/// The values every scenario of cache-bench reads (the benchmark binary has no library to
/// import them from).
#[path = "../src/values.rs"]
#[allow(dead_code)] // the bincode helpers serve cache-bench's baselines, not this benchmark
mod values;

use values::{large, small, Large, Small};

#[cached(ttl = 3600, key_prefix = "server")]
async fn get_server_details(server_id: i64) -> Small {
    small(server_id as u64)
}

#[cached(ttl = 3600, key_prefix = "page")]
async fn get_page(page: i64) -> Large {
    large(page as u64)
}

fn keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("key");
    g.bench_function("prefix+fn+i64", |b| {
        b.iter(|| {
            let mut k = KeyBuf::new("server:get_server_details", 37);
            k.part(black_box(&123_456_i64));
            black_box(k.finish())
        })
    });
    g.bench_function("prefix+fn+i64+str(escaped)", |b| {
        b.iter(|| {
            let mut k = KeyBuf::new("user:find", 40);
            k.part(black_box(&42_i64));
            k.part(black_box("alice:admin@example.com"));
            black_box(k.finish())
        })
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let (s, l) = (small(1), large(1));
    let s_bytes = encode_value(CodecKind::Bincode, &s).unwrap();
    let l_bytes = encode_value(CodecKind::Bincode, &l).unwrap();
    g.throughput(Throughput::Bytes(s_bytes.len() as u64));
    g.bench_function("encode ~100 B", |b| {
        b.iter(|| encode_value(CodecKind::Bincode, black_box(&s)).unwrap())
    });
    g.bench_function("decode ~100 B", |b| {
        b.iter(|| decode_value::<Small>(black_box(&s_bytes), LIMIT).unwrap())
    });
    g.throughput(Throughput::Bytes(l_bytes.len() as u64));
    g.bench_function("encode ~10 KB", |b| {
        b.iter(|| encode_value(CodecKind::Bincode, black_box(&l)).unwrap())
    });
    g.bench_function("decode ~10 KB", |b| {
        b.iter(|| decode_value::<Large>(black_box(&l_bytes), LIMIT).unwrap())
    });
    // The floor: the same decode without our header check.
    let bare = bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap();
    g.throughput(Throughput::Bytes(bare.len() as u64));
    g.bench_function("bare bincode decode ~100 B", |b| {
        b.iter(|| {
            bincode::serde::decode_from_slice::<Small, _>(
                black_box(&bare),
                bincode::config::standard(),
            )
            .unwrap()
        })
    });
    g.finish();
}

fn hit_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache: Cache = runtime.block_on(async {
        let cache = cache_core::init(CacheConfig::builder().memory(64 << 20).build().unwrap())
            .await
            .unwrap();
        get_server_details(1).await;
        get_page(1).await;
        cache
    });
    let mut g = c.benchmark_group("hit");
    // The whole hit: key, global cache, GET on the stub, header, decode, stats.
    g.bench_function("#[cached] ~100 B (memory backend)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(get_server_details(black_box(1)).await) })
    });
    // The same GET and decode without the attribute (no key building, no global lookup).
    g.bench_function("Cache::get ~100 B (memory backend)", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                cache
                    .get::<Small>(black_box("server:get_server_details:1"))
                    .await
                    .unwrap(),
            )
        })
    });
    g.bench_function("#[cached] ~10 KB (memory backend)", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(get_page(black_box(1)).await) })
    });
    g.finish();
}

/// Where LZ4 pays: the CPU it costs per value size against the bytes it saves on the wire
/// (`cargo bench -p cache-bench --features compression --bench hot_path -- compression`).
#[cfg(feature = "compression")]
fn compression(c: &mut Criterion) {
    use cache_core::codec::Envelope;
    let plain_envelope = Envelope::new(CodecKind::Bincode, usize::MAX);
    let lz4 = plain_envelope.compress_from(1);
    let mut g = c.benchmark_group("compression");
    for size in [1usize << 10, 8 << 10, 64 << 10, 1 << 20] {
        // Markup-like text: what large cached values (pages, JSON documents) tend to be.
        let text: String = (0..)
            .map(|i| format!("<tr><td>server-{}</td><td>{}</td></tr>", i % 97, i % 13))
            .take_while({
                let mut len = 0;
                move |row: &String| {
                    len += row.len();
                    len <= size
                }
            })
            .collect();
        let plain = plain_envelope.encode(&text).unwrap();
        let packed = lz4.encode(&text).unwrap();
        let label = |what: &str| {
            format!(
                "{what} {} KiB (to {:.0}%)",
                size >> 10,
                100.0 * packed.len() as f64 / plain.len() as f64
            )
        };
        g.throughput(Throughput::Bytes(plain.len() as u64));
        // LZ4's cost is the difference between the two encodes.
        g.bench_function(label("encode compressed"), |b| {
            b.iter(|| lz4.encode(black_box(&text)).unwrap())
        });
        g.bench_function(label("encode plain"), |b| {
            b.iter(|| plain_envelope.encode(black_box(&text)).unwrap())
        });
        g.bench_function(label("decode compressed"), |b| {
            b.iter(|| decode_value::<String>(black_box(&packed), LIMIT).unwrap())
        });
        g.bench_function(label("decode plain"), |b| {
            b.iter(|| decode_value::<String>(black_box(&plain), LIMIT).unwrap())
        });
    }
    g.finish();
}

#[cfg(not(feature = "compression"))]
fn compression(_: &mut Criterion) {}

criterion_group!(benches, keys, codec, hit_path, compression);
criterion_main!(benches);
