use cache_core::{cached, invalidate_cache};

#[cached(ttl = 60, key_prefix = "server")]
async fn get_server(id: i64, region: String) -> Option<String> {
    Some(format!("{id} {region}"))
}

// A typo in the function's name.
#[invalidate_cache(get_servers(id, region))]
async fn typo(id: i64, region: String) {
    let _ = (id, region);
}

// A key argument missing.
#[invalidate_cache(get_server(id))]
async fn missing_argument(id: i64) {
    let _ = id;
}

// A key argument of another type.
#[invalidate_cache(get_server(id, region))]
async fn wrong_type(id: &str, region: String) {
    let _ = (id, region);
}

fn main() {}
