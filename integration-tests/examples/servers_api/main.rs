//! An example service: a servers API on axum and SQLite with the guide's caching patterns,
//! the cache's health route and Prometheus metrics.
//!
//! ```text
//! cargo run -p integration-tests --example servers_api
//! ```
//!
//! Environment: the cache's variables (`REDIS_URL`, `CACHE_ENABLED`, ... and a `.env` file);
//! `DATABASE_URL` (`sqlite://servers_api.db?mode=rwc`), `HOST` (`127.0.0.1`), `PORT` (`8000`),
//! `SEED_SERVERS` (`1000`, inserted on the first start only), `CACHE_WARM_COUNT` (`100`) and
//! `RUST_LOG` (`info`).
//!
//! Routes: `GET /servers/{id}`, `PUT /servers/{id}` (JSON: `name`, `description`, `stars`, each
//! optional), `DELETE /servers/{id}`, `GET /servers/trending?limit=10`, `GET /stats/daily`,
//! `GET /health/cache` and `GET /metrics`. The patterns are in `service.rs`, the SQL in `db.rs`.

mod db;
mod service;

use std::error::Error;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use cache_core::{web, Cache, HealthReport};
use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use db::{DailyStats, Db, Server, ServerPatch, TrendingServer};
use service::ApiError;

#[derive(Debug, Clone)]
struct AppState {
    db: Db,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("servers_api: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    // Before the first cache operation, so that the counters of the warming are recorded too.
    let metrics = web::install_prometheus()?;
    let cache = cache_core::init_from_env().await?;
    let health = wait_for_cache(&cache, Duration::from_secs(2)).await;
    tracing::info!(
        backend = health.backend,
        healthy = health.healthy,
        error = health.error.as_deref().unwrap_or(""),
        enabled = cache.config().enabled(),
        "cache ready"
    );

    let database_url = env_or(
        "DATABASE_URL",
        "sqlite://servers_api.db?mode=rwc".to_owned(),
    )?;
    let db = Db::open(&database_url).await?;
    let seeded = db.seed(env_or("SEED_SERVERS", 1000)?).await?;
    tracing::info!(database = %database_url, seeded, "database ready");

    service::warm(&db, env_or("CACHE_WARM_COUNT", 100)?)
        .await
        .map_err(|e| format!("cache warming: {e:?}"))?;

    let app = Router::new()
        .route("/servers/trending", get(trending))
        .route("/servers/{id}", get(server).put(update).delete(delete))
        .route("/stats/daily", get(daily_stats))
        .merge(web::health_router())
        .merge(web::metrics_router(metrics))
        .with_state(AppState { db });

    let host: String = env_or("HOST", "127.0.0.1".to_owned())?;
    let port: u16 = env_or("PORT", 8000)?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    tracing::info!(
        "listening on http://{} (started in {} ms)",
        listener.local_addr()?,
        started.elapsed().as_millis()
    );
    axum::serve(listener, app).await?;
    Ok(())
}

/// The cache's health once it answers, or after `limit`. `init` waits one socket timeout for
/// the first connection and then goes on (Redis may come up later); warming is worth a little
/// more patience, since what it stores while Redis is unreachable is lost.
async fn wait_for_cache(cache: &Cache, limit: Duration) -> HealthReport {
    let deadline = Instant::now() + limit;
    loop {
        let report = cache.health_check().await;
        if report.healthy || !cache.config().enabled() || Instant::now() >= deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The variable `name` parsed, or `default` when it is unset or empty.
fn env_or<T: FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value
            .parse()
            .map_err(|e| format!("{name}: cannot parse {value:?}: {e}")),
        _ => Ok(default),
    }
}

async fn server(
    State(app): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Server>, ApiError> {
    service::get_server_details(&app.db, id).await.map(Json)
}

async fn update(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    Json(patch): Json<ServerPatch>,
) -> Result<Json<Server>, ApiError> {
    let server = service::update_server(&app.db, id, &patch).await?;
    tracing::info!(id, name = %server.name, "server updated");
    Ok(Json(server))
}

async fn delete(State(app): State<AppState>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    service::delete_server(&app.db, id).await?;
    tracing::info!(id, "server deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct TrendingQuery {
    limit: Option<i64>,
}

async fn trending(
    State(app): State<AppState>,
    Query(query): Query<TrendingQuery>,
) -> Result<Json<Vec<TrendingServer>>, ApiError> {
    let limit = query.limit.unwrap_or(10).clamp(1, 100);
    service::get_trending_servers(&app.db, limit)
        .await
        .map(Json)
}

async fn daily_stats(State(app): State<AppState>) -> Result<Json<DailyStats>, ApiError> {
    service::get_daily_stats(&app.db).await.map(Json)
}
