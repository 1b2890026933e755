use cache_core::cached;

#[cached(ttl = 60, none_ttl = 5)]
async fn count(id: u64) -> u64 {
    id
}

fn main() {}
