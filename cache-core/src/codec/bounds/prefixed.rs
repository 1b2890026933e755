//! bincode 2's serde format read with the bounds inside, for the bincode codec.
//!
//! The format is bincode's own (`bincode::serde::borrow_decode_from_slice` reads the same bytes
//! into the same values): every scalar, string and length is read by bincode's `Decode` and
//! `BorrowDecode` impls; what is ours is the walk of containers, the part the bounds are about.
//! A sequence or map is a varint length and its elements back to back; a struct or tuple its
//! fields back to back; an enum a varint variant index and the variant's contents; an option a
//! byte (0 or 1) and the value.
//!
//! Why not the wrapper JSON reads through (`wrapped`) around bincode's own deserializer: a
//! wrapper around bincode's sequence access (a reference and a count, passed in two registers)
//! no longer fits in registers, and its first-element bookkeeping stays in the loop, which made
//! a sequence of scalars a quarter to a half dearer per element (`docs/src/benchmarks.md`). Here
//! the sequence access is a reference and a count as bincode's is, whether the sequence's memory
//! is still to be counted is the count's top bit, and the first element and the end are out of
//! line: each element after the first pays one test, the one bincode's own loop makes.

use std::mem::size_of;

use bincode::config::Config;
use bincode::de::read::{BorrowReader, Reader};
use bincode::de::{BorrowDecode, BorrowDecoder, Decode, DecoderImpl};
use bincode::error::{AllowedEnumVariants, DecodeError};
use bincode::serde::DecodeError as SerdeDecodeError;
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::{Bound, Tally};

/// A count's flag: the memory of a sequence's elements (of a map's keys) is still to be counted,
/// at its first element, whose type gives their size.
const UNCOUNTED: usize = 1 << (usize::BITS - 1);
/// A map's flag: the memory of its values is still to be counted, at its first value.
const VALUES_UNCOUNTED: usize = UNCOUNTED >> 1;
/// The bits of a count that count; [`Tally`] never allows more elements than this.
pub(super) const COUNT: usize = VALUES_UNCOUNTED - 1;

/// Reads `payload` with `seed` in bincode's format under `config`, within the bounds of
/// `tally`: the value and how many bytes of `payload` it took.
pub(crate) fn decode<'de, S, C>(
    payload: &'de [u8],
    config: C,
    seed: S,
    tally: &Tally,
) -> Result<(S::Value, usize), DecodeError>
where
    S: DeserializeSeed<'de>,
    C: Config,
{
    let mut prefixed = Prefixed {
        de: DecoderImpl::new(Rest(payload), config, ()),
        tally,
    };
    let value = seed.deserialize(&mut prefixed)?;
    let rest = prefixed.de.borrow_reader().0.len();
    Ok((value, payload.len() - rest))
}

/// What remains of the payload (bincode's `SliceReader`, whose remainder is not public).
struct Rest<'de>(&'de [u8]);

impl Reader for Rest<'_> {
    #[inline(always)]
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), DecodeError> {
        let Some((read, rest)) = self.0.split_at_checked(bytes.len()) else {
            return Err(DecodeError::UnexpectedEnd {
                additional: bytes.len() - self.0.len(),
            });
        };
        bytes.copy_from_slice(read);
        self.0 = rest;
        Ok(())
    }

    #[inline]
    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.0.get(..n)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or_default();
    }
}

impl<'de> BorrowReader<'de> for Rest<'de> {
    #[inline(always)]
    fn take_bytes(&mut self, length: usize) -> Result<&'de [u8], DecodeError> {
        let Some((read, rest)) = self.0.split_at_checked(length) else {
            return Err(DecodeError::UnexpectedEnd {
                additional: length - self.0.len(),
            });
        };
        self.0 = rest;
        Ok(read)
    }
}

/// bincode's decoder and the bounds of the decode; `&mut Prefixed` is the `Deserializer`.
struct Prefixed<'t, 'de, C: Config> {
    de: DecoderImpl<Rest<'de>, C, ()>,
    tally: &'t Tally,
}

impl<'de, C: Config> Prefixed<'_, 'de, C> {
    /// A sequence's or map's length, counted as that many elements: refused before the first
    /// element when the payload cannot hold them.
    #[inline]
    fn len(&mut self) -> Result<usize, DecodeError> {
        let len = u64::decode(&mut self.de)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::OutsideUsizeRange(len))?;
        self.tally.take(Bound::Elements, len)?;
        Ok(len)
    }

    /// `len` fields of a struct or tuple, whose number the type fixes: not counted, one level
    /// deeper.
    #[inline]
    fn fields<V: Visitor<'de>>(&mut self, len: usize, visitor: V) -> Result<V::Value, DecodeError> {
        // A type's field count is far below the flags; a larger `len` reads nothing sensible
        // anyway, and is left to fail on the bytes.
        self.seq(len & COUNT, visitor)
    }

    /// `visitor` visits `left` elements, one level deeper.
    #[inline]
    fn seq<V: Visitor<'de>>(&mut self, left: usize, visitor: V) -> Result<V::Value, DecodeError> {
        self.tally
            .nested(|| visitor.visit_seq(Seq { de: self, left }))
    }
}

macro_rules! scalars {
    ($($method:ident => $visit:ident,)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            visitor.$visit(Decode::decode(&mut self.de)?)
        }
    )*};
}

impl<'de, C: Config> Deserializer<'de> for &mut Prefixed<'_, 'de, C> {
    type Error = DecodeError;

    scalars! {
        deserialize_bool => visit_bool,
        deserialize_i8 => visit_i8,
        deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128,
        deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64,
        deserialize_u128 => visit_u128,
        deserialize_f32 => visit_f32,
        deserialize_f64 => visit_f64,
        deserialize_char => visit_char,
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(SerdeDecodeError::AnyNotSupported.into())
    }

    /// Borrowed, checked against the bytes that remain, and counted; a `String`'s visitor
    /// copies it.
    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let text = <&'de str>::borrow_decode(&mut self.de)?;
        self.tally.take(Bound::DecodedBytes, text.len())?;
        visitor.visit_borrowed_str(text)
    }

    /// Through the borrowing read: bincode's owned read allocates the claimed length first.
    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let bytes = <&'de [u8]>::borrow_decode(&mut self.de)?;
        self.tally.take(Bound::DecodedBytes, bytes.len())?;
        visitor.visit_borrowed_bytes(bytes)
    }

    /// Through the borrowing read, as strings.
    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match u8::decode(&mut self.de)? {
            0 => visitor.visit_none(),
            1 => self.tally.nested(|| visitor.visit_some(self)),
            found => Err(DecodeError::UnexpectedVariant {
                found: u32::from(found),
                allowed: &AllowedEnumVariants::Range { min: 0, max: 1 },
                type_name: "Option<T>",
            }),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.tally.nested(|| visitor.visit_newtype_struct(self))
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let len = self.len()?;
        self.seq(if len == 0 { 0 } else { len | UNCOUNTED }, visitor)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.fields(len, visitor)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.fields(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let len = self.len()?;
        let left = if len == 0 {
            0
        } else {
            len | UNCOUNTED | VALUES_UNCOUNTED
        };
        self.tally
            .nested(|| visitor.visit_map(Map { de: self, left }))
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.fields(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.tally.nested(|| visitor.visit_enum(self))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(SerdeDecodeError::IdentifierNotSupported.into())
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DecodeError> {
        Err(SerdeDecodeError::IgnoredAnyNotSupported.into())
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, or the fields of a struct or tuple: `left` of them, flagged
/// [`UNCOUNTED`] until the first element of a sequence has counted their memory.
struct Seq<'a, 't, 'de, C: Config> {
    de: &'a mut Prefixed<'t, 'de, C>,
    left: usize,
}

impl<'de, C: Config> SeqAccess<'de> for Seq<'_, '_, 'de, C> {
    type Error = DecodeError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        // One test for all but the first element and the end: `left` is 1 or more, unflagged.
        if self.left as isize > 0 {
            self.left -= 1;
            return seed.deserialize(&mut *self.de).map(Some);
        }
        let (left, next) = first_or_end(self.de, self.left, seed)?;
        self.left = left;
        Ok(next)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left & COUNT)
    }
}

/// The end of a sequence, or its first element (`left` flagged): counts the memory of all its
/// elements, and decodes the first. Out of line, and on values rather than on the sequence, so
/// that the loop over the elements keeps its count in a register.
#[inline(never)]
fn first_or_end<'de, T: DeserializeSeed<'de>, C: Config>(
    de: &mut Prefixed<'_, 'de, C>,
    left: usize,
    seed: T,
) -> Result<(usize, Option<T::Value>), DecodeError> {
    let len = left & COUNT;
    if len == 0 {
        return Ok((0, None));
    }
    de.tally.take(
        Bound::DecodedBytes,
        len.saturating_mul(size_of::<T::Value>()),
    )?;
    Ok((len - 1, Some(seed.deserialize(de)?)))
}

/// The entries of a map: `left` of them, flagged until the first key and the first value have
/// counted the memory of all keys and all values.
struct Map<'a, 't, 'de, C: Config> {
    de: &'a mut Prefixed<'t, 'de, C>,
    left: usize,
}

impl<'de, C: Config> MapAccess<'de> for Map<'_, '_, 'de, C> {
    type Error = DecodeError;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        if self.left.wrapping_sub(1) < COUNT {
            self.left -= 1;
            return seed.deserialize(&mut *self.de).map(Some);
        }
        let len = self.left & COUNT;
        if len == 0 {
            return Ok(None);
        }
        if self.left & UNCOUNTED != 0 {
            self.de.tally.take(
                Bound::DecodedBytes,
                len.saturating_mul(size_of::<K::Value>()),
            )?;
        }
        // The values' flag stays until the first value.
        self.left = (self.left & !UNCOUNTED) - 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        if self.left & VALUES_UNCOUNTED != 0 {
            // This entry's key is no longer in the count.
            let len = (self.left & COUNT).saturating_add(1);
            self.de.tally.take(
                Bound::DecodedBytes,
                len.saturating_mul(size_of::<V::Value>()),
            )?;
            self.left &= COUNT;
        }
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left & COUNT)
    }
}

impl<'de, C: Config> EnumAccess<'de> for &mut Prefixed<'_, 'de, C> {
    type Error = DecodeError;
    type Variant = Self;

    #[inline]
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), DecodeError> {
        let index = u32::decode(&mut self.de)?;
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de, C: Config> VariantAccess<'de> for &mut Prefixed<'_, 'de, C> {
    type Error = DecodeError;

    #[inline]
    fn unit_variant(self) -> Result<(), DecodeError> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, DecodeError> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.fields(len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.fields(fields.len(), visitor)
    }
}
