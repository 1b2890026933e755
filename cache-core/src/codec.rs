//! Value encoding: the codecs, and the envelope header in front of every stored value.
//!
//! A stored value is a 13-byte header, `[0xCA, 0xCE, version, codec id, flags]` and the 8-byte
//! fingerprint of the value's Rust type (little endian), followed by the codec's bytes. The header
//! lets a reader tell our values from foreign, truncated or corrupt bytes, refuse a value of
//! another type, and read values written with another codec than its own. Decoding never panics
//! and never allocates more than [`MAX_DECODE_BYTES`], whatever a length prefix claims.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{fingerprint, CacheError};

const MAGIC: [u8; 2] = [0xCA, 0xCE];
const FORMAT_VERSION: u8 = 2;
/// The length of the envelope header.
pub const HEADER_LEN: usize = 13;
/// The most bytes a decode may claim for its containers (strings, vectors, maps).
pub const MAX_DECODE_BYTES: usize = 512 * 1024 * 1024;
/// Header flag: the payload is LZ4-compressed (block format, uncompressed size first).
const FLAG_LZ4: u8 = 0x01;
/// The flags this build can read.
const KNOWN_FLAGS: u8 = if cfg!(feature = "compression") {
    FLAG_LZ4
} else {
    0
};

/// A serialization format for cached values.
///
/// Implemented by [`Bincode`] (the default) and, with the `json` feature, [`Json`]. The codec a
/// value was written with is recorded in its header by [`Codec::ID`].
pub trait Codec {
    /// The id stored in the value header; unique per codec.
    const ID: u8;
    /// Appends the encoding of `value` to `out`.
    fn encode<V: Serialize + ?Sized>(value: &V, out: &mut Vec<u8>) -> Result<(), CacheError>;
    /// Decodes a whole value from `bytes`; trailing bytes are an error.
    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, DecodeError>;
}

/// Why stored bytes could not be read as a value: each is a miss, never an error for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes do not start with our header: another program or library wrote them.
    #[error("foreign bytes (no cache header)")]
    Foreign,
    /// The header names a format version this build does not know.
    #[error("unknown format version {0}")]
    Version(u8),
    /// The header names a codec this build does not have (or was built without).
    #[error("unknown or disabled codec {0}")]
    UnknownCodec(u8),
    /// The header has flags this build does not understand.
    #[error("unsupported flags {0:#04x}")]
    Flags(u8),
    /// The value was written as another Rust type than the one asked for.
    #[error("a value of another type (fingerprint {found:#018x}, expected {expected:#018x})")]
    OtherType {
        /// The fingerprint in the header.
        found: u64,
        /// The fingerprint of the type asked for.
        expected: u64,
    },
    /// The codec rejected the bytes: truncated, corrupt, or a value of another type.
    #[error("undecodable value: {0}")]
    Corrupt(String),
}

/// bincode 2 with its serde support, standard configuration and a decode limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

type BincodeConfig = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODE_BYTES>,
>;

const BINCODE: BincodeConfig = bincode::config::standard().with_limit::<MAX_DECODE_BYTES>();

impl Codec for Bincode {
    const ID: u8 = 1;

    fn encode<V: Serialize + ?Sized>(value: &V, out: &mut Vec<u8>) -> Result<(), CacheError> {
        bincode::serde::encode_into_std_write(value, out, BINCODE)
            .map(|_| ())
            .map_err(|e| CacheError::Encode(e.to_string()))
    }

    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, DecodeError> {
        let (value, read) = bincode::serde::decode_from_slice(bytes, BINCODE)
            .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        if read != bytes.len() {
            return Err(DecodeError::Corrupt(format!(
                "{} trailing bytes",
                bytes.len() - read
            )));
        }
        Ok(value)
    }
}

/// serde_json: readable with `redis-cli`, larger and slower than bincode.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "json")]
impl Codec for Json {
    const ID: u8 = 2;

    fn encode<V: Serialize + ?Sized>(value: &V, out: &mut Vec<u8>) -> Result<(), CacheError> {
        serde_json::to_writer(out, value).map_err(|e| CacheError::Encode(e.to_string()))
    }

    fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Corrupt(e.to_string()))
    }
}

/// The codec a cache writes new values with (`CACHE_CODEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CodecKind {
    /// [`Bincode`]: compact and fast; the default.
    #[default]
    Bincode,
    /// [`Json`]: needs the `json` feature.
    #[cfg(feature = "json")]
    Json,
}

impl CodecKind {
    pub(crate) const EXPECTED: &'static str = if cfg!(feature = "json") {
        "`bincode` or `json`"
    } else {
        "`bincode` (`json` needs the `json` feature of cache-core)"
    };

    /// The codec's name as `CACHE_CODEC` spells it.
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Bincode => "bincode",
            #[cfg(feature = "json")]
            CodecKind::Json => "json",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "bincode" => Some(CodecKind::Bincode),
            #[cfg(feature = "json")]
            "json" => Some(CodecKind::Json),
            _ => None,
        }
    }
}

/// Serializes `value` with `codec`, header first, into a buffer sized for it.
pub fn encode_value<V: Serialize + ?Sized>(
    codec: CodecKind,
    value: &V,
) -> Result<Vec<u8>, CacheError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    let codec_id = match codec {
        CodecKind::Bincode => Bincode::ID,
        #[cfg(feature = "json")]
        CodecKind::Json => Json::ID,
    };
    out.push(codec_id);
    out.push(0);
    out.extend_from_slice(&fingerprint::of::<V>().to_le_bytes());
    match codec {
        CodecKind::Bincode => Bincode::encode(value, &mut out)?,
        #[cfg(feature = "json")]
        CodecKind::Json => Json::encode(value, &mut out)?,
    }
    Ok(out)
}

/// Reads a value written by [`encode_value`], with whichever codec its header names.
pub fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, DecodeError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::Foreign);
    };
    let [m0, m1, version, codec, flags, type_bytes @ ..] = *header;
    if [m0, m1] != MAGIC {
        return Err(DecodeError::Foreign);
    }
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version(version));
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::Flags(flags));
    }
    let (found, expected) = (u64::from_le_bytes(type_bytes), fingerprint::of::<V>());
    if found != expected {
        return Err(DecodeError::OtherType { found, expected });
    }
    #[cfg(feature = "compression")]
    let decompressed;
    #[cfg(feature = "compression")]
    let body = if flags & FLAG_LZ4 != 0 {
        decompressed = decompress(body)?;
        decompressed.as_slice()
    } else {
        body
    };
    match codec {
        Bincode::ID => Bincode::decode(body),
        #[cfg(feature = "json")]
        Json::ID => Json::decode(body),
        other => Err(DecodeError::UnknownCodec(other)),
    }
}

/// LZ4-compresses the payload of an encoded value when it has at least `min_bytes` (0: never)
/// and compression makes it smaller, and flags the header; otherwise returns it unchanged.
#[cfg(feature = "compression")]
pub fn compress(encoded: Vec<u8>, min_bytes: usize) -> Vec<u8> {
    let payload = encoded.get(HEADER_LEN..).unwrap_or_default();
    if min_bytes == 0 || payload.len() < min_bytes {
        return encoded;
    }
    let packed = lz4_flex::block::compress_prepend_size(payload);
    if packed.len() >= payload.len() {
        return encoded;
    }
    let mut out = Vec::with_capacity(HEADER_LEN + packed.len());
    out.extend_from_slice(&encoded[..HEADER_LEN]);
    out[4] |= FLAG_LZ4;
    out.extend_from_slice(&packed);
    out
}

/// Inflates an LZ4 payload, refusing sizes no honest value has: above [`MAX_DECODE_BYTES`], or
/// beyond LZ4's best ratio (255:1) for the input at hand, so a forged size allocates nothing.
#[cfg(feature = "compression")]
fn decompress(packed: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::Corrupt(format!("lz4: {e}"));
    let (size, rest) = lz4_flex::block::uncompressed_size(packed).map_err(|e| corrupt(&e))?;
    if size > MAX_DECODE_BYTES || size > rest.len().saturating_mul(255).saturating_add(16) {
        return Err(corrupt(&format!("a claimed size of {size} bytes")));
    }
    lz4_flex::block::decompress(rest, size).map_err(|e| corrupt(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Server {
        id: i64,
        name: String,
        tags: Vec<String>,
    }

    fn server() -> Server {
        Server {
            id: 7,
            name: "édition ✓".into(),
            tags: vec!["a".into(), String::new()],
        }
    }

    #[test]
    fn round_trips_with_every_codec() {
        let mut kinds = vec![CodecKind::Bincode];
        #[cfg(feature = "json")]
        kinds.push(CodecKind::Json);
        for kind in kinds {
            let bytes = encode_value(kind, &server()).unwrap();
            assert_eq!(
                decode_value::<Server>(&bytes).unwrap(),
                server(),
                "{kind:?}"
            );
            let empty = encode_value(kind, "").unwrap();
            assert_eq!(decode_value::<String>(&empty).unwrap(), "");
            let empty_vec = encode_value(kind, &Vec::<u8>::new()).unwrap();
            assert_eq!(
                decode_value::<Vec<u8>>(&empty_vec).unwrap(),
                Vec::<u8>::new()
            );
        }
    }

    #[test]
    fn foreign_and_damaged_bytes_are_detected() {
        let good = encode_value(CodecKind::Bincode, &server()).unwrap();
        assert_eq!(
            decode_value::<Server>(b"{\"id\":7}"),
            Err(DecodeError::Foreign)
        );
        assert_eq!(decode_value::<Server>(b""), Err(DecodeError::Foreign));
        assert_eq!(
            decode_value::<Server>(&good[..3]),
            Err(DecodeError::Foreign)
        );
        for cut in HEADER_LEN..good.len() {
            assert!(
                matches!(
                    decode_value::<Server>(&good[..cut]),
                    Err(DecodeError::Corrupt(_))
                ),
                "{cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            decode_value::<Server>(&longer),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode_value::<u64>(&good),
            Err(DecodeError::OtherType { .. })
        ));
        let text = encode_value(CodecKind::Bincode, "text").unwrap();
        assert_eq!(decode_value::<String>(&text).unwrap(), "text");
        assert!(matches!(
            decode_value::<Vec<u8>>(&text),
            Err(DecodeError::OtherType { .. })
        ));
        let mut versioned = good.clone();
        versioned[2] = 9;
        assert_eq!(
            decode_value::<Server>(&versioned),
            Err(DecodeError::Version(9))
        );
        let mut codec = good.clone();
        codec[3] = 200;
        assert_eq!(
            decode_value::<Server>(&codec),
            Err(DecodeError::UnknownCodec(200))
        );
        let mut flagged = good;
        flagged[4] = 0x80;
        assert_eq!(
            decode_value::<Server>(&flagged),
            Err(DecodeError::Flags(0x80))
        );
    }

    #[cfg(feature = "compression")]
    #[test]
    fn large_values_are_compressed_and_read_back() {
        let text = "cache ".repeat(2_000);
        let plain = encode_value(CodecKind::Bincode, &text).unwrap();
        let packed = compress(plain.clone(), 1024);
        assert!(
            packed.len() < plain.len() / 10,
            "{} -> {}",
            plain.len(),
            packed.len()
        );
        assert_eq!(packed[4] & FLAG_LZ4, FLAG_LZ4);
        assert_eq!(decode_value::<String>(&packed).unwrap(), text);
        // Below the threshold, or when it would not shrink: left alone.
        assert!(compress(plain.clone(), 1 << 20) == plain);
        assert!(compress(plain.clone(), 0) == plain);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let noise_plain = encode_value(CodecKind::Bincode, &noise).unwrap();
        assert!(
            compress(noise_plain.clone(), 16) == noise_plain,
            "incompressible: left alone"
        );
        // A forged uncompressed size is refused before anything is allocated.
        let mut forged = packed[..HEADER_LEN].to_vec();
        forged.extend_from_slice(&u32::MAX.to_le_bytes());
        forged.extend_from_slice(&[0x10, b'a']);
        assert!(matches!(
            decode_value::<String>(&forged),
            Err(DecodeError::Corrupt(_))
        ));
        let mut truncated = packed.clone();
        truncated.truncate(packed.len() - 5);
        assert!(decode_value::<String>(&truncated).is_err());
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        let header = |v: Vec<u8>| v[..HEADER_LEN].to_vec();
        // A String's header, then a varint length prefix claiming 4 GiB (0xFC: a u32 follows).
        let mut bytes = header(encode_value(CodecKind::Bincode, "").unwrap());
        bytes.push(0xFC);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(b"tiny");
        assert!(matches!(
            decode_value::<String>(&bytes),
            Err(DecodeError::Corrupt(_))
        ));
        // u64::MAX elements: would overflow a capacity computation without the limit.
        let mut bytes = header(encode_value(CodecKind::Bincode, &Vec::<u8>::new()).unwrap());
        bytes.push(0xFD);
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_value::<Vec<u8>>(&bytes),
            Err(DecodeError::Corrupt(_))
        ));
    }
}
