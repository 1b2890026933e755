use cache_core::cached;

#[cached(ttl = 0)]
async fn zero(id: u64) -> u64 {
    id
}

#[cached(ttl = -5)]
async fn negative(id: u64) -> u64 {
    id
}

#[cached(ttl = "60")]
async fn quoted(id: u64) -> u64 {
    id
}

#[cached(ttl = 1.5)]
async fn fraction(id: u64) -> u64 {
    id
}

#[cached(ttl)]
async fn missing(id: u64) -> u64 {
    id
}

fn main() {}
