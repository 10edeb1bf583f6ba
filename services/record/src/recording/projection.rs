//! The `recordings` projection: one row per call whose recording was announced, folded from
//! RecordingAvailable, RecordingStored, RecordingFailed and RecordingDeleted in store order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waihu_events::{pb, Event, RecordedEvent};
use waihu_store::{StoreError, Tx};

use crate::projection::{add_positions, uuid, Tables};

/// `recordings.state`: waihu.v1.RecordingState values.
pub mod state {
    use waihu_proto::v1::RecordingState;
    pub const PENDING: i16 = RecordingState::Pending as i16;
    pub const STORED: i16 = RecordingState::Stored as i16;
    pub const FAILED: i16 = RecordingState::Failed as i16;
    pub const DELETED: i16 = RecordingState::Deleted as i16;
}

/// How far a state is along: pending, failed, stored, deleted (a recording stored by one
/// keeper is not undone by another's failure to find its source).
pub fn rank(state: i16) -> i16 {
    match state {
        state::PENDING => 1,
        state::FAILED => 2,
        state::STORED => 3,
        state::DELETED => 4,
        _ => 0,
    }
}

/// The same ranking in SQL, of the column `c`.
fn rank_sql(c: &str) -> String {
    format!(
        "(CASE {c} WHEN {} THEN 1 WHEN {} THEN 2 WHEN {} THEN 3 WHEN {} THEN 4 ELSE 0 END)",
        state::PENDING,
        state::FAILED,
        state::STORED,
        state::DELETED
    )
}

fn later(a: i16, b: i16) -> i16 {
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// What the events of one batch say of one call's recording; None leaves a column as it is.
#[derive(Default)]
struct Row {
    tenant: String,
    task: Option<Uuid>,
    contact_no: i32,
    state: i16,
    source_uri: Option<String>,
    key: Option<String>,
    content_type: Option<String>,
    format: Option<String>,
    bytes: Option<i64>,
    duration_ms: Option<i64>,
    sha256: Option<String>,
    recorded_at: Option<DateTime<Utc>>,
    stored_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    reason: Option<String>,
    position: i64,
}

fn task_of(s: &str) -> Option<Uuid> {
    uuid(s)
}

/// Folds the batch's recording events (in store order) and writes one row per call. A state
/// only moves forward (pending, stored or failed, deleted), so a batch applied after another
/// never takes a recording back.
pub async fn apply(
    tx: &mut Tx<'_>,
    tables: &Tables,
    events: &[(u64, &RecordedEvent)],
) -> Result<(), StoreError> {
    let mut rows: BTreeMap<Uuid, Row> = BTreeMap::new();
    // Timeline positions of the events that are not call events (those are added with the
    // call's own).
    let mut positions = Vec::new();
    for (position, e) in events {
        let (call, task, contact_no) = match &e.event {
            Event::RecordingAvailable(r) => (&r.call_id, &r.task_id, r.contact_no),
            Event::RecordingStored(r) => (&r.call_id, &r.task_id, r.contact_no),
            Event::RecordingFailed(r) => (&r.call_id, &r.task_id, r.contact_no),
            Event::RecordingDeleted(r) => (&r.call_id, &r.task_id, r.contact_no),
            _ => continue,
        };
        let Some(call) = uuid(call) else { continue };
        if !matches!(e.event, Event::RecordingAvailable(_)) {
            positions.push((call, *position as i64));
        }
        let row = rows.entry(call).or_insert_with(|| Row {
            tenant: e.meta.tenant_id.clone(),
            task: task_of(task),
            contact_no: contact_no as i32,
            ..Default::default()
        });
        row.position = *position as i64;
        let at = e.meta.occurred_at;
        match &e.event {
            Event::RecordingAvailable(r) => {
                row.state = later(row.state, state::PENDING);
                row.source_uri = Some(r.uri.clone());
                if row.state == state::PENDING {
                    row.content_type = Some(r.content_type.clone());
                    row.bytes = Some(r.bytes as i64);
                    row.duration_ms = Some(r.duration_ms as i64);
                }
                row.recorded_at.get_or_insert(at);
            }
            Event::RecordingStored(r) if row.state != state::DELETED => {
                row.state = later(row.state, state::STORED);
                row.key = Some(r.key.clone());
                row.content_type = Some(r.content_type.clone());
                row.format = Some(r.format.clone());
                row.bytes = Some(r.bytes as i64);
                row.duration_ms = Some(r.duration_ms as i64);
                row.sha256 = Some(r.sha256.clone());
                row.source_uri = Some(r.source_uri.clone());
                row.recorded_at = r
                    .recorded_at
                    .as_ref()
                    .and_then(waihu_events::from_timestamp)
                    .or(row.recorded_at)
                    .or(Some(at));
                row.stored_at = Some(at);
            }
            Event::RecordingFailed(r) if rank(row.state) < rank(state::FAILED) => {
                row.state = state::FAILED;
                row.reason = Some(r.reason.clone());
            }
            Event::RecordingDeleted(r) => {
                row.state = state::DELETED;
                row.deleted_at = Some(at);
                row.reason = Some(r.reason.clone());
            }
            _ => {}
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! col {
        ($f:ident) => {
            rows.values().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    let calls: Vec<Uuid> = rows.keys().copied().collect();
    let (t_rank, x_rank) = (rank_sql("t.state"), rank_sql("excluded.state"));
    sqlx::query(&format!(
        "INSERT INTO {} AS t (call_id, tenant_id, task_id, contact_no, state, source_uri, key,
             content_type, format, bytes, duration_ms, sha256, recorded_at, stored_at, deleted_at,
             reason, position)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::int[], $5::smallint[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[],
             $12::text[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::text[],
             $17::bigint[])
         ON CONFLICT (call_id) DO UPDATE SET
             state = CASE WHEN {x_rank} > {t_rank} THEN excluded.state ELSE t.state END,
             source_uri = COALESCE(excluded.source_uri, t.source_uri),
             key = COALESCE(excluded.key, t.key),
             content_type = CASE WHEN {x_rank} >= {t_rank}
                 THEN COALESCE(excluded.content_type, t.content_type) ELSE t.content_type END,
             format = COALESCE(excluded.format, t.format),
             bytes = CASE WHEN {x_rank} >= {t_rank}
                 THEN COALESCE(excluded.bytes, t.bytes) ELSE t.bytes END,
             duration_ms = CASE WHEN {x_rank} >= {t_rank}
                 THEN COALESCE(excluded.duration_ms, t.duration_ms) ELSE t.duration_ms END,
             sha256 = COALESCE(excluded.sha256, t.sha256),
             recorded_at = COALESCE(excluded.recorded_at, t.recorded_at),
             stored_at = COALESCE(excluded.stored_at, t.stored_at),
             deleted_at = COALESCE(excluded.deleted_at, t.deleted_at),
             reason = CASE WHEN excluded.state = {failed} AND {t_rank} > {x_rank}
                 THEN t.reason ELSE COALESCE(excluded.reason, t.reason) END,
             position = GREATEST(t.position, excluded.position)",
        tables.recordings,
        failed = state::FAILED,
    ))
    .bind(&calls)
    .bind(col!(tenant))
    .bind(col!(task))
    .bind(col!(contact_no))
    .bind(col!(state))
    .bind(col!(source_uri))
    .bind(col!(key))
    .bind(col!(content_type))
    .bind(col!(format))
    .bind(col!(bytes))
    .bind(col!(duration_ms))
    .bind(col!(sha256))
    .bind(col!(recorded_at))
    .bind(col!(stored_at))
    .bind(col!(deleted_at))
    .bind(col!(reason))
    .bind(col!(position))
    .execute(&mut **tx)
    .await?;
    if !positions.is_empty() {
        add_positions(tx, tables, &positions).await?;
    }
    Ok(())
}

/// A call's recording as its record shows it.
#[derive(sqlx::FromRow)]
pub struct RecordingRow {
    pub call_id: Uuid,
    pub state: i16,
    pub key: Option<String>,
    pub content_type: Option<String>,
    pub format: Option<String>,
    pub bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    pub sha256: Option<String>,
    pub stored_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

pub const ROW_COLUMNS: &str = "call_id, state, key, content_type, format, bytes, duration_ms, \
     sha256, stored_at, deleted_at, reason";

impl RecordingRow {
    pub fn to_pb(&self) -> pb::Recording {
        pb::Recording {
            state: self.state as i32,
            key: self.key.clone().unwrap_or_default(),
            content_type: self.content_type.clone().unwrap_or_default(),
            format: self.format.clone().unwrap_or_default(),
            bytes: self.bytes.unwrap_or(0).max(0) as u64,
            duration_ms: self.duration_ms.unwrap_or(0).max(0) as u64,
            sha256: self.sha256.clone().unwrap_or_default(),
            stored_at: self.stored_at.map(waihu_events::timestamp),
            deleted_at: self.deleted_at.map(waihu_events::timestamp),
            reason: self.reason.clone().unwrap_or_default(),
        }
    }
}
