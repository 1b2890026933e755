//! The attributes of `cache-core`: [`macro@cached`] and [`macro@invalidate_cache`].
//!
//! Use them through `cache_core` (`use cache_core::{cached, invalidate_cache};`), which re-exports
//! them and pins this crate's exact version. Each attribute is parsed (`attr.rs`), validated into a
//! plain config with every mistake reported at once (`valid/`), and expanded (`expand.rs`) into
//! calls to `cache_core::__private`, so the runtime can change without touching the expansion.
//! The guide's chapter on the macros (`docs/src/macros.md`) shows a full expansion.
#![deny(missing_docs)]

mod attr;
mod expand;
mod sig;
mod valid;

use proc_macro::TokenStream;

/// Caches the result of an `async fn` in Redis, keyed by its arguments.
///
/// ```no_run
/// use cache_core::cached;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Server;
/// # struct Db;
/// # impl Db { async fn server(&self, _id: i64) -> Option<Server> { None } }
///
/// #[cached(ttl = 600, key_prefix = "server", skip(db))]
/// async fn get_server_details(db: &Db, server_id: i64) -> Option<Server> {
///     db.server(server_id).await
/// }
/// ```
///
/// # What it does
///
/// The signature stays exactly as written; only the body is wrapped. The function above behaves
/// like this hand-written code (minus single-flight, error routing and the `CACHE_ENABLED` switch,
/// which `cache_core::__private::cached` adds):
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Server;
/// # struct Db;
/// # impl Db { async fn server(&self, _id: i64) -> Option<Server> { None } }
/// use std::time::Duration;
///
/// async fn get_server_details(db: &Db, server_id: i64) -> Option<Server> {
///     let key = format!("server:get_server_details:{}", cache_core::CacheKey::to_key(&server_id));
///     let cache = cache_core::get_cache().await.ok()?;
///     if let Ok(Some(hit)) = cache.get::<Option<Server>>(&key).await {
///         return hit;                                   // hit: no body
///     }
///     let value = db.server(server_id).await;           // miss: run the body once
///     if value.is_some() {
///         let _ = cache.set(&key, &value, Some(Duration::from_secs(600))).await;
///     }
///     value
/// }
/// ```
///
/// # The key
///
/// `{key_prefix}:{fn_name}:{arg}:{arg}...`, or `{fn_name}:{arg}...` without `key_prefix`. Each
/// argument is written by `cache_core::CacheKey`, escaped so that two argument lists never share a
/// key (`f("a:b", "c")` and `f("a", "b:c")` differ). `_` arguments are never part of it. A
/// generic function or a method adds a segment after the head naming the concrete `Self` type
/// (methods), each type parameter's type and each const parameter's value, so
/// `load::<User>(1)` and `load::<Post>(1)`, `top::<10>()` and `top::<100>()`, or `Users::count`
/// and `Posts::count` never share an entry.
///
/// # Key functions
///
/// Beside a function without a receiver it generates `{name}__key(&arg, ...)` (the key),
/// `{name}__pattern(Option<&arg>, ...)` (a glob, `None` for any value; not with `key_builder`)
/// and `{name}__all()` (a glob of all its keys), with the function's visibility and generics.
/// `#[invalidate_cache(name(args))]` calls them. It also registers the key space in
/// `cache_core::registry`.
///
/// # Return types
///
/// - `Result<T, E>` (also `io::Result<T>`, `anyhow::Result<T>` and other aliases named `Result`):
///   `Ok` values are cached, errors never.
/// - `Option<T>`: `Some` is cached; `None` only with `none_ttl`.
/// - anything else is cached as it is.
///
/// The cached value must be `Serialize + DeserializeOwned`; the compiler says so at the return
/// type when it is not.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `ttl = 600` | seconds; an integer literal or a `const` expression of type `u64`; omitted: `CACHE_TTL_DEFAULT` |
/// | `key_prefix = "user"` | first key segment; omitted: the function's name |
/// | `key_builder = path` | a function taking `&` each key argument in order, returning anything `Display`; the key is `{key_prefix}:{output}` |
/// | `skip(a, b)` | leave arguments out of the key (pools, clients, contexts) |
/// | `version = 2` | a new key space (`{prefix}:{fn}:v2:...`) when the value's shape changes |
/// | `shared_keys` | another function shares this key space on purpose (see `cache_core::registry`) |
/// | `key_fns = false` | no key functions beside it (needed for an associated fn without a receiver in a trait impl) |
/// | `none_ttl = 30` | also cache `None` (for `Option` returns), for this many seconds |
/// | `crate = "path"` | where `cache_core` is, when it is re-exported under another name |
///
/// `ttl` as a constant:
///
/// ```no_run
/// use cache_core::cached;
/// const FIVE_MINUTES: u64 = 5 * 60;
///
/// #[cached(ttl = FIVE_MINUTES)]
/// async fn exchange_rate(from: &str, to: &str) -> f64 {
///     1.1
/// }
/// ```
///
/// `key_builder`, here with `skip` (the builder gets the remaining arguments):
///
/// ```no_run
/// use cache_core::cached;
/// # struct Pool;
///
/// fn user_key(user_id: &i64, include_deleted: &bool) -> String {
///     format!("{user_id}/{}", if *include_deleted { "all" } else { "live" })
/// }
///
/// #[cached(ttl = 300, key_prefix = "user", key_builder = user_key, skip(pool))]
/// async fn get_user(pool: &Pool, user_id: i64, include_deleted: bool) -> Option<String> {
///     Some(format!("user {user_id}"))
/// }
/// ```
///
/// `version`, `none_ttl` and a method (the receiver is never in the key):
///
/// ```no_run
/// use cache_core::cached;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Profile;
/// struct Repo;
///
/// impl Repo {
///     #[cached(ttl = 3600, version = 2, none_ttl = 30)]
///     pub async fn profile(&self, handle: &str) -> Option<Profile> {
///         None
///     }
/// }
/// ```
///
/// `crate`, for a library that re-exports `cache_core` (here as `my_cache`):
///
/// ```no_run
/// # extern crate cache_core as my_cache;
/// use my_cache::cached;
///
/// #[cached(crate = "my_cache", ttl = 60)]
/// async fn answer() -> u32 {
///     42
/// }
/// ```
///
/// # Single flight and failures
///
/// Concurrent callers of one cold key in one process wait for a single run of the body. If
/// Redis fails, the body still runs and its value is returned (`CACHE_FAIL_SILENTLY=true`, the
/// default). With `CACHE_FAIL_SILENTLY=false`, a function returning `Result<T, E>` where
/// `E: From<CacheError>` returns the error; other functions log it and return the computed value.
/// With `CACHE_ENABLED=false` the body is called directly.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), item.into()).into()
}

/// Deletes cached entries after the function succeeds.
///
/// Name the cached function and its key arguments (`_` for any value, `..` for every key):
///
/// ```no_run
/// use cache_core::{cached, invalidate_cache};
///
/// #[cached(ttl = 600, key_prefix = "server")]
/// async fn get_server(id: i64) -> Option<String> {
///     Some(id.to_string())
/// }
///
/// #[invalidate_cache(get_server(id))]
/// async fn rename_server(id: i64, name: String) -> Result<(), String> {
///     Ok(())
/// }
/// ```
///
/// The key comes from `get_server__key`, generated by `#[cached]`: a typo, a rename or a changed
/// key argument fails the build. Or give Redis glob patterns:
///
/// ```no_run
/// use cache_core::invalidate_cache;
/// # #[derive(Debug)] struct DbError;
/// # impl From<cache_core::CacheError> for DbError { fn from(_: cache_core::CacheError) -> Self { DbError } }
///
/// #[invalidate_cache("server:get_server_details:{server_id}", "trending:*")]
/// async fn update_server(server_id: i64, name: String) -> Result<(), DbError> {
///     Ok(())
/// }
/// ```
///
/// The patterns are deleted after the body returns `Ok` (for `Result`) or after it returns at all
/// (any other type); never after an `Err`. The function above behaves like:
///
/// ```no_run
/// # #[derive(Debug)] struct DbError;
/// async fn update_server(server_id: i64, name: String) -> Result<(), DbError> {
///     let exact = format!("server:get_server_details:{}", cache_core::CacheKey::to_key(&server_id));
///     let result: Result<(), DbError> = async move { Ok(()) }.await;
///     if result.is_ok() {
///         if let Ok(cache) = cache_core::get_cache().await {
///             let _ = cache.delete([exact]).await;              // no glob: one UNLINK
///             let _ = cache.clear_pattern("trending:*").await;  // SCAN + UNLINK
///         }
///     }
///     result
/// }
/// ```
///
/// # Patterns
///
/// - Redis glob syntax (`*`, `?`, `[abc]`, `\` escapes), checked at compile time.
/// - `{arg}` is replaced by that argument's key encoding, glob-escaped, so a value such as `"*"`
///   can only ever match itself. `{{` and `}}` are literal braces.
/// - A pattern without glob characters is one key: it is deleted directly, without a scan.
/// - A pattern matching everything (`"*"`) is refused unless `allow_all = true` is given; one
///   spanning several functions' key spaces is reported by `cache_core::registry::verify`.
///
/// # Options
///
/// `allow_all = true` permits a pattern that matches every key or spans several key spaces;
/// `crate = "path"` as for [`macro@cached`].
///
/// ```no_run
/// use cache_core::invalidate_cache;
///
/// #[invalidate_cache("*", allow_all = true)]
/// async fn reset_everything() {}
/// ```
#[proc_macro_attribute]
pub fn invalidate_cache(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::invalidate(args.into(), item.into()).into()
}

/// The guide's chapter on the macros, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/src/macros.md")]
#[allow(dead_code)]
struct MacrosGuide;
