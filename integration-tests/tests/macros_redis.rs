//! `#[cached]` and `#[invalidate_cache]` against a real redis-server: what is cached for each
//! return type, the exact keys, every function form, expiry and invalidation.
//!
//! Each test uses its own functions and key prefixes, so the tests of this binary can share the
//! process-wide cache and run in parallel. Counters are the number of times a body ran.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cache_core::{cached, invalidate_cache, CacheConfig, CacheError, CacheKey};
use integration_tests::{RedisServer, Reply};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// One server for the binary's tests, which share the process-wide cache on it.
static SERVER: LazyLock<RedisServer> = LazyLock::new(RedisServer::start);

/// The process-wide cache's configuration: every test passes an equal one to `init`, which
/// returns the cache the first call set up.
fn config_for(server: &RedisServer) -> CacheConfig {
    CacheConfig::builder().url(server.url()).build().unwrap()
}

fn exists(key: &str) -> bool {
    SERVER.command(&[b"EXISTS", key.as_bytes()]) == Reply::Integer(1)
}

fn keys(pattern: &str) -> Vec<String> {
    let Reply::Array(Some(items)) = SERVER.command(&[b"KEYS", pattern.as_bytes()]) else {
        panic!("KEYS failed");
    };
    let mut keys: Vec<String> = items
        .into_iter()
        .map(|r| match r {
            Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    keys.sort();
    keys
}

fn pttl(key: &str) -> i64 {
    match SERVER.command(&[b"PTTL", key.as_bytes()]) {
        Reply::Integer(n) => n,
        other => panic!("{other:?}"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Server {
    id: i64,
    name: String,
}

static SERVER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Doc comments and attributes stay on the function.
#[cached(ttl = 600, key_prefix = "server")]
#[allow(clippy::needless_pass_by_value)]
pub(crate) async fn get_server_details(server_id: i64) -> Option<Server> {
    SERVER_RUNS.fetch_add(1, SeqCst);
    (server_id > 0).then(|| Server {
        id: server_id,
        name: format!("srv-{server_id}"),
    })
}

#[tokio::test]
async fn option_caches_some_under_the_documented_key_and_not_none() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    let first = get_server_details(123).await;
    let second = get_server_details(123).await;
    assert_eq!(first, second);
    assert_eq!(first.unwrap().name, "srv-123");
    assert_eq!(SERVER_RUNS.load(SeqCst), 1, "the second call is a hit");
    assert!(exists("server:get_server_details:123"));
    let ttl = pttl("server:get_server_details:123");
    assert!(ttl > 590_000 && ttl <= 600_000, "{ttl}");

    assert_eq!(get_server_details(-1).await, None);
    assert_eq!(get_server_details(-1).await, None);
    assert_eq!(SERVER_RUNS.load(SeqCst), 3, "None is not cached");
    assert!(!exists("server:get_server_details:-1"));
}

static NEGATIVE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 600, none_ttl = 1)]
async fn find_user(name: &str) -> Option<u32> {
    NEGATIVE_RUNS.fetch_add(1, SeqCst);
    (name == "alice").then_some(1)
}

#[tokio::test]
async fn none_ttl_caches_none_for_a_short_time() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    assert_eq!(find_user("nobody").await, None);
    assert_eq!(find_user("nobody").await, None);
    assert_eq!(
        NEGATIVE_RUNS.load(SeqCst),
        1,
        "None is cached with none_ttl"
    );
    let ttl = pttl("find_user:nobody");
    assert!(ttl > 0 && ttl <= 1000, "{ttl}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(find_user("nobody").await, None);
    assert_eq!(NEGATIVE_RUNS.load(SeqCst), 2, "expired");
    assert_eq!(find_user("alice").await, Some(1));
    assert!(pttl("find_user:alice") > 1000);
}

#[derive(Debug, Clone, PartialEq)]
struct DbError(String);

impl From<CacheError> for DbError {
    fn from(e: CacheError) -> Self {
        DbError(e.to_string())
    }
}

static RESULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "res")]
async fn checked_div(a: i64, b: i64) -> Result<i64, DbError> {
    RESULT_RUNS.fetch_add(1, SeqCst);
    if b == 0 {
        return Err(DbError("division by zero".into()));
    }
    Ok(a / b)
}

mod aliases {
    use super::*;
    pub type Result<T> = std::result::Result<T, String>;

    pub static RUNS: AtomicUsize = AtomicUsize::new(0);

    #[cached(ttl = 60, key_prefix = "alias")]
    pub async fn parse(text: String) -> Result<u8> {
        RUNS.fetch_add(1, SeqCst);
        let n = text.parse::<u8>().map_err(|e| e.to_string())?;
        Ok(n)
    }

    #[cached(ttl = 60, key_prefix = "alias")]
    pub async fn read(path: &str) -> std::io::Result<String> {
        RUNS.fetch_add(1, SeqCst);
        std::fs::read_to_string(path)
    }
}

#[tokio::test]
async fn result_caches_ok_only_including_aliases() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    assert_eq!(checked_div(10, 2).await, Ok(5));
    assert_eq!(checked_div(10, 2).await, Ok(5));
    assert_eq!(RESULT_RUNS.load(SeqCst), 1);
    assert!(exists("res:checked_div:10:2"));
    assert!(checked_div(1, 0).await.is_err());
    assert!(checked_div(1, 0).await.is_err());
    assert_eq!(RESULT_RUNS.load(SeqCst), 3, "errors are not cached");
    assert!(!exists("res:checked_div:1:0"));

    assert_eq!(aliases::parse("7".into()).await, Ok(7));
    assert_eq!(aliases::parse("7".into()).await, Ok(7));
    assert!(aliases::parse("x".into()).await.is_err());
    assert!(aliases::read("/nonexistent/file").await.is_err());
    assert!(aliases::read("/nonexistent/file").await.is_err());
    assert_eq!(aliases::RUNS.load(SeqCst), 4);
    assert_eq!(keys("alias:*"), ["alias:parse:7"]);
}

static PLAIN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60)]
async fn trending(limit: usize) -> Vec<String> {
    PLAIN_RUNS.fetch_add(1, SeqCst);
    (0..limit).map(|i| format!("post-{i}")).collect()
}

static EXPIRY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 1)]
async fn short_lived(id: u8) -> u8 {
    EXPIRY_RUNS.fetch_add(1, SeqCst);
    id
}

#[tokio::test]
async fn plain_values_are_cached_as_they_are_and_expire() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    assert_eq!(trending(3).await.len(), 3);
    assert_eq!(trending(3).await, ["post-0", "post-1", "post-2"]);
    assert_eq!(trending(0).await, Vec::<String>::new());
    assert_eq!(trending(0).await, Vec::<String>::new());
    assert_eq!(PLAIN_RUNS.load(SeqCst), 2, "empty values are values");

    assert_eq!(short_lived(1).await, 1);
    assert_eq!(short_lived(1).await, 1);
    assert_eq!(EXPIRY_RUNS.load(SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!exists("short_lived:1"));
    assert_eq!(short_lived(1).await, 1);
    assert_eq!(EXPIRY_RUNS.load(SeqCst), 2);
}

struct Repo {
    name: String,
    runs: AtomicUsize,
}

impl Repo {
    #[cached(ttl = 60, key_prefix = "repo")]
    async fn by_ref(&self, id: u32) -> String {
        self.runs.fetch_add(1, SeqCst);
        format!("{}-{id}", self.name)
    }

    #[cached(ttl = 60, key_prefix = "repo")]
    async fn by_mut(&mut self, id: u32) -> u32 {
        self.name.push('!');
        id * 2
    }

    #[cached(ttl = 60, key_prefix = "repo")]
    async fn by_arc(self: Arc<Self>, id: u32) -> u32 {
        self.runs.fetch_add(1, SeqCst);
        id + 1
    }

    /// An associated function (no receiver).
    #[cached(ttl = 60, key_prefix = "repo")]
    pub async fn associated(id: u32) -> Option<Self> {
        let _ = id;
        None::<Repo>
    }
}

impl Serialize for Repo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.name.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Repo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Repo {
            name: String::deserialize(d)?,
            runs: AtomicUsize::new(0),
        })
    }
}

trait Lookup {
    async fn lookup(&self, id: u64) -> Option<String>;
}

impl Lookup for Repo {
    #[cached(ttl = 60, key_prefix = "trait")]
    async fn lookup(&self, id: u64) -> Option<String> {
        self.runs.fetch_add(1, SeqCst);
        Some(format!("{}#{id}", self.name))
    }
}

#[tokio::test]
async fn methods_leave_the_receiver_out_of_the_key() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    let a = Repo {
        name: "a".into(),
        runs: AtomicUsize::new(0),
    };
    let b = Repo {
        name: "b".into(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(a.by_ref(1).await, "a-1");
    assert_eq!(
        b.by_ref(1).await,
        "a-1",
        "the receiver is not part of the key"
    );
    assert_eq!(a.runs.load(SeqCst) + b.runs.load(SeqCst), 1);
    // The receiver's value is not in the key; its type is.
    assert!(exists("repo:by_ref:<macros_redis\\:\\:Repo>:1"));

    let mut c = Repo {
        name: "c".into(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(c.by_mut(4).await, 8);
    assert_eq!(c.by_mut(4).await, 8);
    assert_eq!(c.name, "c!", "the second call did not run the body");

    let d = Arc::new(Repo {
        name: "d".into(),
        runs: AtomicUsize::new(0),
    });
    assert_eq!(d.clone().by_arc(1).await, 2);
    assert_eq!(d.clone().by_arc(1).await, 2);
    assert_eq!(d.runs.load(SeqCst), 1);
    assert!(Repo::associated(1).await.is_none());

    assert_eq!(d.lookup(9).await.as_deref(), Some("d#9"));
    assert_eq!(a.lookup(9).await.as_deref(), Some("d#9"));
    assert_eq!(d.runs.load(SeqCst), 2);
    assert!(exists("trait:lookup:<macros_redis\\:\\:Repo>:9"));
}

static GENERIC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "gen")]
async fn load<T: Default + Serialize + DeserializeOwned>(id: u32) -> T {
    let _ = id;
    GENERIC_RUNS.fetch_add(1, SeqCst);
    T::default()
}

#[cached(ttl = 60, key_prefix = "gen")]
async fn describe<K: CacheKey + std::fmt::Debug>(key: K) -> String {
    GENERIC_RUNS.fetch_add(1, SeqCst);
    format!("{key:?}")
}

#[tokio::test]
async fn generic_functions_key_on_the_return_type() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    assert_eq!(load::<u64>(1).await, 0);
    assert_eq!(load::<String>(1).await, "");
    assert_eq!(load::<u64>(1).await, 0);
    assert_eq!(
        GENERIC_RUNS.load(SeqCst),
        2,
        "u64 and String are two entries"
    );
    assert_eq!(
        keys("gen:load:*"),
        [
            "gen:load:<alloc\\:\\:string\\:\\:String>:1",
            "gen:load:<u64>:1"
        ]
    );
    assert_eq!(describe(5u8).await, "5");
    assert_eq!(describe("x").await, "\"x\"");
    assert_eq!(describe(5u8).await, "5");
    assert_eq!(GENERIC_RUNS.load(SeqCst), 4);
}

static ARG_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "args")]
async fn refs(name: &str, bytes: &[u8], tag: impl CacheKey + Send, _: u8) -> usize {
    let _ = tag;
    ARG_RUNS.fetch_add(1, SeqCst);
    name.len() + bytes.len()
}

#[cached(ttl = 60, key_prefix = "args")]
async fn pair(a: &str, b: &str) -> String {
    ARG_RUNS.fetch_add(1, SeqCst);
    format!("{a}|{b}")
}

#[tokio::test]
async fn reference_and_impl_trait_arguments_with_escaped_keys() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    assert_eq!(refs("ab", &[1, 2, 3], Some(7u8), 1).await, 5);
    assert_eq!(refs("ab", &[1, 2, 3], Some(7u8), 2).await, 5);
    assert_eq!(ARG_RUNS.load(SeqCst), 1, "`_` arguments are not in the key");
    assert!(exists("args:refs:ab:[1,2,3]:7"));

    // Injective: a `:` in a value cannot move the boundary between parts.
    assert_eq!(pair("a:b", "c").await, "a:b|c");
    assert_eq!(pair("a", "b:c").await, "a|b:c");
    assert_eq!(ARG_RUNS.load(SeqCst), 3);
    assert!(exists("args:pair:a\\:b:c"));
    assert!(exists("args:pair:a:b\\:c"));
}

fn user_key(user_id: &i64, include_deleted: &bool) -> String {
    format!("{user_id}/{include_deleted}")
}

struct Pool;

static BUILDER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60, key_prefix = "user", key_builder = user_key, skip(pool))]
async fn get_user(pool: &Pool, user_id: i64, include_deleted: bool) -> Option<String> {
    let _ = pool;
    BUILDER_RUNS.fetch_add(1, SeqCst);
    Some(format!("u{user_id}{include_deleted}"))
}

#[cached(ttl = 60, key_prefix = "user", skip(pool), version = 2)]
async fn get_profile(pool: &Pool, user_id: i64) -> Option<String> {
    let _ = pool;
    BUILDER_RUNS.fetch_add(1, SeqCst);
    Some(format!("p{user_id}"))
}

extern crate cache_core as my_cache;

#[my_cache::cached(crate = "my_cache", ttl = 60, key_prefix = "renamed")]
async fn through_a_renamed_crate(id: u8) -> u8 {
    id
}

#[tokio::test]
async fn key_builder_skip_version_and_crate() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    assert_eq!(get_user(&Pool, 5, true).await.as_deref(), Some("u5true"));
    assert_eq!(get_user(&Pool, 5, true).await.as_deref(), Some("u5true"));
    assert_eq!(BUILDER_RUNS.load(SeqCst), 1);
    assert!(exists("user:5/true"));
    assert_eq!(get_profile(&Pool, 5).await.as_deref(), Some("p5"));
    assert!(exists("user:get_profile:v2:5"));
    assert_eq!(through_a_renamed_crate(3).await, 3);
    assert!(exists("renamed:through_a_renamed_crate:3"));
}

static INV_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 600, key_prefix = "inv")]
async fn inv_server(server_id: i64) -> Option<i64> {
    INV_RUNS.fetch_add(1, SeqCst);
    Some(server_id)
}

#[cached(ttl = 600, key_prefix = "inv")]
async fn inv_tagged(tag: &str) -> String {
    INV_RUNS.fetch_add(1, SeqCst);
    tag.to_owned()
}

#[invalidate_cache("inv:inv_server:{server_id}")]
async fn update_server(server_id: i64, fail: bool) -> Result<(), DbError> {
    if fail {
        return Err(DbError("rejected".into()));
    }
    Ok(())
}

#[invalidate_cache("inv:inv_tagged:{tag}*")]
async fn retag(tag: &str) {}

#[invalidate_cache("inv:*", "other:*")]
async fn reset_all() -> Option<()> {
    None
}

#[tokio::test]
async fn invalidation_after_success_with_placeholders() {
    cache_core::init(config_for(&SERVER)).await.unwrap();
    for id in [1, 2] {
        inv_server(id).await;
    }
    assert!(exists("inv:inv_server:1") && exists("inv:inv_server:2"));

    // Never after an error.
    assert!(update_server(1, true).await.is_err());
    assert!(exists("inv:inv_server:1"));
    // After Ok: exactly the interpolated key.
    assert_eq!(update_server(1, false).await, Ok(()));
    assert!(!exists("inv:inv_server:1"));
    assert!(exists("inv:inv_server:2"));

    // A value with glob characters matches only itself once interpolated.
    for tag in ["*", "a", "ab", "[a]"] {
        inv_tagged(tag).await;
    }
    retag("*").await;
    assert_eq!(
        keys("inv:inv_tagged:*"),
        [
            "inv:inv_tagged:[a\\]",
            "inv:inv_tagged:a",
            "inv:inv_tagged:ab"
        ]
    );
    retag("a").await;
    assert_eq!(keys("inv:inv_tagged:*"), ["inv:inv_tagged:[a\\]"]);

    // Several patterns; an Option return always counts as success.
    reset_all().await;
    assert!(keys("inv:*").is_empty());
}
