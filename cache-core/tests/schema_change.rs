//! A cached type changes between two builds of a program without a `version` bump: bytes the old
//! build wrote must be a miss for the new one (counted in `schema_mismatches`, repaired by the
//! next store), never decoded into a wrong value served as a hit.
//!
//! One binary cannot hold two builds, so each type here is one Rust type (one `type_name`, as
//! across a redeploy) whose serde shape is that of the build "running" on the current thread.
// Test code: unwrap is how a test fails.
#![allow(clippy::unwrap_used)]

use std::cell::Cell;

use cache_core::codec::CodecKind;
use cache_core::{Cache, CacheConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    static BUILD: Cell<u8> = const { Cell::new(1) };
}

fn build() -> u8 {
    BUILD.with(Cell::get)
}

/// Runs what follows as build `n` of the program (on this thread).
fn as_build(n: u8) {
    BUILD.with(|b| b.set(n));
}

/// `Point { x: u64, y: u64 }` in build 1, `Point { y: u64, x: u64 }` in build 2.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    x: u64,
    y: u64,
}

mod point {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Point")]
    pub struct V1 {
        pub x: u64,
        pub y: u64,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Point")]
    pub struct V2 {
        pub y: u64,
        pub x: u64,
    }
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Point { x, y } = *self;
        match build() {
            1 => point::V1 { x, y }.serialize(s),
            _ => point::V2 { y, x }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match build() {
            1 => point::V1::deserialize(d).map(|p| Point { x: p.x, y: p.y })?,
            _ => point::V2::deserialize(d).map(|p| Point { x: p.x, y: p.y })?,
        })
    }
}

/// `Counter { n: u32 }` in build 1, `Counter { n: i32 }` in build 2.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counter {
    n: i64,
}

mod counter {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Counter")]
    pub struct V1 {
        pub n: u32,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Counter")]
    pub struct V2 {
        pub n: i32,
    }
}

impl Serialize for Counter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        match build() {
            1 => counter::V1 {
                n: u32::try_from(self.n).map_err(S::Error::custom)?,
            }
            .serialize(s),
            _ => counter::V2 {
                n: i32::try_from(self.n).map_err(S::Error::custom)?,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Counter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match build() {
            1 => Counter {
                n: counter::V1::deserialize(d)?.n.into(),
            },
            _ => Counter {
                n: counter::V2::deserialize(d)?.n.into(),
            },
        })
    }
}

/// `enum Status { Active, Suspended }` in build 1; build 2 lists `Suspended` first; build 3
/// appends `Banned`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Active,
    Suspended,
    Banned,
}

mod status {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Status")]
    pub enum V1 {
        Active,
        Suspended,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Status")]
    pub enum V2 {
        Suspended,
        Active,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Status")]
    pub enum V3 {
        Active,
        Suspended,
        Banned,
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        match (build(), self) {
            (1, Status::Active) => status::V1::Active.serialize(s),
            (1, Status::Suspended) => status::V1::Suspended.serialize(s),
            (2, Status::Active) => status::V2::Active.serialize(s),
            (2, Status::Suspended) => status::V2::Suspended.serialize(s),
            (3, Status::Active) => status::V3::Active.serialize(s),
            (3, Status::Suspended) => status::V3::Suspended.serialize(s),
            (3, Status::Banned) => status::V3::Banned.serialize(s),
            _ => Err(S::Error::custom("no such variant in this build")),
        }
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match build() {
            1 => match status::V1::deserialize(d)? {
                status::V1::Active => Status::Active,
                status::V1::Suspended => Status::Suspended,
            },
            2 => match status::V2::deserialize(d)? {
                status::V2::Active => Status::Active,
                status::V2::Suspended => Status::Suspended,
            },
            _ => match status::V3::deserialize(d)? {
                status::V3::Active => Status::Active,
                status::V3::Suspended => Status::Suspended,
                status::V3::Banned => Status::Banned,
            },
        })
    }
}

async fn cache(codec: CodecKind) -> Cache {
    let config = CacheConfig::builder()
        .memory(1 << 20)
        .codec(codec)
        .build()
        .unwrap();
    Cache::new(config).await.unwrap()
}

fn codecs() -> Vec<CodecKind> {
    #[cfg_attr(not(feature = "json"), allow(unused_mut))]
    let mut codecs = vec![CodecKind::Bincode];
    #[cfg(feature = "json")]
    codecs.push(CodecKind::Json);
    codecs
}

#[tokio::test]
async fn swapped_fields_are_a_miss_not_swapped_values() {
    as_build(1);
    let cache = cache(CodecKind::Bincode).await;
    cache.set("p", &Point { x: 1, y: 2 }, None).await.unwrap();
    assert_eq!(cache.get("p").await.unwrap(), Some(Point { x: 1, y: 2 }));

    as_build(2);
    assert_eq!(cache.get::<Point>("p").await.unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
    assert_eq!((stats.schema_mismatches, stats.corrupt), (1, 0));

    // The next store repairs it.
    cache.set("p", &Point { x: 1, y: 2 }, None).await.unwrap();
    assert_eq!(cache.get("p").await.unwrap(), Some(Point { x: 1, y: 2 }));
}

#[tokio::test]
async fn a_field_retyped_from_u32_to_i32_is_a_miss() {
    for codec in codecs() {
        as_build(1);
        let cache = cache(codec).await;
        cache
            .set("c", &Counter { n: 3_000_000_000 }, None)
            .await
            .unwrap();
        cache.set("small", &Counter { n: 5 }, None).await.unwrap();

        as_build(2);
        // bincode reads the varint as a zigzag i32 (1_500_000_000); json refuses the number.
        assert_eq!(cache.get::<Counter>("c").await.unwrap(), None, "{codec:?}");
        // 5 reads as 5 either way, but as a value of another shape: a miss all the same.
        assert_eq!(
            cache.get::<Counter>("small").await.unwrap(),
            None,
            "{codec:?}"
        );
        let stats = cache.stats();
        assert_eq!(stats.hits, 0, "{codec:?}");
        assert_eq!(stats.misses, 2, "{codec:?}");
        assert!(stats.schema_mismatches >= 1, "{codec:?} {stats:?}");
    }
}

#[tokio::test]
async fn reordered_variants_are_a_miss_and_an_appended_one_is_not() {
    for codec in codecs() {
        as_build(1);
        let cache = cache(codec).await;
        cache.set("s", &Status::Active, None).await.unwrap();

        as_build(2);
        assert_eq!(cache.get::<Status>("s").await.unwrap(), None, "{codec:?}");
        assert_eq!(cache.stats().schema_mismatches, 1, "{codec:?}");

        // A variant added at the end changes nothing the stored value uses: it keeps hitting.
        as_build(3);
        assert_eq!(
            cache.get::<Status>("s").await.unwrap(),
            Some(Status::Active),
            "{codec:?}"
        );
        assert_eq!(cache.stats().hits, 1, "{codec:?}");
    }
}

#[tokio::test]
async fn read_through_computes_instead_of_serving_a_value_of_the_old_schema() {
    as_build(1);
    let cache = cache(CodecKind::Bincode).await;
    let old = cache
        .get_or_compute("p", None, || async { Point { x: 1, y: 2 } })
        .await;
    assert_eq!(old, Point { x: 1, y: 2 });

    as_build(2);
    let new = cache
        .get_or_compute("p", None, || async { Point { x: 10, y: 20 } })
        .await;
    assert_eq!(new, Point { x: 10, y: 20 }, "the body ran");
    assert_eq!(cache.stats().schema_mismatches, 1);
    // ... and its value replaced the old one.
    assert_eq!(cache.get("p").await.unwrap(), Some(Point { x: 10, y: 20 }));
}
