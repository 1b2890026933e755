// The forms #[invalidate_cache] accepts: patterns with placeholders, cached functions named
// with their key arguments, and the options.
use cache_core::{cached, invalidate_cache};

#[cached(ttl = 600, key_prefix = "server")]
async fn get_server(id: i64, region: String) -> Option<String> {
    Some(format!("{id} {region}"))
}

#[invalidate_cache("server:*")]
async fn clear_servers() -> Result<(), std::io::Error> {
    Ok(())
}

#[invalidate_cache("server:get_server:{id}:*", "trending:*")]
async fn update_server(id: i64) -> Result<i64, String> {
    Ok(id)
}

#[invalidate_cache(get_server(id, region))]
async fn rename(id: i64, region: String) {
    let _ = (id, region);
}

#[invalidate_cache(get_server(id, _), get_server(..))]
async fn move_server(id: i64) -> Option<i64> {
    Some(id)
}

#[invalidate_cache("*", allow_all, crate = "cache_core")]
async fn flush() {}

fn main() {
    let _ = clear_servers();
    let _ = update_server(1);
    let _ = rename(1, String::new());
    let _ = move_server(1);
    let _ = flush();
}
