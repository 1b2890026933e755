//! Arbitrary bytes behind the valid header of values whose elements encode to zero bytes, take
//! far more memory than bytes, or nest as deep as the bytes claim: every decode ends within its
//! bounds (a decode that looped over a forged length would time the fuzzer out, one that
//! recursed as deep as claimed would overflow its stack), never panics, and a value that
//! decodes survives a round trip.
#![no_main]

use std::collections::HashMap;
use std::marker::PhantomData;

use cache_core::codec::{encode_value, CodecKind, DecodeError, Envelope, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Empty {}

/// A recursive type: bytes can claim any depth (two bytes a level in bincode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u8),
    Seq(Vec<Tree>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shelf {
    name: String,
    slots: Vec<Empty>,
}

/// Small bounds, so that the fuzzer spends its time on the decoder and not on large values.
const LIMIT: usize = 1 << 20;
const MAX_DECODED: usize = 4 << 20;

fn check<T>(codec: CodecKind, honest: &T, data: &[u8])
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let envelope = Envelope::new(codec, LIMIT).max_decoded_bytes(MAX_DECODED);
    let mut framed = encode_value(codec, honest).expect("an honest value encodes")[..HEADER_LEN]
        .to_vec();
    framed.extend_from_slice(data);
    match envelope.decode::<T>(&framed) {
        Ok(value) => {
            let again = encode_value(codec, &value).expect("a decoded value encodes");
            assert_eq!(envelope.decode::<T>(&again).expect("round trip"), value);
        }
        Err(DecodeError::OverBound { claimed, bound, .. }) => assert!(claimed > bound),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    for codec in [CodecKind::Bincode, CodecKind::Json] {
        check(codec, &vec![()], data);
        check(codec, &vec![Unit], data);
        check(codec, &vec![Empty {}], data);
        check(codec, &vec![[0u8; 0]], data);
        check(codec, &vec![PhantomData::<u8>], data);
        check(codec, &vec![vec![()]], data);
        if codec == CodecKind::Bincode {
            // JSON keys are strings: a map keyed by `()` has no JSON form.
            check(codec, &HashMap::from([((), ())]), data);
        }
        check(codec, &vec![String::new()], data);
        check(codec, &Tree::Seq(vec![Tree::Leaf(1)]), data);
        check(
            codec,
            &Shelf {
                name: String::new(),
                slots: vec![Empty {}],
            },
            data,
        );
    }
});
