//! The guide's functions, each showing one caching pattern (named in its comment), and the cache
//! warming done at startup.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cache_core::{cached, get_cache, invalidate_cache};

use crate::db::{DailyStats, Db, Server, ServerPatch, TrendingServer};

/// How long a server's details stay cached (the `ttl` of `get_server_details`).
const SERVER_TTL: Duration = Duration::from_secs(600);
/// Time-based invalidation: a trending list is at most this old.
const TRENDING_TTL: Duration = Duration::from_secs(30);

/// What a request can fail with. `Err` is never cached.
#[derive(Debug)]
pub enum ApiError {
    NotFound,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Db(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": "no such server" })),
            )
                .into_response(),
            ApiError::Db(e) => {
                tracing::error!(error = %e, "database error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(serde_json::json!({ "error": "database error" })),
                )
                    .into_response()
            }
        }
    }
}

/// Read-through: on a miss the body reads the database and the attribute stores the `Ok` value
/// under `server:get_server_details:{server_id}`; on a hit the body does not run. A 404 (`Err`)
/// is not cached. With Redis down, every call is a miss that reads the database.
#[cached(ttl = 600, key_prefix = "server", skip(db))]
pub async fn get_server_details(db: &Db, server_id: i64) -> Result<Server, ApiError> {
    db.server(server_id).await?.ok_or(ApiError::NotFound)
}

/// Event-based invalidation: after the write succeeds, the attribute deletes the server's key,
/// here and in every process sharing the Redis (a delete that cannot reach Redis is kept and
/// replayed; meanwhile the key is a miss in this process). A read that started before the write
/// cannot store its older value afterwards: the read-through's store is fenced.
#[invalidate_cache("server:get_server_details:{server_id}")]
async fn save_server(db: &Db, server_id: i64, patch: &ServerPatch) -> Result<Server, ApiError> {
    db.update(server_id, patch).await?.ok_or(ApiError::NotFound)
}

/// Write-through (the guide's `update_server`): the database first (`save_server`, which also
/// invalidates the old value), then the cache gets the new value, so that the next read is a
/// hit instead of a database query. A failed cache write only costs that hit.
///
/// Two concurrent updates of one server can store their values in the cache in the other
/// order than in the database (the write-through race); where that matters, invalidate only
/// and let the next read load the value.
pub async fn update_server(
    db: &Db,
    server_id: i64,
    patch: &ServerPatch,
) -> Result<Server, ApiError> {
    let server = save_server(db, server_id, patch).await?;
    match get_cache().await {
        Ok(cache) => {
            let key = get_server_details__key(&server_id);
            if let Err(e) = cache.set(&key, &server, Some(SERVER_TTL)).await {
                tracing::warn!(error = %e, key, "write-through: the cache keeps no value");
            }
        }
        Err(e) => tracing::warn!(error = %e, "write-through: no cache"),
    }
    Ok(server)
}

/// Event-based invalidation of the server's key as in `save_server`, and pattern-based of the
/// trending lists it may be in (`clear_pattern("trending:*")`, a SCAN + UNLINK).
#[invalidate_cache("server:get_server_details:{server_id}")]
pub async fn delete_server(db: &Db, server_id: i64) -> Result<(), ApiError> {
    if !db.delete(server_id).await? {
        return Err(ApiError::NotFound);
    }
    if let Ok(cache) = get_cache().await {
        if let Err(e) = cache.clear_pattern("trending:*").await {
            tracing::warn!(error = %e, "trending lists not cleared; they expire within 30 s");
        }
    }
    Ok(())
}

/// Cache-aside (the guide's `get_trending_servers`): check the cache, load on a miss, store.
/// Time-based invalidation: nothing deletes these keys on an update; they expire after 30 s, so
/// a renamed server shows its old name here for 30 s at most.
///
/// A hand-written get/set has no single flight and no fenced store (`try_get_or_compute` has
/// both); with a short TTL and no invalidation to race with, that is acceptable here.
pub async fn get_trending_servers(db: &Db, limit: i64) -> Result<Vec<TrendingServer>, ApiError> {
    let key = format!("trending:servers:{limit}");
    let cache = get_cache().await.ok();
    if let Some(cache) = &cache {
        match cache.get::<Vec<TrendingServer>>(&key).await {
            Ok(Some(servers)) => return Ok(servers),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, key, "trending: cache unavailable"),
        }
    }
    let servers = db.trending(limit).await?;
    if let Some(cache) = &cache {
        if let Err(e) = cache.set(&key, &servers, Some(TRENDING_TTL)).await {
            tracing::debug!(error = %e, key, "trending: not stored");
        }
    }
    Ok(servers)
}

/// Time-based invalidation with the attribute (the guide's `get_daily_stats`): recomputed at
/// most once an hour, whatever changes meanwhile.
#[cached(ttl = 3600, key_prefix = "stats", skip(db))]
pub async fn get_daily_stats(db: &Db) -> Result<DailyStats, ApiError> {
    Ok(db.daily_stats().await?)
}

/// Cache warming: the `count` servers with the most stars, read in one query and stored in one
/// round trip under the keys `get_server_details` reads; then the default trending list and the
/// daily statistics through their own functions. Logs how many keys and how long.
pub async fn warm(db: &Db, count: i64) -> Result<(), ApiError> {
    let started = Instant::now();
    let servers = db.most_popular(count).await?;
    let loaded = servers.len();
    let items = servers
        .into_iter()
        .map(|server| (get_server_details__key(&server.id), server));
    match get_cache().await {
        Ok(cache) => {
            if let Err(e) = cache.set_many(items, Some(SERVER_TTL)).await {
                tracing::warn!(error = %e, "cache warming: servers not stored");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cache warming: no cache"),
    }
    get_trending_servers(db, 10).await?;
    get_daily_stats(db).await?;
    tracing::info!(
        servers = loaded,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cache warmed: the most popular servers, the trending list and the daily statistics"
    );
    Ok(())
}
