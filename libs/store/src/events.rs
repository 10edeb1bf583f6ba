use chrono::{DateTime, Utc};
use sqlx::{PgPool, QueryBuilder, Row};
use uuid::Uuid;
use waihu_events::Decoded;

use crate::{StoreError, Tx};

/// One event as the store holds it: every well-formed envelope, including those whose payload
/// this build cannot read (they are kept for a newer build, and skipped by projections).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Global position: the JetStream stream sequence (plus the store's base after a re-base).
    pub position: u64,
    pub event: Decoded,
    /// The exact bytes that travelled on the bus (shared, not copied, from the message read).
    pub envelope: bytes::Bytes,
    /// When the store wrote it (None before it is stored).
    pub recorded_at: Option<DateTime<Utc>>,
}

/// Appends events idempotently (a known event id is skipped) and returns, per input, whether it
/// was new. Positions must be unique; the caller is the single ordered writer. A different event
/// at a stored position is an error, never a silent skip.
///
/// The usual batch is all new: it goes in by binary `COPY`, the cheapest way into PostgreSQL. A
/// batch holding an event id the store has already seen (a copy republished after JetStream's
/// duplicate window) or holding one twice is written row by row with `ON CONFLICT DO NOTHING`.
pub async fn append(tx: &mut Tx<'_>, batch: &[&StoredEvent]) -> Result<Vec<bool>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = std::collections::HashSet::with_capacity(batch.len());
    if batch.iter().all(|e| ids.insert(e.event.meta().event_id)) {
        sqlx::query("SAVEPOINT append").execute(&mut **tx).await?;
        match copy(tx, batch).await {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT append")
                    .execute(&mut **tx)
                    .await?;
                return Ok(vec![true; batch.len()]);
            }
            Err(e) if e.is_known_event_id() => {
                sqlx::query("ROLLBACK TO SAVEPOINT append")
                    .execute(&mut **tx)
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
    insert_new(tx, batch).await
}

const COLUMNS: &str = "position, event_id, event_type, schema_version, tenant_id, stream_id, \
                       stream_version, task_id, occurred_at, correlation_id, causation_id, envelope";

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Writes the batch with binary `COPY`; fails as a whole on any conflict.
async fn copy(tx: &mut Tx<'_>, batch: &[&StoredEvent]) -> Result<(), StoreError> {
    let mut buf: Vec<u8> =
        Vec::with_capacity(19 + 2 + batch.iter().map(|e| e.envelope.len() + 256).sum::<usize>());
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for e in batch {
        let m = e.event.meta();
        buf.extend_from_slice(&12i16.to_be_bytes());
        field(&mut buf, &(e.position as i64).to_be_bytes());
        field(&mut buf, m.event_id.as_bytes());
        field(&mut buf, e.event.event_type().as_bytes());
        field(&mut buf, &(e.event.schema_version() as i32).to_be_bytes());
        field(&mut buf, m.tenant_id.as_bytes());
        field(&mut buf, m.aggregate.stream_id().as_bytes());
        field(&mut buf, &(m.stream_version as i64).to_be_bytes());
        match m.task_id {
            Some(t) => field(&mut buf, t.as_bytes()),
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        let micros = m.occurred_at.timestamp_micros() - PG_EPOCH_MICROS;
        field(&mut buf, &micros.to_be_bytes());
        field(&mut buf, m.correlation_id.as_bytes());
        field(&mut buf, m.causation_id.as_bytes());
        field(&mut buf, &e.envelope);
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY events ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    if let Err(e) = copy.send(buf).await {
        // The connection is unusable after a failed send; the abort tidies what it can.
        let _ = copy.abort("send failed").await;
        return Err(e.into());
    }
    copy.finish().await?;
    Ok(())
}

/// One binary `COPY` field: its length, then its bytes.
fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// Writes the batch skipping event ids already stored; returns which inputs were new.
async fn insert_new(tx: &mut Tx<'_>, batch: &[&StoredEvent]) -> Result<Vec<bool>, StoreError> {
    let n = batch.len();
    let mut position = Vec::with_capacity(n);
    let mut event_id = Vec::with_capacity(n);
    let mut event_type = Vec::with_capacity(n);
    let mut schema_version = Vec::with_capacity(n);
    let mut tenant = Vec::with_capacity(n);
    let mut stream_id = Vec::with_capacity(n);
    let mut stream_version = Vec::with_capacity(n);
    let mut task_id: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut occurred: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut correlation = Vec::with_capacity(n);
    let mut causation = Vec::with_capacity(n);
    let mut envelope: Vec<&[u8]> = Vec::with_capacity(n);
    for e in batch {
        let m = e.event.meta();
        position.push(e.position as i64);
        event_id.push(m.event_id);
        event_type.push(e.event.event_type());
        schema_version.push(e.event.schema_version() as i32);
        tenant.push(m.tenant_id.as_str());
        stream_id.push(m.aggregate.stream_id());
        stream_version.push(m.stream_version as i64);
        task_id.push(m.task_id);
        occurred.push(m.occurred_at);
        correlation.push(m.correlation_id.as_str());
        causation.push(m.causation_id.as_str());
        envelope.push(e.envelope.as_ref());
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(&format!(
        "INSERT INTO events ({COLUMNS})
         SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::text[],
                              $6::text[], $7::bigint[], $8::uuid[], $9::timestamptz[], $10::text[],
                              $11::text[], $12::bytea[])
         ON CONFLICT (event_id) DO NOTHING
         RETURNING event_id"
    ))
    .bind(&position)
    .bind(&event_id)
    .bind(&event_type)
    .bind(&schema_version)
    .bind(&tenant)
    .bind(&stream_id)
    .bind(&stream_version)
    .bind(&task_id)
    .bind(&occurred)
    .bind(&correlation)
    .bind(&causation)
    .bind(&envelope)
    .fetch_all(&mut **tx)
    .await?;
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    // A batch may carry the same event id twice (republished past the duplicate window): only
    // the first occurrence counts as new.
    let mut seen = std::collections::HashSet::with_capacity(n);
    Ok(batch
        .iter()
        .map(|e| {
            let id = e.event.meta().event_id;
            inserted.contains(&id) && seen.insert(id)
        })
        .collect())
}

/// A read of the store, in position order. Every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Positions strictly greater than this.
    pub after_position: u64,
    /// Positions up to and including this (None = the end).
    pub to_position: Option<u64>,
    pub task_id: Option<Uuid>,
    pub tenant_id: Option<String>,
    pub occurred_from: Option<DateTime<Utc>>,
    pub occurred_to: Option<DateTime<Utc>>,
    pub event_types: Vec<String>,
    pub limit: u32,
}

/// Reads one page of events; call again with `after_position` = the last position returned.
pub async fn read(pool: &PgPool, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
    let mut b =
        QueryBuilder::new("SELECT position, envelope, recorded_at FROM events WHERE position > ");
    b.push_bind(q.after_position as i64);
    if let Some(to) = q.to_position {
        b.push(" AND position <= ").push_bind(to as i64);
    }
    if let Some(t) = q.task_id {
        b.push(" AND task_id = ").push_bind(t);
    }
    if let Some(t) = &q.tenant_id {
        b.push(" AND tenant_id = ").push_bind(t.clone());
    }
    if let Some(f) = q.occurred_from {
        b.push(" AND occurred_at >= ").push_bind(f);
    }
    if let Some(t) = q.occurred_to {
        b.push(" AND occurred_at < ").push_bind(t);
    }
    if !q.event_types.is_empty() {
        b.push(" AND event_type = ANY(")
            .push_bind(q.event_types.clone())
            .push(")");
    }
    let limit = if q.limit == 0 {
        1000
    } else {
        q.limit.min(10_000)
    };
    b.push(" ORDER BY position LIMIT ").push_bind(limit as i64);
    let rows = b.build().fetch_all(pool).await?;
    rows.into_iter()
        .map(|r| {
            let position: i64 = r.try_get("position")?;
            let envelope: Vec<u8> = r.try_get("envelope")?;
            let recorded_at: DateTime<Utc> = r.try_get("recorded_at")?;
            let event = Decoded::decode(&envelope).map_err(|e| StoreError::Corrupt {
                position,
                reason: e.to_string(),
            })?;
            Ok(StoredEvent {
                position: position as u64,
                event,
                envelope: envelope.into(),
                recorded_at: Some(recorded_at),
            })
        })
        .collect()
}
