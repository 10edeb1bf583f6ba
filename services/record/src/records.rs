//! Call records as the seeds' users look them up: the filtered, sorted, paged list (seed 002
//! §2.4) and one record in full (§2.5): its timeline from the store, its analysis and its
//! follow-ups.

use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use waihu_events::{timestamp, Decoded, Event};
use waihu_proto::v1 as pb;
use waihu_runtime::page_token::{self, Page};
use waihu_telephony::phone::PhoneNumber;

use crate::{
    followup,
    grpc::{invalid, parse_time, RecordError, Row, ROW_COLUMNS},
    projection::analysis_status,
    recording::projection::{RecordingRow, ROW_COLUMNS as RECORDING_COLUMNS},
};

/// Most events a timeline shows (a call has a handful; follow-ups add one each).
const TIMELINE_MAX: i64 = 1000;

/// What a sort orders by, as SQL over the record columns named `<p>column`, and whether it is
/// a time (else an integer).
pub(crate) fn sort_key(sort: pb::CallRecordSort, p: &str) -> (String, bool) {
    match sort {
        pb::CallRecordSort::StartTime => (format!("{p}started_at"), true),
        pb::CallRecordSort::Duration => (format!("COALESCE({p}talk_ms, 0)"), false),
        pb::CallRecordSort::RingTime => (format!("COALESCE({p}ring_ms, 0)"), false),
        pb::CallRecordSort::Number => (format!("COALESCE({p}record_no, 0)"), false),
    }
}

fn sort_value(row: &Row, sort: pb::CallRecordSort) -> i64 {
    match sort {
        pb::CallRecordSort::StartTime => row.started_at.timestamp_micros(),
        pb::CallRecordSort::Duration => row.talk_ms.unwrap_or(0),
        pb::CallRecordSort::RingTime => row.ring_ms.unwrap_or(0),
        pb::CallRecordSort::Number => row.record_no.unwrap_or(0),
    }
}

/// The filters of a listing, checked.
pub(crate) struct Filters {
    tenant: String,
    task: Option<Uuid>,
    phone: Option<String>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
    line: Option<String>,
    analysis: pb::AnalysisStatus,
    answered: Option<bool>,
    causes: Vec<i32>,
}

impl Filters {
    pub(crate) fn parse(
        tenant: &str,
        r: &pb::ListCallRecordsRequest,
    ) -> Result<Filters, RecordError> {
        let phone = if r.phone.is_empty() {
            None
        } else {
            Some(
                PhoneNumber::parse(&r.phone)
                    .map_err(|e| invalid("phone", e))?
                    .into_string(),
            )
        };
        let line = if r.line_id.is_empty() {
            None
        } else {
            waihu_runtime::check_text("line_id", &r.line_id, 64)?;
            Some(r.line_id.clone())
        };
        let analysis = pb::AnalysisStatus::try_from(r.analysis_status).map_err(|_| {
            invalid(
                "analysis_status",
                format!("{} is not a status", r.analysis_status),
            )
        })?;
        if r.causes.len() > 128 {
            return Err(invalid("causes", "at most 128"));
        }
        let causes = r
            .causes
            .iter()
            .map(|&q| {
                if q > 127 {
                    Err(invalid(
                        "causes",
                        format!("{q} is not a Q.850 cause (0-127)"),
                    ))
                } else {
                    Ok(q as i32)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Filters {
            tenant: tenant.to_string(),
            task: waihu_runtime::parse_optional_uuid("task_id", &r.task_id)?,
            phone,
            from: parse_time("from", &r.from)?,
            to: parse_time("to", &r.to)?,
            line,
            analysis,
            answered: r.answered,
            causes,
        })
    }

    fn push(&self, b: &mut QueryBuilder<'_, Postgres>) {
        self.push_from(b, "call_records", "");
    }

    /// ` FROM <from> WHERE ...` with the record columns named `<p>column`.
    pub(crate) fn push_from(&self, b: &mut QueryBuilder<'_, Postgres>, from: &str, p: &str) {
        b.push(format!(" FROM {from} WHERE {p}tenant_id = "))
            .push_bind(self.tenant.clone());
        if let Some(t) = self.task {
            b.push(format!(" AND {p}task_id = ")).push_bind(t);
        }
        if let Some(ph) = &self.phone {
            b.push(format!(" AND {p}phone = ")).push_bind(ph.clone());
        }
        if let Some(f) = self.from {
            b.push(format!(" AND {p}started_at >= ")).push_bind(f);
        }
        if let Some(t) = self.to {
            b.push(format!(" AND {p}started_at < ")).push_bind(t);
        }
        if let Some(l) = &self.line {
            b.push(format!(" AND {p}line_id = ")).push_bind(l.clone());
        }
        match self.analysis {
            pb::AnalysisStatus::Unspecified => {}
            pb::AnalysisStatus::None => {
                b.push(format!(
                    " AND {p}analysis_status IS NULL AND {p}answered IS NOT TRUE"
                ));
            }
            pb::AnalysisStatus::Pending => {
                b.push(format!(
                    " AND {p}analysis_status IS NULL AND {p}answered IS TRUE"
                ));
            }
            pb::AnalysisStatus::Completed => {
                b.push(format!(" AND {p}analysis_status = "))
                    .push_bind(analysis_status::COMPLETED);
            }
            pb::AnalysisStatus::Failed => {
                b.push(format!(" AND {p}analysis_status = "))
                    .push_bind(analysis_status::FAILED);
            }
        }
        match self.answered {
            Some(true) => {
                b.push(format!(" AND {p}answered IS TRUE"));
            }
            Some(false) => {
                b.push(format!(" AND {p}answered IS FALSE"));
            }
            None => {}
        }
        if !self.causes.is_empty() {
            b.push(format!(" AND {p}cause_q850 = ANY("))
                .push_bind(self.causes.clone())
                .push(")");
        }
    }
}

/// One page of the tenant's call records.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    r: &pb::ListCallRecordsRequest,
) -> Result<pb::ListCallRecordsResponse, RecordError> {
    let filters = Filters::parse(tenant, r)?;
    let sort = pb::CallRecordSort::try_from(r.sort)
        .map_err(|_| invalid("sort", format!("{} is not a sort field", r.sort)))?;
    let size = match r.page_size {
        0 => 100,
        n if n > 1000 => return Err(invalid("page_size", "at most 1000")),
        n => n,
    };
    let (after, number) = match (r.page_number, r.page_token.as_str()) {
        (0, token) => (page_token::decode_key(token)?, None),
        (n, token) => match page_token::page(n, token)? {
            Page::Number(n) => (None, Some(n)),
            Page::After(_) => (None, None),
        },
    };
    let (key, is_time) = sort_key(sort, "");
    let (cmp, dir) = if r.oldest_first {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    let mut b = QueryBuilder::new(format!("SELECT {ROW_COLUMNS}"));
    filters.push(&mut b);
    if let Some((value, id)) = after {
        b.push(format!(" AND ({key}, call_id) {cmp} ("));
        if is_time {
            let at = chrono::DateTime::from_timestamp_micros(value)
                .ok_or_else(|| invalid("page_token", "not a token this service issued"))?;
            b.push_bind(at);
        } else {
            b.push_bind(value);
        }
        b.push(", ").push_bind(id).push(")");
    }
    // One more than the page, to know whether another follows.
    b.push(format!(" ORDER BY {key} {dir}, call_id {dir} LIMIT "))
        .push_bind(size as i64 + 1);
    if let Some(n) = number {
        b.push(" OFFSET ").push_bind((n as i64 - 1) * size as i64);
    }
    let rows: Vec<Row> = b.build_query_as().fetch_all(pool).await?;
    let total = match number {
        Some(_) => {
            let mut c = QueryBuilder::new("SELECT count(*)");
            filters.push(&mut c);
            let n: i64 = c.build_query_scalar().fetch_one(pool).await?;
            n.max(0) as u64
        }
        None => 0,
    };
    let more = rows.len() > size as usize;
    let rows = &rows[..rows.len().min(size as usize)];
    let next_page_token = match (more, rows.last(), number) {
        (true, Some(l), None) => page_token::encode_key(sort_value(l, sort), l.call_id),
        _ => String::new(),
    };
    let mut records: Vec<pb::CallRecord> = rows.iter().map(Row::to_pb).collect();
    attach_recordings(pool, tenant, &mut records).await?;
    Ok(pb::ListCallRecordsResponse {
        records,
        next_page_token,
        total,
        pages: if number.is_some() {
            total.div_ceil(size as u64)
        } else {
            0
        },
        size,
        current: number.unwrap_or(0),
    })
}

/// Adds to `record` what only one record shows: its timeline, analysis and follow-ups.
pub async fn detail(
    pool: &PgPool,
    tenant: &str,
    call: Uuid,
    record: &mut pb::CallRecord,
) -> Result<(), RecordError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT e.position, e.envelope FROM events e
         WHERE e.position = ANY((SELECT event_positions FROM call_records WHERE call_id = $1 AND tenant_id = $2)::bigint[])
         ORDER BY e.position LIMIT $3",
    )
    .bind(call)
    .bind(tenant)
    .bind(TIMELINE_MAX)
    .fetch_all(pool)
    .await?;
    for (position, envelope) in rows {
        let Ok(decoded) = Decoded::decode(&envelope) else {
            continue;
        };
        let (event_type, occurred_at, event_id, detail) = match &decoded {
            Decoded::Known(e) => (
                e.type_name().to_string(),
                e.meta.occurred_at,
                e.meta.event_id,
                describe(&e.event),
            ),
            Decoded::Unknown(u) => (
                u.event_type.clone(),
                u.meta.occurred_at,
                u.meta.event_id,
                "not readable by this build".into(),
            ),
        };
        record.timeline.push(pb::CallTimelineEntry {
            position: position as u64,
            event_type,
            occurred_at: Some(timestamp(occurred_at)),
            detail,
            event_id: event_id.to_string(),
        });
    }
    let analysis: Option<AnalysisRow> = sqlx::query_as(
        "SELECT intent, grade, sentiment, keywords, summary, language, transcript, analyzer, failure
         FROM call_analyses WHERE call_id = $1 AND tenant_id = $2",
    )
    .bind(call)
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    record.analysis = analysis.map(|a| pb::CallAnalysis {
        intent: a.intent,
        grade: a.grade,
        sentiment: a.sentiment,
        keywords: a.keywords,
        summary: a.summary,
        language: a.language,
        transcript: a.transcript,
        analyzer: a.analyzer,
        failure: a.failure,
    });
    record.follow_ups = followup::of_call(pool, tenant, call).await?;
    attach_recordings(pool, tenant, std::slice::from_mut(record)).await?;
    Ok(())
}

/// Sets each record's recording, when one was announced.
async fn attach_recordings(
    pool: &PgPool,
    tenant: &str,
    records: &mut [pb::CallRecord],
) -> Result<(), RecordError> {
    let ids: Vec<Uuid> = records
        .iter()
        .filter_map(|r| Uuid::parse_str(&r.call_id).ok())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<RecordingRow> = sqlx::query_as(&format!(
        "SELECT {RECORDING_COLUMNS} FROM recordings WHERE call_id = ANY($1) AND tenant_id = $2"
    ))
    .bind(&ids)
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let by_call: std::collections::HashMap<String, RecordingRow> = rows
        .into_iter()
        .map(|r| (r.call_id.to_string(), r))
        .collect();
    for r in records {
        r.recording = by_call.get(&r.call_id).map(RecordingRow::to_pb);
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AnalysisRow {
    intent: String,
    grade: String,
    sentiment: String,
    keywords: Vec<String>,
    summary: String,
    language: String,
    transcript: String,
    analyzer: String,
    failure: String,
}

/// A short reading of a call's event for its timeline.
fn describe(e: &Event) -> String {
    match e {
        Event::CallRequested(r) => format!("line {}, attempt {}", r.line_id, r.attempt),
        Event::CallDialing(d) if !d.provider_call_id.is_empty() => {
            format!("provider call {}", d.provider_call_id)
        }
        Event::CallReleased(r) => {
            let cause = r.cause.as_ref().map_or("no cause".to_string(), |c| {
                format!("{} (Q.850 {})", c.name, c.q850)
            });
            if r.answered {
                format!("{cause}; talked {:.1} s", r.talk_ms as f64 / 1000.0)
            } else {
                format!(
                    "{cause}; not answered, rang {:.1} s",
                    r.ring_ms as f64 / 1000.0
                )
            }
        }
        Event::RecordingAvailable(r) => format!(
            "{} {:.1} s, {} bytes",
            r.content_type,
            r.duration_ms as f64 / 1000.0,
            r.bytes
        ),
        Event::AnalysisCompleted(a) => {
            format!("intent {}, grade {}, {}", a.intent, a.grade, a.sentiment)
        }
        Event::AnalysisFailed(a) => format!("attempt {}: {}", a.attempt, a.reason),
        Event::RecordingStored(r) => format!(
            "{} {:.1} s, {} bytes, sha256 {}",
            r.key,
            r.duration_ms as f64 / 1000.0,
            r.bytes,
            r.sha256.get(..12).unwrap_or("")
        ),
        Event::RecordingFailed(r) => format!("not kept: {}", r.reason),
        Event::TranscriptAvailable(t) => format!(
            "{} characters{}, from {}",
            t.text.chars().count(),
            if t.language.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.language)
            },
            t.source
        ),
        Event::RecordingDeleted(r) => format!("{} deleted ({})", r.key, r.reason),
        Event::FollowUpAdded(f) => format!("{} by {}", f.result, f.added_by),
        _ => String::new(),
    }
}

#[derive(sqlx::FromRow)]
struct ContactRow {
    contact_no: i32,
    phone: Option<String>,
    calls: i64,
    first_call_at: Option<chrono::DateTime<chrono::Utc>>,
    last_call_at: Option<chrono::DateTime<chrono::Utc>>,
    talk_ms: i64,
    answered: bool,
    cause_q850: Option<i32>,
    cause_name: Option<String>,
    intent: Option<String>,
    grade: Option<String>,
    recording_call: Option<Uuid>,
    recording_no: Option<i64>,
    in_call: bool,
}

/// What the calls of some contacts of a task came to (the caller has checked the task is the
/// tenant's).
pub async fn contact_calls(
    pool: &PgPool,
    tenant: &str,
    task: Uuid,
    contact_nos: &[u32],
) -> Result<pb::ListContactCallsResponse, RecordError> {
    if contact_nos.is_empty() || contact_nos.len() > 1000 {
        return Err(invalid("contact_nos", "1 to 1000 contact numbers"));
    }
    let nos: Vec<i32> = contact_nos
        .iter()
        .map(|&n| match i32::try_from(n) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(
                "contact_nos",
                format!("{n} is not a contact number (1 and up)"),
            )),
        })
        .collect::<Result<_, _>>()?;
    let rows: Vec<ContactRow> = sqlx::query_as(&format!(
        "SELECT c.contact_no, max(c.phone) AS phone, count(*) AS calls,
             min(c.requested_at) AS first_call_at, max(c.requested_at) AS last_call_at,
             COALESCE(sum(c.talk_ms), 0)::bigint AS talk_ms,
             COALESCE(bool_or(c.answered), false) AS answered,
             (array_agg(c.cause_q850 ORDER BY c.released_at DESC)
                 FILTER (WHERE c.released_at IS NOT NULL))[1] AS cause_q850,
             (array_agg(c.cause_name ORDER BY c.released_at DESC)
                 FILTER (WHERE c.released_at IS NOT NULL))[1] AS cause_name,
             (array_agg(a.intent ORDER BY a.position DESC) FILTER (WHERE a.status = {done}))[1]
                 AS intent,
             (array_agg(a.grade ORDER BY a.position DESC) FILTER (WHERE a.status = {done}))[1]
                 AS grade,
             (array_agg(c.call_id ORDER BY c.started_at DESC) FILTER (WHERE r.state = {stored}))[1]
                 AS recording_call,
             (array_agg(c.record_no ORDER BY c.started_at DESC) FILTER (WHERE r.state = {stored}))[1]
                 AS recording_no,
             count(*) FILTER (WHERE c.released_at IS NULL) > 0 AS in_call
         FROM call_records c
         LEFT JOIN call_analyses a ON a.call_id = c.call_id
         LEFT JOIN recordings r ON r.call_id = c.call_id
         WHERE c.tenant_id = $1 AND c.task_id = $2 AND c.contact_no = ANY($3)
         GROUP BY c.contact_no ORDER BY c.contact_no",
        done = analysis_status::COMPLETED,
        stored = crate::recording::projection::state::STORED,
    ))
    .bind(tenant)
    .bind(task)
    .bind(&nos)
    .fetch_all(pool)
    .await?;
    Ok(pb::ListContactCallsResponse {
        contacts: rows
            .into_iter()
            .map(|r| pb::ContactCalls {
                contact_no: r.contact_no.max(0) as u32,
                phone: r.phone.unwrap_or_default(),
                calls: r.calls.max(0) as u32,
                first_call_at: r.first_call_at.map(timestamp),
                last_call_at: r.last_call_at.map(timestamp),
                talk_seconds: r.talk_ms as f64 / 1000.0,
                answered: r.answered,
                last_cause: r.cause_q850.map(|q| pb::HangupCause {
                    q850: q.max(0) as u32,
                    name: r.cause_name.clone().unwrap_or_default(),
                    raw: String::new(),
                }),
                intent: r.intent.unwrap_or_default(),
                grade: r.grade.unwrap_or_default(),
                recording_call_id: r.recording_call.map(|c| c.to_string()).unwrap_or_default(),
                recording_call_number: r.recording_no.unwrap_or(0).max(0) as u64,
                in_call: r.in_call,
            })
            .collect(),
    })
}
