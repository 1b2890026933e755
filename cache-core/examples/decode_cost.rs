//! What decoding costs: honest values timed in a loop, and forged values (lengths over elements
//! that encode to zero bytes) timed once each, given up on after a deadline. Build it against
//! two versions of cache-core and run them side by side to compare:
//!
//! ```bash
//! cargo run --release -p cache-core --example decode_cost -- honest
//! # Instructions per decode, stable on a loaded machine: the runs divided by 100 under
//! # callgrind, then `callgrind_annotate --inclusive=yes` on `cache_core::codec::decode_value`
//! # (or `decode_seeded`, where it was inlined), divided by 7 rounds of those runs.
//! valgrind --tool=callgrind target/release/examples/decode_cost honest 100 small
//! cargo run --release -p cache-core --example decode_cost -- forged 10
//! ```
//!
//! A forged decode that does not finish keeps its thread spinning until the process exits, so
//! each forged form runs in a child process of its own.
// A measurement: failing loudly is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::hint::black_box;
use std::marker::PhantomData;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cache_core::codec::{decode_value, encode_value, CodecKind, HEADER_LEN};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const LIMIT: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Small {
    id: u64,
    name: String,
    active: bool,
    tags: Vec<String>,
    score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Empty {}

/// Nanoseconds per decode of `value`'s bytes: the median of 7 rounds of `runs` decodes.
fn per_decode<V: Serialize + DeserializeOwned>(value: &V, runs: u32) -> f64 {
    let runs = (runs / scale()).max(1);
    let bytes = encode_value(CodecKind::Bincode, value).unwrap();
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..runs {
                black_box(decode_value::<V>(black_box(&bytes), LIMIT).unwrap());
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(runs)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[3]
}

/// What the runs are divided by (the second argument of `honest`; 1 by default).
fn scale() -> u32 {
    std::env::args().nth(2).map_or(1, |s| s.parse().unwrap())
}

fn honest() {
    let small = Small {
        id: 42,
        name: "server-42.example".into(),
        active: true,
        tags: vec!["eu".into(), "prod".into()],
        score: Some(0.5),
    };
    let numbers: Vec<u64> = (0..1000).map(|i| i * 7919).collect();
    let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
    // The third argument picks one value (by the start of its name), for callgrind.
    let only = std::env::args().nth(3).unwrap_or_default();
    let wanted = |name: &str| name.starts_with(only.as_str());
    if wanted("small") {
        println!("small struct: {:.1} ns", per_decode(&small, 200_000));
    }
    if wanted("u64") {
        println!("Vec<u64> of 1,000: {:.1} ns", per_decode(&numbers, 20_000));
    }
    if wanted("string") {
        println!("Vec<String> of 1,000: {:.1} ns", per_decode(&words, 5_000));
    }
    if wanted("bytes") {
        let bytes = vec![7u8; 1 << 20];
        println!("Vec<u8> of 1 MiB: {:.1} ns", per_decode(&bytes, 50));
    }
}

/// bincode's varint for `n` above `u32::MAX`: a marker, then the little-endian integer.
fn varint(n: u64) -> Vec<u8> {
    [vec![0xFD], n.to_le_bytes().to_vec()].concat()
}

/// `payload` behind `honest`'s header, decoded once as `V` on a thread, given `deadline`.
fn forged_one<V: Serialize + DeserializeOwned + Send + 'static>(
    name: &str,
    honest: &V,
    payload: Vec<u8>,
    deadline: Duration,
) {
    let mut bytes = encode_value(CodecKind::Bincode, honest).unwrap()[..HEADER_LEN].to_vec();
    bytes.extend_from_slice(&payload);
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        let result = decode_value::<V>(&bytes, LIMIT).map(|_| ());
        let _ = done.send((start.elapsed(), result));
    });
    match finished.recv_timeout(deadline) {
        Ok((took, result)) => println!("{name}: {took:?} ({result:?})"),
        Err(_) => println!("{name}: did not finish in {} s", deadline.as_secs()),
    }
}

fn forged(form: &str, deadline: Duration) {
    let claim = varint(u64::MAX);
    match form {
        "Vec<()>" => forged_one(form, &vec![()], claim, deadline),
        "Vec<Unit>" => forged_one(form, &vec![Unit], claim, deadline),
        "Vec<Empty>" => forged_one(form, &vec![Empty {}], claim, deadline),
        "Vec<[u8; 0]>" => forged_one(form, &vec![[0u8; 0]], claim, deadline),
        "Vec<PhantomData<u8>>" => forged_one(form, &vec![PhantomData::<u8>], claim, deadline),
        "Vec<Vec<()>>" => forged_one(form, &vec![vec![()]], [vec![1], claim].concat(), deadline),
        "HashMap<(), ()>" => forged_one(form, &HashMap::from([((), ())]), claim, deadline),
        // 2^20 empty strings claimed and present (a byte each): 24 MiB in memory.
        "Vec<String>" => forged_one(
            form,
            &vec![String::new()],
            [
                vec![0xFC],
                (1u32 << 20).to_le_bytes().to_vec(),
                vec![0; 1 << 20],
            ]
            .concat(),
            deadline,
        ),
        _ => panic!("unknown form {form}"),
    }
}

const FORMS: [&str; 8] = [
    "Vec<()>",
    "Vec<Unit>",
    "Vec<Empty>",
    "Vec<[u8; 0]>",
    "Vec<PhantomData<u8>>",
    "Vec<Vec<()>>",
    "HashMap<(), ()>",
    "Vec<String>",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("honest") => honest(),
        Some("forged") => {
            let secs = args.get(2).map_or(10, |s| s.parse().unwrap());
            for form in FORMS {
                let status = Command::new(&args[0])
                    .args(["one", form, &secs.to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
        Some("one") => {
            forged(&args[2], Duration::from_secs(args[3].parse().unwrap()));
            // Ends a decode still spinning on its thread.
            std::process::exit(0);
        }
        _ => eprintln!("usage: decode_cost honest | decode_cost forged [deadline seconds]"),
    }
}
