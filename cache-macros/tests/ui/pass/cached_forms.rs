// Every option of #[cached], on the return types and function shapes it accepts.
use cache_core::cached;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Server {
    id: i64,
    name: String,
}

#[cached(ttl = 600, key_prefix = "server")]
async fn get_server_details(server_id: i64) -> Option<Server> {
    Some(Server {
        id: server_id,
        name: String::new(),
    })
}

#[cached(ttl = 60, none_ttl = 5, key_prefix = "lookup")]
async fn lookup(name: &str) -> Option<u64> {
    name.parse().ok()
}

#[cached(key_prefix = "user")]
async fn load_user(id: u64) -> Result<String, std::io::Error> {
    Ok(id.to_string())
}

struct Pool;

#[cached(ttl = 30, key_prefix = "report", skip(pool), version = 2)]
async fn report(pool: &Pool, day: u32, region: String) -> Vec<u8> {
    let _ = pool;
    format!("{day}{region}").into_bytes()
}

fn build_key(user_id: &i64, include_deleted: &bool) -> String {
    format!("{user_id}:{include_deleted}")
}

#[cached(ttl = 300, key_prefix = "account", key_builder = build_key)]
async fn account(user_id: i64, include_deleted: bool) -> Option<String> {
    include_deleted.then(|| user_id.to_string())
}

#[cached(key_prefix = "shared", shared_keys, key_fns = false)]
async fn shared_a(id: u32) -> u32 {
    id
}

#[cached(key_prefix = "shared", shared_keys = true)]
async fn shared_b(id: u32) -> u32 {
    id + 1
}

#[cached(ttl = 10)]
async fn first<T>(items: Vec<T>) -> Option<T>
where
    T: cache_core::CacheKey + Serialize + serde::de::DeserializeOwned + Clone + Send + Sync,
{
    items.first().cloned()
}

struct Repo;

impl Repo {
    #[cached(ttl = 60, key_prefix = "repo")]
    async fn name(&self, id: u64) -> String {
        id.to_string()
    }
}

const TTL: u64 = 90;

#[cached(ttl = TTL, crate = "cache_core")]
async fn with_const(id: u8) -> u8 {
    id
}

fn main() {
    let _ = get_server_details(1);
    let _ = lookup("7");
    let _ = load_user(1);
    let _ = report(&Pool, 1, String::new());
    let _ = account(1, false);
    let _ = (shared_a(1), shared_b(1));
    let _ = first(vec![1u8]);
    let _ = Repo.name(1);
    let _ = with_const(1);
    // The key functions #[cached] generates beside a function without a receiver.
    let key: String = get_server_details__key(&1);
    let _ = (key, get_server_details__pattern(None), get_server_details__all());
}
