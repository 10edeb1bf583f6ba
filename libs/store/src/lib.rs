//! PostgreSQL persistence shared by the services: migrations, the append-only event store,
//! projection checkpoints, and the transactional outbox with its relay.

mod events;
mod leader;
mod outbox;

use std::{str::FromStr, time::Duration};

pub use events::{
    append, append_posting_later, post_unposted, read, EventQuery, Postings, StoredEvent,
    POSTINGS_SPAN,
};
pub use leader::{leader_lock, while_leader};
pub use outbox::{Outbox, OutboxRelay};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool, Postgres, Transaction,
};

/// A transaction on the store's database.
pub type Tx<'a> = Transaction<'a, Postgres>;

/// Makes `tx` (just begun) a read-only snapshot: every read in it sees the same committed
/// state, e.g. projections and the checkpoint they are as of.
pub async fn read_only_snapshot(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The store's migrations. `ignore_missing`: migrations that moved to the services' own schemas
/// (versions 3 to 6 and 8) stay recorded in databases made before, and must not stop them opening.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored event at position {position} cannot be decoded: {reason}")]
    Corrupt { position: i64, reason: String },
    #[error("bus: {0}")]
    Bus(#[from] waihu_bus::BusError),
    #[error("an event no reader could accept: {0}")]
    BadEvent(String),
    #[error("a {event_type} event of {size} bytes is over the {max}-byte limit")]
    EventTooLarge {
        event_type: String,
        size: usize,
        max: usize,
    },
}

impl StoreError {
    /// True for trouble worth retrying: lost connections, pool timeouts, and the database
    /// errors that say "try again" (connection exceptions 08, transaction rollbacks such as
    /// deadlocks and serialization failures 40, insufficient resources 53, operator
    /// intervention such as a restart 57, read-only after a failover 25006).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|c| {
                ["08", "40", "53", "57", "58"]
                    .iter()
                    .any(|class| c.starts_with(class))
                    || c == "25006"
            }),
            StoreError::Database(_) => true,
            StoreError::Bus(_) => true,
            _ => false,
        }
    }

    /// True when the data being written is at fault, not the database: data exceptions (22,
    /// e.g. a NUL in text or a number out of range), integrity violations (23) and program
    /// limits (54, e.g. a value too large). Retrying the same data cannot help; leaving it out
    /// can. A position clash in the event store is not one of these: see
    /// [`StoreError::is_position_clash`].
    pub fn is_data_error(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                !self.is_position_clash()
                    && db
                        .code()
                        .is_some_and(|c| ["22", "23", "54"].iter().any(|k| c.starts_with(k)))
            }
            _ => false,
        }
    }

    /// The event store already holds an event with this id.
    pub fn is_known_event_id(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                db.code().as_deref() == Some("23505")
                    && db.constraint() == Some("events_event_id_key")
            }
            _ => false,
        }
    }

    /// A different event already holds this store position: the events stream went backwards.
    pub fn is_position_clash(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                db.code().as_deref() == Some("23505") && db.constraint() == Some("events_pkey")
            }
            _ => false,
        }
    }
}

/// Opens a pool with sane timeouts.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?)
}

/// Connects and brings the store's own tables (event store, outbox, checkpoints) up to date.
pub async fn open(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let pool = connect(url, max_connections).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Applies the store's migrations (idempotent; sqlx serialises concurrent callers with a lock).
/// Migrations that moved to the services' own schemas are no longer the store's: databases that
/// ran them before still open.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// What a service does at start-up: brings the store's tables up to date, then its own tables in
/// its own PostgreSQL schema `schema` (with its own migration history there), and returns a pool
/// whose connections see `schema` first, then the store's tables in `public`.
pub async fn open_service(
    url: &str,
    max_connections: u32,
    schema: &str,
    migrator: &sqlx::migrate::Migrator,
) -> Result<PgPool, StoreError> {
    if !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') || schema.is_empty() {
        return Err(StoreError::Migrate(sqlx::migrate::MigrateError::Source(
            format!("schema name {schema:?} must be lowercase letters and _").into(),
        )));
    }
    let store = connect(url, 1).await?;
    migrate(&store).await?;
    // Two services starting at once may race to create it; the second sees it exist.
    for attempt in 0.. {
        match sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&store)
            .await
        {
            Ok(_) => break,
            Err(_) if attempt < 3 => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(e.into()),
        }
    }
    store.close().await;
    let options =
        PgConnectOptions::from_str(url)?.options([("search_path", format!("{schema},public"))]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    migrator.run(&pool).await?;
    Ok(pool)
}

/// The position a checkpoint has reached (0 if never written).
pub async fn checkpoint<'e, E>(executor: E, name: &str) -> Result<u64, StoreError>
where
    E: sqlx::PgExecutor<'e>,
{
    let pos: Option<i64> = sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(executor)
        .await?;
    Ok(pos.unwrap_or(0) as u64)
}

/// Moves a checkpoint from `from` to `to`, in the caller's transaction, only if it is still at
/// `from` (an absent checkpoint counts as 0). False when another writer moved it: the caller
/// must roll back, so work guarded by a checkpoint is never applied twice. Call it first in the
/// transaction: it locks the row, so a concurrent writer waits and then sees it moved.
pub async fn advance_checkpoint(
    tx: &mut Tx<'_>,
    name: &str,
    from: u64,
    to: u64,
) -> Result<bool, StoreError> {
    let done = if from == 0 {
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES ($1, $3, now())
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()
             WHERE checkpoints.position = $2",
        )
    } else {
        sqlx::query(
            "UPDATE checkpoints SET position = $3, updated_at = now()
             WHERE name = $1 AND position = $2",
        )
    }
    .bind(name)
    .bind(from as i64)
    .bind(to as i64)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Store counter: events stored whose payload this build cannot read.
pub const UNKNOWN_EVENTS: &str = "unknown_events";
/// Store counter: events the store writer dead-lettered.
pub const DEAD_LETTERED: &str = "dead_lettered";
/// Store counter: stored events the projections refused (the database would not hold a value).
pub const PROJECTION_REFUSED: &str = "projection_refused";

/// Adds to store counters, in the caller's transaction (zero deltas are skipped).
pub async fn add_counters(tx: &mut Tx<'_>, deltas: &[(&str, i64)]) -> Result<(), StoreError> {
    for (key, delta) in deltas.iter().filter(|(_, d)| *d != 0) {
        sqlx::query(
            "INSERT INTO store_counters AS c (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = c.value + excluded.value",
        )
        .bind(key)
        .bind(delta)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A store counter's value (0 if never written).
pub async fn counter<'e, E>(executor: E, key: &str) -> Result<u64, StoreError>
where
    E: sqlx::PgExecutor<'e>,
{
    let v: Option<i64> = sqlx::query_scalar("SELECT value FROM store_counters WHERE key = $1")
        .bind(key)
        .fetch_optional(executor)
        .await?;
    Ok(v.unwrap_or(0).max(0) as u64)
}
