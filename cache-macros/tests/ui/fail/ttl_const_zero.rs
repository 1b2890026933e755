use cache_core::cached;

const TTL: u64 = 0;

#[cached(ttl = TTL)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
