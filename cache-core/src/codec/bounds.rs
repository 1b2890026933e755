//! The bounds on one decode: how many sequence elements and map entries it may visit, and how
//! many bytes of memory the value it builds may take, whatever the stored bytes claim.
//!
//! The codecs bound the *bytes* they read, not the work nor the memory a value costs: an element
//! that encodes to zero bytes (`()`, a unit or empty struct, `[T; 0]`, `PhantomData`) lets a
//! length prefix of `u64::MAX` loop for ever over a few bytes, and an empty `String` takes 24
//! bytes of memory for its one byte of length. Every decode counts on a [`Tally`] of its own:
//!
//! - **elements**: each element of a sequence and each entry of a map (not the fields of a
//!   struct or tuple, whose number the type fixes), bounded by the payload's length plus
//!   [`ZERO_SIZED_ALLOWANCE`];
//! - **decoded bytes**: `size_of` each such element, key and value, plus the length of every
//!   string and byte buffer, bounded by `CACHE_MAX_DECODED_BYTES`;
//! - **depth**: how many containers, options and newtypes are open at once, bounded by
//!   [`MAX_DEPTH`]: a decode recurses once a level, so a value of a recursive type whose bytes
//!   claim a million levels (two bytes a level in bincode) would overflow the thread's stack,
//!   which aborts the whole process.
//!
//! A sequence or map that knows its length (bincode's length prefix) is checked against what
//! remains before its first element is decoded, so a forged claim is refused at once rather
//! than after looping up to the bound. A breach is recorded on the tally (the codec's own error
//! only carries text) and reported by the caller as `DecodeError::OverBound`.
//!
//! Strings and byte buffers are read before anything is allocated for them: a claimed length is
//! checked against the bytes that remain, and the visitor copies what it keeps.
//!
//! Two readers count on the tally:
//!
//! - [`prefixed`] reads bincode, walking its containers itself (a length, then the elements
//!   back to back), so that a sequence of scalars costs no more per element than bincode's own
//!   serde decoder;
//! - `wrapped` (with the `json` feature) sits between any other codec's `Deserializer` and the
//!   value, forwards every call and counts the containers the codec reports: serde_json's.

use std::cell::Cell;
use std::fmt;

use serde::de::Error;

mod prefixed;
#[cfg(feature = "json")]
mod wrapped;

pub(crate) use prefixed::decode as decode_bincode;
#[cfg(feature = "json")]
pub(crate) use wrapped::BoundedSeed;

/// Elements a decode may visit beyond one per byte of payload: those that encode to zero bytes.
///
/// Every element of an honest value costs at least one byte of payload except zero-sized ones,
/// which carry nothing but their count; a cached list of more than a few thousand of them is not
/// a value anyone stores, and the allowance bounds a forged one to microseconds of work.
pub const ZERO_SIZED_ALLOWANCE: usize = 4096;

/// The most levels a decoded value may nest: each sequence, map, struct, tuple, enum variant,
/// `Some` and newtype open at once counts one (with JSON, each value being read does).
///
/// One below serde_json's own recursion limit (it refuses its 128th level), so that JSON meets
/// this bound first and bincode, which has none, the same one; a level costs a decode well
/// under 2 KiB of stack even unoptimized, so the deepest value stays far within the 2 MiB of a
/// tokio worker's stack. A value of a recursive type nested deeper (a tree of more than 63
/// levels of `Vec<Tree>`, a linked list of more than 64 `Option<Box<Node>>` nodes) is a corrupt
/// miss.
pub const MAX_DEPTH: usize = 127;

/// Which bound a value would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// Sequence elements and map entries: the payload's length plus [`ZERO_SIZED_ALLOWANCE`].
    Elements,
    /// The memory of the decoded value (`CACHE_MAX_DECODED_BYTES`).
    DecodedBytes,
    /// How deep the value nests ([`MAX_DEPTH`]).
    Depth,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Elements => "elements",
            Bound::DecodedBytes => "decoded bytes",
            Bound::Depth => "levels of nesting",
        })
    }
}

/// A bound a decode would have exceeded: what, how much it would have reached, the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Breach {
    pub(crate) what: Bound,
    pub(crate) claimed: usize,
    pub(crate) bound: usize,
}

/// What one decode has used of its bounds; shared by reference by every layer of its reader.
#[derive(Debug)]
pub(crate) struct Tally {
    elements: Cell<usize>,
    bytes: Cell<usize>,
    max_elements: Cell<usize>,
    max_bytes: usize,
    depth: Cell<usize>,
    breach: Cell<Option<Breach>>,
}

impl Tally {
    /// The bounds of a decode into at most `max_bytes` of memory, of no elements until
    /// [`allow_elements`](Self::allow_elements) knows the payload's length.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Tally {
            elements: Cell::new(0),
            bytes: Cell::new(0),
            max_elements: Cell::new(0),
            max_bytes,
            depth: Cell::new(0),
            breach: Cell::new(None),
        }
    }

    /// Bounds the elements by a payload of `payload_len` bytes (decompressed), and below the
    /// flags [`prefixed`] keeps beside a count.
    pub(crate) fn allow_elements(&self, payload_len: usize) {
        self.max_elements.set(
            payload_len
                .saturating_add(ZERO_SIZED_ALLOWANCE)
                .min(prefixed::COUNT),
        );
    }

    /// The first bound the decode hit, if it hit one.
    pub(crate) fn breach(&self) -> Option<Breach> {
        self.breach.get()
    }

    /// Elements and decoded bytes counted so far.
    #[cfg(test)]
    pub(crate) fn used(&self) -> (usize, usize) {
        (self.elements.get(), self.bytes.get())
    }

    /// Elements visited are at most this many.
    #[cfg(test)]
    pub(crate) fn max_elements(&self) -> usize {
        self.max_elements.get()
    }

    #[inline]
    fn counter(&self, what: Bound) -> (&Cell<usize>, usize) {
        match what {
            Bound::Elements => (&self.elements, self.max_elements.get()),
            Bound::DecodedBytes => (&self.bytes, self.max_bytes),
            Bound::Depth => (&self.depth, MAX_DEPTH),
        }
    }

    /// Runs `inner` one level deeper, refused beyond [`MAX_DEPTH`].
    #[inline]
    fn nested<T, E: Error>(&self, inner: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let depth = self.depth.get();
        if depth >= MAX_DEPTH {
            return Err(self.refuse(Bound::Depth, depth + 1, MAX_DEPTH));
        }
        self.depth.set(depth + 1);
        let result = inner();
        self.depth.set(depth);
        result
    }

    /// Refuses when `n` more of `what` would exceed its bound; counts nothing.
    #[inline]
    fn check<E: Error>(&self, what: Bound, n: usize) -> Result<(), E> {
        let (used, bound) = self.counter(what);
        let claimed = used.get().saturating_add(n);
        if claimed <= bound {
            return Ok(());
        }
        Err(self.refuse(what, claimed, bound))
    }

    /// Records the breach and makes the codec's error for it.
    #[cold]
    #[inline(never)]
    fn refuse<E: Error>(&self, what: Bound, claimed: usize, bound: usize) -> E {
        // Keep the first: an outer layer may see the error again on its way up.
        if self.breach.get().is_none() {
            self.breach.set(Some(Breach {
                what,
                claimed,
                bound,
            }));
        }
        E::custom(format_args!("{claimed} {what}, over the bound of {bound}"))
    }

    /// Counts `n` more of `what`, refusing when that exceeds its bound.
    #[inline]
    fn take<E: Error>(&self, what: Bound, n: usize) -> Result<(), E> {
        self.check(what, n)?;
        let (used, _) = self.counter(what);
        used.set(used.get().saturating_add(n));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
