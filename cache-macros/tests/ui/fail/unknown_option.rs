#![allow(unused_variables)]

use cache_core::{cached, invalidate_cache};

#[cached(ttl = 60, expire = 10)]
async fn get_user(id: u64) -> Option<String> {
    Some(id.to_string())
}

#[invalidate_cache("user:*", ttl = 60)]
async fn update_user(id: u64) {}

fn main() {}
