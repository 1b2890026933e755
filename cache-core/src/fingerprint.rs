//! Schema fingerprints: a stable 64-bit hash of the *shape* of a value as serde sees it, stored in
//! every value header so that bytes written under one schema are never served as another.
//!
//! The hash is computed by a `serde::Serializer` that visits the value and records what serde
//! reports, not the data: the kind of each primitive (`u32` is not `i32`, `str` is not `bytes`),
//! `none` and `some`, unit, struct and enum names, field names in order, each variant's index and
//! name, and the arity of tuples. Elements of sequences and entries of maps are hashed one by one
//! and combined by a wrapping sum of well-mixed hashes, so the order of a `HashMap` or `HashSet`,
//! which differs between the writer and the reader, does not matter; their lengths are data and
//! are hashed only through that sum.
//!
//! Reads compare the header with the fingerprint of the value they decoded: a schema change
//! between builds (fields swapped, `u32` now `i32`, variants reordered) gives a decoded value of
//! another shape, hence a miss, where the type's *name* would have matched and served garbage.
//! A change the value does not exercise (a variant it does not use, added at the end) keeps
//! hitting. Spellings that serde serializes alike share a fingerprint by construction: `&str`,
//! `String`, `Box<str>` and `Cow<str>`; `&[T]`, `Box<[T]>` and `Vec<T>`; `Box<T>` (and, with
//! serde's `rc` feature, `Arc<T>` and `Rc<T>`) and `T`.
//!
//! The hash is stored in Redis, so it is stable across builds and platforms: fixed tags, names
//! absorbed in little-endian words, a folded 64x64->128-bit multiply per word and the MurmurHash3
//! finalizer; `fingerprints_are_stable` pins it. The serializer never allocates.

use std::fmt::Display;

use serde::ser::{self, Serialize};

/// The fingerprint of `value`'s shape; `human_readable` is what the codec's serializer says (it
/// changes how some types serialize, such as addresses and UUIDs). `Err` only when the value's
/// `Serialize` impl fails.
pub(crate) fn of<V: Serialize + ?Sized>(
    value: &V,
    human_readable: bool,
) -> Result<u64, Unshapeable> {
    let mut shape = Shape::new(human_readable);
    value.serialize(&mut shape)?;
    Ok(shape.finish())
}

/// The value's `Serialize` impl reported an error (the codec would have failed on it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unshapeable;

impl Display for Unshapeable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the value's Serialize impl failed")
    }
}

impl std::error::Error for Unshapeable {}

impl ser::Error for Unshapeable {
    fn custom<T: Display>(_: T) -> Self {
        Unshapeable
    }
}

/// What serde reported, as the word absorbed for it. The numbers are part of the stored format.
#[derive(Clone, Copy)]
#[repr(u64)]
enum Tag {
    Bool = 1,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    None,
    Some,
    Unit,
    UnitStruct,
    UnitVariant,
    NewtypeStruct,
    NewtypeVariant,
    Seq,
    Tuple,
    TupleStruct,
    TupleVariant,
    Map,
    Struct,
    StructVariant,
    Field,
    SkippedField,
    End,
    Variant,
}

/// The FNV-1a offset basis: where every hash starts.
const SEED: u64 = 0xcbf2_9ce4_8422_2325;
/// An odd constant with well-spread bits (2^64 / golden ratio).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// One word into the running hash: a folded 128-bit product, so every input bit reaches every
/// output bit.
#[inline]
fn absorb(state: u64, word: u64) -> u64 {
    let product = u128::from(state ^ word) * u128::from(MULTIPLIER);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The MurmurHash3 64-bit finalizer: a bijection that spreads every bit, applied to each element
/// before the sum and to the whole at the end.
#[inline]
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The serializer that hashes a value's shape: a running hash and the codec's human-readability.
#[derive(Debug)]
struct Shape {
    state: u64,
    human_readable: bool,
}

impl Shape {
    fn new(human_readable: bool) -> Self {
        Shape {
            state: SEED,
            human_readable,
        }
    }

    fn finish(&self) -> u64 {
        mix(self.state)
    }

    #[inline]
    fn word(&mut self, word: u64) {
        self.state = absorb(self.state, word);
    }

    #[inline]
    fn tag(&mut self, tag: Tag) -> Result<(), Unshapeable> {
        self.word(tag as u64);
        Ok(())
    }

    /// A tag and the name it carries (of a type, field or variant) in one word with the name's
    /// length, so that names never run together, then the name in 8-byte words.
    ///
    /// Names are hashed on every decode (each field of each element), so the words are built
    /// without a variable-length copy: whole words at once, then the tail byte by byte, padded
    /// with zeros as before.
    fn named(&mut self, tag: Tag, name: &str) {
        self.word(tag as u64 | ((name.len() as u64) << 8));
        let mut words = name.as_bytes().chunks_exact(8);
        for chunk in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let word = tail
                .iter()
                .rev()
                .fold(0u64, |word, &byte| (word << 8) | u64::from(byte));
            self.word(word);
        }
    }

    fn variant(&mut self, tag: Tag, name: &str, index: u32, variant: &str) {
        self.named(tag, name);
        self.named(Tag::Variant, variant);
        self.word(u64::from(index));
    }

    /// The mixed hash of one element's shape alone, for an order-independent sum.
    fn element<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64, Unshapeable> {
        let mut element = Shape::new(self.human_readable);
        value.serialize(&mut element)?;
        Ok(element.finish())
    }
}

impl<'a> ser::Serializer for &'a mut Shape {
    type Ok = ();
    type Error = Unshapeable;
    type SerializeSeq = Unordered<'a>;
    type SerializeTuple = Ordered<'a>;
    type SerializeTupleStruct = Ordered<'a>;
    type SerializeTupleVariant = Ordered<'a>;
    type SerializeMap = Entries<'a>;
    type SerializeStruct = Ordered<'a>;
    type SerializeStructVariant = Ordered<'a>;

    fn is_human_readable(&self) -> bool {
        self.human_readable
    }

    fn serialize_bool(self, _: bool) -> Result<(), Unshapeable> {
        self.tag(Tag::Bool)
    }
    fn serialize_i8(self, _: i8) -> Result<(), Unshapeable> {
        self.tag(Tag::I8)
    }
    fn serialize_i16(self, _: i16) -> Result<(), Unshapeable> {
        self.tag(Tag::I16)
    }
    fn serialize_i32(self, _: i32) -> Result<(), Unshapeable> {
        self.tag(Tag::I32)
    }
    fn serialize_i64(self, _: i64) -> Result<(), Unshapeable> {
        self.tag(Tag::I64)
    }
    fn serialize_i128(self, _: i128) -> Result<(), Unshapeable> {
        self.tag(Tag::I128)
    }
    fn serialize_u8(self, _: u8) -> Result<(), Unshapeable> {
        self.tag(Tag::U8)
    }
    fn serialize_u16(self, _: u16) -> Result<(), Unshapeable> {
        self.tag(Tag::U16)
    }
    fn serialize_u32(self, _: u32) -> Result<(), Unshapeable> {
        self.tag(Tag::U32)
    }
    fn serialize_u64(self, _: u64) -> Result<(), Unshapeable> {
        self.tag(Tag::U64)
    }
    fn serialize_u128(self, _: u128) -> Result<(), Unshapeable> {
        self.tag(Tag::U128)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Unshapeable> {
        self.tag(Tag::F32)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Unshapeable> {
        self.tag(Tag::F64)
    }
    fn serialize_char(self, _: char) -> Result<(), Unshapeable> {
        self.tag(Tag::Char)
    }
    fn serialize_str(self, _: &str) -> Result<(), Unshapeable> {
        self.tag(Tag::Str)
    }
    /// Without this, serde would format the value into a `String` to call `serialize_str`.
    fn collect_str<T: Display + ?Sized>(self, _: &T) -> Result<(), Unshapeable> {
        self.tag(Tag::Str)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unshapeable> {
        self.tag(Tag::Bytes)
    }
    fn serialize_none(self) -> Result<(), Unshapeable> {
        self.tag(Tag::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unshapeable> {
        self.word(Tag::Some as u64);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unshapeable> {
        self.tag(Tag::Unit)
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Unshapeable> {
        self.named(Tag::UnitStruct, name);
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), Unshapeable> {
        self.variant(Tag::UnitVariant, name, index, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Unshapeable> {
        self.named(Tag::NewtypeStruct, name);
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unshapeable> {
        self.variant(Tag::NewtypeVariant, name, index, variant);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Unordered<'a>, Unshapeable> {
        self.word(Tag::Seq as u64);
        Ok(Unordered {
            shape: self,
            sum: 0,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Ordered<'a>, Unshapeable> {
        self.word(Tag::Tuple as u64);
        self.word(len as u64);
        Ok(Ordered(self))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Ordered<'a>, Unshapeable> {
        self.named(Tag::TupleStruct, name);
        self.word(len as u64);
        Ok(Ordered(self))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Ordered<'a>, Unshapeable> {
        self.variant(Tag::TupleVariant, name, index, variant);
        self.word(len as u64);
        Ok(Ordered(self))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Entries<'a>, Unshapeable> {
        self.word(Tag::Map as u64);
        let entry = Shape::new(self.human_readable);
        Ok(Entries {
            shape: self,
            entry,
            sum: 0,
        })
    }
    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Ordered<'a>, Unshapeable> {
        self.named(Tag::Struct, name);
        Ok(Ordered(self))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Ordered<'a>, Unshapeable> {
        self.variant(Tag::StructVariant, name, index, variant);
        Ok(Ordered(self))
    }
}

/// Tuples, structs and their variants: members hashed in order, then an end mark.
#[derive(Debug)]
struct Ordered<'a>(&'a mut Shape);

impl Ordered<'_> {
    fn member<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unshapeable> {
        value.serialize(&mut *self.0)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Unshapeable> {
        self.0.named(Tag::Field, key);
        value.serialize(&mut *self.0)
    }

    fn skipped(&mut self, key: &str) -> Result<(), Unshapeable> {
        self.0.named(Tag::SkippedField, key);
        Ok(())
    }

    fn end(self) -> Result<(), Unshapeable> {
        self.0.tag(Tag::End)
    }
}

impl ser::SerializeTuple for Ordered<'_> {
    type Ok = ();
    type Error = Unshapeable;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unshapeable> {
        self.member(value)
    }
    fn end(self) -> Result<(), Unshapeable> {
        Ordered::end(self)
    }
}

impl ser::SerializeTupleStruct for Ordered<'_> {
    type Ok = ();
    type Error = Unshapeable;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unshapeable> {
        self.member(value)
    }
    fn end(self) -> Result<(), Unshapeable> {
        Ordered::end(self)
    }
}

impl ser::SerializeTupleVariant for Ordered<'_> {
    type Ok = ();
    type Error = Unshapeable;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unshapeable> {
        self.member(value)
    }
    fn end(self) -> Result<(), Unshapeable> {
        Ordered::end(self)
    }
}

impl ser::SerializeStruct for Ordered<'_> {
    type Ok = ();
    type Error = Unshapeable;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unshapeable> {
        self.field(key, value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), Unshapeable> {
        self.skipped(key)
    }
    fn end(self) -> Result<(), Unshapeable> {
        Ordered::end(self)
    }
}

impl ser::SerializeStructVariant for Ordered<'_> {
    type Ok = ();
    type Error = Unshapeable;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unshapeable> {
        self.field(key, value)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), Unshapeable> {
        self.skipped(key)
    }
    fn end(self) -> Result<(), Unshapeable> {
        Ordered::end(self)
    }
}

/// Sequences: each element's shape hashed alone, the hashes summed (order-independent).
#[derive(Debug)]
struct Unordered<'a> {
    shape: &'a mut Shape,
    sum: u64,
}

impl ser::SerializeSeq for Unordered<'_> {
    type Ok = ();
    type Error = Unshapeable;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unshapeable> {
        self.sum = self.sum.wrapping_add(self.shape.element(value)?);
        Ok(())
    }
    fn end(self) -> Result<(), Unshapeable> {
        self.shape.word(self.sum);
        self.shape.tag(Tag::End)
    }
}

/// Maps: each entry's key and value hashed together, the entries' hashes summed.
#[derive(Debug)]
struct Entries<'a> {
    shape: &'a mut Shape,
    /// The entry being hashed: its key so far.
    entry: Shape,
    sum: u64,
}

impl ser::SerializeMap for Entries<'_> {
    type Ok = ();
    type Error = Unshapeable;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unshapeable> {
        self.entry = Shape::new(self.shape.human_readable);
        key.serialize(&mut self.entry)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unshapeable> {
        value.serialize(&mut self.entry)?;
        self.sum = self.sum.wrapping_add(self.entry.finish());
        Ok(())
    }
    fn end(self) -> Result<(), Unshapeable> {
        self.shape.word(self.sum);
        self.shape.tag(Tag::End)
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::borrow::Cow;
    use std::collections::{BTreeMap, HashMap, HashSet};

    fn fp<V: Serialize + ?Sized>(value: &V) -> u64 {
        of(value, false).unwrap()
    }

    #[test]
    fn spellings_serde_encodes_alike_share_a_fingerprint() {
        let text = String::from("text");
        assert_eq!(fp("text"), fp(&text));
        assert_eq!(fp(&"text"), fp(&text));
        assert_eq!(fp(&text.clone().into_boxed_str()), fp(&text));
        assert_eq!(fp(&Cow::<str>::Borrowed("text")), fp(&text));
        assert_eq!(fp(&Box::new(vec![1u8, 2])), fp(&vec![1u8, 2]));
        assert_eq!(fp(&vec![1u8, 2].into_boxed_slice()), fp(&vec![1u8, 2]));
        assert_eq!(fp(&[1u8, 2][..]), fp(&vec![1u8, 2]));
        assert_eq!(fp(&vec!["a", "b"]), fp(&vec![String::new(), "b".into()]));
        assert_eq!(fp(&Some("x")), fp(&Some(String::new())));
        assert_eq!(fp(&("a", &[7u8][..])), fp(&(String::new(), vec![9u8])));
        let borrowed: BTreeMap<&str, u8> = [("k", 1)].into();
        let owned: BTreeMap<String, u8> = [("other".to_owned(), 2)].into();
        assert_eq!(fp(&borrowed), fp(&owned));
    }

    #[test]
    fn different_shapes_differ() {
        #[derive(Serialize)]
        struct Ab {
            a: u64,
            b: u64,
        }
        #[derive(Serialize)]
        #[serde(rename = "Ab")]
        struct Ba {
            b: u64,
            a: u64,
        }
        #[derive(Serialize)]
        enum Status {
            Active,
            Suspended,
        }
        let all = [
            fp(&7u64),
            fp(&7i64),
            fp(&7u32),
            fp(&7i32),
            fp("ab"),
            fp(&vec![b'a', b'b']),
            fp(&[1u8, 2]),
            fp(&[1u8, 2, 3]),
            fp(&Some("x")),
            fp(&None::<String>),
            fp(&("x", 1u8)),
            fp(&(1u8, "x")),
            fp(&BTreeMap::from([("x", 1u8)])),
            fp(&BTreeMap::from([(1u8, "x")])),
            fp(&()),
            fp(&Ab { a: 1, b: 2 }),
            fp(&Ba { b: 1, a: 2 }),
            fp(&Status::Active),
            fp(&Status::Suspended),
            fp(&vec![1u8]),
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{i} and {j}");
            }
        }
    }

    #[test]
    fn element_order_is_data_not_shape() {
        let map: HashMap<String, Vec<u32>> = (0..100)
            .map(|i| (i.to_string(), (0..i).collect()))
            .collect();
        let sorted: BTreeMap<&String, &Vec<u32>> = map.iter().collect();
        assert_eq!(fp(&map), fp(&sorted));
        let set: HashSet<u64> = (0..100).collect();
        let mut list: Vec<u64> = set.iter().copied().collect();
        list.reverse();
        assert_eq!(fp(&set), fp(&list));
        // Data is not shape: the same shapes with other data share a fingerprint.
        assert_eq!(fp(&vec![Some(1u8), None]), fp(&vec![None, Some(2u8)]));
        assert_ne!(fp(&vec![Some(1u8), None]), fp(&vec![Some(1u8), Some(2)]));
    }

    #[test]
    fn human_readability_is_part_of_the_shape() {
        let address: std::net::IpAddr = [127, 0, 0, 1].into();
        assert_ne!(of(&address, false), of(&address, true));
        assert_eq!(of(&address, true), of("127.0.0.1", true));
    }

    #[test]
    fn fingerprints_are_stable() {
        // Stored in Redis: changing these strands every cached value, so it must be deliberate
        // (and come with a new format version in the header).
        #[derive(Serialize)]
        struct Server {
            id: i64,
            name: String,
            tags: Vec<String>,
        }
        let server = Server {
            id: 7,
            name: "x".into(),
            tags: vec!["a".into()],
        };
        assert_eq!(absorb(SEED, 1), 0x248f_f7fe_56b3_da9a);
        // The published MurmurHash3 fmix64 of 1.
        assert_eq!(mix(1), 0xb456_bcfc_34c2_cb2c);
        // Names of 8 bytes, and of more than 8 with a tail.
        #[derive(Serialize)]
        struct LongNames {
            exactly8: u8,
            a_field_named_at_length: u16,
        }
        let long_names = LongNames {
            exactly8: 1,
            a_field_named_at_length: 2,
        };
        let pinned = [
            (fp(&7u64), 0x9b35_3094_3cc8_7dda),
            (fp("text"), 0x76c5_77aa_c24e_5492),
            (fp(&vec![1u32, 2, 3]), 0xa231_10d6_bfe7_e7e1),
            (fp(&server), 0x705b_5bb6_6cf6_55e4),
            (fp(&Some(())), 0x0f8f_2406_fe61_23eb),
            (fp(&long_names), 0x091d_b93c_ea99_0e44),
        ];
        for (i, (got, want)) in pinned.iter().enumerate() {
            assert_eq!(got, want, "{i}: {got:#018x}");
        }
    }

    /// What the shape pass costs beside the codec, per value. Timings mean something only in
    /// release: `cargo test --release -p cache-core --lib -- --ignored shape_cost --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn shape_cost() {
        use crate::codec::{decode_value, encode_value, CodecKind};
        use std::hint::black_box;
        use std::time::Instant;

        #[derive(Serialize, serde::Deserialize)]
        struct Small {
            id: u64,
            name: String,
            active: bool,
            tags: Vec<String>,
            score: Option<f64>,
        }
        let small = || Small {
            id: 42,
            name: "server-42.example".into(),
            active: true,
            tags: vec!["eu".into(), "prod".into()],
            score: Some(0.5),
        };

        fn time<V: Serialize + serde::de::DeserializeOwned>(what: &str, value: &V, runs: u32) {
            let per = |f: &mut dyn FnMut()| {
                f();
                let start = Instant::now();
                for _ in 0..runs {
                    f();
                }
                start.elapsed().as_secs_f64() * 1e6 / f64::from(runs)
            };
            let shape = per(&mut || {
                black_box(of(black_box(value), false).unwrap());
            });
            let bytes = encode_value(CodecKind::Bincode, value).unwrap();
            let encode = per(&mut || {
                black_box(encode_value(CodecKind::Bincode, black_box(value)).unwrap());
            });
            let decode = per(&mut || {
                black_box(decode_value::<V>(black_box(&bytes), usize::MAX).unwrap());
            });
            eprintln!(
                "{what}: {} bytes; shape pass {shape:.3} us; encode {encode:.3} us, decode \
                 {decode:.3} us (each includes one shape pass)",
                bytes.len()
            );
        }
        time("small struct", &small(), 200_000);
        time("1 MiB Vec<u8>", &vec![7u8; 1 << 20], 200);
        time(
            "10k Vec<struct>",
            &(0..10_000).map(|_| small()).collect::<Vec<_>>(),
            200,
        );
    }
}
