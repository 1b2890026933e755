use cache_core::invalidate_cache;

#[invalidate_cache("*")]
async fn flush() {}

#[invalidate_cache("user:*", "**")]
async fn flush_too() {}

// Allowed when asked for.
#[invalidate_cache("*", allow_all = true)]
async fn flush_on_purpose() {}

fn main() {}
