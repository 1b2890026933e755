//! `cachectl inspect KEY`: the raw bytes under a key read as a value envelope (format version,
//! codec, flags, schema fingerprint, sizes), its TTL, and the value itself when it is JSON.
//!
//! The header is read by the codec's own reader ([`StoredHeader`]), which accepts any codec id
//! and flags so that they can be shown even when this build cannot decode them. A JSON value is
//! read within the bounds the cache reads it in (`CACHE_MAX_VALUE_BYTES` on its bytes,
//! `CACHE_MAX_DECODED_BYTES` on its memory, [`MAX_DEPTH`](crate::codec::MAX_DEPTH) levels), whatever its bytes hold, and
//! shown pretty-printed up to [`SHOWN_BYTES`].

use std::io::{self, Write};

use bytes::Bytes;
use fred::prelude::KeysInterface;

use super::connect::Redis;
use super::Failure;
use crate::codec::{
    json_value, plain_payload, Bound, CodecKind, DecodeError, StoredHeader, FLAG_LZ4,
    FORMAT_VERSION,
};
use crate::config::CacheConfig;

/// How many payload bytes the hex preview shows.
const PREVIEW_BYTES: usize = 64;
/// How much of a JSON value's pretty-printed text is shown: nesting indents every line, so a
/// value within every bound can print a hundred times its size.
const SHOWN_BYTES: usize = 1 << 20;

/// The bounds a value is read in: the cache's.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// `CACHE_MAX_VALUE_BYTES`: the header and the uncompressed payload.
    value_bytes: usize,
    /// `CACHE_MAX_DECODED_BYTES`: the decoded value's memory, as counted.
    decoded_bytes: usize,
}

pub(super) async fn run(config: &CacheConfig, key: &str) -> Result<(), Failure> {
    let redis = Redis::connect(config, "inspect").await?;
    let read = async {
        let bytes: Option<Bytes> = redis
            .client
            .get(key)
            .await
            .map_err(|e| redis.error("GET", &e))?;
        let pttl: i64 = redis
            .client
            .pttl(key)
            .await
            .map_err(|e| redis.error("PTTL", &e))?;
        Ok::<_, Failure>((bytes, pttl))
    };
    let read = read.await;
    redis.close().await;
    let (bytes, pttl) = read?;
    let Some(bytes) = bytes else {
        return Err(Failure::failed(format!(
            "no key {key:?} (absent or expired)"
        )));
    };
    let limits = Limits {
        value_bytes: config.max_value_bytes(),
        decoded_bytes: config.max_decoded_bytes(),
    };
    let (report, outcome) = describe(key, &bytes, pttl, limits);
    print!("{report}");
    outcome
}

/// What `inspect` prints for `bytes` under `key`, and whether they are a readable value.
fn describe(key: &str, bytes: &[u8], pttl: i64, limits: Limits) -> (String, Result<(), Failure>) {
    let mut out = String::new();
    let mut line = |name: &str, value: &str| out.push_str(&format!("{name:<20}{value}\n"));
    line("key:", key);
    line("stored size:", &format!("{} bytes", bytes.len()));
    line("ttl:", &ttl_text(pttl));
    let (header, payload) = match StoredHeader::read(bytes) {
        Ok(read) => read,
        Err(why) => {
            let reason = match why {
                DecodeError::Version(v) => format!(
                    "a value header of format version {v}, which this cachectl does not read \
                     (it reads version {FORMAT_VERSION})"
                ),
                _ => "foreign or corrupt bytes: no cache-core value header (written by another \
                      program, or truncated)"
                    .to_owned(),
            };
            line("envelope:", "INVALID");
            out.push_str(&format!("preview:\n{}", hex_preview(bytes)));
            return (
                out,
                Err(Failure::failed(format!(
                    "{key:?} is not a cache value: {reason}"
                ))),
            );
        }
    };
    line("envelope:", "valid");
    line("format version:", &FORMAT_VERSION.to_string());
    let codec = match CodecKind::from_id(header.codec_id) {
        Some(kind) => format!("{} (id {})", kind.name(), header.codec_id),
        None => format!("unknown (id {})", header.codec_id),
    };
    line("codec:", &codec);
    line("flags:", &flags_text(header.flags));
    line("schema fingerprint:", &format!("{:#018x}", header.shape));
    line("payload:", &format!("{} bytes", payload.len()));
    let Some(codec) = CodecKind::from_id(header.codec_id) else {
        out.push_str(&format!("preview:\n{}", hex_preview(payload)));
        return (
            out,
            Err(Failure::failed(format!(
                "{key:?}: unknown codec id {}: written by a newer cache-core?",
                header.codec_id
            ))),
        );
    };
    if header.flags & !FLAG_LZ4 != 0 {
        out.push_str(&format!("preview:\n{}", hex_preview(payload)));
        return (
            out,
            Err(Failure::failed(format!(
                "{key:?}: unknown flags {:#04x}: written by a newer cache-core?",
                header.flags
            ))),
        );
    }
    let plain = match plain_payload(header.flags, payload, limits.value_bytes) {
        Ok(plain) => plain,
        Err(why) => {
            out.push_str(&format!("preview:\n{}", hex_preview(payload)));
            return (out, Err(Failure::failed(refusal(key, &why))));
        }
    };
    if header.flags & FLAG_LZ4 != 0 {
        line("uncompressed:", &format!("{} bytes", plain.len()));
    }
    match codec {
        CodecKind::Json => match json_value(&plain, limits.decoded_bytes) {
            Ok(value) => {
                out.push_str(&format!("value:\n{}\n", pretty(&value)));
                (out, Ok(()))
            }
            Err(why) => {
                out.push_str(&format!("preview:\n{}", hex_preview(&plain)));
                (out, Err(Failure::failed(refusal(key, &why))))
            }
        },
        CodecKind::Bincode => {
            out.push_str(
                "value:              bincode cannot be decoded without the Rust type that wrote \
                 it; first bytes of the payload:\n",
            );
            out.push_str(&hex_preview(&plain));
            (out, Ok(()))
        }
    }
}

/// Why the value under `key` is not shown, in the operator's words: the bound it exceeds and
/// the setting that holds it, or what is wrong with its bytes.
fn refusal(key: &str, why: &DecodeError) -> String {
    match why {
        DecodeError::TooLarge { size, limit } => format!(
            "{key:?}: a value of {size} bytes (header and uncompressed payload), over \
             CACHE_MAX_VALUE_BYTES ({limit}): the cache would not read it either; set \
             CACHE_MAX_VALUE_BYTES higher for this command to see it"
        ),
        DecodeError::OverBound {
            what: Bound::DecodedBytes,
            claimed,
            bound,
        } => format!(
            "{key:?}: the value would take more than CACHE_MAX_DECODED_BYTES ({bound} bytes) of \
             memory once decoded ({claimed} counted where decoding stopped): the cache would \
             not read it either; set CACHE_MAX_DECODED_BYTES higher for this command to see it"
        ),
        DecodeError::OverBound {
            what: Bound::Depth,
            bound,
            ..
        } => format!(
            "{key:?}: the value nests more than {bound} levels deep, which the cache never \
             reads (a decode that deep could overflow its thread's stack): forged or corrupt \
             bytes"
        ),
        DecodeError::OverBound {
            what,
            claimed,
            bound,
        } => format!(
            "{key:?}: the value claims {claimed} {what}, over the bound of {bound}: forged or \
             corrupt bytes"
        ),
        DecodeError::Corrupt(e) if e.starts_with("lz4") => {
            format!("{key:?}: corrupt LZ4 payload: {e}")
        }
        DecodeError::Corrupt(e) => format!("{key:?}: the JSON payload does not parse: {e}"),
        other => format!("{key:?}: {other}"),
    }
}

/// `value` pretty-printed, cut after [`SHOWN_BYTES`] with a word saying so.
fn pretty(value: &serde_json::Value) -> String {
    let mut shown = Shown {
        text: Vec::new(),
        cut: false,
    };
    // Only an error of `Shown`, which stops the printing once it is full.
    let _ = serde_json::to_writer_pretty(&mut shown, value);
    let mut text = String::from_utf8_lossy(&shown.text).into_owned();
    if shown.cut {
        text.push_str(&format!(
            "\n... (cut after {SHOWN_BYTES} bytes of text; `redis-cli --raw GET` returns the \
             stored bytes: the 13-byte header, then the JSON, LZ4-compressed when flagged)"
        ));
    }
    text
}

/// Text written up to [`SHOWN_BYTES`]; a write past it keeps what fits and fails, which ends
/// the printing.
struct Shown {
    text: Vec<u8>,
    cut: bool,
}

impl Write for Shown {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = SHOWN_BYTES - self.text.len();
        if buf.len() > room {
            self.text.extend_from_slice(&buf[..room]);
            self.cut = true;
            return Err(io::Error::other("shown in full"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// PTTL's answer in words.
fn ttl_text(pttl: i64) -> String {
    match pttl {
        -1 => "none (no expiry)".to_owned(),
        -2 => "expired".to_owned(),
        ms if ms >= 0 => format!("{:.3} s", ms as f64 / 1000.0),
        other => format!("unknown ({other})"),
    }
}

/// The header's flags in words.
fn flags_text(flags: u8) -> String {
    let mut names = Vec::new();
    if flags & FLAG_LZ4 != 0 {
        names.push("LZ4".to_owned());
    }
    let unknown = flags & !FLAG_LZ4;
    if unknown != 0 {
        names.push(format!("unknown {unknown:#04x}"));
    }
    if names.is_empty() {
        "none".to_owned()
    } else {
        format!("{} ({flags:#04x})", names.join(", "))
    }
}

/// The first [`PREVIEW_BYTES`] of `bytes` as hex and ASCII, 16 a line.
fn hex_preview(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).take(PREVIEW_BYTES / 16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "  {:04x}  {:<47}  |{ascii}|\n",
            i * 16,
            hex.join(" ")
        ));
    }
    if bytes.len() > PREVIEW_BYTES {
        out.push_str(&format!(
            "  ... {} more bytes\n",
            bytes.len() - PREVIEW_BYTES
        ));
    }
    if bytes.is_empty() {
        out.push_str("  (empty)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_value, Envelope, HEADER_LEN};

    /// Where the header keeps its version, codec id and flags (`codec.rs`'s layout).
    const VERSION_AT: usize = 2;
    const CODEC_AT: usize = 3;
    const FLAGS_AT: usize = 4;

    #[derive(serde::Serialize)]
    struct Server {
        id: i64,
        name: String,
    }

    /// The cache's bounds for values of at most `value_bytes`.
    fn limits(value_bytes: usize) -> Limits {
        Limits {
            value_bytes,
            decoded_bytes: crate::codec::DEFAULT_MAX_DECODED_BYTES.max(value_bytes),
        }
    }

    fn server() -> Server {
        Server {
            id: 7,
            name: "web-7".to_owned(),
        }
    }

    #[test]
    fn reads_the_header_the_codec_writes() {
        for kind in [CodecKind::Bincode, CodecKind::Json] {
            let bytes = encode_value(kind, &server()).unwrap();
            let (header, payload) = StoredHeader::read(&bytes).unwrap();
            assert_eq!(CodecKind::from_id(header.codec_id), Some(kind));
            assert_eq!(header.flags, 0);
            assert_eq!(payload.len(), bytes.len() - HEADER_LEN);
            // The shape is the same whatever the codec's id; only the human-readable bit differs.
            assert_ne!(header.shape, 0);
        }
        assert_eq!(CodecKind::from_id(200), None);
    }

    #[test]
    fn json_values_are_shown_decoded() {
        let bytes = encode_value(CodecKind::Json, &server()).unwrap();
        let (text, outcome) = describe("s:get:7", &bytes, 5_000, limits(1 << 20));
        assert!(outcome.is_ok(), "{text}");
        assert!(text.contains("codec:              json (id 2)"), "{text}");
        assert!(text.contains("\"name\": \"web-7\""), "{text}");
        assert!(text.contains("ttl:                5.000 s"), "{text}");
    }

    #[test]
    fn compressed_values_are_flagged_and_inflated() {
        let big: Vec<String> = (0..2000).map(|i| format!("item {}", i % 10)).collect();
        let bytes = Envelope::new(CodecKind::Json, 1 << 24)
            .compress_from(64)
            .encode(&big)
            .unwrap();
        let (header, _) = StoredHeader::read(&bytes).unwrap();
        assert_eq!(header.flags, FLAG_LZ4);
        let (text, outcome) = describe("big", &bytes, -1, limits(1 << 24));
        assert!(outcome.is_ok(), "{text}");
        assert!(text.contains("LZ4 (0x01)"), "{text}");
        assert!(text.contains("\"item 9\""), "{text}");
        assert!(text.contains("none (no expiry)"), "{text}");
        let (_, refused) = describe("big", &bytes, -1, limits(100));
        assert!(refused.is_err());
    }

    #[test]
    fn bincode_values_get_a_hex_preview() {
        let bytes = encode_value(CodecKind::Bincode, &server()).unwrap();
        let (text, outcome) = describe("s", &bytes, 1, limits(1 << 20));
        assert!(outcome.is_ok());
        assert!(
            text.contains("cannot be decoded without the Rust type"),
            "{text}"
        );
        assert!(text.contains("  0000  0e "), "{text}");
    }

    #[test]
    fn foreign_and_truncated_bytes_are_refused_without_panicking() {
        let valid = encode_value(CodecKind::Json, &server()).unwrap();
        let mut other_version = valid.clone();
        other_version[VERSION_AT] = 99;
        let mut bad_json = valid[..HEADER_LEN].to_vec();
        bad_json.extend_from_slice(b"{\"id\":");
        let mut bad_lz4 = valid[..HEADER_LEN].to_vec();
        bad_lz4[FLAGS_AT] = FLAG_LZ4;
        bad_lz4.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 1, 2]);
        let mut unknown_codec = valid.clone();
        unknown_codec[CODEC_AT] = 77;
        for bytes in [
            &b"{\"from\":\"python\"}"[..],
            &b""[..],
            &valid[..7],
            &other_version,
            &bad_json,
            &bad_lz4,
            &unknown_codec,
        ] {
            let (text, outcome) = describe("k", bytes, 1, limits(1 << 20));
            assert!(outcome.is_err(), "{text}");
        }
        let (text, _) = describe("k", b"hello", 1, limits(1 << 20));
        assert!(text.contains("|hello|"), "{text}");
    }

    /// A JSON header (any JSON value's) followed by `payload`.
    fn forged(payload: &[u8]) -> Vec<u8> {
        let header = &encode_value(CodecKind::Json, &serde_json::json!([])).unwrap()[..HEADER_LEN];
        [header, payload].concat()
    }

    /// The message of a refusal.
    fn refused(outcome: Result<(), Failure>) -> String {
        match outcome {
            Ok(()) => panic!("shown"),
            Err(failure) => failure.to_string(),
        }
    }

    #[test]
    fn json_is_read_within_the_bounds_the_cache_reads_it_in() {
        let bounds = Limits {
            value_bytes: 1 << 20,
            decoded_bytes: 4 << 20,
        };
        // Over CACHE_MAX_VALUE_BYTES uncompressed, as compressed: never decoded.
        let big = [b"\"".as_slice(), &vec![b'a'; 2 << 20], b"\""].concat();
        let (text, outcome) = describe("k", &forged(&big), 1, bounds);
        assert!(refused(outcome).contains("CACHE_MAX_VALUE_BYTES (1048576)"));
        assert!(text.len() < 4096, "{}", text.len());
        // 500,000 zeros: 16 MB of `serde_json::Value`s, over CACHE_MAX_DECODED_BYTES.
        let zeros = [b"[".as_slice(), &b"0,".repeat(499_999), b"0]"].concat();
        let (text, outcome) = describe("k", &forged(&zeros), 1, bounds);
        assert!(refused(outcome).contains("CACHE_MAX_DECODED_BYTES (4194304 bytes)"));
        assert!(text.len() < 4096, "{}", text.len());
        // Nested past the depth the cache reads: refused at once, far from the stack's end.
        let deep = [b"[".repeat(100_000), b"]".repeat(100_000)].concat();
        let (_, outcome) = describe("k", &forged(&deep), 1, bounds);
        assert!(refused(outcome).contains("nests more than 127 levels"));
        // As deep as the cache reads: shown.
        let deepest = [b"[".repeat(126), b"0".to_vec(), b"]".repeat(126)].concat();
        let (text, outcome) = describe("k", &forged(&deepest), 1, bounds);
        assert!(outcome.is_ok(), "{text}");
        assert!(
            text.contains(&format!("\n{}0\n", " ".repeat(2 * 126))),
            "{text}"
        );
    }

    #[test]
    fn a_value_whose_text_is_far_larger_than_its_bytes_is_shown_cut() {
        // 100 levels around 200,000 zeros: 400 KB, and 40 MB pretty-printed (each zero on a
        // line of its own, indented 200 spaces).
        let wide = [
            b"[".repeat(100),
            b"0,".repeat(199_999),
            b"0".to_vec(),
            b"]".repeat(100),
        ]
        .concat();
        let (text, outcome) = describe("k", &forged(&wide), 1, limits(1 << 20));
        assert!(outcome.is_ok(), "{}", &text[..200]);
        assert!(text.len() < SHOWN_BYTES + 4096, "{}", text.len());
        assert!(
            text.ends_with("LZ4-compressed when flagged)\n"),
            "{}",
            &text[text.len() - 300..]
        );
        // A small value is shown whole.
        let (text, _) = describe("k", &forged(b"[1,[2,{\"a\":\"b\"}]]"), 1, limits(1 << 20));
        assert!(!text.contains("cut after"), "{text}");
        assert!(text.contains("\"a\": \"b\""), "{text}");
    }
}
