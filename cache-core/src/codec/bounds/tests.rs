//! Forged lengths over elements that encode to zero bytes, and values that take far more memory
//! than bytes: each refused at once; honest values at the edges still decode.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::mem::size_of;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Bound, Tally, ZERO_SIZED_ALLOWANCE};
use crate::codec::{
    decode_counted, decode_value, encode_value, CodecKind, DecodeError, Envelope,
    DEFAULT_MAX_DECODED_BYTES, HEADER_LEN,
};

/// The default `CACHE_MAX_VALUE_BYTES`.
const LIMIT: usize = 16 << 20;

/// Well above the microseconds a refusal takes, so that a loaded machine does not fail it.
const AT_ONCE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Empty {}

/// bincode's varint: one byte below 251, else a marker and the little-endian integer.
fn varint(n: u64) -> Vec<u8> {
    match n {
        0..=250 => vec![n as u8],
        251..=0xFFFF => [vec![0xFB], (n as u16).to_le_bytes().to_vec()].concat(),
        0x1_0000..=0xFFFF_FFFF => [vec![0xFC], (n as u32).to_le_bytes().to_vec()].concat(),
        _ => [vec![0xFD], n.to_le_bytes().to_vec()].concat(),
    }
}

/// `payload` behind the header of an honest `V` (its fingerprint included) in `codec`.
fn framed<V: Serialize>(codec: CodecKind, honest: &V, payload: &[u8]) -> Vec<u8> {
    let mut bytes = encode_value(codec, honest).unwrap()[..HEADER_LEN].to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// Decodes `bytes` as `V` under `envelope`, and how long that took.
fn timed<V: DeserializeOwned + Serialize>(
    envelope: &Envelope,
    bytes: &[u8],
) -> (Result<V, DecodeError>, Duration) {
    let start = Instant::now();
    let result = envelope.decode::<V>(bytes);
    (result, start.elapsed())
}

/// Asserts that `bytes` are refused at once as over `what`.
fn refused_at_once<V: DeserializeOwned + Serialize>(
    name: &str,
    envelope: &Envelope,
    bytes: &[u8],
    what: Bound,
) {
    let (result, took) = timed::<V>(envelope, bytes);
    eprintln!("{name}: {took:?}");
    match result {
        Err(DecodeError::OverBound { what: got, .. }) if got == what => {}
        other => panic!("{name}: {:?}", other.map(|_| ())),
    }
    assert!(took < AT_ONCE, "{name}: {took:?}");
}

/// A `Vec` of an element that encodes to zero bytes, claiming `claim` elements.
fn zero_sized<V: Serialize>(honest: &V, claim: u64) -> Vec<u8> {
    framed(CodecKind::Bincode, honest, &varint(claim))
}

#[test]
fn forged_lengths_over_zero_sized_elements_are_refused_at_once() {
    let envelope = Envelope::new(CodecKind::Bincode, LIMIT);
    for claim in [u64::MAX, 1 << 32] {
        let unit = zero_sized(&vec![()], claim);
        refused_at_once::<Vec<()>>("Vec<()>", &envelope, &unit, Bound::Elements);
        let bytes = zero_sized(&vec![Unit], claim);
        refused_at_once::<Vec<Unit>>("Vec<Unit>", &envelope, &bytes, Bound::Elements);
        let bytes = zero_sized(&vec![Empty {}], claim);
        refused_at_once::<Vec<Empty>>("Vec<Empty>", &envelope, &bytes, Bound::Elements);
        let bytes = zero_sized(&vec![[0u8; 0]], claim);
        refused_at_once::<Vec<[u8; 0]>>("Vec<[u8; 0]>", &envelope, &bytes, Bound::Elements);
        let bytes = zero_sized(&vec![PhantomData::<u8>], claim);
        refused_at_once::<Vec<PhantomData<u8>>>(
            "Vec<PhantomData<u8>>",
            &envelope,
            &bytes,
            Bound::Elements,
        );
        let bytes = zero_sized(&HashMap::from([((), ())]), claim);
        refused_at_once::<HashMap<(), ()>>("HashMap<(), ()>", &envelope, &bytes, Bound::Elements);
        // Nested: an honest outer length, each inner one forged.
        let payload = [varint(3), varint(claim), varint(claim), varint(claim)].concat();
        let bytes = framed(CodecKind::Bincode, &vec![vec![()]], &payload);
        refused_at_once::<Vec<Vec<()>>>("Vec<Vec<()>>", &envelope, &bytes, Bound::Elements);
        // Strings cost a byte each: as many as claimed cannot be there.
        let bytes = framed(
            CodecKind::Bincode,
            &vec![String::new()],
            &[varint(claim), vec![0; 64]].concat(),
        );
        refused_at_once::<Vec<String>>("Vec<String>", &envelope, &bytes, Bound::Elements);
    }
}

#[test]
fn nested_claims_share_one_element_bound() {
    // 1,000 inner vectors each claiming 4,000 units: each within the allowance, together far
    // beyond it. Refused once the total runs past, and never loops further.
    let payload = [varint(1000), varint(4000).repeat(1000)].concat();
    let bytes = framed(CodecKind::Bincode, &vec![vec![()]], &payload);
    let tally = Tally::new(DEFAULT_MAX_DECODED_BYTES);
    let start = Instant::now();
    let result = decode_counted(&bytes, LIMIT, PhantomData::<Vec<Vec<()>>>, &tally);
    let took = start.elapsed();
    eprintln!("Vec<Vec<()>> of 1000 x 4000: {took:?}, {:?}", tally.used());
    assert!(matches!(
        result,
        Err(DecodeError::OverBound {
            what: Bound::Elements,
            ..
        })
    ));
    assert_eq!(tally.max_elements(), payload.len() + ZERO_SIZED_ALLOWANCE);
    assert!(tally.used().0 <= tally.max_elements());
    assert!(took < AT_ONCE, "{took:?}");
}

#[test]
fn values_larger_in_memory_than_the_decoded_bound_are_refused() {
    // A million empty strings: a byte each, 24 each in memory.
    let count = 1 << 20;
    let honest = vec![String::new(); count];
    let envelope = Envelope::new(CodecKind::Bincode, 2 << 20).max_decoded_bytes(16 << 20);
    let bytes = encode_value(CodecKind::Bincode, &honest).unwrap();
    // Refused from its length, before the first string is read.
    refused_at_once::<Vec<String>>(
        "Vec<String> of 2^20 empty",
        &envelope,
        &bytes,
        Bound::DecodedBytes,
    );
    // Under a bound that holds it, the same bytes decode.
    let roomy = Envelope::new(CodecKind::Bincode, 2 << 20).max_decoded_bytes(32 << 20);
    assert_eq!(roomy.decode::<Vec<String>>(&bytes).unwrap().len(), count);
    // A self-delimiting codec has no length to check: counted string by string instead.
    #[cfg(feature = "json")]
    {
        let envelope = Envelope::new(CodecKind::Json, 4 << 20).max_decoded_bytes(16 << 20);
        let bytes = encode_value(CodecKind::Json, &honest).unwrap();
        let (result, took) = timed::<Vec<String>>(&envelope, &bytes);
        eprintln!("json Vec<String> of 2^20 empty: {took:?}");
        assert!(matches!(
            result,
            Err(DecodeError::OverBound {
                what: Bound::DecodedBytes,
                bound,
                ..
            }) if bound == 16 << 20
        ));
    }
    // What is counted: each element's size, and each string's length.
    let words = vec!["abc".to_owned(); 100];
    let bytes = encode_value(CodecKind::Bincode, &words).unwrap();
    let tally = Tally::new(DEFAULT_MAX_DECODED_BYTES);
    decode_counted(&bytes, LIMIT, PhantomData::<Vec<String>>, &tally).unwrap();
    assert_eq!(
        tally.used(),
        (100, 100 * (std::mem::size_of::<String>() + 3))
    );
}

#[test]
fn honest_values_at_the_edges_still_decode() {
    let envelope = Envelope::new(CodecKind::Bincode, LIMIT + 64);
    let big = vec![0xA5u8; 16 << 20];
    let bytes = encode_value(CodecKind::Bincode, &big).unwrap();
    assert_eq!(envelope.decode::<Vec<u8>>(&bytes).unwrap(), big);
    let units = vec![(); 1000];
    let bytes = encode_value(CodecKind::Bincode, &units).unwrap();
    assert_eq!(envelope.decode::<Vec<()>>(&bytes).unwrap(), units);
    // As many zero-sized elements as the allowance and the payload's bytes together.
    let most = vec![Unit; 4096 + 3];
    let bytes = encode_value(CodecKind::Bincode, &most).unwrap();
    assert_eq!(bytes.len() - HEADER_LEN, 3);
    assert_eq!(envelope.decode::<Vec<Unit>>(&bytes).unwrap(), most);
    let words: Vec<String> = (0..10_000).map(|i| format!("w{i}")).collect();
    let bytes = encode_value(CodecKind::Bincode, &words).unwrap();
    assert_eq!(envelope.decode::<Vec<String>>(&bytes).unwrap(), words);
    let map: HashMap<String, Vec<u64>> = (0..100).map(|i| (i.to_string(), vec![i; 10])).collect();
    let bytes = encode_value(CodecKind::Bincode, &map).unwrap();
    assert_eq!(
        envelope
            .decode::<HashMap<String, Vec<u64>>>(&bytes)
            .unwrap(),
        map
    );
    let nested = vec![vec![(); 10]; 100];
    let bytes = encode_value(CodecKind::Bincode, &nested).unwrap();
    assert_eq!(envelope.decode::<Vec<Vec<()>>>(&bytes).unwrap(), nested);
    #[cfg(feature = "json")]
    {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Shape {
            Dot,
            Line(u32, u32),
            Named { name: String, tags: Vec<String> },
            Boxed(Option<Box<Shape>>),
        }
        let value = vec![
            Shape::Dot,
            Shape::Line(1, 2),
            Shape::Named {
                name: "é".into(),
                tags: vec!["a".into(), String::new()],
            },
            Shape::Boxed(Some(Box::new(Shape::Dot))),
        ];
        let json = Envelope::new(CodecKind::Json, LIMIT);
        let bytes = encode_value(CodecKind::Json, &value).unwrap();
        assert_eq!(json.decode::<Vec<Shape>>(&bytes).unwrap(), value);
        let bytes = encode_value(CodecKind::Json, &map).unwrap();
        assert_eq!(
            json.decode::<HashMap<String, Vec<u64>>>(&bytes).unwrap(),
            map
        );
        let bytes = encode_value(CodecKind::Json, &units).unwrap();
        assert_eq!(json.decode::<Vec<()>>(&bytes).unwrap(), units);
        let bytes = encode_value(CodecKind::Bincode, &value).unwrap();
        assert_eq!(envelope.decode::<Vec<Shape>>(&bytes).unwrap(), value);
    }
}

#[test]
fn a_forged_string_length_is_refused_without_decoding_it() {
    // 500 MiB claimed in a 30-byte payload: the bytes that remain refuse it (`allocations.rs`
    // measures that nothing of that size is allocated).
    for honest in [&b""[..], b"abc"] {
        let text = String::from_utf8(honest.to_vec()).unwrap();
        let payload = [varint(500 << 20), vec![b'a'; 25]].concat();
        let bytes = framed(CodecKind::Bincode, &text, &payload);
        assert_eq!(bytes.len() - HEADER_LEN, 30);
        assert!(matches!(
            decode_value::<String>(&bytes, LIMIT),
            Err(DecodeError::Corrupt(_))
        ));
    }
    let payload = [varint(1), varint(500 << 20), vec![b'a'; 20]].concat();
    let bytes = framed(CodecKind::Bincode, &vec![String::new()], &payload);
    assert!(matches!(
        decode_value::<Vec<String>>(&bytes, LIMIT),
        Err(DecodeError::Corrupt(_))
    ));
}

/// Decodes `bytes` as `V`, checking that the decode stayed within its bounds.
fn within_bounds<V: DeserializeOwned + Serialize>(bytes: &[u8]) {
    let tally = Tally::new(1 << 20);
    let start = Instant::now();
    let result = decode_counted(bytes, LIMIT, PhantomData::<V>, &tally);
    let took = start.elapsed();
    let (elements, decoded) = tally.used();
    assert!(elements <= tally.max_elements(), "{elements}");
    assert!(decoded <= 1 << 20, "{decoded}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    if let Err(DecodeError::OverBound { claimed, bound, .. }) = result {
        assert!(claimed > bound);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_after_a_valid_header_decode_within_the_bounds(
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        claim in any::<u64>(),
    ) {
        // Raw, and behind a varint length, so that large claims are common.
        for payload in [payload.clone(), [varint(claim), payload].concat()] {
            within_bounds::<Vec<()>>(&framed(CodecKind::Bincode, &vec![()], &payload));
            within_bounds::<Vec<Unit>>(&framed(CodecKind::Bincode, &vec![Unit], &payload));
            within_bounds::<Vec<Empty>>(&framed(CodecKind::Bincode, &vec![Empty {}], &payload));
            within_bounds::<Vec<[u8; 0]>>(&framed(CodecKind::Bincode, &vec![[0u8; 0]], &payload));
            within_bounds::<Vec<PhantomData<u8>>>(&framed(
                CodecKind::Bincode,
                &vec![PhantomData::<u8>],
                &payload,
            ));
            within_bounds::<Vec<Vec<()>>>(&framed(CodecKind::Bincode, &vec![vec![()]], &payload));
            within_bounds::<HashMap<(), ()>>(&framed(
                CodecKind::Bincode,
                &HashMap::from([((), ())]),
                &payload,
            ));
            within_bounds::<Vec<String>>(&framed(
                CodecKind::Bincode,
                &vec![String::new()],
                &payload,
            ));
            within_bounds::<Tree>(&framed(CodecKind::Bincode, &tree(1), &payload));
            #[cfg(feature = "json")]
            within_bounds::<Vec<Vec<()>>>(&framed(CodecKind::Json, &vec![vec![()]], &payload));
            #[cfg(feature = "json")]
            within_bounds::<Tree>(&framed(CodecKind::Json, &tree(1), &payload));
        }
    }
}

/// What `prefixed` counts: each element's and entry's size (key and value), each string's length.
#[test]
fn prefixed_counts_each_container_once_at_its_size() {
    let counted = |bytes: &[u8], decode: &dyn Fn(&[u8], &Tally)| {
        let tally = Tally::new(DEFAULT_MAX_DECODED_BYTES);
        decode(bytes, &tally);
        tally.used()
    };
    let numbers: Vec<u64> = (0..1000).collect();
    let bytes = encode_value(CodecKind::Bincode, &numbers).unwrap();
    let used = counted(&bytes, &|bytes, tally| {
        decode_counted(bytes, LIMIT, PhantomData::<Vec<u64>>, tally).unwrap();
    });
    assert_eq!(used, (1000, 1000 * 8));
    let map: BTreeMap<String, u64> = (0..10).map(|i| (format!("k{i}"), i)).collect();
    let bytes = encode_value(CodecKind::Bincode, &map).unwrap();
    let used = counted(&bytes, &|bytes, tally| {
        decode_counted(bytes, LIMIT, PhantomData::<BTreeMap<String, u64>>, tally).unwrap();
    });
    assert_eq!(used, (10, 10 * (size_of::<String>() + 8) + 10 * 2));
    // Nested: the outer elements at their size, then each inner sequence at its own.
    let nested = Some(vec![vec![1u32, 2, 3], vec![], vec![4]]);
    let bytes = encode_value(CodecKind::Bincode, &nested).unwrap();
    let used = counted(&bytes, &|bytes, tally| {
        decode_counted(bytes, LIMIT, PhantomData::<Option<Vec<Vec<u32>>>>, tally).unwrap();
    });
    assert_eq!(used, (3 + 4, 3 * size_of::<Vec<u32>>() + 4 * 4));
    // A struct's fields and a tuple's are the type's: not counted.
    let fields = (1u8, 2u64, "ab".to_owned());
    let bytes = encode_value(CodecKind::Bincode, &fields).unwrap();
    let used = counted(&bytes, &|bytes, tally| {
        decode_counted(bytes, LIMIT, PhantomData::<(u8, u64, String)>, tally).unwrap();
    });
    assert_eq!(used, (0, 2));
}

/// Every shape serde gives bincode: scalars of each kind, strings, bytes, options, tuples,
/// structs, enums of each variant kind, sequences and maps, nested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Dot,
    Line(u32, i16),
    Named { name: String, tags: Vec<String> },
    Boxed(Option<Box<Shape>>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Mixed {
    id: u64,
    small: (u8, i8, u16, i32, i64, i128, u128),
    real: (f32, f64),
    letter: char,
    flags: Vec<bool>,
    name: String,
    map: BTreeMap<String, Option<u16>>,
    shapes: Vec<Shape>,
    pairs: Vec<(i16, char)>,
    triples: Vec<[u8; 3]>,
    unit: (),
    units: Vec<Unit>,
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![
        Just(Shape::Dot),
        (any::<u32>(), any::<i16>()).prop_map(|(a, b)| Shape::Line(a, b)),
        (".{0,8}", proptest::collection::vec(".{0,4}", 0..4))
            .prop_map(|(name, tags)| Shape::Named { name, tags }),
        Just(Shape::Boxed(None)),
    ];
    leaf.prop_recursive(3, 8, 1, |inner| {
        inner.prop_map(|shape| Shape::Boxed(Some(Box::new(shape))))
    })
}

fn mixed() -> impl Strategy<Value = Mixed> {
    (
        (
            any::<u64>(),
            any::<(u8, i8, u16, i32, i64, i128, u128)>(),
            any::<(f32, f64)>(),
            any::<char>(),
            proptest::collection::vec(any::<bool>(), 0..8),
            ".{0,16}",
        ),
        (
            proptest::collection::btree_map(".{0,6}", any::<Option<u16>>(), 0..6),
            proptest::collection::vec(shape(), 0..4),
            proptest::collection::vec(any::<(i16, char)>(), 0..6),
            proptest::collection::vec(any::<[u8; 3]>(), 0..6),
            0..5usize,
        ),
    )
        .prop_map(
            |((id, small, real, letter, flags, name), (map, shapes, pairs, triples, units))| {
                Mixed {
                    id,
                    small,
                    real,
                    letter,
                    flags,
                    name,
                    map,
                    shapes,
                    pairs,
                    triples,
                    unit: (),
                    units: vec![Unit; units],
                }
            },
        )
}

/// Reads `payload` as `V` with `prefixed` and with bincode's own serde decoder: both the same
/// value (compared by its encoding: NaN is not equal to itself) from the same bytes, or both an
/// error. The payloads are small: the limit refuses only claims no payload here can hold.
fn same_as_bincode<V>(payload: &[u8]) -> Result<(), TestCaseError>
where
    V: DeserializeOwned + Serialize + std::fmt::Debug,
{
    let standard = bincode::config::standard();
    let tally = Tally::new(DEFAULT_MAX_DECODED_BYTES);
    tally.allow_elements(payload.len());
    let ours = super::decode_bincode(payload, standard, PhantomData::<V>, &tally);
    // With a limit, or bincode's owned strings allocate whatever length the bytes claim.
    let limited = standard.with_limit::<{ 1 << 20 }>();
    let theirs = bincode::serde::borrow_decode_from_slice::<V, _>(payload, limited);
    match (ours, theirs) {
        (Ok((ours, read)), Ok((theirs, their_read))) => {
            prop_assert_eq!(read, their_read);
            let encode = |v: &V| bincode::serde::encode_to_vec(v, standard).unwrap();
            prop_assert_eq!(encode(&ours), encode(&theirs), "{:?} / {:?}", ours, theirs);
        }
        (Err(_), Err(_)) => {}
        (ours, theirs) => prop_assert!(
            false,
            "{payload:?}: prefixed {:?}, bincode {:?}",
            ours.map(|(_, read)| read),
            theirs.map(|(_, read)| read)
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `prefixed` reads bincode's format exactly as bincode does: honest values, honest values
    /// with a byte changed or cut short, and random bytes.
    #[test]
    fn prefixed_reads_what_bincode_reads(
        value in mixed(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
        // Mostly small bytes: tags, lengths and variant indexes that mean something.
        noise in proptest::collection::vec(prop_oneof![3 => 0u8..4, 1 => any::<u8>()], 0..64),
    ) {
        let honest = bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap();
        same_as_bincode::<Mixed>(&honest)?;
        let mut changed = honest.clone();
        changed[at.index(honest.len())] = byte;
        same_as_bincode::<Mixed>(&changed)?;
        same_as_bincode::<Mixed>(&honest[..cut.index(honest.len())])?;
        same_as_bincode::<Vec<Shape>>(&noise)?;
        same_as_bincode::<Vec<u64>>(&noise)?;
        same_as_bincode::<Vec<u8>>(&noise)?;
        same_as_bincode::<String>(&noise)?;
        same_as_bincode::<Option<Vec<String>>>(&noise)?;
        same_as_bincode::<BTreeMap<u8, Option<char>>>(&noise)?;
        same_as_bincode::<(bool, char, f32, Shape)>(&noise)?;
    }
}

/// A recursive type: each level an enum variant holding a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u8),
    Seq(Vec<Tree>),
}

/// A recursive type with one byte a level in bincode: a newtype's `Some`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Chain(Option<Box<Chain>>);

/// A tree `levels` sequences deep, a leaf at the bottom.
fn tree(levels: usize) -> Tree {
    (0..levels).fold(Tree::Leaf(7), |inner, _| Tree::Seq(vec![inner]))
}

/// The stack of a tokio worker thread, where values are decoded.
const WORKER_STACK: usize = 2 << 20;

/// Runs `decode` on a thread of `stack` bytes of stack.
fn on_stack<T: Send>(stack: usize, decode: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn_scoped(s, decode)
            .unwrap()
            .join()
            .unwrap()
    })
}

#[test]
fn forged_nesting_is_refused_before_it_overflows_the_stack() {
    // A million levels of `Tree::Seq` of one element, two bytes a level (variant 1, length 1):
    // without the bound, each level is a few frames deeper and the stack overflows, which
    // aborts the process.
    let envelope = Envelope::new(CodecKind::Bincode, LIMIT);
    let payload = [[1u8, 1].repeat(1_000_000), vec![0, 7]].concat();
    let bytes = framed(CodecKind::Bincode, &tree(1), &payload);
    on_stack(WORKER_STACK, || {
        refused_at_once::<Tree>("bincode Tree", &envelope, &bytes, Bound::Depth);
    });
    let bytes = framed(
        CodecKind::Bincode,
        &Chain(None),
        &[vec![1u8; 1_000_000], vec![0]].concat(),
    );
    on_stack(WORKER_STACK, || {
        refused_at_once::<Chain>("bincode Chain", &envelope, &bytes, Bound::Depth);
    });
    // serde_json refuses its 128th level itself; the bound comes first, as the same error.
    #[cfg(feature = "json")]
    {
        let json = Envelope::new(CodecKind::Json, LIMIT);
        let bytes = framed(
            CodecKind::Json,
            &tree(1),
            "{\"Seq\":[".repeat(100_000).as_bytes(),
        );
        on_stack(WORKER_STACK, || {
            refused_at_once::<Tree>("json Tree", &json, &bytes, Bound::Depth);
        });
        let bytes = framed(
            CodecKind::Json,
            &serde_json::json!([]),
            "[".repeat(100_000).as_bytes(),
        );
        on_stack(WORKER_STACK, || {
            refused_at_once::<serde_json::Value>("json Value", &json, &bytes, Bound::Depth);
        });
    }
}

#[test]
fn values_as_deep_as_the_bound_decode_on_a_quarter_of_a_workers_stack() {
    // Each level of a tree is an enum and a sequence: 63 levels and the leaf's enum nest 127
    // deep, the most allowed; one level more is refused.
    #[cfg_attr(not(feature = "json"), allow(unused_mut))]
    let mut codecs = vec![CodecKind::Bincode];
    #[cfg(feature = "json")]
    codecs.push(CodecKind::Json);
    for codec in codecs {
        let envelope = Envelope::new(codec, LIMIT);
        let deepest = tree(63);
        let bytes = encode_value(codec, &deepest).unwrap();
        let decoded = on_stack(WORKER_STACK / 4, || envelope.decode::<Tree>(&bytes));
        assert_eq!(decoded.unwrap(), deepest, "{codec:?}");
        let bytes = encode_value(codec, &tree(64)).unwrap();
        assert_eq!(
            envelope.decode::<Tree>(&bytes),
            Err(DecodeError::OverBound {
                what: Bound::Depth,
                claimed: super::MAX_DEPTH + 1,
                bound: super::MAX_DEPTH,
            }),
            "{codec:?}"
        );
    }
}
