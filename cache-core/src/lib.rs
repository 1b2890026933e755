//! Caching for async Rust services on Redis: annotate an async fn, configure Redis through the
//! environment, and keep serving when Redis is slow, down, or returns junk.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cache_core::CacheError> {
//! // REDIS_URL, REDIS_POOL_SIZE, CACHE_TTL_DEFAULT, ... and a .env file
//! let cache = cache_core::init_from_env().await?;
//! cache.set("user:123", "Alice", None).await?;
//! let user: Option<String> = cache.get("user:123").await?;
//! println!("{user:?}, {:?}", cache.health_check().await);
//! # Ok(()) }
//! ```
//!
//! Layers, each calling only those below it: the attributes' expansion (`__private`), the public
//! API ([`Cache`], [`init`], [`get_cache`]), the policy (read-through, invalidation, enabled,
//! fail silently, breaker, pending invalidations, counting), the encoding ([`codec`]), and the
//! backends (Redis through a fred pool per runtime that uses the cache, or in-process memory).
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod cache;
#[cfg(feature = "cli")]
pub mod cli;
pub mod codec;
mod config;
mod error;
mod fingerprint;
mod global;
mod health;
mod key;
mod lease;
mod policy;
mod private;
pub mod registry;
mod runtime;
mod shutdown;
mod stats;
mod telemetry;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod web;

pub use cache::Cache;
pub use cache_macros::{cached, invalidate_cache};
pub use config::{BackendConfig, CacheConfig, CacheConfigBuilder, RedisUrl};
pub use error::{CacheError, ConfigError};
pub use global::shutdown;
pub use global::{get_cache, init, init_from_env};
pub use health::{HealthReport, NodeHealth};
pub use key::CacheKey;
pub use stats::{CacheStats, ShutdownReport};
/// What the attributes expand to; not a public API (it changes with the macros).
#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}

/// Every chapter of the guide (`docs/src`, in SUMMARY.md's order), so that each of its Rust
/// examples is compiled and run by `cargo test` as a doctest. This is what checks them:
/// `mdbook test` cannot link cache_core and skips them (see docs/book.toml).
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../../docs/src/introduction.md")]
    mod introduction {}
    #[doc = include_str!("../../docs/src/configuration.md")]
    mod configuration {}
    #[doc = include_str!("../../docs/src/operations.md")]
    mod operations {}
    #[doc = include_str!("../../docs/src/macros.md")]
    mod macros {}
    #[doc = include_str!("../../docs/src/patterns.md")]
    mod patterns {}
    #[doc = include_str!("../../docs/src/example-service.md")]
    mod example_service {}
    #[doc = include_str!("../../docs/src/monitoring.md")]
    mod monitoring {}
    #[doc = include_str!("../../docs/src/cli.md")]
    mod cli {}
    #[doc = include_str!("../../docs/src/failure-modes.md")]
    mod failure_modes {}
    #[doc = include_str!("../../docs/src/security.md")]
    mod security {}
    #[doc = include_str!("../../docs/src/deployment.md")]
    mod deployment {}
    #[doc = include_str!("../../docs/src/best-practices.md")]
    mod best_practices {}
    #[doc = include_str!("../../docs/src/benchmarks.md")]
    mod benchmarks {}
    #[doc = include_str!("../../docs/src/troubleshooting.md")]
    mod troubleshooting {}
    #[doc = include_str!("../../docs/src/advanced.md")]
    mod advanced {}
    #[doc = include_str!("../../docs/src/architecture.md")]
    mod architecture {}
    #[doc = include_str!("../../docs/src/testing.md")]
    mod testing {}
    #[doc = include_str!("../../docs/src/dependencies.md")]
    mod dependencies {}
}
