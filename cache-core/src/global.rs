//! The process-wide cache that the attributes use: set up once, by [`init`] or lazily from the
//! environment by [`get_cache`].

use tokio::sync::OnceCell;

use crate::{Cache, CacheConfig, CacheError};

static GLOBAL: OnceCell<Cache> = OnceCell::const_new();

/// Sets up the process-wide cache from `config` and returns it.
///
/// Fails with [`CacheError::AlreadyInitialized`] when it already exists (from an earlier `init` or
/// a first [`get_cache`]). See [`Cache::new`] for what happens when Redis is down.
pub async fn init(config: CacheConfig) -> Result<Cache, CacheError> {
    let cache = Cache::new(config).await?;
    GLOBAL
        .set(cache.clone())
        .map_err(|_| CacheError::AlreadyInitialized)?;
    Ok(cache)
}

/// Sets up the process-wide cache from the environment and `.env` ([`CacheConfig::from_env`]).
pub async fn init_from_env() -> Result<Cache, CacheError> {
    init(CacheConfig::from_env()?).await
}

/// The process-wide cache, set up from the environment on first use if [`init`] was not called.
///
/// Concurrent first calls set it up exactly once; the others wait for it.
pub async fn get_cache() -> Result<Cache, CacheError> {
    GLOBAL
        .get_or_try_init(|| async { Cache::new(CacheConfig::from_env()?).await })
        .await
        .cloned()
}

/// The process-wide cache if it is set up, without waiting or setting it up.
pub(crate) fn initialized() -> Option<&'static Cache> {
    GLOBAL.get()
}
