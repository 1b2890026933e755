//! Value encoding: the codecs, and the envelope header in front of every stored value.
//!
//! A stored value is a 13-byte header, `[0xCA, 0xCE, version, codec id, flags]` and the 8-byte
//! schema fingerprint of the value (little endian, see `fingerprint.rs`),
//! followed by the codec's bytes. The header lets a reader tell our values from foreign, truncated
//! or corrupt bytes, refuse a value written under another schema, and read values written with
//! another codec than its own. Decoding never panics, refuses a payload larger than the limit it
//! is given (the cache's `CACHE_MAX_VALUE_BYTES`) before allocating anything for it, never lets an
//! LZ4 size claim more than [`MAX_DECODE_BYTES`], and bounds the bytes being decompressed at once
//! in the process. Every codec reads through [`bounds`], which checks each string's length
//! against the bytes that remain and bounds the elements a decode visits and the memory the value
//! takes (`CACHE_MAX_DECODED_BYTES`), whatever the bytes claim.

mod bounds;

use std::marker::PhantomData;
#[cfg(feature = "compression")]
use std::sync::{Condvar, Mutex, PoisonError};

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;

use crate::{error::CacheError, fingerprint};
#[cfg(feature = "json")]
use bounds::BoundedSeed;
use bounds::Tally;
pub use bounds::{Bound, MAX_DEPTH, ZERO_SIZED_ALLOWANCE};

const MAGIC: [u8; 2] = [0xCA, 0xCE];
/// 3: the fingerprint hashes the value's shape (2 hashed its type's name).
pub(crate) const FORMAT_VERSION: u8 = 3;
/// The length of the envelope header.
pub const HEADER_LEN: usize = 13;
/// The most bytes a compressed payload may claim to inflate to, whatever the limit.
pub const MAX_DECODE_BYTES: usize = 512 * 1024 * 1024;
/// The most memory a decoded value may take unless told otherwise (`CACHE_MAX_DECODED_BYTES`).
pub const DEFAULT_MAX_DECODED_BYTES: usize = 256 * 1024 * 1024;
/// Header flag: the payload is LZ4-compressed (block format, uncompressed size first).
pub(crate) const FLAG_LZ4: u8 = 0x01;
/// The flags this build can read.
const KNOWN_FLAGS: u8 = if cfg!(feature = "compression") {
    FLAG_LZ4
} else {
    0
};
/// Decompressions of at least this many bytes take their size from [`DECOMPRESSING`].
#[cfg(feature = "compression")]
const BUDGETED_BYTES: usize = 256 * 1024;
/// How many largest values may be decompressed at once, process-wide.
#[cfg(feature = "compression")]
const BUDGET_VALUES: usize = 4;

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
    /// The bytes decoded, but into a value of another shape than the one written: the type's
    /// schema changed since (fields reordered or retyped, variants moved), or it is another type.
    #[error("a value of another schema (fingerprint {stored:#018x}, decoded as {decoded:#018x})")]
    SchemaMismatch {
        /// The fingerprint in the header: the shape of the value that was written.
        stored: u64,
        /// The fingerprint of the value the bytes decoded into.
        decoded: u64,
    },
    /// The payload is (or claims to decompress to) more bytes than the limit: a value this
    /// size is never stored, so these bytes are forged or were written with a higher limit.
    #[error("a payload of {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The size of the header and the (decompressed) payload.
        size: usize,
        /// The limit (`CACHE_MAX_VALUE_BYTES`).
        limit: usize,
    },
    /// The codec rejected the bytes: truncated, corrupt, or a value of another type.
    #[error("undecodable value: {0}")]
    Corrupt(String),
    /// The value would visit more elements, take more memory or nest deeper than a decode may:
    /// the bytes claim more than an honest value of their size holds (forged, or a value of
    /// another type).
    #[error("a value of {claimed} {what}, over the bound of {bound}")]
    OverBound {
        /// Which bound.
        what: Bound,
        /// How many the value would have reached (at least; decoding stopped there).
        claimed: usize,
        /// The bound: the payload's length plus [`ZERO_SIZED_ALLOWANCE`] for elements,
        /// `CACHE_MAX_DECODED_BYTES` for decoded bytes, [`MAX_DEPTH`] for depth.
        bound: usize,
    },
}

type BincodeConfig =
    bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Varint>;

/// bincode 2's standard configuration. Without bincode's limit on the bytes a decode claims:
/// [`bounds`] checks each string's length against the bytes that remain and counts each
/// sequence against the element and memory bounds before its first element, so the limit
/// has nothing left to refuse (and counting it on every scalar read was the largest cost of
/// decoding a sequence of integers: `docs/src/benchmarks.md`).
const BINCODE: BincodeConfig = bincode::config::standard();

/// The codec a cache writes new values with (`CACHE_CODEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CodecKind {
    /// bincode 2 with its serde support: compact and fast; the default.
    #[default]
    Bincode,
    /// serde_json: readable with `redis-cli`, larger and slower than bincode; needs the `json`
    /// feature.
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

    /// What the codec's serializer tells `Serialize` impls (part of the value's shape).
    fn human_readable(self) -> bool {
        match self {
            CodecKind::Bincode => false,
            #[cfg(feature = "json")]
            CodecKind::Json => true,
        }
    }

    /// The id the header records; ids are never reused.
    fn id(self) -> u8 {
        match self {
            CodecKind::Bincode => 1,
            #[cfg(feature = "json")]
            CodecKind::Json => 2,
        }
    }

    pub(crate) fn from_id(id: u8) -> Option<Self> {
        [
            CodecKind::Bincode,
            #[cfg(feature = "json")]
            CodecKind::Json,
        ]
        .into_iter()
        .find(|kind| kind.id() == id)
    }

    /// Appends the codec's encoding of `value` to `out`.
    fn encode<V: Serialize + ?Sized>(self, value: &V, out: &mut Vec<u8>) -> Result<(), CacheError> {
        let result = match self {
            CodecKind::Bincode => bincode::serde::encode_into_std_write(value, out, BINCODE)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            #[cfg(feature = "json")]
            CodecKind::Json => serde_json::to_writer(out, value).map_err(|e| e.to_string()),
        };
        result.map_err(CacheError::Encode)
    }

    /// Reads a whole payload with `seed`, within the bounds of `tally`; trailing bytes are an
    /// error.
    fn decode<S, T>(self, payload: &[u8], seed: S, tally: &Tally) -> Result<T, DecodeError>
    where
        S: for<'de> DeserializeSeed<'de, Value = T>,
    {
        let result = match self {
            CodecKind::Bincode => bounds::decode_bincode(payload, BINCODE, seed, tally)
                .map_err(|e| DecodeError::Corrupt(e.to_string()))
                .and_then(|(value, read)| match payload.len() - read {
                    0 => Ok(value),
                    trailing => Err(DecodeError::Corrupt(format!("{trailing} trailing bytes"))),
                }),
            #[cfg(feature = "json")]
            CodecKind::Json => {
                let mut de = serde_json::Deserializer::from_slice(payload);
                BoundedSeed::new(seed, tally)
                    .deserialize(&mut de)
                    .and_then(|value| de.end().map(|()| value))
                    .map_err(|e| DecodeError::Corrupt(e.to_string()))
            }
        };
        // The codec's error only carries the breach as text: the tally has it.
        match tally.breach() {
            Some(breach) => Err(DecodeError::OverBound {
                what: breach.what,
                claimed: breach.claimed,
                bound: breach.bound,
            }),
            None => result,
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

/// Where each field of the envelope header sits.
mod offset {
    use std::ops::Range;

    pub(super) const MAGIC: Range<usize> = 0..2;
    pub(super) const VERSION: usize = 2;
    pub(super) const CODEC: usize = 3;
    pub(super) const FLAGS: usize = 4;
    /// The schema fingerprint, little endian.
    pub(super) const SHAPE: Range<usize> = 5..13;
}

/// A value's header as stored, whatever codec and flags it names: what a tool that shows values
/// reads (`cachectl inspect`), and the first step of [`Header::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredHeader {
    pub(crate) codec_id: u8,
    pub(crate) flags: u8,
    /// The schema fingerprint of the value ([`fingerprint::of`]).
    pub(crate) shape: u64,
}

impl StoredHeader {
    /// The header of `bytes` and the payload after it, if the header is ours and of this format
    /// version.
    pub(crate) fn read(bytes: &[u8]) -> Result<(StoredHeader, &[u8]), DecodeError> {
        let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::Foreign);
        };
        if header[offset::MAGIC] != MAGIC {
            return Err(DecodeError::Foreign);
        }
        let version = header[offset::VERSION];
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let mut shape = [0u8; 8];
        shape.copy_from_slice(&header[offset::SHAPE]);
        Ok((
            StoredHeader {
                codec_id: header[offset::CODEC],
                flags: header[offset::FLAGS],
                shape: u64::from_le_bytes(shape),
            },
            payload,
        ))
    }
}

/// The envelope header of a value this build can decode.
struct Header {
    codec: CodecKind,
    flags: u8,
    /// The schema fingerprint of the value ([`fingerprint::of`]).
    shape: u64,
}

impl Header {
    /// Appends the header's [`HEADER_LEN`] bytes to `out`.
    fn write(&self, out: &mut Vec<u8>) {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[offset::MAGIC].copy_from_slice(&MAGIC);
        bytes[offset::VERSION] = FORMAT_VERSION;
        bytes[offset::CODEC] = self.codec.id();
        bytes[offset::FLAGS] = self.flags;
        bytes[offset::SHAPE].copy_from_slice(&self.shape.to_le_bytes());
        out.extend_from_slice(&bytes);
    }

    /// The header of `bytes` and the payload after it, if the header is ours, of this format
    /// version, and names a codec and flags this build reads.
    fn read(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
        let (stored, payload) = StoredHeader::read(bytes)?;
        if stored.flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::Flags(stored.flags));
        }
        let codec = CodecKind::from_id(stored.codec_id)
            .ok_or(DecodeError::UnknownCodec(stored.codec_id))?;
        Ok((
            Header {
                codec,
                flags: stored.flags,
                shape: stored.shape,
            },
            payload,
        ))
    }

    /// The payload's length once decompressed, as its LZ4 prefix claims when it is compressed.
    fn payload_len(&self, payload: &[u8]) -> Result<usize, DecodeError> {
        #[cfg(feature = "compression")]
        if self.flags & FLAG_LZ4 != 0 {
            return lz4_flex::block::uncompressed_size(payload)
                .map(|(size, _)| size)
                .map_err(|e| DecodeError::Corrupt(format!("lz4: {e}")));
        }
        Ok(payload.len())
    }
}

/// How values are written and read: the codec, the largest value, and the payload size from
/// which LZ4 applies. [`encode`](Self::encode) and [`decode`](Self::decode) each handle the
/// header, the compression and the codec, in opposite order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    codec: CodecKind,
    max_value_bytes: usize,
    max_decoded_bytes: usize,
    compress_min_bytes: usize,
}

impl Envelope {
    /// Values in `codec`, of at most `max_value_bytes` (header and uncompressed payload), never
    /// compressed, decoding into at most `max_value_bytes` or [`DEFAULT_MAX_DECODED_BYTES`] of
    /// memory, whichever is larger.
    pub fn new(codec: CodecKind, max_value_bytes: usize) -> Self {
        Envelope {
            codec,
            max_value_bytes,
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES.max(max_value_bytes),
            compress_min_bytes: 0,
        }
    }

    /// Values that decode into at most `bytes` of memory (`CACHE_MAX_DECODED_BYTES`): counted as
    /// the size of each sequence element and map entry plus the length of each string and byte
    /// buffer. Never below the largest value.
    pub fn max_decoded_bytes(self, bytes: usize) -> Self {
        Envelope {
            max_decoded_bytes: bytes.max(self.max_value_bytes),
            ..self
        }
    }

    /// LZ4 for payloads of at least `min_bytes` (0: never) that it makes smaller.
    #[cfg(feature = "compression")]
    pub fn compress_from(self, min_bytes: usize) -> Self {
        Envelope {
            compress_min_bytes: min_bytes,
            ..self
        }
    }

    /// The header, then `value` in the codec, compressed when that pays. A value over the
    /// largest is left uncompressed, for the caller to refuse: it could be stored compressed,
    /// but [`decode`](Self::decode) would refuse to inflate it.
    pub fn encode<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, CacheError> {
        let shape = fingerprint::of(value, self.codec.human_readable())
            .map_err(|e| CacheError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(64);
        Header {
            codec: self.codec,
            flags: 0,
            shape,
        }
        .write(&mut out);
        self.codec.encode(value, &mut out)?;
        #[cfg(feature = "compression")]
        if out.len() <= self.max_value_bytes {
            return Ok(compress(out, self.compress_min_bytes));
        }
        Ok(out)
    }

    /// Reads a value that [`encode`](Self::encode) wrote, with whichever codec its header names
    /// ([`decode_value`] with this envelope's largest value and largest decoded value).
    pub fn decode<V: DeserializeOwned + Serialize>(&self, bytes: &[u8]) -> Result<V, DecodeError> {
        decode_seeded(
            bytes,
            self.max_value_bytes,
            self.max_decoded_bytes,
            PhantomData::<V>,
        )
    }
}

/// Serializes `value` with `codec`, header first, uncompressed, whatever its size.
pub fn encode_value<V: Serialize + ?Sized>(
    codec: CodecKind,
    value: &V,
) -> Result<Vec<u8>, CacheError> {
    Envelope::new(codec, usize::MAX).encode(value)
}

/// Reads a value written by [`encode_value`], with whichever codec its header names.
///
/// `limit` is the largest value accepted (header and uncompressed payload, as
/// `CACHE_MAX_VALUE_BYTES` bounds what is stored): anything larger is refused before a byte is
/// allocated for it. The decode visits at most one sequence element or map entry per byte of
/// payload plus [`ZERO_SIZED_ALLOWANCE`], and the value may take at most `limit` or
/// [`DEFAULT_MAX_DECODED_BYTES`] of memory, whichever is larger ([`Envelope::decode`] takes
/// `CACHE_MAX_DECODED_BYTES`): beyond, [`DecodeError::OverBound`]. The value must be of the shape
/// the header records: bytes written under another schema are [`DecodeError::SchemaMismatch`],
/// even when they happen to decode.
pub fn decode_value<V: DeserializeOwned + Serialize>(
    bytes: &[u8],
    limit: usize,
) -> Result<V, DecodeError> {
    decode_seeded(
        bytes,
        limit,
        DEFAULT_MAX_DECODED_BYTES.max(limit),
        PhantomData::<V>,
    )
}

/// [`decode_value`] with the payload read by `seed` into at most `max_decoded` bytes of memory:
/// the one decode path, also for values whose type is known only at run time (the property
/// tests' dynamic schemas).
pub(crate) fn decode_seeded<S, T>(
    bytes: &[u8],
    limit: usize,
    max_decoded: usize,
    seed: S,
) -> Result<T, DecodeError>
where
    S: for<'de> DeserializeSeed<'de, Value = T>,
    T: Serialize,
{
    decode_counted(bytes, limit, seed, &Tally::new(max_decoded))
}

/// [`decode_seeded`], counting on `tally` (which the tests read afterwards).
fn decode_counted<S, T>(
    bytes: &[u8],
    limit: usize,
    seed: S,
    tally: &Tally,
) -> Result<T, DecodeError>
where
    S: for<'de> DeserializeSeed<'de, Value = T>,
    T: Serialize,
{
    let (header, payload) = Header::read(bytes)?;
    let payload_len = header.payload_len(payload)?;
    let size = HEADER_LEN.saturating_add(payload_len);
    if size > limit {
        return Err(DecodeError::TooLarge { size, limit });
    }
    tally.allow_elements(payload_len);
    let codec = header.codec;
    #[cfg(feature = "compression")]
    let value = if header.flags & FLAG_LZ4 != 0 {
        let _permit = (payload_len >= BUDGETED_BYTES)
            .then(|| DECOMPRESSING.admit(payload_len, limit.saturating_mul(BUDGET_VALUES)));
        let plain = decompress(payload, payload_len)?;
        codec.decode(&plain, seed, tally)?
    } else {
        codec.decode(payload, seed, tally)?
    };
    #[cfg(not(feature = "compression"))]
    let value = codec.decode(payload, seed, tally)?;
    let decoded = fingerprint::of(&value, codec.human_readable())
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    if decoded != header.shape {
        return Err(DecodeError::SchemaMismatch {
            stored: header.shape,
            decoded,
        });
    }
    Ok(value)
}

/// The size of an encoded value once decompressed (its length when it is not compressed or not
/// ours): what decoding it costs, known before decoding.
pub(crate) fn decoded_len(bytes: &[u8]) -> usize {
    match Header::read(bytes) {
        Ok((header, payload)) => {
            HEADER_LEN.saturating_add(header.payload_len(payload).unwrap_or(0))
        }
        Err(_) => bytes.len(),
    }
}

/// LZ4-compresses the payload of an encoded value when it has at least `min_bytes` (0: never)
/// and compression makes it smaller, and flags the header; otherwise returns it unchanged.
#[cfg(feature = "compression")]
fn compress(encoded: Vec<u8>, min_bytes: usize) -> Vec<u8> {
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
    out[offset::FLAGS] |= FLAG_LZ4;
    out.extend_from_slice(&packed);
    out
}

/// Inflates an LZ4 payload whose claimed `size` was checked against the limit, refusing sizes no
/// honest value has (beyond LZ4's best ratio, 255:1, for the input at hand) before allocating.
#[cfg(feature = "compression")]
fn decompress(packed: &[u8], size: usize) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::Corrupt(format!("lz4: {e}"));
    let (_, rest) = lz4_flex::block::uncompressed_size(packed).map_err(|e| corrupt(&e))?;
    if size > MAX_DECODE_BYTES || size > rest.len().saturating_mul(255).saturating_add(16) {
        return Err(corrupt(&format!("a claimed size of {size} bytes")));
    }
    lz4_flex::block::decompress(rest, size).map_err(|e| corrupt(&e))
}

/// The payload of a stored value as its codec reads it (`flags` from its header): inflated
/// when it is LZ4, and refused when it would be larger than `limit` with its header
/// (`CACHE_MAX_VALUE_BYTES`), compressed or not, before anything is allocated for it; for tools
/// that show values.
#[cfg(feature = "cli")]
pub(crate) fn plain_payload(
    flags: u8,
    payload: &[u8],
    limit: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, DecodeError> {
    let compressed = flags & FLAG_LZ4 != 0;
    let payload_len = if compressed {
        lz4_flex::block::uncompressed_size(payload)
            .map_err(|e| DecodeError::Corrupt(format!("lz4: {e}")))?
            .0
    } else {
        payload.len()
    };
    let size = HEADER_LEN.saturating_add(payload_len);
    if size > limit {
        return Err(DecodeError::TooLarge { size, limit });
    }
    if compressed {
        decompress(payload, payload_len).map(std::borrow::Cow::Owned)
    } else {
        Ok(std::borrow::Cow::Borrowed(payload))
    }
}

/// A JSON payload read as whatever JSON it holds, within the bounds of every decode: the
/// elements its length allows, at most `max_decoded` bytes of memory as counted
/// (`CACHE_MAX_DECODED_BYTES`), [`MAX_DEPTH`] levels; for tools that show values.
#[cfg(feature = "cli")]
pub(crate) fn json_value(
    payload: &[u8],
    max_decoded: usize,
) -> Result<serde_json::Value, DecodeError> {
    let tally = Tally::new(max_decoded);
    tally.allow_elements(payload.len());
    CodecKind::Json.decode(payload, PhantomData::<serde_json::Value>, &tally)
}

/// The bytes being decompressed at once in this process, across caches.
#[cfg(feature = "compression")]
static DECOMPRESSING: Budget = Budget::new();

/// A byte budget shared by the threads that decompress large values: a decompression waits,
/// in arrival order, until its size fits beside those running. The waiters of a hot key each
/// decode their own copy; this bounds how many copies are being inflated at once.
///
/// Never deadlocks: a holder never waits for anything while it holds its bytes (decoding is
/// synchronous), and a size larger than the whole budget is admitted when nothing else runs.
/// Each caller passes its own capacity (four of its cache's largest values), so caches with
/// different limits share one budget and none waits forever.
#[cfg(feature = "compression")]
#[derive(Debug)]
pub(crate) struct Budget {
    queue: Mutex<Queue>,
    turn: Condvar,
}

#[cfg(feature = "compression")]
#[derive(Debug)]
struct Queue {
    in_use: usize,
    /// The ticket the next arrival takes.
    next: u64,
    /// The ticket admitted next.
    serving: u64,
    /// The most bytes ever in use at once (for tests).
    peak: usize,
}

/// Bytes taken from a [`Budget`], given back on drop (also when decoding panics).
#[cfg(feature = "compression")]
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    budget: &'a Budget,
    bytes: usize,
}

#[cfg(feature = "compression")]
impl Budget {
    pub(crate) const fn new() -> Self {
        Budget {
            queue: Mutex::new(Queue {
                in_use: 0,
                next: 0,
                serving: 0,
                peak: 0,
            }),
            turn: Condvar::new(),
        }
    }

    /// Waits for this caller's turn and for `bytes` to fit within `capacity` beside the bytes
    /// in use (or for nothing to be in use), then takes them.
    pub(crate) fn admit(&self, bytes: usize, capacity: usize) -> Permit<'_> {
        // A poisoned lock only means a holder panicked; the counts it guards stay consistent
        // (each update is a single statement), so keep going.
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = queue.next;
        queue.next += 1;
        while queue.serving != ticket
            || (queue.in_use > 0 && queue.in_use.saturating_add(bytes) > capacity)
        {
            queue = self
                .turn
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
        queue.serving += 1;
        queue.in_use = queue.in_use.saturating_add(bytes);
        queue.peak = queue.peak.max(queue.in_use);
        drop(queue);
        // The next in line may fit too.
        self.turn.notify_all();
        Permit {
            budget: self,
            bytes,
        }
    }

    #[cfg(test)]
    fn peak(&self) -> usize {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .peak
    }
}

#[cfg(feature = "compression")]
impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut queue = self
            .budget
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queue.in_use = queue.in_use.saturating_sub(self.bytes);
        drop(queue);
        self.budget.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// The default `CACHE_MAX_VALUE_BYTES`.
    const LIMIT: usize = 16 << 20;

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
        #[cfg_attr(not(feature = "json"), allow(unused_mut))]
        let mut kinds = vec![CodecKind::Bincode];
        #[cfg(feature = "json")]
        kinds.push(CodecKind::Json);
        for kind in kinds {
            let bytes = encode_value(kind, &server()).unwrap();
            assert_eq!(
                decode_value::<Server>(&bytes, LIMIT).unwrap(),
                server(),
                "{kind:?}"
            );
            let empty = encode_value(kind, "").unwrap();
            assert_eq!(decode_value::<String>(&empty, LIMIT).unwrap(), "");
            let empty_vec = encode_value(kind, &Vec::<u8>::new()).unwrap();
            assert_eq!(
                decode_value::<Vec<u8>>(&empty_vec, LIMIT).unwrap(),
                Vec::<u8>::new()
            );
        }
    }

    #[test]
    fn foreign_and_damaged_bytes_are_detected() {
        let good = encode_value(CodecKind::Bincode, &server()).unwrap();
        assert_eq!(
            decode_value::<Server>(b"{\"id\":7}", LIMIT),
            Err(DecodeError::Foreign)
        );
        assert_eq!(
            decode_value::<Server>(b"", LIMIT),
            Err(DecodeError::Foreign)
        );
        assert_eq!(
            decode_value::<Server>(&good[..3], LIMIT),
            Err(DecodeError::Foreign)
        );
        for cut in HEADER_LEN..good.len() {
            assert!(
                matches!(
                    decode_value::<Server>(&good[..cut], LIMIT),
                    Err(DecodeError::Corrupt(_))
                ),
                "{cut}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(
            decode_value::<Server>(&longer, LIMIT),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode_value::<u64>(&good, LIMIT),
            Err(DecodeError::Corrupt(_))
        ));
        let text = encode_value(CodecKind::Bincode, "text").unwrap();
        assert_eq!(decode_value::<String>(&text, LIMIT).unwrap(), "text");
        assert!(matches!(
            decode_value::<Vec<u8>>(&text, LIMIT),
            Err(DecodeError::SchemaMismatch { .. })
        ));
        let mut versioned = good.clone();
        versioned[2] = 9;
        assert_eq!(
            decode_value::<Server>(&versioned, LIMIT),
            Err(DecodeError::Version(9))
        );
        let mut codec = good.clone();
        codec[3] = 200;
        assert_eq!(
            decode_value::<Server>(&codec, LIMIT),
            Err(DecodeError::UnknownCodec(200))
        );
        let mut flagged = good;
        flagged[4] = 0x80;
        assert_eq!(
            decode_value::<Server>(&flagged, LIMIT),
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
        assert_eq!(decode_value::<String>(&packed, LIMIT).unwrap(), text);
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
            decode_value::<String>(&forged, LIMIT),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut truncated = packed.clone();
        truncated.truncate(packed.len() - 5);
        assert!(decode_value::<String>(&truncated, LIMIT).is_err());
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
            decode_value::<String>(&bytes, LIMIT),
            Err(DecodeError::Corrupt(_))
        ));
        // u64::MAX elements: would overflow a capacity computation without the limit; refused
        // as more elements than the payload holds before the codec sees them.
        let mut bytes = header(encode_value(CodecKind::Bincode, &Vec::<u8>::new()).unwrap());
        bytes.push(0xFD);
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_value::<Vec<u8>>(&bytes, LIMIT),
            Err(DecodeError::OverBound {
                what: Bound::Elements,
                ..
            })
        ));
    }

    #[test]
    fn a_payload_over_the_limit_is_refused() {
        let bytes = encode_value(CodecKind::Bincode, &vec![7u8; 1000]).unwrap();
        assert_eq!(
            decode_value::<Vec<u8>>(&bytes, 1000),
            Err(DecodeError::TooLarge {
                size: bytes.len(),
                limit: 1000
            })
        );
        assert_eq!(
            decode_value::<Vec<u8>>(&bytes, bytes.len()).unwrap().len(),
            1000
        );
        assert_eq!(decoded_len(&bytes), bytes.len());
    }

    /// A forged LZ4 value: a valid header, a claimed uncompressed size, then `packed` bytes.
    #[cfg(feature = "compression")]
    fn forged(claimed: u32, packed: usize) -> Vec<u8> {
        let mut bytes = encode_value(CodecKind::Bincode, "").unwrap()[..HEADER_LEN].to_vec();
        bytes[4] |= FLAG_LZ4;
        bytes.extend_from_slice(&claimed.to_le_bytes());
        bytes.resize(bytes.len() + packed, 0x1F);
        bytes
    }

    #[cfg(feature = "compression")]
    #[test]
    fn a_claimed_size_over_the_limit_is_refused_before_allocating() {
        // 2 MiB claiming 510 MiB: within LZ4's ratio, so only the limit stops it.
        let bytes = forged(510 << 20, 2 << 20);
        assert_eq!(decoded_len(&bytes), HEADER_LEN + (510 << 20));
        assert_eq!(
            decode_value::<String>(&bytes, LIMIT),
            Err(DecodeError::TooLarge {
                size: HEADER_LEN + (510 << 20),
                limit: LIMIT
            })
        );
        // Under the limit, the bytes still have to inflate into a value (a claim under
        // `BUDGETED_BYTES`: the budget's test measures it alone).
        assert!(matches!(
            decode_value::<String>(&forged(200 << 10, 64 << 10), LIMIT),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[cfg(feature = "compression")]
    #[test]
    fn the_decompression_budget_bounds_the_bytes_in_use_and_never_deadlocks() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;

        let budget = Budget::new();
        let (capacity, each) = (1000, 300);
        let in_use = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let _permit = budget.admit(each, capacity);
                        let now = in_use.fetch_add(each, Ordering::SeqCst) + each;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(200));
                        in_use.fetch_sub(each, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(budget.peak(), 900, "three of 300 fit in 1000");
        assert!(most.load(Ordering::SeqCst) <= 900);
        // Larger than the whole budget: admitted alone, and the others wait for it.
        let big = budget.admit(5000, capacity);
        std::thread::scope(|s| {
            let small = s.spawn(|| {
                let _permit = budget.admit(1, capacity);
                in_use.load(Ordering::SeqCst)
            });
            std::thread::sleep(Duration::from_millis(20));
            assert!(!small.is_finished(), "a small decode waits for the big one");
            in_use.store(77, Ordering::SeqCst);
            drop(big);
            assert_eq!(small.join().unwrap(), 77);
        });
        assert_eq!(budget.peak(), 5000);
        drop(budget.admit(5000, capacity));
    }

    #[cfg(feature = "compression")]
    #[test]
    fn concurrent_decodes_of_a_large_value_share_the_process_budget() {
        let limit = 1 << 20;
        let text = "cache ".repeat(150_000);
        let packed = compress(encode_value(CodecKind::Bincode, &text).unwrap(), 1024);
        assert!(decoded_len(&packed) >= BUDGETED_BYTES && packed[4] & FLAG_LZ4 != 0);
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..5 {
                        assert_eq!(decode_value::<String>(&packed, limit).unwrap(), text);
                    }
                });
            }
        });
        // The only test of this binary that decompresses values above `BUDGETED_BYTES`.
        let peak = DECOMPRESSING.peak();
        assert!(peak <= BUDGET_VALUES * limit, "{peak}");
        assert!(peak >= decoded_len(&packed) - HEADER_LEN, "{peak}");
    }
}
