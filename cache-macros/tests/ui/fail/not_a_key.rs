use cache_core::cached;

pub struct Pool;

#[cached(ttl = 60)]
async fn get_user(pool: &Pool, id: u64) -> Option<String> {
    let _ = pool;
    Some(id.to_string())
}

#[cached(ttl = 60)]
async fn ratio(x: f64) -> u64 {
    x as u64
}

fn main() {}
