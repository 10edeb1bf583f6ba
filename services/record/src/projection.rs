//! The projections, as pure functions from events to row changes plus the SQL that applies them.
//! The live writer and the replay verifier share this code, so a rebuild runs exactly what ran.

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waihu_events::{pb, Event, RecordedEvent};
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
    /// Calls with a completed analysis, and how many of each intent and grade.
    pub const ANALYSED: &str = "analysed";
    pub const INTENT_PREFIX: &str = "intent:";
    pub const GRADE_PREFIX: &str = "grade:";
}

/// Where a projection is written: the live tables, or fresh ones for a rebuild.
#[derive(Debug, Clone)]
pub struct Tables {
    pub call_records: String,
    pub counters: String,
    pub tasks: String,
    pub analyses: String,
    pub follow_ups: String,
    pub recordings: String,
}

impl Tables {
    /// The live tables, named with their schema so any connection reaches them.
    pub fn live() -> Tables {
        Tables {
            call_records: format!("{}.call_records", crate::SCHEMA),
            counters: format!("{}.task_counters", crate::SCHEMA),
            tasks: format!("{}.record_tasks", crate::SCHEMA),
            analyses: format!("{}.call_analyses", crate::SCHEMA),
            follow_ups: format!("{}.follow_ups", crate::SCHEMA),
            recordings: format!("{}.recordings", crate::SCHEMA),
        }
    }

    /// Fresh tables for a rebuild, named with `suffix` (temporary tables of the caller's
    /// connection, made like the live ones).
    pub fn rebuilt(suffix: &str) -> Tables {
        Tables {
            call_records: format!("replay_calls_{suffix}"),
            counters: format!("replay_counters_{suffix}"),
            tasks: format!("replay_tasks_{suffix}"),
            analyses: format!("replay_analyses_{suffix}"),
            follow_ups: format!("replay_follow_ups_{suffix}"),
            recordings: format!("replay_recordings_{suffix}"),
        }
    }

    /// Every table with what it holds, in a fixed order; the counters first.
    pub fn all(&self) -> [(&str, &'static str); 6] {
        [
            (&self.counters, "counters"),
            (&self.call_records, "call records"),
            (&self.tasks, "task states"),
            (&self.analyses, "analyses"),
            (&self.follow_ups, "follow-ups"),
            (&self.recordings, "recordings"),
        ]
    }
}

/// Longest ring or talk time a call may report: anything longer is a provider's error, and
/// counting it would overflow or distort the statistics.
pub const MAX_CALL_MS: u64 = 30 * 24 * 3600 * 1000;

/// Why an event cannot be projected, when it cannot: values the statistics cannot hold, or text
/// PostgreSQL cannot store (a NUL character). Such an event is dead-lettered by the store writer
/// rather than stored with a wrapped-around number or left to stall the projections.
pub fn refusal(e: &RecordedEvent) -> Option<String> {
    // Events that are rare beside the call lifecycle: every text they carry is checked.
    let many: Option<Vec<(&str, &str)>> = match &e.event {
        Event::FollowUpAdded(f) => Some(vec![
            ("FollowUpAdded.phone", f.phone.as_str()),
            ("FollowUpAdded.result", f.result.as_str()),
            ("FollowUpAdded.intention", f.intention.as_str()),
            ("FollowUpAdded.note", f.note.as_str()),
            ("FollowUpAdded.added_by", f.added_by.as_str()),
        ]),
        Event::AnalysisCompleted(a) => Some(
            [
                ("AnalysisCompleted.intent", a.intent.as_str()),
                ("AnalysisCompleted.grade", a.grade.as_str()),
                ("AnalysisCompleted.sentiment", a.sentiment.as_str()),
                ("AnalysisCompleted.summary", a.summary.as_str()),
                ("AnalysisCompleted.language", a.language.as_str()),
                ("AnalysisCompleted.transcript", a.transcript.as_str()),
                ("AnalysisCompleted.analyzer", a.analyzer.as_str()),
            ]
            .into_iter()
            .chain(
                a.keywords
                    .iter()
                    .map(|k| ("AnalysisCompleted.keywords", k.as_str())),
            )
            .collect(),
        ),
        Event::AnalysisFailed(a) => Some(vec![("AnalysisFailed.reason", a.reason.as_str())]),
        Event::RecordingAvailable(r) => Some(vec![
            ("RecordingAvailable.uri", r.uri.as_str()),
            ("RecordingAvailable.content_type", r.content_type.as_str()),
        ]),
        Event::TranscriptAvailable(t) => Some(vec![
            ("TranscriptAvailable.text", t.text.as_str()),
            ("TranscriptAvailable.language", t.language.as_str()),
            ("TranscriptAvailable.source", t.source.as_str()),
        ]),
        Event::RecordingStored(r) => Some(vec![
            ("RecordingStored.key", r.key.as_str()),
            ("RecordingStored.content_type", r.content_type.as_str()),
            ("RecordingStored.format", r.format.as_str()),
            ("RecordingStored.sha256", r.sha256.as_str()),
            ("RecordingStored.source_uri", r.source_uri.as_str()),
        ]),
        Event::RecordingFailed(r) => Some(vec![
            ("RecordingFailed.source_uri", r.source_uri.as_str()),
            ("RecordingFailed.reason", r.reason.as_str()),
        ]),
        Event::RecordingDeleted(r) => Some(vec![
            ("RecordingDeleted.key", r.key.as_str()),
            ("RecordingDeleted.reason", r.reason.as_str()),
        ]),
        _ => None,
    };
    if let Some(fields) = many {
        if let Event::RecordingStored(r) = &e.event {
            for (field, v) in [("bytes", r.bytes), ("duration_ms", r.duration_ms)] {
                if v > i64::MAX as u64 {
                    return Some(format!("RecordingStored.{field} = {v} is out of range"));
                }
            }
        }
        if let Some((field, _)) = fields.iter().find(|(_, v)| v.contains('\0')) {
            return Some(format!(
                "{field} holds a NUL character (0x00), which the database cannot store"
            ));
        }
    }
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
    commit_cached(pool, after, last, events, refused, &mut Counters::default()).await
}

/// The task counters rows a projector last committed, so that its transactions read only the
/// rows of tasks it has not seen: with 100 tasks dialing, every projection transaction touches
/// every task's row, and reading them back cost as much as a sixth of the projections' time.
/// Used only by a commit from the position the last one ended at (each commit moves the
/// checkpoint from where it finds it, so no one else wrote counters between the two); emptied
/// on anything else: a commit from elsewhere (the projector re-read a checkpoint another
/// projector moved, or one a database failover took back), a failed commit, a moved checkpoint.
#[derive(Debug, Default)]
pub struct Counters {
    rows: CounterRows,
    /// Where the commit that left `rows` ended.
    at: Option<u64>,
}

/// Each task's counters, by key.
type CounterRows = HashMap<Uuid, BTreeMap<Cow<'static, str>, i64>>;

/// Tasks whose counters a projector keeps at most (a few hundred bytes each); past this it starts
/// over, reading rows again as their tasks come up.
const COUNTERS_KEPT: usize = 10_000;

/// [`commit`] for the live projector, reading counters rows it committed from `counters` and
/// keeping those it writes there. The commit works on rows taken out of `counters`, which get
/// them back only when it commits from where the last one ended.
pub async fn commit_cached(
    pool: &sqlx::PgPool,
    after: u64,
    last: u64,
    events: &[(u64, &RecordedEvent)],
    refused: i64,
    counters: &mut Counters,
) -> Result<bool, StoreError> {
    let mut rows = std::mem::take(&mut counters.rows);
    if counters.at.take() != Some(after) {
        rows.clear();
    }
    let r = commit_inner(pool, after, last, events, refused, &mut rows).await;
    if let Ok(true) = r {
        if rows.len() > COUNTERS_KEPT {
            rows.clear();
        }
        *counters = Counters {
            rows,
            at: Some(last),
        };
    }
    r
}

async fn commit_inner(
    pool: &sqlx::PgPool,
    after: u64,
    last: u64,
    events: &[(u64, &RecordedEvent)],
    refused: i64,
    counters: &mut CounterRows,
) -> Result<bool, StoreError> {
    let t0 = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    if !waihu_store::advance_checkpoint(&mut tx, CHECKPOINT, after, last).await? {
        return Ok(false);
    }
    apply_with(&mut tx, &Tables::live(), events, Some(counters)).await?;
    waihu_store::add_counters(&mut tx, &[(waihu_store::PROJECTION_REFUSED, refused)]).await?;
    if let Some(payload) = change_notice(events) {
        // Delivered to the listeners when (and only if) the transaction commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGED_CHANNEL)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::debug!(
        events = events.len(),
        last,
        total_us = t0.elapsed().as_micros() as u64,
        "projections applied"
    );
    Ok(true)
}

/// The PostgreSQL notification channel on which each projections commit names the tasks whose
/// statistics it changed (WatchTaskStats listens on it, in every record service replica).
pub const CHANGED_CHANNEL: &str = "waihu_record_changed";

/// Longest notification payload sent; PostgreSQL allows just under 8000 bytes.
const NOTICE_MAX: usize = 7000;

/// The changed tasks' ids, space-separated, or `*` when they do not fit; None when the batch
/// touched no task.
pub fn change_notice(events: &[(u64, &RecordedEvent)]) -> Option<String> {
    let tasks: std::collections::BTreeSet<Uuid> =
        events.iter().filter_map(|(_, e)| e.meta.task_id).collect();
    if tasks.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(tasks.len() * 37);
    for t in &tasks {
        if out.len() + 37 > NOTICE_MAX {
            return Some("*".into());
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&t.to_string());
    }
    Some(out)
}

/// The tasks a change notice names (None: any task may have changed).
pub fn parse_notice(payload: &str) -> Option<Vec<Uuid>> {
    if payload == "*" {
        return None;
    }
    Some(payload.split(' ').filter_map(uuid).collect())
}

pub(crate) fn uuid(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s).ok()
}

/// A change of one task's counter: (task, key, delta).
pub type Delta = (Uuid, Cow<'static, str>, i64);

/// Counter changes one event makes. Commutative, so order never matters.
pub fn counter_deltas(e: &RecordedEvent, out: &mut Vec<Delta>) {
    use keys::*;
    let Some(task) = e.meta.task_id else { return };
    let mut add = |k: Cow<'static, str>, d: i64| out.push((task, k, d));
    match &e.event {
        Event::ContactsAdded(c) => add(Cow::Borrowed(CONTACTS_TOTAL), c.contacts.len() as i64),
        Event::CallRequested(r) => {
            add(Cow::Borrowed(CALLS_PLACED), 1);
            if r.attempt == 1 {
                add(Cow::Borrowed(CONTACTS_DIALED), 1);
            }
        }
        Event::CallReleased(r) => {
            add(Cow::Borrowed(CALLS_RELEASED), 1);
            add(Cow::Borrowed(RING_MS), r.ring_ms as i64);
            if r.answered {
                add(Cow::Borrowed(CALLS_ANSWERED), 1);
                add(Cow::Borrowed(TALK_MS), r.talk_ms as i64);
            }
            let q850 = r.cause.as_ref().map(|c| c.q850).unwrap_or(0);
            add(Cow::Owned(format!("{CAUSE_PREFIX}{q850}")), 1);
        }
        Event::ContactFinished(f) => {
            add(Cow::Borrowed(CONTACTS_FINISHED), 1);
            add(Cow::Owned(format!("{OUTCOME_PREFIX}{}", f.outcome)), 1);
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
    /// Store positions of the call's events in this batch, in store order.
    pub event_positions: Vec<i64>,
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
        Event::RecordingAvailable(r) => (&r.call_id, &r.task_id, r.contact_no),
        Event::TranscriptAvailable(r) => (&r.call_id, &r.task_id, r.contact_no),
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
    row.event_positions.push(position as i64);
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

/// A task's state as the projections keep it (`record_tasks.state`).
pub mod task_state {
    pub const CREATED: i16 = 1;
    pub const RUNNING: i16 = 2;
    pub const PAUSED: i16 = 3;
    pub const COMPLETED: i16 = 4;
    pub const CANCELLED: i16 = 5;
}

/// `call_analyses.status` and `call_records.analysis_status`: waihu.v1.AnalysisStatus values.
pub mod analysis_status {
    use waihu_events::pb::AnalysisStatus;
    pub const COMPLETED: i16 = AnalysisStatus::Completed as i16;
    pub const FAILED: i16 = AnalysisStatus::Failed as i16;
}

/// Applies a batch of newly stored events to the projections, in the caller's transaction.
pub async fn apply(
    tx: &mut Tx<'_>,
    tables: &Tables,
    events: &[(u64, &RecordedEvent)],
) -> Result<(), StoreError> {
    apply_with(tx, tables, events, None).await
}

/// [`apply`], with the counters rows known (the live projector's last commits) read from
/// `counters` rather than the table, and those written put there.
async fn apply_with(
    tx: &mut Tx<'_>,
    tables: &Tables,
    events: &[(u64, &RecordedEvent)],
    counters: Option<&mut CounterRows>,
) -> Result<(), StoreError> {
    let mut deltas: Vec<Delta> = Vec::new();
    let mut calls: HashMap<Uuid, CallRow> = HashMap::new();
    let mut tasks: Vec<(Uuid, String, String)> = Vec::new();
    // The last state event of each task in this batch.
    let mut states: BTreeMap<Uuid, i16> = BTreeMap::new();
    let mut analyses: Vec<(u64, &RecordedEvent)> = Vec::new();
    let mut follow_ups: Vec<(u64, &RecordedEvent)> = Vec::new();
    let mut recordings: Vec<(u64, &RecordedEvent)> = Vec::new();
    for (position, e) in events {
        counter_deltas(e, &mut deltas);
        fold_call(*position, e, &mut calls);
        let state = match &e.event {
            Event::TaskCreated(t) => {
                if let Some(task) = e.meta.task_id {
                    let name = t.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                    tasks.push((task, e.meta.tenant_id.clone(), name));
                }
                None
            }
            Event::TaskStarted(_) | Event::TaskResumed(_) => Some(task_state::RUNNING),
            Event::TaskPaused(_) => Some(task_state::PAUSED),
            Event::TaskCompleted(_) => Some(task_state::COMPLETED),
            Event::TaskCancelled(_) => Some(task_state::CANCELLED),
            Event::AnalysisCompleted(_) | Event::AnalysisFailed(_) => {
                analyses.push((*position, e));
                None
            }
            Event::FollowUpAdded(_) => {
                follow_ups.push((*position, e));
                None
            }
            Event::RecordingAvailable(_)
            | Event::RecordingStored(_)
            | Event::RecordingFailed(_)
            | Event::RecordingDeleted(_) => {
                recordings.push((*position, e));
                None
            }
            _ => None,
        };
        if let (Some(state), Some(task)) = (state, e.meta.task_id) {
            states.insert(task, state);
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
    if !states.is_empty() {
        let (ids, values): (Vec<Uuid>, Vec<i16>) = states.into_iter().unzip();
        sqlx::query(&format!(
            "UPDATE {} t SET state = s.state FROM UNNEST($1::uuid[], $2::smallint[]) AS s(task_id, state)
             WHERE t.task_id = s.task_id",
            tables.tasks
        ))
        .bind(&ids)
        .bind(&values)
        .execute(&mut **tx)
        .await?;
    }
    apply_calls(tx, tables, calls).await?;
    if !analyses.is_empty() {
        apply_analyses(tx, tables, &analyses, &mut deltas).await?;
    }
    if !follow_ups.is_empty() {
        apply_follow_ups(tx, tables, &follow_ups).await?;
    }
    if !recordings.is_empty() {
        crate::recording::projection::apply(tx, tables, &recordings).await?;
    }
    apply_counters(tx, tables, deltas, counters).await
}

/// Adds `positions` to the timelines of the calls they belong to, kept in store order however
/// the events were batched; calls with no record are left alone.
pub(crate) async fn add_positions(
    tx: &mut Tx<'_>,
    tables: &Tables,
    positions: &[(Uuid, i64)],
) -> Result<(), StoreError> {
    let (calls, positions): (Vec<Uuid>, Vec<i64>) = positions.iter().copied().unzip();
    sqlx::query(&format!(
        "UPDATE {} c
         SET event_positions = ARRAY(SELECT x FROM unnest(c.event_positions || p.positions) x ORDER BY x)
         FROM (SELECT call_id, array_agg(position ORDER BY position) AS positions
               FROM UNNEST($1::uuid[], $2::bigint[]) AS u(call_id, position) GROUP BY call_id) p
         WHERE c.call_id = p.call_id",
        tables.call_records
    ))
    .bind(&calls)
    .bind(&positions)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The latest analysis of each call replaces the one before (a completed analysis is not
/// replaced by a later failure); the intent and grade counters move with it.
async fn apply_analyses(
    tx: &mut Tx<'_>,
    tables: &Tables,
    events: &[(u64, &RecordedEvent)],
    deltas: &mut Vec<Delta>,
) -> Result<(), StoreError> {
    use keys::*;
    let mut positions = Vec::with_capacity(events.len());
    // The last event per call wins, except that a failure never replaces a completion.
    let mut latest: BTreeMap<Uuid, (u64, &RecordedEvent)> = BTreeMap::new();
    for (position, e) in events {
        let call = match &e.event {
            Event::AnalysisCompleted(a) => &a.call_id,
            Event::AnalysisFailed(a) => &a.call_id,
            _ => continue,
        };
        let Some(call) = uuid(call) else { continue };
        positions.push((call, *position as i64));
        let completed = matches!(e.event, Event::AnalysisCompleted(_));
        match latest.get(&call) {
            Some((_, prev)) if !completed && matches!(prev.event, Event::AnalysisCompleted(_)) => {}
            _ => {
                latest.insert(call, (*position, e));
            }
        }
    }
    if latest.is_empty() {
        return Ok(());
    }
    add_positions(tx, tables, &positions).await?;
    let ids: Vec<Uuid> = latest.keys().copied().collect();
    // What the counters hold for these calls now.
    let before: Vec<(Uuid, Option<Uuid>, i16, String, String)> = sqlx::query_as(&format!(
        "SELECT call_id, task_id, status, intent, grade FROM {} WHERE call_id = ANY($1)",
        tables.analyses
    ))
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let before: HashMap<Uuid, (Option<Uuid>, i16, String, String)> = before
        .into_iter()
        .map(|(c, t, s, i, g)| (c, (t, s, i, g)))
        .collect();
    // The rows to write, one per call, as columns.
    let mut c = AnalysisColumns::default();
    for (call, (position, e)) in latest {
        let task = e.meta.task_id;
        let old = before.get(&call);
        let old_completed = old.is_some_and(|o| o.1 == analysis_status::COMPLETED);
        let (status, a, failure) = match &e.event {
            Event::AnalysisCompleted(a) => {
                if let Some((Some(t), _, intent, grade)) = old.filter(|_| old_completed) {
                    deltas.push((*t, Cow::Borrowed(ANALYSED), -1));
                    deltas.push((*t, Cow::Owned(format!("{INTENT_PREFIX}{intent}")), -1));
                    deltas.push((*t, Cow::Owned(format!("{GRADE_PREFIX}{grade}")), -1));
                }
                if let Some(t) = task {
                    deltas.push((t, Cow::Borrowed(ANALYSED), 1));
                    deltas.push((t, Cow::Owned(format!("{INTENT_PREFIX}{}", a.intent)), 1));
                    deltas.push((t, Cow::Owned(format!("{GRADE_PREFIX}{}", a.grade)), 1));
                }
                (analysis_status::COMPLETED, a, "")
            }
            Event::AnalysisFailed(f) if !old_completed => {
                (analysis_status::FAILED, &NO_ANALYSIS, f.reason.as_str())
            }
            _ => continue,
        };
        c.push(call, e, position, status, a, failure);
    }
    if c.calls.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO {} AS t (call_id, tenant_id, task_id, status, intent, grade, sentiment,
             keywords, summary, language, transcript, analyzer, failure, position)
         SELECT u.call_id, u.tenant_id, u.task_id, u.status, u.intent, u.grade, u.sentiment,
             ARRAY(SELECT jsonb_array_elements_text(u.keywords::jsonb)), u.summary, u.language,
             u.transcript, u.analyzer, u.failure, u.position
         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::smallint[], $5::text[], $6::text[],
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
             $14::bigint[])
             AS u(call_id, tenant_id, task_id, status, intent, grade, sentiment, keywords,
                  summary, language, transcript, analyzer, failure, position)
         ON CONFLICT (call_id) DO UPDATE SET status = excluded.status,
             intent = excluded.intent, grade = excluded.grade, sentiment = excluded.sentiment,
             keywords = excluded.keywords, summary = excluded.summary,
             language = excluded.language, transcript = excluded.transcript,
             analyzer = excluded.analyzer, failure = excluded.failure,
             position = excluded.position",
        tables.analyses
    ))
    .bind(&c.calls)
    .bind(&c.tenants)
    .bind(&c.tasks)
    .bind(&c.statuses)
    .bind(&c.intents)
    .bind(&c.grades)
    .bind(&c.sentiments)
    .bind(&c.keywords)
    .bind(&c.summaries)
    .bind(&c.languages)
    .bind(&c.transcripts)
    .bind(&c.analyzers)
    .bind(&c.failures)
    .bind(&c.positions)
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "UPDATE {} c SET analysis_status = u.status
         FROM UNNEST($1::uuid[], $2::smallint[]) AS u(call_id, status)
         WHERE c.call_id = u.call_id",
        tables.call_records
    ))
    .bind(&c.calls)
    .bind(&c.statuses)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What a failed analysis leaves in the analysis columns.
static NO_ANALYSIS: pb::AnalysisCompleted = pb::AnalysisCompleted {
    call_id: String::new(),
    task_id: String::new(),
    contact_no: 0,
    intent: String::new(),
    grade: String::new(),
    sentiment: String::new(),
    keywords: Vec::new(),
    summary: String::new(),
    language: String::new(),
    transcript: String::new(),
    analyzer: String::new(),
    transcript_source: String::new(),
};

/// `call_analyses` rows as columns, for one `UNNEST` insert.
#[derive(Default)]
struct AnalysisColumns {
    calls: Vec<Uuid>,
    tenants: Vec<String>,
    tasks: Vec<Option<Uuid>>,
    statuses: Vec<i16>,
    intents: Vec<String>,
    grades: Vec<String>,
    sentiments: Vec<String>,
    /// Each call's keywords as a JSON array (arrays of arrays cannot be unnested by row).
    keywords: Vec<String>,
    summaries: Vec<String>,
    languages: Vec<String>,
    transcripts: Vec<String>,
    analyzers: Vec<String>,
    failures: Vec<String>,
    positions: Vec<i64>,
}

impl AnalysisColumns {
    fn push(
        &mut self,
        call: Uuid,
        e: &RecordedEvent,
        position: u64,
        status: i16,
        a: &pb::AnalysisCompleted,
        failure: &str,
    ) {
        self.calls.push(call);
        self.tenants.push(e.meta.tenant_id.clone());
        self.tasks.push(e.meta.task_id);
        self.statuses.push(status);
        self.intents.push(a.intent.clone());
        self.grades.push(a.grade.clone());
        self.sentiments.push(a.sentiment.clone());
        self.keywords
            .push(serde_json::Value::from(a.keywords.clone()).to_string());
        self.summaries.push(a.summary.clone());
        self.languages.push(a.language.clone());
        self.transcripts.push(a.transcript.clone());
        self.analyzers.push(a.analyzer.clone());
        self.failures.push(failure.to_string());
        self.positions.push(position as i64);
    }
}

async fn apply_follow_ups(
    tx: &mut Tx<'_>,
    tables: &Tables,
    events: &[(u64, &RecordedEvent)],
) -> Result<(), StoreError> {
    let mut positions = Vec::with_capacity(events.len());
    let mut ids = Vec::with_capacity(events.len());
    let mut tenants = Vec::with_capacity(events.len());
    let mut calls = Vec::with_capacity(events.len());
    let mut tasks = Vec::with_capacity(events.len());
    let mut contacts = Vec::with_capacity(events.len());
    let mut phones = Vec::with_capacity(events.len());
    let mut results = Vec::with_capacity(events.len());
    let mut intentions = Vec::with_capacity(events.len());
    let mut notes = Vec::with_capacity(events.len());
    let mut next: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(events.len());
    let mut added_by = Vec::with_capacity(events.len());
    let mut added_at = Vec::with_capacity(events.len());
    for (position, e) in events {
        let Event::FollowUpAdded(f) = &e.event else {
            continue;
        };
        let (Some(id), Some(call)) = (uuid(&f.follow_up_id), uuid(&f.call_id)) else {
            continue;
        };
        positions.push((call, *position as i64));
        ids.push(id);
        tenants.push(e.meta.tenant_id.as_str());
        calls.push(call);
        tasks.push(e.meta.task_id);
        contacts.push(f.contact_no as i32);
        phones.push(f.phone.as_str());
        results.push(f.result.as_str());
        intentions.push(f.intention.as_str());
        notes.push(f.note.as_str());
        next.push(
            f.next_follow_up_at
                .as_ref()
                .and_then(waihu_events::from_timestamp),
        );
        added_by.push(f.added_by.as_str());
        added_at.push(e.meta.occurred_at);
    }
    if ids.is_empty() {
        return Ok(());
    }
    let stored: Vec<i64> = positions.iter().map(|(_, p)| *p).collect();
    sqlx::query(&format!(
        "INSERT INTO {} (follow_up_id, tenant_id, call_id, task_id, contact_no, phone, result,
             intention, note, next_at, added_by, added_at, position)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::int[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[],
             $12::timestamptz[], $13::bigint[])
         ON CONFLICT (follow_up_id) DO NOTHING",
        tables.follow_ups
    ))
    .bind(&ids)
    .bind(&tenants)
    .bind(&calls)
    .bind(&tasks)
    .bind(&contacts)
    .bind(&phones)
    .bind(&results)
    .bind(&intentions)
    .bind(&notes)
    .bind(&next)
    .bind(&added_by)
    .bind(&added_at)
    .bind(&stored)
    .execute(&mut **tx)
    .await?;
    add_positions(tx, tables, &positions).await
}

/// Adds `deltas` to the tasks' counters: each task's row (its keys and values) is read, changed
/// and written once, whatever the number of keys that changed. The projector is the counters'
/// only writer: its transaction holds the projections' checkpoint first, so no other one can
/// change these rows between the read and the write.
async fn apply_counters(
    tx: &mut Tx<'_>,
    tables: &Tables,
    deltas: Vec<Delta>,
    counters: Option<&mut CounterRows>,
) -> Result<(), StoreError> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut sum: BTreeMap<Uuid, BTreeMap<Cow<'static, str>, i64>> = BTreeMap::new();
    for (t, k, d) in deltas {
        *sum.entry(t).or_default().entry(k).or_default() += d;
    }
    // The rows already known are added from memory; the others are read.
    let mut ids: Vec<Uuid> = Vec::new();
    for (t, row) in sum.iter_mut() {
        match counters.as_deref().and_then(|k| k.get(t)) {
            Some(was) => {
                for (k, v) in was {
                    *row.entry(k.clone()).or_default() += v;
                }
            }
            None => ids.push(*t),
        }
    }
    if !ids.is_empty() {
        let current: Vec<(Uuid, Vec<String>, Vec<i64>)> = sqlx::query_as(&format!(
            "SELECT task_id, keys, vals FROM {} WHERE task_id = ANY($1)",
            tables.counters
        ))
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        for (t, keys, values) in current {
            let row = sum.entry(t).or_default();
            for (k, v) in keys.into_iter().zip(values) {
                *row.entry(Cow::Owned(k)).or_default() += v;
            }
        }
    }
    // Each task's row as array literals, tasks in order (rows are written, and locked, in a
    // stable order) and each task's keys in byte order: binding them as text keeps the statement
    // free of grouping (a third of its time when it built the arrays from one row per key).
    let mut tasks = Vec::with_capacity(sum.len());
    let mut keys = Vec::with_capacity(sum.len());
    let mut values = Vec::with_capacity(sum.len());
    for (t, row) in &sum {
        tasks.push(*t);
        keys.push(array_literal(row.keys().map(|k| quoted(k))));
        values.push(array_literal(row.values().map(i64::to_string)));
    }
    sqlx::query(&format!(
        "INSERT INTO {} AS c (task_id, keys, vals)
         SELECT t, k::text[], v::bigint[] FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS u(t, k, v)
         ON CONFLICT (task_id) DO UPDATE SET keys = excluded.keys, vals = excluded.vals",
        tables.counters
    ))
    .bind(&tasks)
    .bind(&keys)
    .bind(&values)
    .execute(&mut **tx)
    .await?;
    if let Some(known) = counters {
        known.extend(sum);
    }
    Ok(())
}

/// A PostgreSQL array literal of `items` (each already in its literal form).
fn array_literal(items: impl Iterator<Item = String>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push('}');
    out
}

/// `s` as a double-quoted element of an array literal: any text (commas, braces, quotes,
/// backslashes, spaces, the word NULL) reads back as itself.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A query listing the counters of `table` (one of [`Tables`]' counters tables) as rows
/// `(task_id, key, value)`.
pub fn counter_rows(table: &str) -> String {
    format!("SELECT c.task_id, u.k, u.v FROM {table} c, unnest(c.keys, c.vals) AS u(k, v)")
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
             talk_ms, answered, cause_q850, cause_name, cause_raw, record_no, event_positions)
         SELECT u.call_id, u.task_id, u.tenant_id, u.contact_no, u.started_at, u.phone, u.line_id,
             u.attempt, u.requested_at, u.dialing_at, u.ringing_at, u.answered_at, u.released_at,
             u.ring_ms, u.talk_ms, u.answered, u.cause_q850, u.cause_name, u.cause_raw,
             u.record_no, string_to_array(u.positions, ',')::bigint[]
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::timestamptz[],
             $6::text[], $7::text[], $8::int[], $9::timestamptz[], $10::timestamptz[],
             $11::timestamptz[], $12::timestamptz[], $13::timestamptz[], $14::bigint[],
             $15::bigint[], $16::bool[], $17::int[], $18::text[], $19::text[], $20::bigint[],
             $21::text[])
             AS u(call_id, task_id, tenant_id, contact_no, started_at, phone, line_id, attempt,
                  requested_at, dialing_at, ringing_at, answered_at, released_at, ring_ms,
                  talk_ms, answered, cause_q850, cause_name, cause_raw, record_no, positions)
         ON CONFLICT (call_id) DO UPDATE SET
             event_positions = t.event_positions || excluded.event_positions,
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
    .bind(
        rows.iter()
            .map(|r| {
                r.event_positions
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_element() {
        assert_eq!(array_literal(std::iter::empty()), "{}");
        assert_eq!(
            array_literal(["a", r#"b,"c"\{}"#].into_iter().map(quoted)),
            r#"{"a","b,\"c\"\\{}"}"#
        );
        assert_eq!(
            array_literal([1i64, -2].iter().map(i64::to_string)),
            "{1,-2}"
        );
    }

    /// Counters added in several transactions read back exactly, whatever their keys hold: a key
    /// is made from an event's field (a cause, an outcome, an intent, a grade), and its array
    /// literal must carry any text (commas, quotes, braces, backslashes, spaces, the word NULL).
    #[tokio::test]
    async fn counters_add_up_across_transactions_whatever_their_keys() {
        let env = waihu_testkit::TestEnv::new().await;
        let pool = crate::open_pool(&env.database_url, 2)
            .await
            .expect("record schema");
        let tables = Tables::live();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let odd = r#"intent:a,b "c" \{d} NULL 未"#;
        let rounds: [Vec<Delta>; 3] = [
            vec![
                (a, Cow::Borrowed("calls_placed"), 1),
                (a, Cow::Borrowed(odd), 2),
                (b, Cow::Borrowed("calls_placed"), 5),
            ],
            vec![
                (a, Cow::Borrowed("calls_placed"), 1),
                (a, Cow::Borrowed("NULL"), 1),
                (a, Cow::Borrowed(""), 3),
            ],
            vec![
                (a, Cow::Borrowed(odd), -2),
                (b, Cow::Borrowed("talk_ms"), 7),
            ],
        ];
        for deltas in rounds {
            let mut tx = pool.begin().await.expect("begin");
            apply_counters(&mut tx, &tables, deltas, None)
                .await
                .expect("counters");
            tx.commit().await.expect("commit");
        }
        let mut rows: Vec<(Uuid, String, i64)> = sqlx::query_as(&counter_rows(&tables.counters))
            .fetch_all(&pool)
            .await
            .expect("rows");
        rows.sort();
        let mut want = vec![
            (a, String::new(), 3),
            (a, "NULL".to_string(), 1),
            (a, "calls_placed".to_string(), 2),
            (a, odd.to_string(), 0),
            (b, "calls_placed".to_string(), 5),
            (b, "talk_ms".to_string(), 7),
        ];
        want.sort();
        assert_eq!(rows, want);
        pool.close().await;
        env.cleanup().await;
    }

    /// The live projector keeps the counters rows it committed and reads only the others; a
    /// commit that finds the checkpoint moved (another projector wrote meanwhile), or that starts
    /// anywhere but where its last one ended, forgets them, so it reads what the other wrote
    /// instead of adding to a stale row.
    #[tokio::test]
    async fn kept_counters_are_forgotten_once_another_projector_committed() {
        let env = waihu_testkit::TestEnv::new().await;
        let pool = crate::open_pool(&env.database_url, 2)
            .await
            .expect("record schema");
        let (t1, t2) = (Uuid::now_v7(), Uuid::now_v7());
        // `n` calls of `task` (every other one answered), at the positions after `*next`.
        fn calls(next: &mut u64, task: Uuid, n: u32) -> Vec<(u64, RecordedEvent)> {
            (0..n)
                .flat_map(|i| {
                    waihu_testkit::call_lifecycle(
                        "a",
                        task,
                        Uuid::now_v7(),
                        i + 1,
                        1,
                        i % 2 == 0,
                        10,
                        20,
                    )
                })
                .map(|e| {
                    *next += 1;
                    (*next, e)
                })
                .collect()
        }
        let mut next = 0u64;
        fn refs(b: &[(u64, RecordedEvent)]) -> Vec<(u64, &RecordedEvent)> {
            b.iter().map(|(p, e)| (*p, e)).collect()
        }
        let mut kept = Counters::default();
        let mut all: Vec<(u64, RecordedEvent)> = Vec::new();

        let a = calls(&mut next, t1, 3);
        assert!(commit_cached(&pool, 0, next, &refs(&a), 0, &mut kept)
            .await
            .expect("a"));
        let at_a = next;
        assert!(kept.rows.contains_key(&t1), "kept after a commit");
        all.extend(a);
        let mut b = calls(&mut next, t1, 2);
        b.extend(calls(&mut next, t2, 1));
        let at_b = next;
        // Another projector commits b.
        assert!(commit(&pool, at_a, at_b, &refs(&b), 0).await.expect("b"));
        all.extend(b);
        // This one, still at a, finds the checkpoint moved: nothing written, nothing kept.
        let c = calls(&mut next, t1, 4);
        assert!(!commit_cached(&pool, at_a, next, &refs(&c), 0, &mut kept)
            .await
            .expect("moved"));
        assert!(kept.rows.is_empty(), "forgotten");
        // From the checkpoint, it reads the rows the other wrote.
        assert!(commit_cached(&pool, at_b, next, &refs(&c), 0, &mut kept)
            .await
            .expect("c"));
        all.extend(c);
        // Next from where it ended: task 1 from what it kept, task 2 read.
        let at_c = next;
        let mut d = calls(&mut next, t1, 2);
        d.extend(calls(&mut next, t2, 2));
        assert!(commit_cached(&pool, at_c, next, &refs(&d), 0, &mut kept)
            .await
            .expect("d"));
        assert_eq!(kept.rows.len(), 2, "both kept");
        all.extend(d);
        // Another projector commits on; this one, back from an error that made it re-read the
        // checkpoint, commits from there: what it kept is as of an older position, so unused.
        let at_d = next;
        let e = calls(&mut next, t1, 1);
        let at_e = next;
        assert!(commit(&pool, at_d, at_e, &refs(&e), 0).await.expect("e"));
        all.extend(e);
        let f = calls(&mut next, t1, 3);
        assert!(commit_cached(&pool, at_e, next, &refs(&f), 0, &mut kept)
            .await
            .expect("f"));
        all.extend(f);

        let mut want: BTreeMap<(Uuid, String), i64> = BTreeMap::new();
        let mut deltas = Vec::new();
        for (_, e) in &all {
            counter_deltas(e, &mut deltas);
        }
        for (t, k, d) in deltas {
            *want.entry((t, k.into_owned())).or_default() += d;
        }
        let rows: Vec<(Uuid, String, i64)> = sqlx::query_as(&counter_rows("record.task_counters"))
            .fetch_all(&pool)
            .await
            .expect("rows");
        let got: BTreeMap<(Uuid, String), i64> =
            rows.into_iter().map(|(t, k, v)| ((t, k), v)).collect();
        assert_eq!(got, want);
        assert_eq!(got[&(t1, keys::CALLS_PLACED.to_string())], 15);
        pool.close().await;
        env.cleanup().await;
    }
}
