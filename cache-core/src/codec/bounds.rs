//! The bounds on one decode: how many sequence elements and map entries it may visit, and how
//! many bytes of memory the value it builds may take, whatever the stored bytes claim.
//!
//! The codecs bound the *bytes* they read, not the work nor the memory a value costs: an element
//! that encodes to zero bytes (`()`, a unit or empty struct, `[T; 0]`, `PhantomData`) lets a
//! length prefix of `u64::MAX` loop for ever over a few bytes, and an empty `String` takes 24
//! bytes of memory for its one byte of length. [`Bounded`] sits between a codec's
//! `Deserializer` and the value's `DeserializeSeed`, forwards every call, and counts on a
//! [`Tally`] shared by the whole decode:
//!
//! - **elements**: each element of a sequence and each entry of a map (not the fields of a
//!   struct or tuple, whose number the type fixes), bounded by the payload's length plus
//!   [`ZERO_SIZED_ALLOWANCE`];
//! - **decoded bytes**: `size_of` each such element, key and value, plus the length of every
//!   string and byte buffer, bounded by `CACHE_MAX_DECODED_BYTES`.
//!
//! A sequence or map that knows its length (bincode's length prefix) is checked against what
//! remains before its first element is decoded, so a forged claim is refused at once rather
//! than after looping up to the bound. A breach is recorded on the tally (the codec's own error
//! only carries text) and reported by the caller as `DecodeError::OverBound`.
//!
//! Owned strings and byte buffers are requested through the borrowing calls
//! (`deserialize_str`, `deserialize_bytes`): bincode's owned calls allocate the whole claimed
//! length before reading a byte of it, while the borrowing calls check the claim against the
//! bytes that remain. The visitor then copies what it keeps, as the owned call would have.

use std::cell::Cell;
use std::fmt;
use std::mem::size_of;

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// Elements a decode may visit beyond one per byte of payload: those that encode to zero bytes.
///
/// Every element of an honest value costs at least one byte of payload except zero-sized ones,
/// which carry nothing but their count; a cached list of more than a few thousand of them is not
/// a value anyone stores, and the allowance bounds a forged one to microseconds of work.
pub const ZERO_SIZED_ALLOWANCE: usize = 4096;

/// Which bound a value would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// Sequence elements and map entries: the payload's length plus [`ZERO_SIZED_ALLOWANCE`].
    Elements,
    /// The memory of the decoded value (`CACHE_MAX_DECODED_BYTES`).
    DecodedBytes,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bound::Elements => "elements",
            Bound::DecodedBytes => "decoded bytes",
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

/// What one decode has used of its bounds; shared by reference by every layer of [`Bounded`].
#[derive(Debug)]
pub(crate) struct Tally {
    elements: Cell<usize>,
    bytes: Cell<usize>,
    max_elements: Cell<usize>,
    max_bytes: usize,
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
            breach: Cell::new(None),
        }
    }

    /// Bounds the elements by a payload of `payload_len` bytes (decompressed).
    pub(crate) fn allow_elements(&self, payload_len: usize) {
        self.max_elements
            .set(payload_len.saturating_add(ZERO_SIZED_ALLOWANCE));
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
        }
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

    /// Counts `len` elements (or entries) of `size` bytes each, refusing them all when they
    /// would exceed a bound.
    #[inline]
    fn elements<E: Error>(&self, len: usize, size: usize) -> Result<(), E> {
        self.check(Bound::Elements, len)?;
        self.take(Bound::DecodedBytes, len.saturating_mul(size))?;
        self.take(Bound::Elements, len)
    }
}

/// How a container counts its elements: all at once, ahead, when its length is known (one
/// check of a forged length, a decrement per element after), else one by one as they come.
#[derive(Debug, Clone, Copy, Default)]
struct Ahead {
    /// Elements counted ahead and not decoded yet.
    left: usize,
    /// Whether the length was looked at (before the first element).
    started: bool,
}

impl Ahead {
    /// Counts the next element of `size` bytes ahead, with all those that remain, when this is
    /// the first and `hint` knows how many remain: whether it did.
    #[inline]
    fn start<E: Error>(
        &mut self,
        tally: &Tally,
        hint: Option<usize>,
        size: usize,
    ) -> Result<bool, E> {
        if std::mem::replace(&mut self.started, true) {
            return Ok(false);
        }
        match hint {
            Some(len) if len > 0 => {
                tally.elements(len, size)?;
                self.left = len - 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A codec's `Deserializer` whose every container counts on `tally`.
#[derive(Debug)]
pub(crate) struct Bounded<'t, D> {
    de: D,
    tally: &'t Tally,
}

impl<'t, D> Bounded<'t, D> {
    pub(crate) fn new(de: D, tally: &'t Tally) -> Self {
        Bounded { de, tally }
    }
}

/// A value's `DeserializeSeed` that reads through a [`Bounded`] deserializer.
#[derive(Debug)]
pub(crate) struct BoundedSeed<'t, S> {
    seed: S,
    tally: &'t Tally,
}

impl<'t, S> BoundedSeed<'t, S> {
    pub(crate) fn new(seed: S, tally: &'t Tally) -> Self {
        BoundedSeed { seed, tally }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for BoundedSeed<'_, S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Bounded::new(de, self.tally))
    }
}

/// Whether a sequence or map is a container (its length is data) or a struct or tuple (its
/// length is the type's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Container,
    Fixed,
}

/// A visitor whose sequences, maps, enums and nested values are bounded, and whose strings
/// and byte buffers are counted.
#[derive(Debug)]
struct Wrap<'t, V> {
    visitor: V,
    tally: &'t Tally,
    shape: Shape,
}

/// Scalars are forwarded with the visitor as it is: a codec answers a scalar call with a scalar
/// (or an error), never with a container, so there is nothing to count, and one layer less per
/// element keeps a sequence of scalars as fast as without the bounds.
macro_rules! forward_scalar {
    ($($method:ident,)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.de.$method(visitor)
        }
    )*};
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*) as $shape:ident;)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let visitor = Wrap { visitor, tally: self.tally, shape: Shape::$shape };
            self.de.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Bounded<'_, D> {
    type Error = D::Error;

    forward_scalar! {
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
    }

    forward_deserialize! {
        deserialize_any() as Container;
        deserialize_str() as Fixed;
        deserialize_bytes() as Fixed;
        deserialize_option() as Fixed;
        deserialize_unit() as Fixed;
        deserialize_unit_struct(name: &'static str) as Fixed;
        deserialize_newtype_struct(name: &'static str) as Fixed;
        deserialize_seq() as Container;
        deserialize_tuple(len: usize) as Fixed;
        deserialize_tuple_struct(name: &'static str, len: usize) as Fixed;
        deserialize_map() as Container;
        deserialize_struct(name: &'static str, fields: &'static [&'static str]) as Fixed;
        deserialize_enum(name: &'static str, variants: &'static [&'static str]) as Fixed;
        deserialize_identifier() as Fixed;
        deserialize_ignored_any() as Container;
    }

    /// Through the borrowing call: the visitor copies the string once it has been read.
    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_str(visitor)
    }

    /// Through the borrowing call: the visitor copies the bytes once they have been read.
    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.deserialize_bytes(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        #[inline]
        fn $method<E: Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

macro_rules! count_visit {
    ($($method:ident($ty:ty);)*) => {$(
        #[inline]
        fn $method<E: Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.tally.take(Bound::DecodedBytes, v.len())?;
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
    }

    count_visit! {
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    #[inline]
    fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    #[inline]
    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_some(Bounded::new(de, self.tally))
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        self.visitor
            .visit_newtype_struct(Bounded::new(de, self.tally))
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let counted = self.shape == Shape::Container;
        if counted {
            if let Some(len) = seq.size_hint() {
                self.tally.check(Bound::Elements, len)?;
            }
        }
        self.visitor.visit_seq(Seq {
            seq,
            tally: self.tally,
            counted,
            ahead: Ahead::default(),
        })
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let counted = self.shape == Shape::Container;
        if counted {
            if let Some(len) = map.size_hint() {
                self.tally.check(Bound::Elements, len)?;
            }
        }
        self.visitor.visit_map(Map {
            map,
            tally: self.tally,
            counted,
            keys: Ahead::default(),
            values: Ahead::default(),
        })
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_enum(Enum {
            data,
            tally: self.tally,
        })
    }
}

/// A sequence whose elements are bounded (and counted, when it is a container).
#[derive(Debug)]
struct Seq<'t, A> {
    seq: A,
    tally: &'t Tally,
    counted: bool,
    ahead: Ahead,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = BoundedSeed::new(seed, self.tally);
        // Counted already (or a struct's fields, never counted): the path of every element
        // but the first of a sequence whose length is known.
        if self.ahead.left > 0 {
            self.ahead.left -= 1;
            return self.seq.next_element_seed(seed);
        }
        if !self.counted {
            return self.seq.next_element_seed(seed);
        }
        let size = size_of::<T::Value>();
        if self.ahead.start(self.tally, self.seq.size_hint(), size)? {
            return self.seq.next_element_seed(seed);
        }
        // Without a length (a self-delimiting codec, where each element costs bytes), or past
        // it: counted once it is there.
        let next = self.seq.next_element_seed(seed)?;
        if next.is_some() {
            self.tally.elements(1, size)?;
        }
        Ok(next)
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// A map whose entries are bounded (and counted, when it is a container).
#[derive(Debug)]
struct Map<'t, A> {
    map: A,
    tally: &'t Tally,
    counted: bool,
    keys: Ahead,
    values: Ahead,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = BoundedSeed::new(seed, self.tally);
        if self.keys.left > 0 {
            self.keys.left -= 1;
            return self.map.next_key_seed(seed);
        }
        if !self.counted {
            return self.map.next_key_seed(seed);
        }
        let size = size_of::<K::Value>();
        if self.keys.start(self.tally, self.map.size_hint(), size)? {
            return self.map.next_key_seed(seed);
        }
        let next = self.map.next_key_seed(seed)?;
        if next.is_some() {
            self.tally.elements(1, size)?;
        }
        Ok(next)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let seed = BoundedSeed::new(seed, self.tally);
        if self.values.left > 0 {
            self.values.left -= 1;
            return self.map.next_value_seed(seed);
        }
        if !self.counted {
            return self.map.next_value_seed(seed);
        }
        // The entry is counted with its key: a value counts only its bytes (this one's and the
        // remaining entries', the first time the length is known).
        let size = size_of::<V::Value>();
        if !std::mem::replace(&mut self.values.started, true) {
            if let Some(len) = self.map.size_hint() {
                self.tally.take(
                    Bound::DecodedBytes,
                    len.saturating_add(1).saturating_mul(size),
                )?;
                self.values.left = len;
                return self.map.next_value_seed(seed);
            }
        }
        self.tally.take(Bound::DecodedBytes, size)?;
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// An enum whose variant's contents are bounded.
#[derive(Debug)]
struct Enum<'t, A> {
    data: A,
    tally: &'t Tally,
}

impl<'de, 't, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'t, A> {
    type Error = A::Error;
    type Variant = Variant<'t, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.data.variant_seed(BoundedSeed::new(seed, self.tally))?;
        Ok((
            value,
            Variant {
                variant,
                tally: self.tally,
            },
        ))
    }
}

/// A variant whose contents are bounded.
#[derive(Debug)]
struct Variant<'t, A> {
    variant: A,
    tally: &'t Tally,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.variant.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.variant
            .newtype_variant_seed(BoundedSeed::new(seed, self.tally))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = Wrap {
            visitor,
            tally: self.tally,
            shape: Shape::Fixed,
        };
        self.variant.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = Wrap {
            visitor,
            tally: self.tally,
            shape: Shape::Fixed,
        };
        self.variant.struct_variant(fields, visitor)
    }
}

#[cfg(test)]
mod tests;
