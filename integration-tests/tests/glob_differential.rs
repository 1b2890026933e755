//! Differential test of the glob matcher: `cache_keys::pattern::matches_bytes` against
//! `SCAN 0 MATCH pattern` (iterated to the end) of a real redis-server, over random keys and
//! patterns made of bytes that matter to globs (`* ? [ ] \ ^ - :`), multi-byte UTF-8 and bytes
//! that are not UTF-8 at all.
//!
//! - Phase 1: 10,000 keys in database 0 (random ones plus a fixed list of edge cases), each of
//!   the edge-case patterns and 1,000 random patterns scanned over all of them.
//! - Phase 2: 10,000 more random patterns, each against 16 keys of its own in database 1 (8 drawn
//!   from the pattern itself, matching or nearly, and 8 from the phase-1 pool), with `FLUSHDB`,
//!   `MSET` and `SCAN` pipelined, so that most patterns meet keys they match.
//!
//! The seed is fixed (set `GLOB_DIFF_SEED` to try another) and printed; the first disagreement is
//! reported with the pattern, the key and both answers.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use cache_keys::pattern::{matches_tokens, tokens, Token};
use integration_tests::RedisServer;

const DEFAULT_SEED: u64 = 0x5eed_6c0b;
const POOL_KEYS: usize = 10_000;
const PHASE1_PATTERNS: usize = 1_000;
const PHASE2_PATTERNS: usize = 10_000;

/// Patterns whose reading differs from POSIX brackets or from a char-based matcher.
const EDGE_PATTERNS: &[&[u8]] = &[
    b"",
    b"*",
    b"**",
    b"?",
    b"??",
    b"a*",
    b"*a",
    b"a\\",
    b"\\",
    b"\\\\",
    b"a\\*b",
    b"\\*",
    b"[",
    b"a[",
    b"[^",
    b"[]",
    b"[]]",
    b"[]a]",
    b"[^]",
    b"[^]]",
    b"[ab",
    b"[\\]",
    b"[a\\",
    b"[a-]",
    b"[a-]]",
    b"[a-]xy",
    b"[a-\\]]",
    b"[\\a-z]",
    b"[-a]",
    b"[--a]",
    b"[a-z]",
    b"[z-a]",
    b"[^a-c]",
    b"[a-c]d",
    b"h[\\]]",
    b"[a-\xc3]",
    b"[\xc3-a]",
    b"[\x80-\xff]",
    b"[^\x80-\xff]",
    b"[\xc3\xa9]",
    b"*[\xa9]",
    b"?\xa9",
    b"*:*",
    b"*a*b*c",
    b"[*]",
    b"[?]",
    b"[[]",
    b"[\\[]",
    b"]",
    b"^",
    b"-",
    b"\x00",
    b"[\x00-a]",
];

/// Keys that the edge-case patterns tell apart.
const EDGE_KEYS: &[&[u8]] = &[
    b"",
    b"a",
    b"b",
    b"m",
    b"z",
    b"-",
    b"]",
    b"[",
    b"_",
    b"\\",
    b"^",
    b"*",
    b"?",
    b"x",
    b"0",
    b"a]",
    b"x]",
    b"_]",
    b"ax",
    b"ab",
    b"ac",
    b"abd",
    b"a\\",
    b"a*b",
    b"axb",
    b"\xc3\xa9",
    b"\xc3",
    b"\xa9",
    b"\xff",
    b"\x00",
    b"\x80",
    b"\x90",
    b"xaybzc",
    b"xaybzcd",
    b"h]",
];

/// What keys and patterns are made of: single bytes, and whole multi-byte characters.
const PIECES: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"a",
    b"b",
    b":",
    b"*",
    b"?",
    b"[",
    b"]",
    b"\\",
    b"^",
    b"-",
    "é".as_bytes(),
    "€".as_bytes(),
    b"\xc3",
    b"\xff",
    b"\x80",
    b"\x00",
    b"z",
];

/// splitmix64: a small, seedable generator, so that a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn piece(&mut self) -> &'static [u8] {
        PIECES[self.below(PIECES.len())]
    }

    /// One byte out of the pieces (possibly half of a multi-byte character).
    fn byte(&mut self) -> u8 {
        let piece = self.piece();
        piece[self.below(piece.len())]
    }

    fn key(&mut self) -> Vec<u8> {
        let mut key = Vec::new();
        for _ in 0..self.below(11) {
            key.extend_from_slice(self.piece());
        }
        key
    }

    /// A pattern: either assembled from glob constructs, or raw bytes heavy in syntax (unclosed
    /// classes, dangling escapes and ranges into `]` come out of both).
    fn pattern(&mut self) -> Vec<u8> {
        let mut p = Vec::new();
        if self.chance(30) {
            for _ in 0..self.below(11) {
                p.push(self.byte());
            }
            return p;
        }
        for _ in 0..1 + self.below(6) {
            match self.below(10) {
                0..=2 => p.extend_from_slice(self.piece()),
                3 => p.push(b'*'),
                4 => p.push(b'?'),
                5 => {
                    p.push(b'\\');
                    p.push(self.byte());
                }
                _ => {
                    p.push(b'[');
                    if self.chance(30) {
                        p.push(b'^');
                    }
                    for _ in 0..self.below(4) {
                        match self.below(4) {
                            0 => p.push(self.byte()),
                            1 => {
                                p.push(b'\\');
                                p.push(self.byte());
                            }
                            _ => {
                                p.push(self.byte());
                                p.push(b'-');
                                p.push(self.byte());
                            }
                        }
                    }
                    if self.chance(85) {
                        p.push(b']');
                    }
                }
            }
        }
        p
    }

    /// A key built to match `pattern` as we read it (Redis decides whether it does).
    fn instance(&mut self, pattern: &[Token]) -> Vec<u8> {
        let mut key = Vec::new();
        for token in pattern {
            match token {
                Token::Literal(b) => key.push(*b),
                Token::AnyByte => key.push(self.byte()),
                Token::AnyRun => {
                    for _ in 0..self.below(3) {
                        key.extend_from_slice(self.piece());
                    }
                }
                Token::Class { .. } => {
                    // A byte of the class when one is found quickly; otherwise any byte.
                    let mut byte = self.byte();
                    for _ in 0..32 {
                        if token.matches(byte) {
                            break;
                        }
                        byte = if self.chance(50) {
                            self.byte()
                        } else {
                            self.next() as u8
                        };
                    }
                    key.push(byte);
                }
            }
        }
        key
    }

    /// `key` with one byte replaced, inserted or removed.
    fn mutate(&mut self, mut key: Vec<u8>) -> Vec<u8> {
        let at = self.below(key.len() + 1);
        match self.below(3) {
            0 if at < key.len() => key[at] = self.byte(),
            1 => key.insert(at, self.byte()),
            _ if at < key.len() => {
                key.remove(at);
            }
            _ => key.push(self.byte()),
        }
        key
    }
}

/// A RESP2 connection with pipelining: commands are buffered by `send` and written by `flush`.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

/// The replies the commands used here give (an error reply fails the test where it is read).
#[derive(Debug)]
enum Resp {
    Status(String),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Resp>),
}

impl Connection {
    fn open(server: &RedisServer) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream.set_nodelay(true).unwrap();
        Connection {
            reader: BufReader::with_capacity(1 << 20, stream.try_clone().unwrap()),
            writer: BufWriter::with_capacity(1 << 20, stream),
        }
    }

    fn send(&mut self, args: &[&[u8]]) {
        write!(self.writer, "*{}\r\n", args.len()).unwrap();
        for arg in args {
            write!(self.writer, "${}\r\n", arg.len()).unwrap();
            self.writer.write_all(arg).unwrap();
            self.writer.write_all(b"\r\n").unwrap();
        }
    }

    fn flush(&mut self) {
        self.writer.flush().unwrap();
    }

    fn read(&mut self) -> Resp {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        assert!(line.ends_with(b"\r\n"), "truncated reply {line:?}");
        let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        match line[0] {
            b'+' => Resp::Status(text),
            b'-' => panic!("redis-server answered an error: {text}"),
            b'$' => match text.parse::<i64>().unwrap() {
                n if n < 0 => Resp::Bulk(None),
                n => {
                    let mut buf = vec![0; n as usize + 2];
                    self.reader.read_exact(&mut buf).unwrap();
                    buf.truncate(n as usize);
                    Resp::Bulk(Some(buf))
                }
            },
            b'*' => Resp::Array(
                (0..text.parse::<i64>().unwrap().max(0))
                    .map(|_| self.read())
                    .collect(),
            ),
            other => panic!("unexpected reply type {:?}", other as char),
        }
    }

    fn expect_ok(&mut self) {
        match self.read() {
            Resp::Status(s) if s == "OK" => {}
            other => panic!("expected +OK, got {other:?}"),
        }
    }

    /// Reads one SCAN reply: the next cursor and the keys of this page.
    fn read_scan_page(&mut self) -> (Vec<u8>, Vec<Vec<u8>>) {
        let Resp::Array(mut parts) = self.read() else {
            panic!("SCAN did not answer an array");
        };
        assert_eq!(parts.len(), 2, "SCAN reply {parts:?}");
        let Resp::Array(keys) = parts.pop().unwrap() else {
            panic!("SCAN keys are not an array");
        };
        let Resp::Bulk(Some(cursor)) = parts.pop().unwrap() else {
            panic!("SCAN cursor is not a bulk string");
        };
        let keys = keys
            .into_iter()
            .map(|k| match k {
                Resp::Bulk(Some(k)) => k,
                other => panic!("SCAN key {other:?}"),
            })
            .collect();
        (cursor, keys)
    }

    /// Every key matching each of `patterns` in the selected database: one pipelined SCAN per
    /// pattern, then the rest of any iteration that did not end on its first page.
    fn scan_all(&mut self, patterns: &[Vec<u8>], count: &[u8]) -> Vec<HashSet<Vec<u8>>> {
        for pattern in patterns {
            self.send(&[b"SCAN", b"0", b"MATCH", pattern, b"COUNT", count]);
        }
        self.flush();
        let first: Vec<_> = patterns.iter().map(|_| self.read_scan_page()).collect();
        patterns
            .iter()
            .zip(first)
            .map(|(pattern, (mut cursor, keys))| {
                let mut found: HashSet<Vec<u8>> = keys.into_iter().collect();
                while cursor != b"0" {
                    self.send(&[b"SCAN", &cursor, b"MATCH", pattern, b"COUNT", count]);
                    self.flush();
                    let (next, keys) = self.read_scan_page();
                    found.extend(keys);
                    cursor = next;
                }
                found
            })
            .collect()
    }
}

/// The first key on which Redis and the matcher disagree about `pattern`, if any. `redis` holds
/// what SCAN returned from a database holding exactly `keys`.
fn disagreement(
    pattern: &[u8],
    keys: &[Vec<u8>],
    redis: &HashSet<Vec<u8>>,
) -> Option<(Vec<u8>, bool, bool)> {
    let parsed = tokens(pattern);
    // Look up only the keys we match (hashing all 10,000 per pattern would dominate the run),
    // then compare the counts: equal counts and one inclusion make equal sets.
    let mut ours = 0;
    for key in keys {
        if matches_tokens(&parsed, key) {
            if !redis.contains(key) {
                return Some((key.clone(), false, true));
            }
            ours += 1;
        }
    }
    if ours == redis.len() {
        return None;
    }
    let missed = redis.iter().find(|key| !matches_tokens(&parsed, key));
    Some((missed.cloned().unwrap_or_default(), true, false))
}

fn report(seed: u64, phase: &str, pattern: &[u8], (key, redis, ours): (Vec<u8>, bool, bool)) -> ! {
    panic!(
        "seed {seed:#x}, {phase}: the matcher disagrees with redis-server\n  pattern: \"{}\"\n  \
         key:     \"{}\"\n  redis-server: {redis}, matcher: {ours}",
        pattern.escape_ascii(),
        key.escape_ascii()
    )
}

#[test]
fn the_glob_matcher_agrees_with_redis_scan_match() {
    let seed = std::env::var("GLOB_DIFF_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(DEFAULT_SEED);
    println!("glob differential seed: {seed:#x} (GLOB_DIFF_SEED={seed:x} replays it)");
    let mut rng = Rng(seed);
    let server = RedisServer::start();
    let mut redis = Connection::open(&server);

    // Phase 1: one database of POOL_KEYS keys, every pattern scanned over all of them.
    let started = Instant::now();
    let mut pool: Vec<Vec<u8>> = EDGE_KEYS.iter().map(|k| k.to_vec()).collect();
    let mut seen: HashSet<Vec<u8>> = pool.iter().cloned().collect();
    while pool.len() < POOL_KEYS {
        let key = rng.key();
        if seen.insert(key.clone()) {
            pool.push(key);
        }
    }
    for chunk in pool.chunks(1_000) {
        let mut mset: Vec<&[u8]> = vec![b"MSET"];
        for key in chunk {
            mset.extend([key.as_slice(), b"v".as_slice()]);
        }
        redis.send(&mset);
    }
    redis.flush();
    for _ in pool.chunks(1_000) {
        redis.expect_ok();
    }
    assert_eq!(server.dbsize(), POOL_KEYS as i64);

    let mut patterns: Vec<Vec<u8>> = EDGE_PATTERNS.iter().map(|p| p.to_vec()).collect();
    patterns.extend((0..PHASE1_PATTERNS).map(|_| rng.pattern()));
    let mut phase1_matches = 0;
    for batch in patterns.chunks(50) {
        let found = redis.scan_all(batch, b"100000");
        for (pattern, found) in batch.iter().zip(&found) {
            phase1_matches += found.len();
            if let Some(difference) = disagreement(pattern, &pool, found) {
                report(seed, "phase 1", pattern, difference);
            }
        }
    }
    println!(
        "phase 1: {} patterns x {} keys agree ({phase1_matches} matches) in {:.1?}",
        patterns.len(),
        pool.len(),
        started.elapsed()
    );

    // Phase 2: each pattern against keys of its own, in database 1.
    let started = Instant::now();
    redis.send(&[b"SELECT", b"1"]);
    redis.flush();
    redis.expect_ok();
    let mut phase2_pairs = 0;
    let mut phase2_matches = 0;
    for _ in 0..PHASE2_PATTERNS / 200 {
        let batch: Vec<(Vec<u8>, Vec<Vec<u8>>)> = (0..200)
            .map(|_| {
                let pattern = rng.pattern();
                let parsed = tokens(&pattern);
                let mut keys: Vec<Vec<u8>> = Vec::new();
                for i in 0..8 {
                    let instance = rng.instance(&parsed);
                    keys.push(if i % 2 == 0 {
                        instance
                    } else {
                        rng.mutate(instance)
                    });
                }
                for _ in 0..8 {
                    keys.push(pool[rng.below(pool.len())].clone());
                }
                let mut unique = HashSet::new();
                keys.retain(|k| unique.insert(k.clone()));
                (pattern, keys)
            })
            .collect();
        for (pattern, keys) in &batch {
            redis.send(&[b"FLUSHDB"]);
            let mut mset: Vec<&[u8]> = vec![b"MSET"];
            for key in keys {
                mset.extend([key.as_slice(), b"v".as_slice()]);
            }
            redis.send(&mset);
            redis.send(&[b"SCAN", b"0", b"MATCH", pattern, b"COUNT", b"1000"]);
        }
        redis.flush();
        for (pattern, keys) in &batch {
            redis.expect_ok();
            redis.expect_ok();
            let (cursor, found) = redis.read_scan_page();
            assert_eq!(cursor, b"0", "16 keys fit in one SCAN page of COUNT 1000");
            let found: HashSet<Vec<u8>> = found.into_iter().collect();
            phase2_pairs += keys.len();
            phase2_matches += found.len();
            if let Some(difference) = disagreement(pattern, keys, &found) {
                report(seed, "phase 2", pattern, difference);
            }
        }
    }
    println!(
        "phase 2: {PHASE2_PATTERNS} patterns, {phase2_pairs} (pattern, key) pairs agree \
         ({phase2_matches} matches) in {:.1?}",
        started.elapsed()
    );
    // The keys drawn from each pattern must make matches common, or phase 2 tests little.
    assert!(
        phase2_matches * 5 > phase2_pairs,
        "only {phase2_matches} of {phase2_pairs} pairs match: the generator has drifted"
    );
}
