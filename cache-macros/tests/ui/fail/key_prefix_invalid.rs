use cache_core::cached;

#[cached(key_prefix = "")]
async fn empty(id: u64) -> u64 {
    id
}

#[cached(key_prefix = "user profile")]
async fn whitespace(id: u64) -> u64 {
    id
}

#[cached(key_prefix = "user*")]
async fn glob(id: u64) -> u64 {
    id
}

#[cached(key_prefix = "user:")]
async fn trailing_colon(id: u64) -> u64 {
    id
}

fn main() {}
