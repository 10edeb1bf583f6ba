//! Seed 000 (小e外呼): `POST /api/caller/addTask`, `listTask`, `getTaskDetail` and
//! `getCallerDetail`, with its `{err_no, err_msg, err_inner, results}` envelope and its
//! snake_case field names. Tasks are named by their numbers (the seed's integer `id`).
//!
//! Mappings (the seed writes codes, not meanings, for some):
//! - task `status`: 0 = 待添加 (created, no numbers yet), 1 = 待呼叫 (numbers in, not dialing:
//!   pending, or started before its scheduled start), 2 = 进行中 (running), 3 = 已暂停 (paused),
//!   4 = 已完成 (completed or cancelled);
//! - number `status`: 1 = 待呼叫 (waiting), 2 = 呼叫中 (a call is out), 3 = 已呼叫 (finished),
//!   4 = 已过期 (the task was cancelled before it finished);
//! - `call_result`: the number's outcome, 0 while it is not finished, then 1 answered,
//!   2 unreached, 3 rejected, 4 invalid number, 5 cancelled (`waihu.v1.ContactOutcome`);
//! - times: `YYYY-MM-DD HH:MM:SS` in China Standard Time (UTC+8), `0000-00-00 00:00:00` for
//!   none, as in the seed.
//!
//! What the platform does not keep is shown as the seed's DDL defaults: `group_id` 0,
//! `number_city_code` "" (the caller number's region belongs to the line a call goes out on,
//! not to the task: see `ProviderService.GetLine`). `call_voice_url` is "" until a call's
//! recording is stored, then the path of seed 002's recording route for it
//! (`/api/v1/lead-generation/call-records/<n>/recording`, answering the signed URL).
//! `number_city_limit` (0 or 1) is kept: with 1 only numbers in the caller line's city are
//! dialed.

use std::collections::HashMap;

use axum::{
    extract::{rejection::JsonRejection, State},
    http::HeaderMap,
    routing::post,
    Json, Router,
};
use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};
use serde_json::{json, Map, Value};
use waihu_auth::perms::{CALL_CREATE, CALL_LIST, CALL_VIEW};
use waihu_proto::v1 as pb;
use waihu_telephony::phone::PhoneNumber;

use crate::{
    lead::{first_contacts, national, object, record_client, request, task_client},
    Backends, Envelope, Reply, RouteTable,
};

pub const BASE: &str = "/api/caller";
/// Numbers one addTask may carry.
const MAX_LIST: usize = 100_000;
/// Numbers a task's detail lists at most.
const DETAIL_NUMBERS: usize = 10_000;

/// Every seed 000 route: (method, path below [`BASE`], permissions: any one).
pub const ROUTES: RouteTable = &[
    ("POST", "/addTask", &[CALL_CREATE]),
    ("POST", "/listTask", &[CALL_VIEW, CALL_LIST]),
    ("POST", "/getTaskDetail", &[CALL_VIEW]),
    ("POST", "/getCallerDetail", &[CALL_VIEW]),
];

pub fn routes(b: Backends) -> Router<Backends> {
    let router = Router::new()
        .route(&format!("{BASE}/addTask"), post(add_task))
        .route(&format!("{BASE}/listTask"), post(list_task))
        .route(&format!("{BASE}/getTaskDetail"), post(task_detail))
        .route(&format!("{BASE}/getCallerDetail"), post(caller_detail));
    crate::guarded(router, b, BASE, ROUTES, Envelope::ErrNo)
}

type Result<T> = std::result::Result<T, Reply>;
type Body = std::result::Result<Json<Value>, JsonRejection>;

/// Either way, in seed 000's envelope.
fn done(r: Result<Value>) -> Reply {
    r.map_or_else(|e| e, Reply::ok).in_envelope(Envelope::ErrNo)
}

/// China Standard Time, the seed's clock.
fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

fn seed_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "0000-00-00 00:00:00".to_string(),
        |t| {
            cst()
                .from_utc_datetime(&t.naive_utc())
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        },
    )
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(waihu_events::from_timestamp)
}

/// An id the platform keeps as text, as the seed's integer when it is one.
fn int_or_text(s: &str) -> Value {
    s.parse::<u64>().map_or_else(|_| json!(s), |n| json!(n))
}

/// A body field that must be a non-negative integer (a JSON number, or digits in a string).
fn uint(m: &Map<String, Value>, field: &str) -> Result<Option<u64>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| Reply::invalid(field, "must be a non-negative integer")),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map(Some)
            .map_err(|_| Reply::invalid(field, "is out of range")),
        Some(_) => Err(Reply::invalid(field, "must be a non-negative integer")),
    }
}

/// The task a body names by `task_id`: its number, required.
fn task_id(m: &Map<String, Value>) -> Result<String> {
    match uint(m, "task_id")? {
        Some(n) if n > 0 => Ok(n.to_string()),
        Some(_) => Err(Reply::invalid("task_id", "must be a positive integer")),
        None => Err(Reply::invalid("task_id", "is required")),
    }
}

/// The body as an object; an empty body (with any content type, or none) counts as `{}`:
/// listTask is called with none.
fn body_or_empty(body: &[u8]) -> Result<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    object(Json::from_bytes(body))
}

/// Seed 000's task status (0-4).
fn task_status(t: &pb::Task) -> u8 {
    match pb::TaskStatus::try_from(t.status).unwrap_or(pb::TaskStatus::Unspecified) {
        pb::TaskStatus::Pending | pb::TaskStatus::Unspecified if t.contacts_total == 0 => 0,
        pb::TaskStatus::Pending | pb::TaskStatus::Unspecified => 1,
        pb::TaskStatus::Running => {
            let later = t
                .spec
                .as_ref()
                .and_then(|s| ts(&s.scheduled_start))
                .is_some_and(|at| at > Utc::now());
            if later {
                1
            } else {
                2
            }
        }
        pb::TaskStatus::Paused => 3,
        pb::TaskStatus::Completed | pb::TaskStatus::Cancelled => 4,
    }
}

/// A task as the seed's `tasks` row shows it.
fn task_row(t: &pb::Task) -> Map<String, Value> {
    let spec = t.spec.clone().unwrap_or_default();
    let Value::Object(m) = json!({
        "id": t.number,
        "tid": int_or_text(&t.tenant_id),
        "user_id": int_or_text(&t.created_by),
        "group_id": 0,
        "task_name": spec.name,
        "talking_id": spec.script_id.parse::<u64>().unwrap_or(0),
        "recall_num": spec.recall_count,
        "recall_interval": spec.recall_interval_seconds,
        "call_limit": spec.daily_call_limit,
        "number_city_code": "",
        "number_city_limit": u8::from(spec.number_city_limit),
        "priority": spec.priority,
        "status": task_status(t),
        "created_at": seed_time(ts(&t.created_at)),
        "updated_at": seed_time(ts(&t.updated_at)),
    }) else {
        unreachable!("a JSON object literal")
    };
    m
}

/// 添加外呼任务 (seed 000 §1): creates the task, adds its list and starts it.
async fn add_task(State(b): State<Backends>, headers: HeaderMap, body: Body) -> Reply {
    done(add_task_inner(&b, &headers, body).await)
}

async fn add_task_inner(b: &Backends, headers: &HeaderMap, body: Body) -> Result<Value> {
    let m = object(body)?;
    let name = match m.get("task_name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(Reply::invalid("task_name", "is required"))
        }
        Some(_) => return Err(Reply::invalid("task_name", "must be a string")),
    };
    let talking_id = uint(&m, "talking_id")?;
    let priority = match uint(&m, "priority")? {
        None => 0,
        Some(p @ 0..=2) => p as u32,
        Some(_) => return Err(Reply::invalid("priority", "must be 0, 1 or 2")),
    };
    let small = |field: &str| -> Result<u32> {
        match uint(&m, field)? {
            None => Ok(0),
            Some(n) => u32::try_from(n).map_err(|_| Reply::invalid(field, "is out of range")),
        }
    };
    let (recall_num, recall_interval, call_limit) = (
        small("recall_num")?,
        small("recall_interval")?,
        small("call_limit")?,
    );
    let number_city_limit = match uint(&m, "number_city_limit")? {
        None | Some(0) => false,
        Some(1) => true,
        Some(_) => return Err(Reply::invalid("number_city_limit", "must be 0 or 1")),
    };
    let list = match m.get("list") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(Reply::invalid("list", "at least one number is required"))
        }
        Some(_) => return Err(Reply::invalid("list", "must be an array")),
    };
    if list.len() > MAX_LIST {
        return Err(Reply::invalid(
            "list",
            format!("at most {MAX_LIST} numbers"),
        ));
    }
    let mut rows = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = |f: &str| format!("list[{i}].{f}");
        let Value::Object(item) = item else {
            return Err(Reply::invalid(&format!("list[{i}]"), "must be an object"));
        };
        let phone = match item.get("phone") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            None | Some(Value::Null) => return Err(Reply::invalid(&at("phone"), "is required")),
            Some(_) => return Err(Reply::invalid(&at("phone"), "must be a string")),
        };
        PhoneNumber::parse(&phone).map_err(|e| Reply::invalid(&at("phone"), e))?;
        let name = match item.get("name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(Reply::invalid(&at("name"), "must be a string")),
        };
        let resume_id = match item.get("resume_id") {
            None | Some(Value::Null) => String::new(),
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(Reply::invalid(
                    &at("resume_id"),
                    "must be a non-negative integer",
                ))
            }
        };
        rows.push(pb::ContactRow {
            name,
            phone,
            external_id: resume_id,
            ..Default::default()
        });
    }
    let spec = pb::TaskSpec {
        name,
        script_id: talking_id
            .filter(|t| *t > 0)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        priority,
        recall_count: recall_num,
        recall_interval_seconds: recall_interval,
        daily_call_limit: call_limit,
        number_city_limit,
        ..Default::default()
    };
    let mut tasks = task_client(b);
    let task = tasks
        .create_task(request(headers, pb::CreateTaskRequest { spec: Some(spec) }))
        .await?
        .into_inner();
    let chunks = pb::AddContactsRequest::chunked(&task.task_id, &rows);
    tasks
        .add_contacts(request(headers, tokio_stream::iter(chunks)))
        .await?;
    tasks
        .start_task(request(
            headers,
            pb::TaskRef {
                task_id: task.task_id.clone(),
            },
        ))
        .await?;
    Ok(json!(task.number))
}

/// 获取外呼任务列表 (seed 000 §2): the tenant's tasks, newest first. The seed takes no
/// parameters; `page` (default 1) and `size` (default 100, at most 500) may be sent to read past the first 100.
async fn list_task(
    State(b): State<Backends>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Reply {
    done(list_task_inner(&b, &headers, &body).await)
}

async fn list_task_inner(b: &Backends, headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let m = body_or_empty(body)?;
    let page = match uint(&m, "page")? {
        None => 1,
        Some(n @ 1..=1_000_000) => n as u32,
        Some(_) => return Err(Reply::invalid("page", "must be 1 to 1000000")),
    };
    let size = match uint(&m, "size")? {
        None => 100,
        Some(n @ 1..=500) => n as u32,
        Some(_) => return Err(Reply::invalid("size", "must be 1 to 500")),
    };
    let listed = task_client(b)
        .list_tasks(request(
            headers,
            pb::ListTasksRequest {
                page_size: size,
                page_number: page,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    Ok(Value::Array(
        listed
            .tasks
            .iter()
            .map(|t| Value::Object(task_row(t)))
            .collect(),
    ))
}

/// What the calls of `contacts` came to, by contact number (ListContactCalls, a thousand at
/// a time).
async fn contact_calls(
    b: &Backends,
    headers: &HeaderMap,
    task_id: &str,
    contacts: &[pb::ListedContact],
) -> Result<HashMap<u32, pb::ContactCalls>> {
    let mut out = HashMap::new();
    let mut records = record_client(b);
    for chunk in contacts.chunks(1000) {
        let got = records
            .list_contact_calls(request(
                headers,
                pb::ListContactCallsRequest {
                    task_id: task_id.to_string(),
                    contact_nos: chunk.iter().map(|c| c.contact_no).collect(),
                },
            ))
            .await?
            .into_inner();
        out.extend(got.contacts.into_iter().map(|c| (c.contact_no, c)));
    }
    Ok(out)
}

/// The seed 002 route answering the signed URL of call `number`'s recording.
fn voice_url(number: u64) -> String {
    if number == 0 {
        String::new()
    } else {
        format!("{}/call-records/{number}/recording", crate::lead::BASE)
    }
}

/// 获取外呼任务信息 (seed 000 §3): the task and its numbers (the first 10,000), each with its latest call.
async fn task_detail(State(b): State<Backends>, headers: HeaderMap, body: Body) -> Reply {
    done(task_detail_inner(&b, &headers, body).await)
}

async fn task_detail_inner(b: &Backends, headers: &HeaderMap, body: Body) -> Result<Value> {
    let m = object(body)?;
    let number = task_id(&m)?;
    let t = task_client(b)
        .get_task(request(headers, pb::TaskRef { task_id: number }))
        .await?
        .into_inner();
    let cancelled = t.status == pb::TaskStatus::Cancelled as i32;
    let contacts = first_contacts(b, headers, &t.task_id, DETAIL_NUMBERS).await?;
    let calls = contact_calls(b, headers, &t.task_id, &contacts).await?;
    let list = contacts
        .iter()
        .map(|c| number_row(&t, c, calls.get(&c.contact_no), cancelled))
        .collect();
    let mut row = task_row(&t);
    row.insert("list".into(), Value::Array(list));
    Ok(Value::Object(row))
}

/// A number of a task as the seed's `task_list` row shows it.
fn number_row(
    t: &pb::Task,
    c: &pb::ListedContact,
    call: Option<&pb::ContactCalls>,
    cancelled: bool,
) -> Value {
    let outcome = pb::ContactOutcome::try_from(c.outcome).unwrap_or_default();
    let status = match outcome {
        pb::ContactOutcome::Cancelled => 4,
        pb::ContactOutcome::Unspecified if cancelled => 4,
        pb::ContactOutcome::Unspecified => {
            if call.is_some_and(|r| r.in_call) {
                2
            } else {
                1
            }
        }
        _ => 3,
    };
    let added = ts(&c.added_at).or_else(|| ts(&t.created_at));
    let last = call.and_then(|r| ts(&r.last_call_at));
    json!({
        "id": c.contact_no,
        "user_id": int_or_text(&t.created_by),
        "task_id": t.number,
        "resume_id": int_or_text(&c.external_id),
        "name": c.name,
        "phone": national(&c.phone),
        "status": status,
        "is_deleted": 0,
        "call_begin_time": seed_time(call.and_then(|r| ts(&r.first_call_at))),
        "call_time": call.map_or(0, |r| r.talk_seconds.round() as u64),
        "call_result": c.outcome,
        "call_voice_url": voice_url(call.map_or(0, |r| r.recording_call_number)),
        "created_at": seed_time(added),
        "updated_at": seed_time(last.or(added)),
    })
}

/// 获取单个呼叫详情 (seed 000 §4): every call to one number of a task, newest first.
async fn caller_detail(State(b): State<Backends>, headers: HeaderMap, body: Body) -> Reply {
    done(caller_detail_inner(&b, &headers, body).await)
}

async fn caller_detail_inner(b: &Backends, headers: &HeaderMap, body: Body) -> Result<Value> {
    let m = object(body)?;
    let number = task_id(&m)?;
    let phone = match m.get("phone") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        None | Some(Value::Null) => return Err(Reply::invalid("phone", "is required")),
        Some(_) => return Err(Reply::invalid("phone", "must be a string or a number")),
    };
    PhoneNumber::parse(&phone).map_err(|e| Reply::invalid("phone", e))?;
    let t = task_client(b)
        .get_task(request(headers, pb::TaskRef { task_id: number }))
        .await?
        .into_inner();
    let records = record_client(b)
        .list_call_records(request(
            headers,
            pb::ListCallRecordsRequest {
                task_id: t.task_id.clone(),
                phone,
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .records;
    Ok(Value::Array(
        records
            .iter()
            .map(|r| {
                let cause = r.cause.clone().unwrap_or_default();
                json!({
                    "id": r.number,
                    "task_id": t.number,
                    "phone": national(&r.phone),
                    "attempt": r.attempt,
                    "status": r.state,
                    "call_begin_time": seed_time(ts(&r.requested_at)),
                    "answer_time": seed_time(ts(&r.answered_at)),
                    "call_end_time": seed_time(ts(&r.released_at)),
                    "ring_time": r.ring_seconds.round() as u64,
                    "call_time": r.talk_seconds.round() as u64,
                    "is_answered": u8::from(r.answered_at.is_some()),
                    "hangup_cause": cause.q850,
                    "hangup_cause_name": cause.name,
                    "call_voice_url": voice_url(
                        r.recording
                            .as_ref()
                            .filter(|x| x.state() == pb::RecordingState::Stored)
                            .map_or(0, |_| r.number)
                    ),
                })
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_china_standard_time_and_none_is_the_seeds_zero() {
        let t = DateTime::parse_from_rfc3339("2019-09-29T11:54:36Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(seed_time(Some(t)), "2019-09-29 19:54:36");
        assert_eq!(seed_time(None), "0000-00-00 00:00:00");
    }

    #[test]
    fn statuses_follow_the_seed() {
        let mut t = pb::Task {
            status: pb::TaskStatus::Pending as i32,
            ..Default::default()
        };
        assert_eq!(task_status(&t), 0);
        t.contacts_total = 2;
        assert_eq!(task_status(&t), 1);
        t.status = pb::TaskStatus::Running as i32;
        assert_eq!(task_status(&t), 2);
        t.status = pb::TaskStatus::Paused as i32;
        assert_eq!(task_status(&t), 3);
        t.status = pb::TaskStatus::Cancelled as i32;
        assert_eq!(task_status(&t), 4);
        assert_eq!(int_or_text("17"), json!(17));
        assert_eq!(int_or_text("acme"), json!("acme"));
    }
}
