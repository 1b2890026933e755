//! The database: a SQLite file through sqlx (runtime queries, no compile-time checked macros),
//! its migration, the first start's seed, and the queries the service makes.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{FromRow, Row};

/// The migrations, read at startup from the example's folder.
const MIGRATIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/servers_api/migrations"
);

const SERVER_COLUMNS: &str = "id, name, description, language, stars, forks, updated_at";

/// One row of `servers`, as the API returns it and the cache stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub language: String,
    pub stars: i64,
    pub forks: i64,
    pub updated_at: String,
}

impl FromRow<'_, SqliteRow> for Server {
    fn from_row(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(Server {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            language: row.try_get("language")?,
            stars: row.try_get("stars")?,
            forks: row.try_get("forks")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The body of `PUT /servers/{id}`: the fields to change.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServerPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub stars: Option<i64>,
}

/// A server in the trending list: the most events in the last 7 days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendingServer {
    pub id: i64,
    pub name: String,
    pub stars: i64,
    pub events_7d: i64,
}

/// The day's statistics (the guide's `get_daily_stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyStats {
    pub day: String,
    pub total_servers: i64,
    pub avg_stars: f64,
    pub total_forks: i64,
    /// Today's events by kind: `view`, `star`, `download`, `update`.
    pub events_today: BTreeMap<String, i64>,
}

/// A pool of connections to the database file.
#[derive(Debug, Clone)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens (creating it if missing) the database at `url` and applies the migrations.
    pub async fn open(url: &str) -> Result<Db, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate::Migrator::new(Path::new(MIGRATIONS))
            .await?
            .run(&pool)
            .await?;
        Ok(Db { pool })
    }

    /// On an empty database, inserts `servers` servers and a fortnight of events (about 30 a
    /// server, skewed toward the low ids so that some trend); how many servers it inserted.
    pub async fn seed(&self, servers: i64) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM servers")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 || servers <= 0 {
            return Ok(0);
        }
        sqlx::query(
            "INSERT INTO servers (id, name, description, language, stars, forks)
             WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?1)
             SELECT n,
                    'server-' || n,
                    'MCP server number ' || n,
                    CASE n % 5 WHEN 0 THEN 'rust' WHEN 1 THEN 'python' WHEN 2 THEN 'typescript'
                               WHEN 3 THEN 'go' ELSE 'java' END,
                    (n * 7919) % 5000,
                    (n * 104729) % 800
             FROM seq",
        )
        .bind(servers)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO server_events (server_id, kind, day)
             WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?1 * 30)
             SELECT 1 + abs(random() % (1 + abs(random() % ?1))),
                    CASE abs(random() % 10) WHEN 0 THEN 'star' WHEN 1 THEN 'download'
                                            WHEN 2 THEN 'download' ELSE 'view' END,
                    date('now', '-' || (n % 14) || ' days')
             FROM seq",
        )
        .bind(servers)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(servers)
    }

    pub async fn server(&self, id: i64) -> Result<Option<Server>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The `n` servers with the most stars.
    pub async fn most_popular(&self, n: i64) -> Result<Vec<Server>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {SERVER_COLUMNS} FROM servers ORDER BY stars DESC, id LIMIT ?"
        ))
        .bind(n)
        .fetch_all(&self.pool)
        .await
    }

    /// Applies `patch` to server `id` and records an `update` event; the row as it is now, or
    /// `None` when there is no such server.
    pub async fn update(
        &self,
        id: i64,
        patch: &ServerPatch,
    ) -> Result<Option<Server>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let server: Option<Server> = sqlx::query_as(&format!(
            "UPDATE servers
             SET name = coalesce(?1, name), description = coalesce(?2, description),
                 stars = coalesce(?3, stars), updated_at = datetime('now')
             WHERE id = ?4
             RETURNING {SERVER_COLUMNS}"
        ))
        .bind(patch.name.as_deref())
        .bind(patch.description.as_deref())
        .bind(patch.stars)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if server.is_some() {
            sqlx::query("INSERT INTO server_events (server_id, kind, day) VALUES (?, 'update', date('now'))")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(server)
    }

    /// Deletes server `id` (and its events); whether there was one.
    pub async fn delete(&self, id: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM servers WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The `limit` servers with the most events in the last 7 days.
    pub async fn trending(&self, limit: i64) -> Result<Vec<TrendingServer>, sqlx::Error> {
        let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT s.id, s.name, s.stars, count(*) AS events_7d
             FROM server_events e JOIN servers s ON s.id = e.server_id
             WHERE e.day >= date('now', '-7 days')
             GROUP BY s.id
             ORDER BY events_7d DESC, s.stars DESC
             LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, stars, events_7d)| TrendingServer {
                id,
                name,
                stars,
                events_7d,
            })
            .collect())
    }

    pub async fn daily_stats(&self) -> Result<DailyStats, sqlx::Error> {
        let (day, total_servers, avg_stars, total_forks): (String, i64, Option<f64>, Option<i64>) =
            sqlx::query_as("SELECT date('now'), count(*), avg(stars), sum(forks) FROM servers")
                .fetch_one(&self.pool)
                .await?;
        let events: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, count(*) FROM server_events WHERE day = date('now') GROUP BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(DailyStats {
            day,
            total_servers,
            avg_stars: avg_stars.unwrap_or(0.0),
            total_forks: total_forks.unwrap_or(0),
            events_today: events.into_iter().collect(),
        })
    }
}
