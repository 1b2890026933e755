#![allow(unused_variables)]

use cache_core::invalidate_cache;

#[invalidate_cache("server:[ab")]
async fn unbalanced(server_id: u64) {}

#[invalidate_cache("server:\\")]
async fn dangling(server_id: u64) {}

#[invalidate_cache("")]
async fn empty(server_id: u64) {}

#[invalidate_cache()]
async fn none_at_all(server_id: u64) {}

fn main() {}
