//! Follow-ups: what a sales person writes down after a call (seed 003's 通话结束 form: result,
//! intention, note, next follow-up time). Each is a `FollowUpAdded` event on its own stream;
//! the projections keep them for the call's record and for the to-do list.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use waihu_bus::{Bus, Expect};
use waihu_events::{timestamp, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_proto::v1 as pb;
use waihu_runtime::page_token;

use crate::grpc::{invalid, parse_time, RecordError};

/// Namespace of follow-up ids made from a client's request id.
const REQUEST_NAMESPACE: Uuid = Uuid::from_u128(0x3c1f_7e52_9a04_4b6d_8e21_5f9a_c0d7_1b34);

/// What a follow-up copies from the call it is about.
pub struct Target {
    pub call_id: Uuid,
    pub task_id: Option<Uuid>,
    pub contact_no: u32,
    pub phone: String,
    pub number: u64,
}

/// Longest result and intention (one line each) and note (free text, lines allowed).
const LINE_MAX: usize = 200;
const NOTE_MAX: usize = 4000;

/// Free text: at most `max` characters, line breaks and tabs allowed, no other control
/// character.
fn check_note(field: &'static str, value: &str, max: usize) -> Result<(), RecordError> {
    if value.chars().count() > max
        || value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(
            field,
            format!("at most {max} characters, no control characters but line breaks and tabs"),
        ));
    }
    Ok(())
}

/// Checks the form and publishes its `FollowUpAdded`; the follow-up as it will be listed.
pub async fn add(
    bus: Option<&Bus>,
    tenant: &str,
    actor: &str,
    call: &Target,
    r: pb::AddFollowUpRequest,
) -> Result<pb::FollowUp, RecordError> {
    waihu_runtime::check_text("result", &r.result, LINE_MAX)?;
    waihu_runtime::check_text("intention", &r.intention, LINE_MAX)?;
    check_note("note", &r.note, NOTE_MAX)?;
    waihu_runtime::check_text("request_id", &r.request_id, 128)?;
    if r.result.is_empty()
        && r.intention.is_empty()
        && r.note.is_empty()
        && r.next_follow_up_at.is_none()
    {
        return Err(invalid(
            "result",
            "a follow-up needs a result, an intention, a note or a next follow-up time",
        ));
    }
    let next = parse_time("next_follow_up_at", &r.next_follow_up_at)?;
    let id = if r.request_id.is_empty() {
        Uuid::now_v7()
    } else {
        Uuid::new_v5(
            &REQUEST_NAMESPACE,
            format!("{tenant}\0{}\0{}", call.call_id, r.request_id).as_bytes(),
        )
    };
    let payload = pb::FollowUpAdded {
        follow_up_id: id.to_string(),
        call_id: call.call_id.to_string(),
        task_id: call.task_id.map(|t| t.to_string()).unwrap_or_default(),
        contact_no: call.contact_no,
        phone: call.phone.clone(),
        result: r.result,
        intention: r.intention,
        note: r.note,
        next_follow_up_at: next.map(timestamp),
        added_by: actor.to_string(),
    };
    let mut meta = EventMeta::new(tenant, Aggregate::FollowUp(id), 1)
        .with_deterministic_id(&format!("followup/{id}/added"));
    if let Some(t) = call.task_id {
        meta = meta.with_task(t);
    }
    let event = RecordedEvent::new(meta, Event::FollowUpAdded(payload.clone()));
    let added_at = event.meta.occurred_at;
    if let Some(bus) = bus {
        bus.publish(&event, Expect::Any).await.map_err(|e| {
            RecordError::Unavailable(format!("the follow-up was not recorded: {e}"))
        })?;
    }
    Ok(to_pb(payload, added_at, call.number))
}

fn to_pb(f: pb::FollowUpAdded, added_at: DateTime<Utc>, number: u64) -> pb::FollowUp {
    pb::FollowUp {
        follow_up_id: f.follow_up_id,
        call_id: f.call_id,
        task_id: f.task_id,
        contact_no: f.contact_no,
        phone: f.phone,
        result: f.result,
        intention: f.intention,
        note: f.note,
        next_follow_up_at: f.next_follow_up_at,
        added_by: f.added_by,
        added_at: Some(timestamp(added_at)),
        call_number: number,
    }
}

const COLUMNS: &str = "f.follow_up_id, f.call_id, f.task_id, f.contact_no, f.phone, f.result, \
    f.intention, f.note, f.next_at, f.added_by, f.added_at, c.record_no";

#[derive(sqlx::FromRow)]
struct Row {
    follow_up_id: Uuid,
    call_id: Uuid,
    task_id: Option<Uuid>,
    contact_no: i32,
    phone: String,
    result: String,
    intention: String,
    note: String,
    next_at: Option<DateTime<Utc>>,
    added_by: String,
    added_at: DateTime<Utc>,
    record_no: Option<i64>,
}

impl Row {
    fn into_pb(self) -> pb::FollowUp {
        pb::FollowUp {
            follow_up_id: self.follow_up_id.to_string(),
            call_id: self.call_id.to_string(),
            task_id: self.task_id.map(|t| t.to_string()).unwrap_or_default(),
            contact_no: self.contact_no.max(0) as u32,
            phone: self.phone,
            result: self.result,
            intention: self.intention,
            note: self.note,
            next_follow_up_at: self.next_at.map(timestamp),
            added_by: self.added_by,
            added_at: Some(timestamp(self.added_at)),
            call_number: self.record_no.unwrap_or(0).max(0) as u64,
        }
    }
}

/// A call's follow-ups, oldest first.
pub async fn of_call(
    pool: &PgPool,
    tenant: &str,
    call: Uuid,
) -> Result<Vec<pb::FollowUp>, RecordError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM follow_ups f LEFT JOIN call_records c ON c.call_id = f.call_id
         WHERE f.call_id = $1 AND f.tenant_id = $2 ORDER BY f.position LIMIT 1000"
    ))
    .bind(call)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Row::into_pb).collect())
}

/// The tenant's follow-ups due in [from, to), soonest first, a page at a time.
pub async fn due(
    pool: &PgPool,
    tenant: &str,
    r: &pb::ListDueFollowUpsRequest,
) -> Result<pb::ListDueFollowUpsResponse, RecordError> {
    let from = parse_time("from", &r.from)?;
    let to = parse_time("to", &r.to)?;
    waihu_runtime::check_text("added_by", &r.added_by, 128)?;
    let size = match r.page_size {
        0 => 100,
        n if n > 1000 => return Err(invalid("page_size", "at most 1000")),
        n => n,
    };
    let after = page_token::decode(&r.page_token)?;
    let mut b: QueryBuilder<'_, Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM follow_ups f LEFT JOIN call_records c ON c.call_id = f.call_id
         WHERE f.tenant_id = "
    ));
    b.push_bind(tenant.to_string())
        .push(" AND f.next_at IS NOT NULL");
    if let Some(f) = from {
        b.push(" AND f.next_at >= ").push_bind(f);
    }
    if let Some(t) = to {
        b.push(" AND f.next_at < ").push_bind(t);
    }
    if !r.added_by.is_empty() {
        b.push(" AND f.added_by = ").push_bind(r.added_by.clone());
    }
    if let Some((at, id)) = after {
        b.push(" AND (f.next_at, f.follow_up_id) > (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    b.push(" ORDER BY f.next_at, f.follow_up_id LIMIT ")
        .push_bind(size as i64 + 1);
    let mut rows: Vec<Row> = b.build_query_as().fetch_all(pool).await?;
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next_page_token = match (more, rows.last()) {
        (true, Some(l)) => l
            .next_at
            .map(|at| page_token::encode(at, l.follow_up_id))
            .unwrap_or_default(),
        _ => String::new(),
    };
    Ok(pb::ListDueFollowUpsResponse {
        follow_ups: rows.into_iter().map(Row::into_pb).collect(),
        next_page_token,
    })
}
