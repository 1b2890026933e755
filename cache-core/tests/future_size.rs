//! The future of a hit is fred's GET future plus little: every level that awaits a future copies
//! it, on every call, so a large one costs on every hit (passing fred's futures by value once
//! tripled `Cache::get`'s, from 7 KB to 21 KB; the miss path inline doubled `#[cached]`'s).

use cache_core::{cached, invalidate_cache, Cache, CacheConfig};
use fred::prelude::{Builder, KeysInterface};

#[derive(serde::Serialize, serde::Deserialize)]
struct Server {
    id: u64,
    name: String,
}

#[cached(ttl = 60, key_prefix = "server")]
async fn get_server(id: u64) -> Server {
    Server {
        id,
        name: String::new(),
    }
}

#[invalidate_cache("server:*")]
async fn update_servers(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

/// What our layers may add to fred's own GET future.
const OVERHEAD: usize = 2048;

#[tokio::test]
async fn a_hit_future_is_fred_s_get_plus_little() {
    // Built, never connected.
    let fred = Builder::default_centralized().build().unwrap();
    let bare = std::mem::size_of_val(&fred.get::<Option<bytes::Bytes>, _>("k"));
    // The future's type, hence its size, is the same whichever backend the cache uses: an
    // in-process one keeps this test off the machine's Redis.
    let cache = Cache::new(CacheConfig::builder().memory(1 << 20).build().unwrap())
        .await
        .unwrap();
    let get = std::mem::size_of_val(&cache.get::<Server>("k"));
    let attribute = std::mem::size_of_val(&get_server(1));
    println!("fred GET {bare} B, Cache::get {get} B, #[cached] {attribute} B");
    assert!(
        get <= bare + OVERHEAD,
        "Cache::get: {get} B, fred: {bare} B"
    );
    assert!(
        attribute <= bare + OVERHEAD,
        "#[cached]: {attribute} B, fred: {bare} B"
    );
}

/// An invalidation's future is awaited inside the user's own (an `#[invalidate_cache]` body's):
/// a pattern walk kept inline doubled it (to 14.8 KB) and overflowed a test thread's stack, and
/// every backend level nested in its type took a guide example past rustc's query depth. The
/// backend's part is boxed: about 1 KB remains.
#[tokio::test]
async fn an_invalidation_future_is_fred_s_get_plus_little() {
    let fred = Builder::default_centralized().build().unwrap();
    let bare = std::mem::size_of_val(&fred.get::<Option<bytes::Bytes>, _>("k"));
    let cache = Cache::new(CacheConfig::builder().memory(1 << 20).build().unwrap())
        .await
        .unwrap();
    let clear = std::mem::size_of_val(&cache.clear_pattern("server:*"));
    let delete = std::mem::size_of_val(&cache.delete(["server:1"]));
    let attribute = std::mem::size_of_val(&update_servers(1));
    println!("fred GET {bare} B, clear_pattern {clear} B, delete {delete} B, #[invalidate_cache] {attribute} B");
    for (what, size) in [
        ("clear_pattern", clear),
        ("delete", delete),
        ("#[invalidate_cache]", attribute),
    ] {
        assert!(size <= bare + OVERHEAD, "{what}: {size} B, fred: {bare} B");
    }
}
