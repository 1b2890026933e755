//! Keys that cannot collide, and invalidations that name the function they invalidate.
//!
//! Each case is ordinary Rust that shared one cache entry before: generic functions whose type
//! parameter is not in the return type, const generics, a method of a generic `impl<T>`, and
//! methods of the same name on two types under one `key_prefix`. Then typed invalidation: the
//! pattern comes from the cached function's own key layout, so a `version` bump moves both.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::LazyLock;

use cache_core::{cached, invalidate_cache, Cache};
use integration_tests::RedisServer;

static SERVER: LazyLock<RedisServer> = LazyLock::new(|| RedisServer::start_for_env("2"));

async fn cache() -> Cache {
    LazyLock::force(&SERVER);
    let cache = cache_core::get_cache()
        .await
        .expect("the process-wide cache");
    assert_eq!(cache.backend_name(), "redis");
    cache
}

// ---------------------------------------------------------------------------------------------
// Generic functions.

trait Table {
    const NAME: &'static str;
}
struct Users;
struct Orders;
impl Table for Users {
    const NAME: &'static str = "users";
}
impl Table for Orders {
    const NAME: &'static str = "orders";
}

#[cached(ttl = 60, key_prefix = "ks")]
async fn table_name<T: Table>() -> String {
    T::NAME.to_owned()
}

/// `T` appears only in the body: `table_name::<Orders>()` returned the value cached for
/// `table_name::<Users>()`.
#[tokio::test]
async fn type_parameters_used_only_in_the_body_are_in_the_key() {
    let _cache = cache().await;
    assert_eq!(table_name::<Users>().await, "users");
    assert_eq!(table_name::<Orders>().await, "orders");
    assert_eq!(table_name::<Users>().await, "users");
    assert_eq!(table_name::<Orders>().await, "orders");
}

#[cached(ttl = 60, key_prefix = "ks")]
async fn top<const N: usize>() -> Vec<usize> {
    (0..N).collect()
}

#[tokio::test]
async fn const_generics_are_in_the_key() {
    let _cache = cache().await;
    assert_eq!(top::<3>().await.len(), 3);
    assert_eq!(top::<5>().await.len(), 5);
    assert_eq!(top::<3>().await.len(), 3);
}

struct Repo<T> {
    _table: std::marker::PhantomData<T>,
}

impl<T: Table + Sync> Repo<T> {
    #[cached(ttl = 60, key_prefix = "ks")]
    async fn describe(&self, id: u64) -> String {
        format!("{}#{id}", T::NAME)
    }
}

/// The impl's type parameter reaches the key through `Self`.
#[tokio::test]
async fn the_self_type_of_a_generic_impl_is_in_the_key() {
    let _cache = cache().await;
    let users = Repo::<Users> {
        _table: std::marker::PhantomData,
    };
    let orders = Repo::<Orders> {
        _table: std::marker::PhantomData,
    };
    assert_eq!(users.describe(1).await, "users#1");
    assert_eq!(orders.describe(1).await, "orders#1");
    assert_eq!(users.describe(1).await, "users#1");
}

struct Servers;
struct Volumes;

impl Servers {
    #[cached(ttl = 60, key_prefix = "inventory")]
    async fn count(&self) -> u64 {
        3
    }
}

impl Volumes {
    #[cached(ttl = 60, key_prefix = "inventory")]
    async fn count(&self) -> u64 {
        7
    }
}

/// Same-named methods of two types under one `key_prefix`.
#[tokio::test]
async fn methods_of_two_types_do_not_share_entries() {
    let _cache = cache().await;
    assert_eq!(Servers.count().await, 3);
    assert_eq!(Volumes.count().await, 7);
    assert_eq!(Servers.count().await, 3);
}

trait Catalog {
    async fn size() -> u64;
}

struct Books;

impl Catalog for Books {
    // A trait impl takes no extra functions: `key_fns = false` leaves them out.
    #[cached(ttl = 60, key_prefix = "ks_trait", key_fns = false)]
    async fn size() -> u64 {
        12
    }
}

#[tokio::test]
async fn associated_functions_of_trait_impls_can_do_without_key_functions() {
    let cache = cache().await;
    assert_eq!(Books::size().await, 12);
    assert_eq!(Books::size().await, 12);
    assert!(cache.exists("ks_trait:size").await.expect("exists"));
}

// ---------------------------------------------------------------------------------------------
// Typed invalidation.

static SERVER_RUNS: AtomicU64 = AtomicU64::new(0);

#[cached(ttl = 600, key_prefix = "ks_typed", version = 2)]
async fn get_server(id: i64, region: String) -> String {
    SERVER_RUNS.fetch_add(1, SeqCst);
    format!("server {id} in {region}")
}

#[invalidate_cache(get_server(id, region))]
async fn rename_server(id: i64, region: String) -> Result<(), String> {
    let _ = (id, region);
    Ok(())
}

#[invalidate_cache(get_server(id, _))]
async fn rename_everywhere(id: i64) {
    let _ = id;
}

#[invalidate_cache(get_server(..))]
async fn reset_servers() {}

/// The generated key function gives the key the function uses, version and escaping included.
#[tokio::test]
async fn the_generated_key_function_matches_the_stored_key() {
    let cache = cache().await;
    get_server(1, "eu:west".into()).await;
    let key = get_server__key(&1, &"eu:west".to_owned());
    assert_eq!(key, "ks_typed:get_server:v2:1:eu\\:west");
    assert!(cache.exists(&key).await.expect("exists"));
}

/// `get_server(id, region)` deletes exactly that entry; `get_server(id, _)` every region of
/// one id; `get_server(..)` all of them.
#[tokio::test]
async fn typed_invalidation_deletes_what_it_names() {
    let cache = cache().await;
    let key = |id: i64, region: &str| get_server__key(&id, &region.to_owned());
    for (id, region) in [(10, "a"), (10, "b*"), (11, "a")] {
        get_server(id, region.into()).await;
        assert!(cache.exists(&key(id, region)).await.expect("exists"));
    }
    rename_server(10, "b*".into()).await.expect("rename");
    assert!(!cache.exists(&key(10, "b*")).await.expect("exists"));
    assert!(
        cache.exists(&key(10, "a")).await.expect("exists"),
        "`*` in a value is literal"
    );

    get_server(10, "b*".into()).await;
    rename_everywhere(10).await;
    assert!(!cache.exists(&key(10, "a")).await.expect("exists"));
    assert!(!cache.exists(&key(10, "b*")).await.expect("exists"));
    assert!(cache.exists(&key(11, "a")).await.expect("exists"));

    reset_servers().await;
    assert!(!cache.exists(&key(11, "a")).await.expect("exists"));
}

/// The keys of a generic function carry its type; the key function takes the same turbofish.
#[tokio::test]
async fn generic_key_functions_take_the_type() {
    let cache = cache().await;
    table_name::<Orders>().await;
    let orders = table_name__key::<Orders>();
    assert_ne!(orders, table_name__key::<Users>());
    assert!(orders.starts_with("ks:table_name:<"), "{orders}");
    assert!(cache.exists(&orders).await.expect("exists"));
}

/// This binary's own key spaces and patterns are sound: the one-line test users add.
#[test]
fn cache_key_spaces_are_sound() {
    cache_core::registry::verify().unwrap();
}
