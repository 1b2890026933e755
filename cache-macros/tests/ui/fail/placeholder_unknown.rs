#![allow(unused_variables)]

use cache_core::invalidate_cache;

#[invalidate_cache("server:{id}:*")]
async fn update_server(server_id: u64) {}

#[invalidate_cache("server:{server_id:*")]
async fn unclosed(server_id: u64) {}

fn main() {}
