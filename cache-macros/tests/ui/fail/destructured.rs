use cache_core::cached;

#[cached(ttl = 60)]
async fn area((w, h): (u64, u64)) -> u64 {
    w * h
}

fn main() {}
