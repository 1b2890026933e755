//! `CacheConfig::from_env` against the real process environment and a real `.env` file.
//!
//! Its own test binary, because it changes the working directory and the environment.

use std::time::Duration;

use cache_core::{BackendConfig, CacheConfig};

#[test]
fn dot_env_is_read_and_the_environment_wins_over_it() {
    let dir = std::env::temp_dir().join(format!("cache-config-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        "# cache settings\nREDIS_HOST=cache.internal\nREDIS_PORT=6380\nREDIS_PASSWORD=from-dotenv-secret\n\
         CACHE_TTL_DEFAULT=900\nREDIS_SOCKET_TIMEOUT=2.5\nCACHE_FAIL_SILENTLY=no\n",
    )
    .unwrap();
    std::env::set_current_dir(&dir).unwrap();
    std::env::set_var("CACHE_TTL_DEFAULT", "60");

    let config = CacheConfig::from_env().unwrap();
    assert_eq!(
        config.default_ttl(),
        Duration::from_secs(60),
        "the environment wins"
    );
    assert_eq!(config.socket_timeout(), Duration::from_millis(2500));
    assert!(!config.fail_silently());
    let BackendConfig::Redis(url) = config.backend() else {
        panic!("{config:?}")
    };
    assert_eq!(url.redacted(), "redis://:***@cache.internal:6380/0");
    assert!(!format!("{config:?} {config}").contains("from-dotenv-secret"));

    // A bad value in the file is an error naming the variable.
    std::fs::write(dir.join(".env"), "REDIS_POOL_SIZE=0\n").unwrap();
    std::env::remove_var("REDIS_POOL_SIZE");
    let err = CacheConfig::from_env().unwrap_err();
    assert_eq!(err.variable, "REDIS_POOL_SIZE");
    assert_eq!(
        err.to_string(),
        "REDIS_POOL_SIZE: expected a whole number of at least 1 (or unset: one per CPU core, at most `10`), got \"0\""
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
