//! Which events stream the store follows. The store remembers the stream's creation time and a
//! base added to stream sequences to make store positions. A stream that was recreated, went
//! backwards, or expired events the store never read halts the writer: storing on would either
//! clash with stored positions or silently skip history. Re-basing is an operator's decision.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use waihu_bus::Bus;
use waihu_store::StoreError;

/// Why the writer must not go on, in words for the operator.
#[derive(Debug, Clone)]
pub struct Halt(pub String);

#[derive(Debug)]
pub enum CheckError {
    Halt(Halt),
    Other(String),
}

impl From<StoreError> for CheckError {
    fn from(e: StoreError) -> Self {
        CheckError::Other(e.to_string())
    }
}

impl From<sqlx::Error> for CheckError {
    fn from(e: sqlx::Error) -> Self {
        CheckError::Other(e.to_string())
    }
}

/// The stream as the store knows it.
#[derive(Debug, Clone, Copy)]
pub struct Followed {
    pub created: DateTime<Utc>,
    pub base: u64,
}

pub async fn followed(pool: &PgPool, stream: &str) -> Result<Option<Followed>, sqlx::Error> {
    let row: Option<(DateTime<Utc>, i64)> =
        sqlx::query_as("SELECT created, base FROM store_streams WHERE stream = $1")
            .bind(stream)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(created, base)| Followed {
        created,
        base: base.max(0) as u64,
    }))
}

/// Checks that the events stream is the one the store follows and still holds everything after
/// `position`; returns the base. The first check of a store records the stream it follows.
pub async fn check(pool: &PgPool, bus: &Bus, position: u64) -> Result<u64, CheckError> {
    Ok(check_followed(pool, bus, position).await?.base)
}

/// [`check`], returning what the store follows, for [`check_against`] to reuse.
pub async fn check_followed(
    pool: &PgPool,
    bus: &Bus,
    position: u64,
) -> Result<Followed, CheckError> {
    let state = bus
        .events_stream_state()
        .await
        .map_err(|e| CheckError::Other(e.to_string()))?;
    let name = bus.events_stream();
    let f = match followed(pool, name).await? {
        Some(f) => f,
        None => {
            sqlx::query(
                "INSERT INTO store_streams (stream, created) VALUES ($1, $2)
                 ON CONFLICT (stream) DO NOTHING",
            )
            .bind(name)
            .bind(state.created)
            .execute(pool)
            .await?;
            followed(pool, name).await?.ok_or_else(|| {
                CheckError::Other("the followed stream's row vanished".to_string())
            })?
        }
    };
    judge(name, &state, f, position)?;
    Ok(f)
}

/// The check of a running writer: the stream against what the store follows, known from the
/// term's start (only a halted writer's store can be re-based), so no database read.
pub async fn check_against(bus: &Bus, f: Followed, position: u64) -> Result<(), CheckError> {
    let state = bus
        .events_stream_state()
        .await
        .map_err(|e| CheckError::Other(e.to_string()))?;
    judge(bus.events_stream(), &state, f, position)
}

fn judge(
    name: &str,
    state: &waihu_bus::StreamState,
    f: Followed,
    position: u64,
) -> Result<(), CheckError> {
    let halt = |s: String| Err(CheckError::Halt(Halt(s)));
    // PostgreSQL keeps microseconds; the server reports nanoseconds.
    if f.created.timestamp_micros() != state.created.timestamp_micros() {
        return halt(format!(
            "the events stream {name} was recreated (created {}, the store follows the one \
             created {}): its sequences start again and would clash with stored positions; \
             run `waihu store rebase` to store its events after position {position}",
            state.created, f.created
        ));
    }
    let next = position.saturating_sub(f.base) + 1;
    if state.last_sequence + f.base < position {
        return halt(format!(
            "the events stream {name} went backwards: it ends at sequence {} but the store has \
             read up to {} (position {position}); run `waihu store rebase` to store what it \
             holds now after position {position}",
            state.last_sequence,
            position - f.base
        ));
    }
    if state.last_sequence >= state.first_sequence && state.first_sequence > next {
        return halt(format!(
            "events {next}..{} of {name} expired from the stream before the store read them \
             (its limits are too tight for how far the writer fell behind); run `waihu store \
             rebase --force` to go on from sequence {} and accept the gap",
            state.first_sequence - 1,
            state.first_sequence
        ));
    }
    Ok(())
}

/// Makes the store follow the events stream as it is now: every event it holds is read again
/// (those already stored are recognised by their ids) and stored after `position`.
pub async fn rebase(pool: &PgPool, bus: &Bus, position: u64) -> Result<Followed, CheckError> {
    let state = bus
        .events_stream_state()
        .await
        .map_err(|e| CheckError::Other(e.to_string()))?;
    let base = position - (state.first_sequence.max(1) - 1).min(position);
    sqlx::query(
        "INSERT INTO store_streams (stream, created, base, rebased_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (stream) DO UPDATE SET created = excluded.created, base = excluded.base,
             rebased_at = now()",
    )
    .bind(bus.events_stream())
    .bind(state.created)
    .bind(base as i64)
    .execute(pool)
    .await?;
    Ok(Followed {
        created: state.created,
        base,
    })
}
