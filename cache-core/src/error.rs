//! The error types of the runtime: [`CacheError`] for operations and [`ConfigError`] for
//! settings. They sit below every other module, so that any layer can return them.

/// A configuration value that is missing its expected form.
///
/// `Display` reads like `REDIS_PORT: expected a port number from 1 to 65535 (or unset: `6379`),
/// got "http"` (the default is said for environment variables). The
/// offending value is left out when it may hold a secret: always for `REDIS_URL`, `REDIS_HOST`,
/// `REDIS_USERNAME`, `REDIS_PASSWORD`, a `.env` line and TLS files, and for any other variable
/// when the value contains `@` (as credentials in a URL do) or a password of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: expected {expected}{}", got.as_ref().map(|v| format!(", got {v:?}")).unwrap_or_default())]
pub struct ConfigError {
    /// The environment variable (or builder setting) at fault.
    pub variable: &'static str,
    /// The form the value must have.
    pub expected: String,
    /// The value that was given, when it is safe to show.
    pub got: Option<String>,
}

impl ConfigError {
    /// An error about `variable`; `got`, the value, is kept only when it cannot be credentials.
    pub(crate) fn new(
        variable: &'static str,
        expected: impl Into<String>,
        got: Option<&str>,
    ) -> Self {
        ConfigError {
            variable,
            expected: expected.into(),
            got: got.filter(|v| !v.contains('@')).map(str::to_owned),
        }
    }

    /// Drops the value when it contains one of `secrets` (a password pasted into another
    /// variable).
    pub(crate) fn withholding(mut self, secrets: &[String]) -> Self {
        if self
            .got
            .as_deref()
            .is_some_and(|got| secrets.iter().any(|s| got.contains(s.as_str())))
        {
            self.got = None;
        }
        self
    }
}

/// Everything that can go wrong in a cache operation.
///
/// With `CACHE_FAIL_SILENTLY=true` (the default) Redis failures never reach callers as this type:
/// they become misses and no-ops, logged and counted in [`CacheStats::errors`](crate::CacheStats).
/// Messages never contain passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The configuration is invalid; the message names the variable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Redis could not be reached, or the connection is down (reconnecting in the background).
    #[error("Redis is unreachable: {0}")]
    Connection(String),
    /// Redis did not answer within `REDIS_SOCKET_TIMEOUT`.
    #[error("Redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Redis refused the credentials.
    #[error("Redis refused the credentials: {0}")]
    Auth(String),
    /// Redis answered with an error (out of memory, wrong type, not an integer, ...).
    #[error("Redis error: {0}")]
    Redis(String),
    /// A value could not be serialized.
    #[error("could not serialize the value: {0}")]
    Encode(String),
    /// A glob pattern is malformed or too broad.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it and how to fix it.
        reason: String,
    },
    /// The circuit breaker is open: Redis failed repeatedly and is skipped until a probe succeeds.
    #[error("Redis is skipped while the circuit breaker is open (it failed repeatedly; probing in the background)")]
    CircuitOpen,
    /// The encoded value is larger than `CACHE_MAX_VALUE_BYTES`; it was not stored.
    #[error("the value is {size} bytes encoded, over the limit of {max} (CACHE_MAX_VALUE_BYTES); not stored")]
    ValueTooLarge {
        /// The encoded size.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A `clear_pattern` (or an invalidation by pattern) stopped part-way: `removed` keys are
    /// gone, the rest were not reached. The pattern is kept and replayed, and its keys are misses
    /// in this process until then.
    #[error("removed {removed} keys matching the pattern, then stopped: {reason}")]
    Incomplete {
        /// Keys removed before it stopped.
        removed: u64,
        /// Why it stopped (CACHE_CLEAR_TIMEOUT, or a failure).
        reason: String,
    },
    /// The invalidation reached the primary, but not every copy it was asked to wait for
    /// (`CACHE_INVALIDATION_REPLICAS`, `CACHE_INVALIDATION_FSYNC`) acknowledged it in time: a
    /// failover or restart could still undo it. It is kept and replayed until they do, and its
    /// keys are misses in this process until then.
    #[error("the invalidation is not durable yet: {0}")]
    NotDurable(String),
    /// `init` was called after the process-wide cache was already set up.
    #[error("the process-wide cache is already initialized")]
    AlreadyInitialized,
    /// `init` found problems with the key spaces and `CACHE_VERIFY_KEYS=error` is set.
    #[error("{0}")]
    KeySpaces(crate::registry::Report),
}

impl CacheError {
    /// True for failures of the connection to Redis (unreachable, timeout, credentials), as opposed
    /// to errors about one command or value.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            CacheError::Connection(_)
                | CacheError::Timeout(_)
                | CacheError::Auth(_)
                | CacheError::CircuitOpen
        )
    }

    /// A short name of the variant, for the `kind` label of `cache_errors_total`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CacheError::Config(_) => "config",
            CacheError::Connection(_) => "connection",
            CacheError::Timeout(_) => "timeout",
            CacheError::Auth(_) => "auth",
            CacheError::Redis(_) => "redis",
            CacheError::Encode(_) => "encode",
            CacheError::InvalidPattern { .. } => "invalid_pattern",
            CacheError::CircuitOpen => "circuit_open",
            CacheError::ValueTooLarge { .. } => "value_too_large",
            CacheError::Incomplete { .. } => "incomplete",
            CacheError::NotDurable(_) => "not_durable",
            CacheError::AlreadyInitialized => "already_initialized",
            CacheError::KeySpaces(_) => "key_spaces",
        }
    }
}
