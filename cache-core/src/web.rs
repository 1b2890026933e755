//! Routes for an axum service: `GET /health/cache` (feature `axum`) and `GET /metrics` in the
//! Prometheus text format (feature `prometheus`). Each function returns a `Router` to
//! [`merge`](axum::Router::merge) into the application's own, whatever its state type.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{routing::get, Router};
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .merge(cache_core::web::health_router());
//! # let _ = app; Ok(()) }
//! ```
//!
//! Two forms of the health route, because a service may cache through the process-wide cache
//! (what `#[cached]` uses) or through a [`Cache`] of its own:
//! - [`health_router`] looks the process-wide cache up at each request ([`get_cache`]), so the
//!   router can be built before the cache is set up, and a cache that could not be set up yet
//!   (Redis down, failing loudly) is reported as unhealthy instead of failing the router's
//!   construction;
//! - [`health_router_for`] reports on the [`Cache`] it is given.
//!
//! Neither waits longer than the cache's socket timeout when Redis hangs:
//! [`Cache::health_check`] is bounded by it.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::{cache::Cache, global::get_cache, health::HealthReport};

/// The path the health route answers on.
pub const HEALTH_PATH: &str = "/health/cache";

/// The body of the health route: `{"status": "healthy", "cache": {...}}`.
#[derive(Serialize)]
struct HealthBody {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<HealthReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /health/cache` on the process-wide cache ([`get_cache`], set up from the environment on
/// the first request if [`init`](crate::init) was not called).
///
/// Answers 200 with `{"status": "healthy", "cache": {...}}` (the [`HealthReport`]'s fields) when
/// the backend answers, and 503 with `"status": "unhealthy"` when it does not; when the cache
/// cannot be set up at all, 503 with `{"status": "unhealthy", "error": "..."}`.
///
/// Generic over the router's state so that it merges into any `Router<S>`; served on its own,
/// it is `health_router::<()>()`.
pub fn health_router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(HEALTH_PATH, get(global_health))
}

/// `GET /health/cache` on `cache`, as [`health_router`] answers it.
///
/// ```
/// # async fn demo() -> Result<(), cache_core::CacheError> {
/// use cache_core::{Cache, CacheConfig};
/// let cache = Cache::new(CacheConfig::builder().memory(1 << 20).build()?).await?;
/// let app: axum::Router = cache_core::web::health_router_for(cache);
/// # let _ = app; Ok(()) }
/// ```
pub fn health_router_for<S>(cache: Cache) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        HEALTH_PATH,
        get(move || {
            let cache = cache.clone();
            async move { health_response(&cache).await }
        }),
    )
}

/// The health route's answer for `cache`: its [`HealthReport`] under `"cache"`, with status 200
/// when it is healthy and 503 otherwise; for a handler of one's own.
pub async fn health_response(cache: &Cache) -> Response {
    let report = cache.health_check().await;
    let (status, word) = if report.healthy {
        (StatusCode::OK, "healthy")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    };
    respond(
        status,
        HealthBody {
            status: word,
            cache: Some(report),
            error: None,
        },
    )
}

async fn global_health() -> Response {
    match get_cache().await {
        Ok(cache) => health_response(&cache).await,
        Err(e) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            HealthBody {
                status: "unhealthy",
                cache: None,
                error: Some(e.to_string()),
            },
        ),
    }
}

/// A health answer is about now: never cached by a proxy.
fn respond(status: StatusCode, body: HealthBody) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use prometheus::{install_prometheus, metrics_router, PrometheusError, PrometheusHandle};

#[cfg(feature = "prometheus")]
mod prometheus {
    use std::sync::{Mutex, PoisonError};

    use axum::http::header;
    use axum::routing::get;
    use axum::Router;
    use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};

    pub use metrics_exporter_prometheus::PrometheusHandle;

    /// The handle of the recorder [`install_prometheus`] installed, once it did.
    static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

    /// Why [`install_prometheus`] could not install its recorder.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum PrometheusError {
        /// Another `metrics` recorder was installed first (there is one per process). If it is a
        /// Prometheus recorder, pass its handle to [`metrics_router`] instead.
        #[error("another metrics recorder is already installed in this process")]
        AnotherRecorder,
        /// The exporter failed otherwise.
        #[error("could not install the Prometheus recorder: {0}")]
        Build(String),
    }

    /// Installs a Prometheus recorder as the process' `metrics` recorder, and returns its handle
    /// for [`metrics_router`].
    ///
    /// A process has one recorder, installed once: a second call returns the handle of the first
    /// (so calling it from each router's construction, or from each test, is fine), and a
    /// recorder installed by other code first is [`PrometheusError::AnotherRecorder`], never a
    /// panic. The recorder has no listener of its own: the metrics are served by the route.
    /// To configure it (buckets, global labels), install your own with `metrics-exporter-prometheus`'s
    /// `PrometheusBuilder::install_recorder` and pass its handle to [`metrics_router`].
    pub fn install_prometheus() -> Result<PrometheusHandle, PrometheusError> {
        let mut slot = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = slot.as_ref() {
            return Ok(handle.clone());
        }
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| match e {
                BuildError::FailedToSetGlobalRecorder(_) => PrometheusError::AnotherRecorder,
                other => PrometheusError::Build(other.to_string()),
            })?;
        *slot = Some(handle.clone());
        Ok(handle)
    }

    /// `GET /metrics`: what `handle`'s recorder holds, in the Prometheus text format
    /// (`cache_hits_total`, `cache_misses_total`, ... and the application's own metrics).
    ///
    /// Each scrape runs the recorder's upkeep first (it drains histogram samples), since the
    /// recorder has no background task of its own.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), cache_core::web::PrometheusError> {
    /// use cache_core::web;
    /// let app: axum::Router = axum::Router::new()
    ///     .merge(web::health_router())
    ///     .merge(web::metrics_router(web::install_prometheus()?));
    /// # let _ = app; Ok(()) }
    /// ```
    pub fn metrics_router<S>(handle: PrometheusHandle) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new().route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move {
                    handle.run_upkeep();
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
    }
}
