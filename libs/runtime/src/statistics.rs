//! Keeps the planner's statistics of a service's own tables current.
//!
//! A service's queries are prepared once per connection, and PostgreSQL settles on a generic plan
//! after a few runs. A plan made while a table was empty (a dialer before its first import) can
//! be one that reads every row the moment the table holds a million: the dialer's due-tasks query
//! once became a scan of every due contact of every task, 65-87 ms a round instead of 2-6 ms.
//! PostgreSQL drops a cached plan when the table is analyzed, which autovacuum does on its own
//! schedule (a minute apart by default, and never when it is off). So each service checks its
//! schema's tables every [`CHECK_EVERY`] and analyzes any whose size moved by half
//! ([`GROWTH_SHARE`]), or whose rows all changed once on average ([`CHANGED_SHARE`]), since they
//! were last analyzed, by anyone (at least [`MIN_CHANGES`] rows either way).
//!
//! What decides a plan is mostly a table's size, so analyses follow its growth geometrically: a
//! table growing to a million rows is analyzed about twenty times on the way. Counting every
//! change against a tenth of the table instead analyzed the call records every two or three
//! seconds in the 1,000,000-contact bench (each call's record is written and then updated once or
//! twice), 3 s of a 60 s window (7 December 2026).

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How often the tables' change counts are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Rows changed since the last analysis below which a table is left alone, whatever its size.
pub const MIN_CHANGES: i64 = 1000;
/// The share of a table's size at its last analysis by which its rows must have grown (or
/// shrunk) since.
pub const GROWTH_SHARE: f64 = 0.5;
/// The share of a table's rows (at its last analysis) that must have been inserted, updated or
/// deleted since, whatever its size.
pub const CHANGED_SHARE: f64 = 1.0;

/// The tables of `schema` whose statistics are out of date.
pub async fn stale_tables(pool: &PgPool, schema: &str) -> Result<Vec<String>, sqlx::Error> {
    Ok(stale(pool, schema)
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .collect())
}

/// Each stale table of `schema` with the statement analyzing it (named by PostgreSQL's own
/// identifier quoting).
async fn stale(pool: &PgPool, schema: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.relname::text, format('ANALYZE %I.%I', s.schemaname, s.relname)
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.schemaname = $1
           AND s.n_mod_since_analyze >= $2
           AND (abs(s.n_live_tup - GREATEST(c.reltuples, 0)) >= GREATEST($2, $3 * GREATEST(c.reltuples, 0))
                OR s.n_mod_since_analyze >= $4 * GREATEST(c.reltuples, 0))
         ORDER BY 1",
    )
    .bind(schema)
    .bind(MIN_CHANGES)
    .bind(GROWTH_SHARE)
    .bind(CHANGED_SHARE)
    .fetch_all(pool)
    .await
}

/// Analyzes the stale tables of `schema` once; returns the tables analyzed.
pub async fn refresh(pool: &PgPool, schema: &str) -> Result<Vec<String>, sqlx::Error> {
    let mut analyzed = Vec::new();
    for (table, analyze) in stale(pool, schema).await? {
        sqlx::query(&analyze).execute(pool).await?;
        analyzed.push(table);
    }
    Ok(analyzed)
}

/// Refreshes `schema`'s statistics every [`CHECK_EVERY`] until `stop`. Failures are logged and
/// tried again next time: stale statistics slow queries down, they never make them wrong.
pub async fn keep(pool: PgPool, schema: &'static str, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        match refresh(&pool, schema).await {
            Ok(t) if !t.is_empty() => debug!(schema, tables = ?t, "statistics refreshed"),
            Ok(_) => {}
            Err(e) => warn!(schema, error = %e, "could not refresh the tables' statistics"),
        }
    }
}
