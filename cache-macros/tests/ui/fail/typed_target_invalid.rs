use cache_core::{cached, invalidate_cache};

#[cached(ttl = 60, key_prefix = "server")]
async fn get_server(id: i64, region: String) -> Option<String> {
    Some(format!("{id} {region}"))
}

// `..` stands for every key, alone.
#[invalidate_cache(get_server(.., region))]
async fn rest(region: String) {
    let _ = region;
}

// Not a call.
#[invalidate_cache(42)]
async fn literal() {}

// A method call is not a cached function's path.
#[invalidate_cache(server.get(1))]
async fn method_call(server: u8) {
    let _ = server;
}

// `shared_keys` is a flag.
#[cached(ttl = 60, shared_keys = 3)]
async fn shared(id: u64) -> u64 {
    id
}

fn main() {}
