//! Seed 002 (存客宝 电话获客): `/api/v1/lead-generation/call-tasks...` and `/call-records...`,
//! field names and shapes as the seed writes them. Tasks and call records are named by their
//! numbers (the seed's integer `taskId` and `recordId`).
//!
//! `analysisStatus` is PENDING for an answered call until its analysis arrives (then COMPLETED
//! or FAILED) and null for an unanswered one; `analysisResult` is filled once an analysis
//! completed (brief in lists, whole in the detail); `intendedCustomers` counts analysed calls
//! found interested. `recordingUrl` is null until the call's recording is stored; then, in a
//! list, the path of the record's recording route (2.6), and in a detail the signed, expiring
//! URL itself when the caller may download recordings (else that path); 2.6 answers the
//! signed URL.

use std::collections::HashMap;

use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post, put},
    Json, Router,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use waihu_auth::perms::{
    CALL_CANCEL, CALL_CONTROL, CALL_CREATE, CALL_LIST, CALL_VIEW, RECORD_DOWNLOAD, RECORD_LIST,
    RECORD_VIEW,
};
use waihu_proto::v1::{
    self as pb, record_service_client::RecordServiceClient,
    stats_service_client::StatsServiceClient, task_service_client::TaskServiceClient,
};
use waihu_telephony::phone::PhoneNumber;

use crate::{Backends, Reply};

pub const BASE: &str = "/api/v1/lead-generation";
/// Phone numbers one create request may carry.
const MAX_PHONES: usize = 100_000;
/// Phone numbers a task's detail lists at most.
const DETAIL_PHONES: usize = 10_000;
/// Call records a task's detail lists at most.
const DETAIL_RECORDS: u32 = 100;

/// Every seed 002 route, as (method, path below [`BASE`], the permissions it needs: any one):
/// the one list the router is built from, so a route cannot exist without being listed (the
/// isolation test walks this list), and the gateway checks the token and permission before it
/// reads a request.
pub const ROUTES: &[(&str, &str, &[&str])] = &[
    ("POST", "/call-tasks", &[CALL_CREATE]),
    ("GET", "/call-tasks", &[CALL_VIEW, CALL_LIST]),
    ("GET", "/call-tasks/{taskId}", &[CALL_VIEW]),
    ("PUT", "/call-tasks/{taskId}/status", &[CALL_CONTROL]),
    ("PUT", "/call-tasks/{taskId}/cancel", &[CALL_CANCEL]),
    ("GET", "/call-records", &[CALL_VIEW, RECORD_LIST]),
    ("GET", "/call-records/{recordId}", &[RECORD_VIEW]),
    (
        "GET",
        "/call-records/{recordId}/recording",
        &[RECORD_DOWNLOAD],
    ),
];

fn handler(method: &str, path: &str) -> axum::routing::MethodRouter<Backends> {
    match (method, path) {
        ("POST", "/call-tasks") => post(create_task),
        ("GET", "/call-tasks") => get(list_tasks),
        ("GET", "/call-tasks/{taskId}") => get(task_detail),
        ("PUT", "/call-tasks/{taskId}/status") => put(task_status),
        ("PUT", "/call-tasks/{taskId}/cancel") => put(cancel_task),
        ("GET", "/call-records") => get(list_records),
        ("GET", "/call-records/{recordId}") => get(record_detail),
        ("GET", "/call-records/{recordId}/recording") => get(recording),
        _ => panic!("route {method} {path} is listed without a handler"),
    }
}

pub fn routes(b: Backends) -> Router<Backends> {
    let router = ROUTES.iter().fold(Router::new(), |r, (method, path, _)| {
        r.route(&format!("{BASE}{path}"), handler(method, path))
    });
    crate::guarded(router, b, BASE, ROUTES, crate::Envelope::CodeMessageData)
}

type Result<T> = std::result::Result<T, Reply>;

/// A gRPC request carrying the caller's credentials as they came.
pub(crate) fn request<T>(headers: &HeaderMap, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    for name in ["authorization", "x-tenant-id"] {
        if let Some(v) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            r.metadata_mut().insert(name, v);
        }
    }
    r
}

/// A time as the seeds write it (RFC 3339, seconds, `Z`), null when absent.
pub(crate) fn time(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref()
        .and_then(waihu_events::from_timestamp)
        .map_or(Value::Null, |t| {
            Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
        })
}

/// A time range's ends, each optional.
type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The `startTime` / `endTime` query parameters.
fn time_range(q: &HashMap<String, String>) -> Result<Range> {
    let get = |field: &str| q.get(field).map(|s| parse_time(field, s)).transpose();
    Ok((get("startTime")?, get("endTime")?))
}

fn parse_time(field: &str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Reply::error(
                StatusCode::BAD_REQUEST,
                format!("{field}: {s:?} is not an ISO 8601 time"),
            )
        })
}

/// A number as the seed shows it: national form (`13800000001`, `02161234567`).
pub(crate) fn national(e164: &str) -> String {
    match e164.strip_prefix("+86") {
        Some(rest) if rest.starts_with('1') => rest.to_string(),
        Some(rest) => format!("0{rest}"),
        None => e164.to_string(),
    }
}

/// The seed's task status.
fn seed_status(t: &pb::Task) -> &'static str {
    match pb::TaskStatus::try_from(t.status).unwrap_or(pb::TaskStatus::Unspecified) {
        pb::TaskStatus::Running => {
            let later = t
                .spec
                .as_ref()
                .and_then(|s| s.scheduled_start.as_ref())
                .and_then(waihu_events::from_timestamp)
                .is_some_and(|at| at > Utc::now());
            if later {
                "SCHEDULED"
            } else {
                "RUNNING"
            }
        }
        pb::TaskStatus::Paused => "STOPPED",
        pb::TaskStatus::Completed => "COMPLETED",
        pb::TaskStatus::Cancelled => "CANCELLED",
        pb::TaskStatus::Pending | pb::TaskStatus::Unspecified => "SCHEDULED",
    }
}

pub(crate) fn task_client(b: &Backends) -> TaskServiceClient<waihu_runtime::telemetry::Traced> {
    TaskServiceClient::new(waihu_runtime::telemetry::traced(b.task.clone()))
}

pub(crate) fn record_client(b: &Backends) -> RecordServiceClient<waihu_runtime::telemetry::Traced> {
    RecordServiceClient::new(waihu_runtime::telemetry::traced(b.record.clone()))
}

/// A task's first `limit` contacts in contact order, read a page at a time.
pub(crate) async fn first_contacts(
    b: &Backends,
    headers: &HeaderMap,
    task_id: &str,
    limit: usize,
) -> Result<Vec<pb::ListedContact>> {
    let mut tasks = task_client(b);
    let mut out = Vec::new();
    let mut after = 0;
    while out.len() < limit {
        let page = tasks
            .list_contacts(request(
                headers,
                pb::ListContactsRequest {
                    task_id: task_id.to_string(),
                    page_size: (limit - out.len()).min(1000) as u32,
                    after_contact_no: after,
                },
            ))
            .await?
            .into_inner();
        out.extend(page.contacts);
        if page.next_after_contact_no == 0 {
            break;
        }
        after = page.next_after_contact_no;
    }
    Ok(out)
}

/// The task or record a path names by number (`field` `taskId` or `recordId`, `what` task or
/// record): 400 unless it is a positive integer.
fn path_number(field: &str, what: &str, s: &str) -> Result<String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n.to_string()),
        _ => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            format!("{field}: {s:?} is not a {what} id (a positive integer)"),
        )),
    }
}

fn task_number(s: &str) -> Result<String> {
    path_number("taskId", "task", s)
}

/// The JSON object a body must be: 400 when it is not JSON or not an object.
pub(crate) fn object(
    body: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<serde_json::Map<String, Value>> {
    match body {
        Ok(Json(Value::Object(m))) => Ok(m),
        Ok(_) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        )),
        Err(e) => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// An optional string field: 422 when present but not a string.
fn opt_str(m: &serde_json::Map<String, Value>, field: &str) -> Result<Option<String>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reply::invalid(field, "must be a string")),
    }
}

fn str_array(m: &serde_json::Map<String, Value>, field: &str) -> Result<Vec<String>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(Reply::invalid(&format!("{field}[{i}]"), "must be a string")),
            })
            .collect(),
        Some(_) => Err(Reply::invalid(field, "must be an array of strings")),
    }
}

/// 2.1 Create a call task: the task, its numbers, and its start (at `scheduledTime`, or now).
async fn create_task(
    State(b): State<Backends>,
    headers: HeaderMap,
    body: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Reply> {
    let m = object(body)?;
    let name = opt_str(&m, "name")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| Reply::invalid("name", "is required"))?;
    let script = opt_str(&m, "callScript")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Reply::invalid("callScript", "is required"))?;
    let phones = str_array(&m, "phoneNumbers")?;
    if phones.is_empty() {
        return Err(Reply::invalid(
            "phoneNumbers",
            "at least one number is required",
        ));
    }
    if phones.len() > MAX_PHONES {
        return Err(Reply::invalid(
            "phoneNumbers",
            format!("at most {MAX_PHONES} numbers"),
        ));
    }
    for (i, p) in phones.iter().enumerate() {
        PhoneNumber::parse(p).map_err(|e| Reply::invalid(&format!("phoneNumbers[{i}]"), e))?;
    }
    let scheduled = match opt_str(&m, "scheduledTime")? {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(&s)
                .map_err(|_| {
                    Reply::invalid("scheduledTime", format!("{s:?} is not an ISO 8601 time"))
                })?
                .with_timezone(&Utc),
        ),
    };
    let device_ids = match m.get("deviceIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_u64().ok_or_else(|| {
                    Reply::invalid(&format!("deviceIds[{i}]"), "must be a non-negative integer")
                })
            })
            .collect::<Result<Vec<u64>>>()?,
        Some(_) => return Err(Reply::invalid("deviceIds", "must be an array of integers")),
    };
    let spec = pb::TaskSpec {
        name,
        description: opt_str(&m, "description")?.unwrap_or_default(),
        call_script: script,
        scheduled_start: scheduled.map(waihu_events::timestamp),
        caller_id: opt_str(&m, "callerId")?.unwrap_or_default(),
        device_ids,
        tags: str_array(&m, "tags")?,
        source: opt_str(&m, "source")?.unwrap_or_default(),
        ..Default::default()
    };
    let mut tasks = task_client(&b);
    let task = tasks
        .create_task(request(
            &headers,
            pb::CreateTaskRequest { spec: Some(spec) },
        ))
        .await?
        .into_inner();
    let rows: Vec<pb::ContactRow> = phones.iter().map(pb::ContactRow::with_phone).collect();
    let chunks = pb::AddContactsRequest::chunked(&task.task_id, &rows);
    tasks
        .add_contacts(request(&headers, tokio_stream::iter(chunks)))
        .await?;
    let started = tasks
        .start_task(request(
            &headers,
            pb::TaskRef {
                task_id: task.task_id.clone(),
            },
        ))
        .await?
        .into_inner();
    Ok(Reply::with(
        StatusCode::CREATED,
        json!({
            "taskId": started.number,
            "name": started.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            "status": seed_status(&started),
            "createTime": time(&started.created_at),
        }),
    ))
}

/// The fields a task shows in lists and in its detail.
async fn task_fields(
    b: &Backends,
    headers: &HeaderMap,
    t: &pb::Task,
) -> Result<serde_json::Map<String, Value>> {
    let stats = StatsServiceClient::new(waihu_runtime::telemetry::traced(b.record.clone()))
        .get_task_stats(request(
            headers,
            pb::GetTaskStatsRequest {
                task_id: t.task_id.clone(),
            },
        ))
        .await;
    // A task the statistics have not seen yet has none.
    let stats = match stats {
        Ok(s) => s.into_inner(),
        Err(s) if s.code() == tonic::Code::NotFound => pb::TaskStats::default(),
        Err(s) => return Err(s.into()),
    };
    let spec = t.spec.clone().unwrap_or_default();
    let Value::Object(m) = json!({
        "taskId": t.number,
        "name": spec.name,
        "description": spec.description,
        "status": seed_status(t),
        "scheduledTime": time(&spec.scheduled_start),
        "createTime": time(&t.created_at),
        "completedTime": time(&t.completed_at),
        "totalCalls": stats.calls_placed,
        "successfulCalls": stats.calls_answered,
        // Calls whose analysis found the customer interested.
        "intendedCustomers": stats.intended_customers,
    }) else {
        unreachable!("a JSON object literal")
    };
    Ok(m)
}

fn query_u32(q: &HashMap<String, String>, key: &str, default: u32, max: u32) -> Result<u32> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Reply::error(
                StatusCode::BAD_REQUEST,
                format!("{key}: must be 1 to {max}"),
            )),
        },
    }
}

/// `sort` (only `sortable`) and `order`; true for oldest first.
fn ascending(q: &HashMap<String, String>, sortable: &str) -> Result<bool> {
    if let Some(s) = q.get("sort") {
        if s != sortable {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                format!("sort: only {sortable} is supported"),
            ));
        }
    }
    order_ascending(q)
}

/// `order`: asc or desc (default desc); true for ascending.
fn order_ascending(q: &HashMap<String, String>) -> Result<bool> {
    match q.get("order").map(|o| o.to_ascii_lowercase()) {
        None => Ok(false),
        Some(o) if o == "desc" => Ok(false),
        Some(o) if o == "asc" => Ok(true),
        Some(_) => Err(Reply::error(StatusCode::BAD_REQUEST, "order: asc or desc")),
    }
}

fn page(records: Vec<Value>, total: u64, size: u32, current: u32) -> Value {
    json!({
        "records": records,
        "total": total,
        "size": size,
        "current": current,
        "pages": total.div_ceil(size as u64),
    })
}

/// 2.2 The task list, paged.
async fn list_tasks(
    State(b): State<Backends>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Reply> {
    let current = query_u32(&q, "page", 1, 1_000_000)?;
    let size = query_u32(&q, "size", 10, 500)?;
    let oldest_first = ascending(&q, "createTime")?;
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => pb::TaskStatus::Unspecified,
        Some("SCHEDULED") => pb::TaskStatus::Pending,
        Some("RUNNING") => pb::TaskStatus::Running,
        Some("STOPPED") => pb::TaskStatus::Paused,
        Some("COMPLETED") => pb::TaskStatus::Completed,
        Some("CANCELLED") => pb::TaskStatus::Cancelled,
        // No task ever fails as a whole: its calls do.
        Some("FAILED") => return Ok(Reply::ok(page(Vec::new(), 0, size, current))),
        Some(other) => {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                format!("status: unknown status {other:?}"),
            ))
        }
    };
    let (from, to) = time_range(&q)?;
    let listed = task_client(&b)
        .list_tasks(request(
            &headers,
            pb::ListTasksRequest {
                status: status as i32,
                name_contains: q.get("name").cloned().unwrap_or_default(),
                page_size: size,
                page_number: current,
                created_from: from.map(waihu_events::timestamp),
                created_to: to.map(waihu_events::timestamp),
                oldest_first,
                ..Default::default()
            },
        ))
        .await?
        .into_inner();
    // Each task's statistics at once, not one round trip after another.
    let records =
        futures::future::try_join_all(listed.tasks.iter().map(|t| task_fields(&b, &headers, t)))
            .await?
            .into_iter()
            .map(Value::Object)
            .collect();
    Ok(Reply::ok(page(records, listed.total, size, current)))
}

/// 2.3 A task's detail: its fields, numbers, script, caller id, devices and first calls.
async fn task_detail(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Result<Reply> {
    let number = task_number(&task_id)?;
    let t = task_client(&b)
        .get_task(request(&headers, pb::TaskRef { task_id: number }))
        .await?
        .into_inner();
    let mut m = task_fields(&b, &headers, &t).await?;
    let phones: Vec<Value> = first_contacts(&b, &headers, &t.task_id, DETAIL_PHONES)
        .await?
        .iter()
        .map(|c| Value::String(national(&c.phone)))
        .collect();
    let records = record_client(&b)
        .list_call_records(request(
            &headers,
            pb::ListCallRecordsRequest {
                task_id: t.task_id.clone(),
                page_size: DETAIL_RECORDS,
                page_number: 1,
                oldest_first: true,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .records;
    let spec = t.spec.clone().unwrap_or_default();
    m.insert("phoneNumbers".into(), Value::Array(phones));
    m.insert("callScript".into(), json!(spec.call_script));
    m.insert("callerId".into(), json!(spec.caller_id));
    m.insert("deviceIds".into(), json!(spec.device_ids));
    m.insert(
        "callRecords".into(),
        Value::Array(
            records
                .iter()
                .map(|r| {
                    json!({
                        "recordId": r.number,
                        "phoneNumber": national(&r.phone),
                        "startTime": time(&r.requested_at),
                        "duration": r.talk_seconds.round() as u64,
                        "analysisStatus": analysis_status(r),
                    })
                })
                .collect(),
        ),
    );
    Ok(Reply::ok(Value::Object(m)))
}

/// 2.7 START (start, or resume a stopped task) or STOP (pause) a task.
async fn task_status(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
    body: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Reply> {
    let number = task_number(&task_id)?;
    let m = object(body)?;
    let action = opt_str(&m, "action")?.unwrap_or_default();
    let mut tasks = task_client(&b);
    let r = |task_id: &str| {
        request(
            &headers,
            pb::TaskRef {
                task_id: task_id.to_string(),
            },
        )
    };
    let t = tasks.get_task(r(&number)).await?.into_inner();
    let status = pb::TaskStatus::try_from(t.status).unwrap_or(pb::TaskStatus::Unspecified);
    let t = match (action.as_str(), status) {
        ("START", pb::TaskStatus::Pending) => tasks.start_task(r(&number)).await?.into_inner(),
        ("START", pb::TaskStatus::Paused) => tasks.resume_task(r(&number)).await?.into_inner(),
        ("STOP", pb::TaskStatus::Running) => tasks.pause_task(r(&number)).await?.into_inner(),
        // Already as asked.
        ("START", pb::TaskStatus::Running) | ("STOP", pb::TaskStatus::Paused) => t,
        ("START" | "STOP", _) => {
            return Err(Reply::error(
                StatusCode::CONFLICT,
                format!(
                    "task {} is {}: it cannot be {}",
                    t.number,
                    seed_status(&t),
                    if action == "START" {
                        "started"
                    } else {
                        "stopped"
                    }
                ),
            ))
        }
        _ => return Err(Reply::invalid("action", "must be START or STOP")),
    };
    Ok(Reply::ok(
        json!({"taskId": t.number, "status": seed_status(&t)}),
    ))
}

/// 2.8 Cancel a task (409 when it is already finished or cancelled).
async fn cancel_task(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(task_id): Path<String>,
) -> Result<Reply> {
    let number = task_number(&task_id)?;
    let t = task_client(&b)
        .cancel_task(request(
            &headers,
            pb::CancelTaskRequest {
                task_id: number,
                reason: "cancelled through the HTTP API".into(),
            },
        ))
        .await?
        .into_inner();
    Ok(Reply::ok(
        json!({"taskId": t.number, "status": seed_status(&t)}),
    ))
}

/// Seed 002's analysisStatus: PENDING, COMPLETED or FAILED; null for a call with nothing to
/// analyse (not answered).
fn analysis_status(r: &pb::CallRecord) -> Value {
    match pb::AnalysisStatus::try_from(r.analysis_status) {
        Ok(pb::AnalysisStatus::Pending) => json!("PENDING"),
        Ok(pb::AnalysisStatus::Completed) => json!("COMPLETED"),
        Ok(pb::AnalysisStatus::Failed) => json!("FAILED"),
        _ => Value::Null,
    }
}

/// Seed 002's intention words for the analysis intents.
fn intention(intent: &str) -> &str {
    match intent {
        "interested" => "高意向",
        "considering" => "考虑中",
        "inconvenient" => "不方便",
        "not_interested" => "无意向",
        "wrong_number" => "号码错误",
        "no_conversation" => "未有效沟通",
        other => other,
    }
}

/// A call record in the seed's shape; `taskId` is null for a click-to-dial call (no task).
/// With `full` (2.5's detail), the whole analysis result.
fn record_json(
    r: &pb::CallRecord,
    task_number: Option<u64>,
    full: bool,
    recording_url: Option<String>,
) -> Value {
    let analysis = r
        .analysis
        .as_ref()
        .filter(|_| r.analysis_status == pb::AnalysisStatus::Completed as i32)
        .map(|a| {
            let mut v = json!({
                "sentiment": a.sentiment.to_ascii_uppercase(),
                "intention": intention(&a.intent),
                "grade": a.grade,
            });
            if full {
                v["keywords"] = json!(a.keywords);
                v["summary"] = json!(a.summary);
                v["transcription"] = json!(a.transcript);
                v["language"] = json!(a.language);
            }
            v
        });
    json!({
        "recordId": r.number,
        "taskId": task_number,
        "phoneNumber": national(&r.phone),
        "startTime": time(&r.requested_at),
        "endTime": time(&r.released_at),
        "duration": r.talk_seconds.round() as u64,
        "recordingUrl": recording_url.or_else(|| recording_path(r)),
        "analysisStatus": analysis_status(r),
        "analysisResult": analysis,
    })
}

/// The path of a record's recording route (2.6) when its recording is stored.
fn recording_path(r: &pb::CallRecord) -> Option<String> {
    r.recording
        .as_ref()
        .filter(|x| x.state() == pb::RecordingState::Stored)
        .map(|_| format!("{BASE}/call-records/{}/recording", r.number))
}

/// `sort` (startTime, duration or recordId; default startTime) and `order` (asc or desc,
/// default desc) of the call-record list.
fn record_sort(q: &HashMap<String, String>) -> Result<(pb::CallRecordSort, bool)> {
    let sort = match q.get("sort").map(String::as_str) {
        None | Some("") | Some("startTime") => pb::CallRecordSort::StartTime,
        Some("duration") => pb::CallRecordSort::Duration,
        Some("recordId") => pb::CallRecordSort::Number,
        Some(_) => {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "sort: startTime, duration or recordId",
            ))
        }
    };
    Ok((sort, order_ascending(q)?))
}

/// The numbers of the tasks `records` belong to (click-to-dial calls belong to none).
async fn task_numbers(
    b: &Backends,
    headers: &HeaderMap,
    records: &[pb::CallRecord],
) -> Result<HashMap<String, u64>> {
    let mut out = HashMap::new();
    let mut tasks = task_client(b);
    for r in records {
        if r.task_id.is_empty() || out.contains_key(&r.task_id) {
            continue;
        }
        let t = tasks
            .get_task(request(
                headers,
                pb::TaskRef {
                    task_id: r.task_id.clone(),
                },
            ))
            .await?
            .into_inner();
        out.insert(r.task_id.clone(), t.number);
    }
    Ok(out)
}

/// 2.4 The call records, paged and filtered.
async fn list_records(
    State(b): State<Backends>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Reply> {
    let current = query_u32(&q, "page", 1, 1_000_000)?;
    let size = query_u32(&q, "size", 10, 500)?;
    let (sort, oldest_first) = record_sort(&q)?;
    let empty = || Ok(Reply::ok(page(Vec::new(), 0, size, current)));
    let analysis_status = match q.get("analysisStatus").map(|s| s.to_ascii_uppercase()) {
        None => pb::AnalysisStatus::Unspecified,
        Some(s) if s.is_empty() => pb::AnalysisStatus::Unspecified,
        Some(s) if s == "PENDING" => pb::AnalysisStatus::Pending,
        Some(s) if s == "COMPLETED" => pb::AnalysisStatus::Completed,
        Some(s) if s == "FAILED" => pb::AnalysisStatus::Failed,
        Some(_) => {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "analysisStatus: PENDING, COMPLETED or FAILED",
            ))
        }
    };
    let task_id = match q.get("taskId") {
        None => String::new(),
        Some(n) => {
            let number = task_number(n)?;
            match task_client(&b)
                .get_task(request(&headers, pb::TaskRef { task_id: number }))
                .await
            {
                Ok(t) => t.into_inner().task_id,
                // An unknown task has no records.
                Err(s) if s.code() == tonic::Code::NotFound => return empty(),
                Err(s) => return Err(s.into()),
            }
        }
    };
    let (from, to) = time_range(&q)?;
    let listed = record_client(&b)
        .list_call_records(request(
            &headers,
            pb::ListCallRecordsRequest {
                task_id,
                phone: q.get("phoneNumber").cloned().unwrap_or_default(),
                from: from.map(waihu_events::timestamp),
                to: to.map(waihu_events::timestamp),
                page_size: size,
                page_number: current,
                oldest_first,
                sort: sort as i32,
                analysis_status: analysis_status as i32,
                ..Default::default()
            },
        ))
        .await
        .map_err(|s| {
            // A malformed filter is the request's fault.
            if s.code() == tonic::Code::InvalidArgument {
                Reply::error(StatusCode::BAD_REQUEST, s.message())
            } else {
                s.into()
            }
        })?
        .into_inner();
    let numbers = task_numbers(&b, &headers, &listed.records).await?;
    let records = listed
        .records
        .iter()
        .map(|r| record_json(r, numbers.get(&r.task_id).copied(), false, None))
        .collect();
    Ok(Reply::ok(page(records, listed.total, size, current)))
}

/// The caller's call record a path names by number.
async fn fetch_record(
    b: &Backends,
    headers: &HeaderMap,
    record_id: &str,
) -> Result<pb::CallRecord> {
    let number = path_number("recordId", "record", record_id)?;
    Ok(record_client(b)
        .get_call_record(request(
            headers,
            pb::GetCallRecordRequest { call_id: number },
        ))
        .await?
        .into_inner())
}

/// 2.5 A call record's detail.
async fn record_detail(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(record_id): Path<String>,
) -> Result<Reply> {
    let r = fetch_record(&b, &headers, &record_id).await?;
    let numbers = task_numbers(&b, &headers, std::slice::from_ref(&r)).await?;
    // The playable URL when the caller may have it; the route's path otherwise.
    let url = match recording_path(&r) {
        Some(_) => signed_url(&b, &headers, r.number).await.ok(),
        None => None,
    };
    Ok(Reply::ok(record_json(
        &r,
        numbers.get(&r.task_id).copied(),
        true,
        url,
    )))
}

/// The signed, expiring URL of call `number`'s recording.
async fn signed_url(
    b: &Backends,
    headers: &HeaderMap,
    number: u64,
) -> std::result::Result<String, tonic::Status> {
    Ok(record_client(b)
        .get_recording_url(request(
            headers,
            pb::GetRecordingUrlRequest {
                call_id: number.to_string(),
                ttl_seconds: 0,
            },
        ))
        .await?
        .into_inner()
        .url)
}

/// 2.6 A call's recording: its signed URL, valid for the record service's URL lifetime (15
/// minutes by default); 404 when the record has no stored recording.
async fn recording(
    State(b): State<Backends>,
    headers: HeaderMap,
    Path(record_id): Path<String>,
) -> Result<Reply> {
    // The record must exist and be the caller's before anything is said about it.
    let r = fetch_record(&b, &headers, &record_id).await?;
    if recording_path(&r).is_none() {
        return Err(Reply::error(
            StatusCode::NOT_FOUND,
            "this call has no stored recording (not answered, not yet stored, or deleted after its retention)",
        ));
    }
    let url = signed_url(&b, &headers, r.number).await?;
    Ok(Reply::ok(json!({ "recordingUrl": url })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_show_in_national_form() {
        assert_eq!(national("+8613800000001"), "13800000001");
        assert_eq!(national("+862161234567"), "02161234567");
        assert_eq!(national("12345"), "12345");
    }
}
