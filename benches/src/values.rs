//! The values every scenario reads: a ~100-byte struct and a ~10 KB one, the same for all.

use serde::{Deserialize, Serialize};

/// About 100 bytes in bincode: what a typical `get_server_details` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Small {
    pub id: u64,
    pub name: String,
    pub region: String,
    pub tags: Vec<String>,
    pub score: f64,
    pub active: bool,
}

/// About 10 KB in bincode: a page of 96 `Small`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Large {
    pub id: u64,
    pub items: Vec<Small>,
}

pub fn small(id: u64) -> Small {
    Small {
        id,
        name: format!("server-{id:08}.eu-west.example.com"),
        region: "eu-west-1".to_owned(),
        tags: vec!["prod".into(), "web".into(), "tier-1".into()],
        score: 0.75,
        active: true,
    }
}

pub fn large(id: u64) -> Large {
    Large {
        id,
        items: (0..96).map(|i| small(id * 1000 + i)).collect(),
    }
}

/// bincode with the standard configuration, as cache-core's codec uses it (without its header).
pub fn bincode_encode<V: Serialize>(value: &V) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encode")
}

pub fn bincode_decode<V: serde::de::DeserializeOwned>(bytes: &[u8]) -> V {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .expect("decode")
        .0
}
