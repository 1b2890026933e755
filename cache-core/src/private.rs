//! What `#[cached]` and `#[invalidate_cache]` expand to: the only items generated code names
//! (as `cache_core::__private::...`). Not a public API; it changes with the macros, which
//! `cache-core` pins to its exact version.
//!
//! Each annotated function expands to a few lines: build the key ([`KeyBuf`]), then [`cached`],
//! or build the patterns ([`PatternBuf`]), run the body and [`invalidate`]. Both delegate to the
//! policy layer (the read-through and the invalidation that `Cache` offers too); what is here is
//! only how a return type meets the cache ([`CacheMode`], [`Success`]) and where a cache error
//! goes ([`Route`]).

use std::borrow::Cow;
use std::fmt::{Display, Write as _};
use std::future::Future;
use std::marker::PhantomData;

use cache_keys::key::SEPARATOR;
use cache_keys::{pattern, space};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::policy::Cacheable;
use crate::telemetry::At;
use crate::{cache::Cache, error::CacheError};

pub use crate::key::CacheKey;
pub use crate::registry::{InvalidationEntry, KeySpaceDecl};
pub use core::any::type_name;
pub use inventory;
pub use std::string::String;
pub use std::time::Duration;

/// A `ttl`/`none_ttl` in seconds, checked where the macro evaluates it in a `const`: zero fails
/// the build with this message.
pub const fn seconds(seconds: u64) -> u64 {
    assert!(
        seconds > 0,
        "a ttl of 0 seconds would expire entries at once: give at least 1"
    );
    seconds
}

/// Builds a key in one pre-sized buffer: `{head}:{part}:{part}...`.
#[derive(Debug)]
pub struct KeyBuf {
    buf: String,
}

impl KeyBuf {
    /// Starts a key with its constant head (`{key_prefix}:{fn_name}[:v{N}]`).
    #[inline]
    pub fn new(head: &str, capacity: usize) -> Self {
        let mut buf = String::with_capacity(capacity.max(head.len()) + 8);
        buf.push_str(head);
        KeyBuf { buf }
    }

    /// Appends one argument's key part.
    #[inline]
    pub fn part<T: CacheKey + ?Sized>(&mut self, value: &T) {
        self.buf.push(SEPARATOR);
        value.write_key(&mut self.buf);
    }

    /// Appends the generics segment: the concrete `Self` type of a method, then the type names
    /// of the type parameters and the values of the const parameters, `:<app\:\:Repo,10>`.
    pub fn generics(&mut self, items: &[&dyn Display]) {
        space::push_generics(&mut self.buf, items);
    }

    /// Appends a `key_builder`'s output, as it is.
    #[inline]
    pub fn display<D: Display + ?Sized>(&mut self, value: &D) {
        self.buf.push(SEPARATOR);
        // Writing to a String cannot fail.
        let _ = write!(self.buf, "{value}");
    }

    /// The finished key, ready for the backend.
    #[inline]
    pub fn finish(self) -> String {
        self.buf
    }
}

/// Builds an invalidation pattern: glob text as written, arguments key-encoded then glob-escaped
/// (so a value holding `*` matches only itself).
#[derive(Debug)]
pub struct PatternBuf {
    buf: String,
    scratch: String,
}

impl PatternBuf {
    /// An empty pattern with room for `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        PatternBuf {
            buf: String::with_capacity(capacity),
            scratch: String::new(),
        }
    }

    /// Appends glob text, checked at compile time.
    pub fn text(&mut self, text: &str) {
        self.buf.push_str(text);
    }

    /// Appends an argument: its key part, glob-escaped.
    pub fn arg<T: CacheKey + ?Sized>(&mut self, value: &T) {
        self.scratch.clear();
        value.write_key(&mut self.scratch);
        pattern::push_escaped(&mut self.buf, &self.scratch);
    }

    /// Appends key text (written by a [`KeyBuf`]), glob-escaped.
    pub fn key_text(&mut self, text: &str) {
        pattern::push_escaped(&mut self.buf, text);
    }

    /// Appends the generics segment (see [`KeyBuf::generics`]), glob-escaped.
    pub fn generics(&mut self, items: &[&dyn Display]) {
        self.scratch.clear();
        space::push_generics(&mut self.scratch, items);
        pattern::push_escaped(&mut self.buf, &self.scratch);
    }

    /// The finished glob, ready for `clear_pattern` (or a direct delete when it has no glob
    /// syntax).
    pub fn finish(self) -> String {
        self.buf
    }
}

/// A key as a pattern that matches only that key (for `#[invalidate_cache(get_user(id))]`).
pub fn exact(key: &str) -> String {
    pattern::escape(key)
}

/// What a return value means for the cache.
#[derive(Debug)]
pub enum Store<'a, S> {
    /// Cache this, for the `ttl`.
    Value(&'a S),
    /// Cache this only with `none_ttl`, for that long (a `None`).
    Negative(&'a S),
    /// Do not cache (an `Err`).
    Skip,
}

/// How a return type `R` maps onto a stored value; the macro picks the mode from the return
/// type's last path segment.
#[diagnostic::on_unimplemented(
    message = "#[cached] took `{R}` for a `Result` (or an `Option`) because of its name, but it is not one",
    note = "rename the type, or wrap the function: only `Result<T, E>` and `Option<T>` get special treatment"
)]
pub trait CacheMode<R> {
    /// What goes into the cache.
    type Stored;
    /// What to store for `ret`.
    fn store(ret: &R) -> Store<'_, Self::Stored>;
    /// The return value for a stored value.
    fn load(stored: Self::Stored) -> R;
}

/// Whether a return value is a success, after which `#[invalidate_cache]` deletes.
pub trait Success<R> {
    /// True when invalidation should run.
    fn succeeded(ret: &R) -> bool;
}

/// `Result<T, E>`: `Ok(T)` is stored as `T`; errors are never stored, and never invalidate.
#[derive(Debug)]
pub struct ResultMode;

/// `Option<T>`: stored as the `Option`, `None` only with `none_ttl`.
#[derive(Debug)]
pub struct OptionMode;

/// Anything else: stored as it is; always a success.
#[derive(Debug)]
pub struct PlainMode;

impl<T, E> CacheMode<Result<T, E>> for ResultMode {
    type Stored = T;
    fn store(ret: &Result<T, E>) -> Store<'_, T> {
        match ret {
            Ok(value) => Store::Value(value),
            Err(_) => Store::Skip,
        }
    }
    fn load(stored: T) -> Result<T, E> {
        Ok(stored)
    }
}

impl<T> CacheMode<Option<T>> for OptionMode {
    type Stored = Option<T>;
    fn store(ret: &Option<T>) -> Store<'_, Option<T>> {
        match ret {
            Some(_) => Store::Value(ret),
            None => Store::Negative(ret),
        }
    }
    fn load(stored: Option<T>) -> Option<T> {
        stored
    }
}

impl<R> CacheMode<R> for PlainMode {
    type Stored = R;
    fn store(ret: &R) -> Store<'_, R> {
        Store::Value(ret)
    }
    fn load(stored: R) -> R {
        stored
    }
}

impl<T, E> Success<Result<T, E>> for ResultMode {
    fn succeeded(ret: &Result<T, E>) -> bool {
        ret.is_ok()
    }
}

impl<R> Success<R> for PlainMode {
    fn succeeded(_: &R) -> bool {
        true
    }
}

/// What a cache error becomes when failing loudly: `Some(return value)` to return it instead,
/// `None` to log it and go on with the computed value.
pub type Route<R> = fn(CacheError) -> Option<R>;

/// Chooses a [`Route`] for `R` by autoref specialization: `(&&ErrorRoute::<R>::new()).route()`
/// finds [`RouteViaFrom`] for `Result<T, E>` with `E: From<CacheError>` and [`RouteViaLog`]
/// otherwise. Resolved in the caller's crate, where the types are concrete.
#[derive(Debug)]
pub struct ErrorRoute<R>(PhantomData<fn() -> R>);

impl<R> ErrorRoute<R> {
    /// A selector to call `.route()` on (through `&&`, so that the `From` impl wins when it
    /// applies).
    pub const fn new() -> Self {
        ErrorRoute(PhantomData)
    }
}

impl<R> Default for ErrorRoute<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// The route for `Result<T, E>` where `E: From<CacheError>`: the error is returned.
pub trait RouteViaFrom<R> {
    /// A function that turns a cache error into `Some(Err(E::from(error)))`.
    fn route(&self) -> Route<R>;
}

/// The route for everything else: the error is logged.
pub trait RouteViaLog<R> {
    /// [`log_only`]: the error is logged by the caller and the computed value returned.
    fn route(&self) -> Route<R>;
}

impl<T, E: From<CacheError>> RouteViaFrom<Result<T, E>> for &ErrorRoute<Result<T, E>> {
    fn route(&self) -> Route<Result<T, E>> {
        |error| Some(Err(E::from(error)))
    }
}

impl<R> RouteViaLog<R> for ErrorRoute<R> {
    fn route(&self) -> Route<R> {
        log_only
    }
}

/// The route that never replaces the return value.
pub fn log_only<R>(_: CacheError) -> Option<R> {
    None
}

/// The process-wide cache, without waiting once it is set up. Borrowed once it exists: no
/// reference count to bump on a shared cache line on every call.
async fn global_cache() -> Result<Cow<'static, Cache>, CacheError> {
    match crate::global::initialized() {
        Some(cache) => Ok(Cow::Borrowed(cache)),
        None => crate::global::get_cache().await.map(Cow::Owned),
    }
}

/// Applies `route` to a failure: the replacement return value, or `None` after logging it
/// with the key space it concerns (never a key: it may hold personal data).
fn fail<R>(route: Route<R>, space: &str, what: &str, error: CacheError) -> Option<R> {
    match route(error.clone()) {
        Some(ret) => Some(ret),
        None => {
            tracing::error!(space, %error, "{what}");
            None
        }
    }
}

/// A `#[cached]` function's settings, as the read-through sees them.
struct Plan<M, R> {
    ttl: Option<Duration>,
    none_ttl: Option<Duration>,
    route: Route<R>,
    mode: PhantomData<fn() -> M>,
}

impl<M, R> Cacheable<R> for Plan<M, R>
where
    M: CacheMode<R>,
    M::Stored: Serialize + DeserializeOwned,
{
    type Stored = M::Stored;
    fn store_as<'r>(&self, ret: &'r R) -> Option<(&'r M::Stored, Option<Duration>)> {
        match M::store(ret) {
            Store::Value(stored) => Some((stored, self.ttl)),
            Store::Negative(stored) if self.none_ttl.is_some() => Some((stored, self.none_ttl)),
            Store::Negative(_) | Store::Skip => None,
        }
    }
    fn load(&self, stored: M::Stored) -> R {
        M::load(stored)
    }
    fn on_error(&self, error: CacheError) -> Option<R> {
        (self.route)(error)
    }
}

/// The settings of one `#[cached]` function, as its attribute gives them.
#[derive(Debug)]
pub struct Cached<R> {
    /// `ttl`; `None`: the cache's default TTL.
    pub ttl: Option<Duration>,
    /// `none_ttl`: how long a `None` is cached; `None`: it is not.
    pub none_ttl: Option<Duration>,
    /// What a cache error becomes when failing loudly.
    pub route: Route<R>,
}

/// The body of a `#[cached]` function: [`Cache::get_or_compute`]'s read-through, with the
/// return mode `M` deciding what is stored.
pub async fn cached<M, R, F>(key: String, settings: Cached<R>, body: F) -> R
where
    M: CacheMode<R>,
    M::Stored: Serialize + DeserializeOwned,
    F: Future<Output = R>,
{
    let Cached {
        ttl,
        none_ttl,
        route,
    } = settings;
    let cache = match global_cache().await {
        Ok(cache) => cache,
        // No cache (bad configuration, or Redis down at startup when failing loudly).
        Err(error) => {
            return match fail(
                route,
                At::Key(&key).space(),
                "no cache; running uncached",
                error,
            ) {
                Some(ret) => ret,
                None => body.await,
            }
        }
    };
    let plan = Plan::<M, R> {
        ttl,
        none_ttl,
        route,
        mode: PhantomData,
    };
    cache.policy().read_through(&key, &plan, body).await
}

/// The settings of one `#[invalidate_cache]` function, as its attribute gives them.
#[derive(Debug)]
pub struct Invalidate<R> {
    /// `allow_all`: a pattern may match every key.
    pub allow_all: bool,
    /// What a cache error becomes when failing loudly.
    pub route: Route<R>,
}

/// After a `#[invalidate_cache]` function's body: delete what the patterns match if it
/// succeeded. A pattern without glob syntax is one key, deleted directly (one `UNLINK`).
pub async fn invalidate<M, R>(ret: R, patterns: &[String], settings: Invalidate<R>) -> R
where
    M: Success<R>,
{
    let Invalidate { allow_all, route } = settings;
    if !M::succeeded(&ret) {
        return ret;
    }
    let cache = match global_cache().await {
        Ok(cache) => cache,
        Err(error) => {
            // Kept for the cache that comes up later, which replays it before serving the keys
            // it covers.
            crate::global::keep_orphaned(patterns);
            let what = "no cache yet; the invalidation is kept for when Redis answers";
            return fail(route, "", what, error).unwrap_or(ret);
        }
    };
    match cache.policy().invalidate(patterns, allow_all).await {
        Ok(()) => ret,
        Err(error) => {
            let spaces: Vec<&str> = patterns.iter().map(|p| At::Pattern(p).space()).collect();
            fail(
                route,
                &spaces.join(", "),
                "cache invalidation failed",
                error,
            )
            .unwrap_or(ret)
        }
    }
}

/// How many keys are in flight in the process-wide cache (for tests: the table must drain).
pub fn in_flight() -> usize {
    crate::global::initialized().map_or(0, |cache| cache.policy().in_flight())
}
