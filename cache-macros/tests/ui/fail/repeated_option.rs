use cache_core::cached;

#[cached(ttl = 60, key_prefix = "user", ttl = 120)]
async fn get_user(id: u64) -> Option<String> {
    Some(id.to_string())
}

fn main() {}
