//! The bounds around another codec's `Deserializer` (serde_json's): [`Bounded`] sits between the
//! codec and the value's `DeserializeSeed`, forwards every call, and counts each container the
//! codec reports on the decode's [`Tally`].
//!
//! A codec that reports a length ([`SeqAccess::size_hint`]) has it checked before the first
//! element; one that does not (JSON) has each element counted as it comes. Owned strings and
//! byte buffers are requested through the borrowing calls (`deserialize_str`,
//! `deserialize_bytes`), which read the bytes before anything is allocated for them.

use std::fmt;
use std::mem::size_of;

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, Error, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::{Bound, Tally};

impl Tally {
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
/// (or an error), never with a container, so there is nothing to count and no layer to add.
macro_rules! forward_scalar {
    ($($method:ident,)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.de.$method(visitor)
        }
    )*};
}

/// Calls that read no other value: forwarded with the visitor wrapped (strings are counted).
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*) as $shape:ident;)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let visitor = Wrap { visitor, tally: self.tally, shape: Shape::$shape };
            self.de.$method($($arg,)* visitor)
        }
    )*};
}

/// Calls that may read values inside the one they read: one level deeper, counted before the
/// codec reads anything (before serde_json's own recursion check).
macro_rules! forward_nested {
    ($($method:ident($($arg:ident: $ty:ty),*) as $shape:ident;)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let tally = self.tally;
            let visitor = Wrap { visitor, tally, shape: Shape::$shape };
            tally.nested(|| self.de.$method($($arg,)* visitor))
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
        deserialize_str() as Fixed;
        deserialize_bytes() as Fixed;
        deserialize_unit() as Fixed;
        deserialize_unit_struct(name: &'static str) as Fixed;
        deserialize_identifier() as Fixed;
    }

    forward_nested! {
        deserialize_any() as Container;
        deserialize_option() as Fixed;
        deserialize_newtype_struct(name: &'static str) as Fixed;
        deserialize_seq() as Container;
        deserialize_tuple(len: usize) as Fixed;
        deserialize_tuple_struct(name: &'static str, len: usize) as Fixed;
        deserialize_map() as Container;
        deserialize_struct(name: &'static str, fields: &'static [&'static str]) as Fixed;
        deserialize_enum(name: &'static str, variants: &'static [&'static str]) as Fixed;
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
