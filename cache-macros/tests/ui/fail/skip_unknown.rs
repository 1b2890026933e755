use cache_core::cached;

pub struct Pool;

#[cached(ttl = 60, skip(db))]
async fn get_user(pool: &Pool, id: u64) -> Option<String> {
    let _ = pool;
    Some(id.to_string())
}

#[cached(ttl = 60, skip(self))]
async fn get_other(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
