//! `cachectl inspect KEY`: the raw bytes under a key read as a value envelope (format version,
//! codec, flags, schema fingerprint, sizes), its TTL, and the value itself when it is JSON.
//!
//! The header is read by the codec's own reader ([`StoredHeader`]), which accepts any codec id
//! and flags so that they can be shown even when this build cannot decode them.

use bytes::Bytes;
use fred::prelude::KeysInterface;

use super::connect::Redis;
use super::Failure;
use crate::codec::{inflate, CodecKind, DecodeError, StoredHeader, FLAG_LZ4, FORMAT_VERSION};
use crate::config::CacheConfig;

/// How many payload bytes the hex preview shows.
const PREVIEW_BYTES: usize = 64;

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
    let (report, outcome) = describe(key, &bytes, pttl, config.max_value_bytes());
    print!("{report}");
    outcome
}

/// What `inspect` prints for `bytes` under `key`, and whether they are a readable value.
fn describe(key: &str, bytes: &[u8], pttl: i64, limit: usize) -> (String, Result<(), Failure>) {
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
    let plain = if header.flags & FLAG_LZ4 != 0 {
        match inflate(payload, limit) {
            Ok(plain) => {
                line("uncompressed:", &format!("{} bytes", plain.len()));
                plain
            }
            Err(why) => {
                out.push_str(&format!("preview:\n{}", hex_preview(payload)));
                return (
                    out,
                    Err(Failure::failed(format!(
                        "{key:?}: corrupt LZ4 payload: {why}"
                    ))),
                );
            }
        }
    } else {
        payload.to_vec()
    };
    match codec {
        CodecKind::Json => match serde_json::from_slice::<serde_json::Value>(&plain) {
            Ok(value) => {
                let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
                out.push_str(&format!("value:\n{pretty}\n"));
                (out, Ok(()))
            }
            Err(e) => {
                out.push_str(&format!("preview:\n{}", hex_preview(&plain)));
                (
                    out,
                    Err(Failure::failed(format!(
                        "{key:?}: the JSON payload does not parse: {e}"
                    ))),
                )
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
        let (text, outcome) = describe("s:get:7", &bytes, 5_000, 1 << 20);
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
        let (text, outcome) = describe("big", &bytes, -1, 1 << 24);
        assert!(outcome.is_ok(), "{text}");
        assert!(text.contains("LZ4 (0x01)"), "{text}");
        assert!(text.contains("\"item 9\""), "{text}");
        assert!(text.contains("none (no expiry)"), "{text}");
        let (_, refused) = describe("big", &bytes, -1, 100);
        assert!(refused.is_err());
    }

    #[test]
    fn bincode_values_get_a_hex_preview() {
        let bytes = encode_value(CodecKind::Bincode, &server()).unwrap();
        let (text, outcome) = describe("s", &bytes, 1, 1 << 20);
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
            let (text, outcome) = describe("k", bytes, 1, 1 << 20);
            assert!(outcome.is_err(), "{text}");
        }
        let (text, _) = describe("k", b"hello", 1, 1 << 20);
        assert!(text.contains("|hello|"), "{text}");
    }
}
