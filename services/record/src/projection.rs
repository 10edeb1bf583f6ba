//! The projections, as pure functions from events to row changes plus the SQL that applies them.
//! The live writer and the replay verifier share this code, so a rebuild runs exactly what ran.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waihu_events::{Event, RecordedEvent};
use waihu_store::{StoreError, Tx};

/// Counter keys of the task-statistics projection.
pub mod keys {
    pub const CONTACTS_TOTAL: &str = "contacts_total";
    pub const CONTACTS_DIALED: &str = "contacts_dialed";
    pub const CONTACTS_FINISHED: &str = "contacts_finished";
    pub const CALLS_PLACED: &str = "calls_placed";
    pub const CALLS_RELEASED: &str = "calls_released";
    pub const CALLS_ANSWERED: &str = "calls_answered";
    pub const TALK_MS: &str = "talk_ms";
    pub const RING_MS: &str = "ring_ms";
    pub const CAUSE_PREFIX: &str = "cause:";
    pub const OUTCOME_PREFIX: &str = "outcome:";
}

/// Where a projection is written: the live tables, or fresh ones for a rebuild.
#[derive(Debug, Clone)]
pub struct Tables {
    pub call_records: String,
    pub counters: String,
    pub tasks: String,
}

impl Tables {
    /// The live tables, named with their schema so any connection reaches them.
    pub fn live() -> Tables {
        Tables {
            call_records: format!("{}.call_records", crate::SCHEMA),
            counters: format!("{}.task_stat_counters", crate::SCHEMA),
            tasks: format!("{}.record_tasks", crate::SCHEMA),
        }
    }
}

/// Longest ring or talk time a call may report: anything longer is a provider's error, and
/// counting it would overflow or distort the statistics.
pub const MAX_CALL_MS: u64 = 30 * 24 * 3600 * 1000;

/// Why an event cannot be projected, when it cannot: values the statistics cannot hold, or text
/// PostgreSQL cannot store (a NUL character). Such an event is dead-lettered by the store writer
/// rather than stored with a wrapped-around number or left to stall the projections.
pub fn refusal(e: &RecordedEvent) -> Option<String> {
    // The text the projections keep, as (field, value); checked without allocating, as the
    // store writer does this for every event.
    const NONE: (&str, &str) = ("", "");
    let text: [(&str, &str); 2] = match &e.event {
        Event::CallReleased(r) => {
            for (field, v) in [("ring_ms", r.ring_ms), ("talk_ms", r.talk_ms)] {
                if v > MAX_CALL_MS {
                    return Some(format!(
                        "CallReleased.{field} = {v} is out of range (at most {MAX_CALL_MS}, 30 days)"
                    ));
                }
            }
            match &r.cause {
                Some(c) => [
                    ("CallReleased.cause.name", c.name.as_str()),
                    ("CallReleased.cause.raw", c.raw.as_str()),
                ],
                None => [NONE; 2],
            }
        }
        Event::CallRequested(r) => [
            ("CallRequested.phone", r.phone.as_str()),
            ("CallRequested.line_id", r.line_id.as_str()),
        ],
        Event::TaskCreated(t) => [
            (
                "TaskCreated.spec.name",
                t.spec.as_ref().map_or("", |s| s.name.as_str()),
            ),
            NONE,
        ],
        _ => [NONE; 2],
    };
    text.into_iter()
        .chain([("tenant_id", e.meta.tenant_id.as_str())])
        .find(|(_, v)| v.contains('\0'))
        .map(|(field, _)| {
            format!("{field} holds a NUL character (0x00), which the database cannot store")
        })
}

/// The checkpoint of the live projections: the store position they are exact as of.
pub const CHECKPOINT: &str = "projections";

/// Applies stored events (with their positions, in `(after, last]`) to the live projections, counts
/// `refused` events they skip, and moves their checkpoint from `after` to `last`, in one
/// transaction. False, with nothing changed, when the checkpoint is no longer at `after`
/// (another projector moved it).
pub async fn commit(
    pool: &sqlx::PgPool,
    after: u64,
    last: u64,
    events: &[(u64, &RecordedEvent)],
    refused: i64,
) -> Result<bool, StoreError> {
    let t0 = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    if !waihu_store::advance_checkpoint(&mut tx, CHECKPOINT, after, last).await? {
        return Ok(false);
    }
    apply(&mut tx, &Tables::live(), events).await?;
    waihu_store::add_counters(&mut tx, &[(waihu_store::PROJECTION_REFUSED, refused)]).await?;
    tx.commit().await?;
    tracing::debug!(
        events = events.len(),
        last,
        total_us = t0.elapsed().as_micros() as u64,
        "projections applied"
    );
    Ok(true)
}

fn uuid(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s).ok()
}

/// Counter changes one event makes: (task, key, delta). Commutative, so order never matters.
pub fn counter_deltas(e: &RecordedEvent, out: &mut Vec<(Uuid, String, i64)>) {
    use keys::*;
    let Some(task) = e.meta.task_id else { return };
    let mut add = |k: &str, d: i64| out.push((task, k.to_string(), d));
    match &e.event {
        Event::ContactsAdded(c) => add(CONTACTS_TOTAL, c.contacts.len() as i64),
        Event::CallRequested(r) => {
            add(CALLS_PLACED, 1);
            if r.attempt == 1 {
                add(CONTACTS_DIALED, 1);
            }
        }
        Event::CallReleased(r) => {
            add(CALLS_RELEASED, 1);
            add(RING_MS, r.ring_ms as i64);
            if r.answered {
                add(CALLS_ANSWERED, 1);
                add(TALK_MS, r.talk_ms as i64);
            }
            let q850 = r.cause.as_ref().map(|c| c.q850).unwrap_or(0);
            add(&format!("{CAUSE_PREFIX}{q850}"), 1);
        }
        Event::ContactFinished(f) => {
            add(CONTACTS_FINISHED, 1);
            add(&format!("{OUTCOME_PREFIX}{}", f.outcome), 1);
        }
        _ => {}
    }
}

/// The part of a call record one or more events supply; merged first-writer-wins per column.
#[derive(Debug, Clone, Default)]
pub struct CallRow {
    pub call_id: Uuid,
    /// None for a click-to-dial call.
    pub task_id: Option<Uuid>,
    pub tenant_id: String,
    pub contact_no: i32,
    /// The store position of the call's `CallRequested`: its number (seed 002's recordId).
    pub record_no: Option<i64>,
    pub started_at: Option<DateTime<Utc>>,
    pub phone: Option<String>,
    pub line_id: Option<String>,
    pub attempt: Option<i32>,
    pub requested_at: Option<DateTime<Utc>>,
    pub dialing_at: Option<DateTime<Utc>>,
    pub ringing_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub ring_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub answered: Option<bool>,
    pub cause_q850: Option<i32>,
    pub cause_name: Option<String>,
    pub cause_raw: Option<String>,
}

fn first<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

/// Folds one call event, stored at `position`, into the rows being built for a batch.
pub fn fold_call(position: u64, e: &RecordedEvent, rows: &mut HashMap<Uuid, CallRow>) {
    let (call, task, contact_no) = match &e.event {
        Event::CallRequested(r) => (&r.call_id, &r.task_id, r.contact_no),
        Event::CallDialing(r) => (&r.call_id, &r.task_id, r.contact_no),
        Event::CallRinging(r) => (&r.call_id, &r.task_id, r.contact_no),
        Event::CallAnswered(r) => (&r.call_id, &r.task_id, r.contact_no),
        Event::CallReleased(r) => (&r.call_id, &r.task_id, r.contact_no),
        _ => return,
    };
    let Some(call_id) = uuid(call) else {
        return;
    };
    // No task: a click-to-dial call. A task id that is not one is not a call of ours.
    let task_id = match task.as_str() {
        "" => None,
        t => match uuid(t) {
            Some(t) => Some(t),
            None => return,
        },
    };
    let at = e.meta.occurred_at;
    let row = rows.entry(call_id).or_insert_with(|| CallRow {
        call_id,
        task_id,
        tenant_id: e.meta.tenant_id.clone(),
        contact_no: contact_no as i32,
        ..Default::default()
    });
    row.started_at = Some(row.started_at.map_or(at, |s| s.min(at)));
    match &e.event {
        Event::CallRequested(r) => {
            // The call's number: where its request is stored (stable across rebuilds).
            first(&mut row.record_no, position as i64);
            first(&mut row.requested_at, at);
            first(&mut row.phone, r.phone.clone());
            first(&mut row.line_id, r.line_id.clone());
            first(&mut row.attempt, r.attempt as i32);
        }
        Event::CallDialing(_) => first(&mut row.dialing_at, at),
        Event::CallRinging(_) => first(&mut row.ringing_at, at),
        Event::CallAnswered(_) => first(&mut row.answered_at, at),
        Event::CallReleased(r) => {
            first(&mut row.released_at, at);
            first(&mut row.ring_ms, r.ring_ms as i64);
            first(&mut row.talk_ms, r.talk_ms as i64);
            first(&mut row.answered, r.answered);
            if let Some(c) = &r.cause {
                first(&mut row.cause_q850, c.q850 as i32);
                first(&mut row.cause_name, c.name.clone());
                first(&mut row.cause_raw, c.raw.clone());
            }
        }
        _ => {}
    }
}

/// Applies a batch of newly stored events to the projections, in the caller's transaction.
pub async fn apply(
    tx: &mut Tx<'_>,
    tables: &Tables,
    events: &[(u64, &RecordedEvent)],
) -> Result<(), StoreError> {
    let mut deltas = Vec::new();
    let mut calls: HashMap<Uuid, CallRow> = HashMap::new();
    let mut tasks: Vec<(Uuid, String, String)> = Vec::new();
    for (position, e) in events {
        counter_deltas(e, &mut deltas);
        fold_call(*position, e, &mut calls);
        if let (Event::TaskCreated(t), Some(task)) = (&e.event, e.meta.task_id) {
            let name = t.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            tasks.push((task, e.meta.tenant_id.clone(), name));
        }
    }
    if !tasks.is_empty() {
        let (ids, rest): (Vec<Uuid>, Vec<(String, String)>) =
            tasks.into_iter().map(|(a, b, c)| (a, (b, c))).unzip();
        let (tenants, names): (Vec<String>, Vec<String>) = rest.into_iter().unzip();
        sqlx::query(&format!(
            "INSERT INTO {} (task_id, tenant_id, name) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[])
             ON CONFLICT DO NOTHING",
            tables.tasks
        ))
        .bind(&ids)
        .bind(&tenants)
        .bind(&names)
        .execute(&mut **tx)
        .await?;
    }
    apply_counters(tx, tables, deltas).await?;
    apply_calls(tx, tables, calls).await
}

async fn apply_counters(
    tx: &mut Tx<'_>,
    tables: &Tables,
    deltas: Vec<(Uuid, String, i64)>,
) -> Result<(), StoreError> {
    if deltas.is_empty() {
        return Ok(());
    }
    // Summed and sorted first: one row per key, locked in a stable order.
    let mut sum: BTreeMap<(Uuid, String), i64> = BTreeMap::new();
    for (t, k, d) in deltas {
        *sum.entry((t, k)).or_default() += d;
    }
    let mut tasks = Vec::with_capacity(sum.len());
    let mut keys = Vec::with_capacity(sum.len());
    let mut values = Vec::with_capacity(sum.len());
    for ((t, k), v) in sum {
        tasks.push(t);
        keys.push(k);
        values.push(v);
    }
    sqlx::query(&format!(
        "INSERT INTO {} AS c (task_id, key, value)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[])
         ON CONFLICT (task_id, key) DO UPDATE SET value = c.value + excluded.value",
        tables.counters
    ))
    .bind(&tasks)
    .bind(&keys)
    .bind(&values)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn apply_calls(
    tx: &mut Tx<'_>,
    tables: &Tables,
    calls: HashMap<Uuid, CallRow>,
) -> Result<(), StoreError> {
    if calls.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<CallRow> = calls.into_values().collect();
    rows.sort_by_key(|r| r.call_id);
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query(&format!(
        "INSERT INTO {} AS t (call_id, task_id, tenant_id, contact_no, started_at, phone, line_id,
             attempt, requested_at, dialing_at, ringing_at, answered_at, released_at, ring_ms,
             talk_ms, answered, cause_q850, cause_name, cause_raw, record_no)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::timestamptz[],
             $6::text[], $7::text[], $8::int[], $9::timestamptz[], $10::timestamptz[],
             $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::bigint[],
             $15::bigint[], $16::bool[], $17::int[], $18::text[], $19::text[], $20::bigint[])
         ON CONFLICT (call_id) DO UPDATE SET
             record_no = COALESCE(t.record_no, excluded.record_no),
             started_at = LEAST(t.started_at, excluded.started_at),
             phone = COALESCE(t.phone, excluded.phone),
             line_id = COALESCE(t.line_id, excluded.line_id),
             attempt = COALESCE(t.attempt, excluded.attempt),
             requested_at = COALESCE(t.requested_at, excluded.requested_at),
             dialing_at = COALESCE(t.dialing_at, excluded.dialing_at),
             ringing_at = COALESCE(t.ringing_at, excluded.ringing_at),
             answered_at = COALESCE(t.answered_at, excluded.answered_at),
             released_at = COALESCE(t.released_at, excluded.released_at),
             ring_ms = COALESCE(t.ring_ms, excluded.ring_ms),
             talk_ms = COALESCE(t.talk_ms, excluded.talk_ms),
             answered = COALESCE(t.answered, excluded.answered),
             cause_q850 = COALESCE(t.cause_q850, excluded.cause_q850),
             cause_name = COALESCE(t.cause_name, excluded.cause_name),
             cause_raw = COALESCE(t.cause_raw, excluded.cause_raw)",
        tables.call_records
    ))
    .bind(col!(call_id))
    .bind(col!(task_id))
    .bind(col!(tenant_id))
    .bind(col!(contact_no))
    .bind(
        rows.iter()
            .map(|r| r.started_at.unwrap_or_else(Utc::now))
            .collect::<Vec<_>>(),
    )
    .bind(col!(phone))
    .bind(col!(line_id))
    .bind(col!(attempt))
    .bind(col!(requested_at))
    .bind(col!(dialing_at))
    .bind(col!(ringing_at))
    .bind(col!(answered_at))
    .bind(col!(released_at))
    .bind(col!(ring_ms))
    .bind(col!(talk_ms))
    .bind(col!(answered))
    .bind(col!(cause_q850))
    .bind(col!(cause_name))
    .bind(col!(cause_raw))
    .bind(col!(record_no))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
