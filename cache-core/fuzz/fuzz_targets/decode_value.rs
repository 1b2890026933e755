//! Arbitrary bytes under a key: decoding must never panic, whatever type is asked for, and a
//! value that decodes must survive an encode/decode round trip.
#![no_main]

use std::collections::BTreeMap;

use cache_core::codec::{decode_value, encode_value, CodecKind, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Server {
    id: i64,
    name: String,
    tags: Vec<String>,
    owner: Option<String>,
    stats: BTreeMap<String, u64>,
}

fn check<T: serde::de::DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(value) = decode_value::<T>(bytes, usize::MAX) {
        let codec = if bytes[3] == 2 { CodecKind::Json } else { CodecKind::Bincode };
        // Not necessarily the same bytes (a varint may be spelled long), but the same value.
        let again = encode_value(codec, &value).expect("a decoded value encodes");
        assert_eq!(decode_value::<T>(&again, usize::MAX).expect("round trip"), value);
    }
}

fuzz_target!(|data: &[u8]| {
    // Raw bytes, and the same bytes behind a valid header for each type (to reach the decoder).
    check::<Server>(data);
    check::<String>(data);
    check::<Vec<u64>>(data);
    for template in [
        encode_value(CodecKind::Bincode, "").unwrap(),
        encode_value(CodecKind::Bincode, &Vec::<u64>::new()).unwrap(),
    ] {
        let mut framed = template[..HEADER_LEN].to_vec();
        framed.extend_from_slice(data);
        check::<String>(&framed);
        check::<Vec<u64>>(&framed);
    }
    let mut framed = encode_value(CodecKind::Bincode, &Server {
        id: 0,
        name: String::new(),
        tags: Vec::new(),
        owner: None,
        stats: BTreeMap::new(),
    })
    .unwrap()[..HEADER_LEN]
        .to_vec();
    framed.extend_from_slice(data);
    check::<Server>(&framed);
});
