use cache_core::cached;

#[cached(version = "2")]
async fn a(id: u64) -> u64 {
    id
}

#[cached(crate = cache_core)]
async fn b(id: u64) -> u64 {
    id
}

fn main() {}
