use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use waihu_events::timestamp;
use waihu_proto::v1::{
    self as pb, record_service_server::RecordService, stats_service_server::StatsService,
};
pub(crate) use waihu_runtime::parse_time;
use waihu_runtime::{page_token::Page, tenant, IdOrNumber};
use waihu_telephony::{hangup, phone::PhoneNumber};

use crate::projection::{keys, CHECKPOINT};

/// The record service's errors: the shared API error.
pub type RecordError = waihu_runtime::ApiError;

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> RecordError {
    RecordError::invalid(field, reason)
}

pub(crate) use waihu_runtime::parse_uuid;

/// Assembles task statistics from the counter rows of one task.
pub fn stats_from_counters(task_id: Uuid, rows: &[(String, i64)], position: u64) -> pb::TaskStats {
    let get = |k: &str| {
        rows.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| (*v).max(0) as u64)
            .unwrap_or(0)
    };
    let mut s = pb::TaskStats {
        task_id: task_id.to_string(),
        contacts_total: get(keys::CONTACTS_TOTAL),
        contacts_dialed: get(keys::CONTACTS_DIALED),
        contacts_finished: get(keys::CONTACTS_FINISHED),
        calls_placed: get(keys::CALLS_PLACED),
        calls_released: get(keys::CALLS_RELEASED),
        calls_answered: get(keys::CALLS_ANSWERED),
        as_of_position: position,
        ..Default::default()
    };
    let talk_ms = get(keys::TALK_MS);
    s.total_talk_seconds = talk_ms / 1000;
    if s.calls_released > 0 {
        s.connect_rate = s.calls_answered as f64 / s.calls_released as f64;
    }
    if s.calls_answered > 0 {
        s.average_talk_seconds = talk_ms as f64 / 1000.0 / s.calls_answered as f64;
    }
    for (k, v) in rows {
        if let Some(q) = k
            .strip_prefix(keys::CAUSE_PREFIX)
            .and_then(|q| q.parse::<u32>().ok())
        {
            s.hangup_causes.push(pb::CauseCount {
                q850: q,
                name: hangup::q850_name(q).into(),
                count: *v as u64,
            });
        } else if let Some(o) = k
            .strip_prefix(keys::OUTCOME_PREFIX)
            .and_then(|o| o.parse::<i32>().ok())
        {
            s.outcomes.push(pb::OutcomeCount {
                outcome: o,
                count: *v as u64,
            });
        }
    }
    s.hangup_causes.sort_by_key(|c| std::cmp::Reverse(c.count));
    s.outcomes.sort_by_key(|o| o.outcome);
    s
}

pub struct RecordApi {
    pub pool: PgPool,
}

impl RecordApi {
    async fn check_task_tenant(&self, tenant: &str, task_id: Uuid) -> Result<(), RecordError> {
        let owner: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM record_tasks WHERE task_id = $1")
                .bind(task_id)
                .fetch_optional(&self.pool)
                .await?;
        match owner {
            Some(t) if t == tenant => Ok(()),
            _ => Err(RecordError::NotFound(format!("task {task_id}"))),
        }
    }
}

#[tonic::async_trait]
impl StatsService for RecordApi {
    async fn get_task_stats(
        &self,
        req: Request<pb::GetTaskStatsRequest>,
    ) -> Result<Response<pb::TaskStats>, Status> {
        let tenant = tenant(req.metadata())?;
        let task_id = parse_uuid("task_id", &req.get_ref().task_id)?;
        self.check_task_tenant(&tenant, task_id).await?;
        // The counters and the position they are as of, from one snapshot.
        let mut tx = self.pool.begin().await.map_err(RecordError::from)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(RecordError::from)?;
        let position = waihu_store::checkpoint(&mut *tx, CHECKPOINT)
            .await
            .map_err(RecordError::from)?;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT key, value FROM task_stat_counters WHERE task_id = $1")
                .bind(task_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(RecordError::from)?;
        tx.commit().await.map_err(RecordError::from)?;
        Ok(Response::new(stats_from_counters(task_id, &rows, position)))
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    call_id: Uuid,
    task_id: Option<Uuid>,
    contact_no: i32,
    started_at: DateTime<Utc>,
    phone: Option<String>,
    line_id: Option<String>,
    attempt: Option<i32>,
    requested_at: Option<DateTime<Utc>>,
    dialing_at: Option<DateTime<Utc>>,
    ringing_at: Option<DateTime<Utc>>,
    answered_at: Option<DateTime<Utc>>,
    released_at: Option<DateTime<Utc>>,
    ring_ms: Option<i64>,
    talk_ms: Option<i64>,
    cause_q850: Option<i32>,
    cause_name: Option<String>,
    cause_raw: Option<String>,
    record_no: Option<i64>,
}

impl Row {
    fn to_pb(&self) -> pb::CallRecord {
        let state = if self.released_at.is_some() {
            "released"
        } else if self.answered_at.is_some() {
            "answered"
        } else if self.ringing_at.is_some() {
            "ringing"
        } else if self.dialing_at.is_some() {
            "dialing"
        } else {
            "requested"
        };
        pb::CallRecord {
            call_id: self.call_id.to_string(),
            task_id: self.task_id.map(|t| t.to_string()).unwrap_or_default(),
            contact_no: self.contact_no as u32,
            phone: self.phone.clone().unwrap_or_default(),
            line_id: self.line_id.clone().unwrap_or_default(),
            attempt: self.attempt.unwrap_or(0) as u32,
            requested_at: self.requested_at.map(timestamp),
            dialing_at: self.dialing_at.map(timestamp),
            ringing_at: self.ringing_at.map(timestamp),
            answered_at: self.answered_at.map(timestamp),
            released_at: self.released_at.map(timestamp),
            ring_seconds: self.ring_ms.unwrap_or(0) as f64 / 1000.0,
            talk_seconds: self.talk_ms.unwrap_or(0) as f64 / 1000.0,
            cause: self.cause_q850.map(|q| pb::HangupCause {
                q850: q as u32,
                name: self.cause_name.clone().unwrap_or_default(),
                raw: self.cause_raw.clone().unwrap_or_default(),
            }),
            state: state.into(),
            number: self.record_no.unwrap_or(0).max(0) as u64,
        }
    }
}

const ROW_COLUMNS: &str = "call_id, task_id, contact_no, started_at, phone, line_id, attempt, requested_at, \
    dialing_at, ringing_at, answered_at, released_at, ring_ms, talk_ms, cause_q850, cause_name, cause_raw, \
    record_no";

#[tonic::async_trait]
impl RecordService for RecordApi {
    type ExportEventsStream = crate::export::EventStream;
    type VerifyReplayStream = crate::export::VerifyStream;

    async fn export_events(
        &self,
        req: Request<pb::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let task_id = waihu_runtime::parse_optional_uuid("task_id", &r.task_id)?;
        for t in &r.event_types {
            if t.is_empty() || t.len() > 100 {
                return Err(
                    invalid("event_types", format!("{t:?} is not an event type name")).into(),
                );
            }
        }
        let q = waihu_store::EventQuery {
            after_position: r.after_position,
            to_position: (r.to_position > 0).then_some(r.to_position),
            task_id,
            tenant_id: Some(tenant),
            occurred_from: parse_time("from", &r.from)?,
            occurred_to: parse_time("to", &r.to)?,
            event_types: r.event_types,
            ..Default::default()
        };
        let stream = crate::export::export(self.pool.clone(), q, r.limit).await?;
        Ok(Response::new(stream))
    }

    async fn verify_replay(
        &self,
        _req: Request<pb::VerifyReplayRequest>,
    ) -> Result<Response<Self::VerifyReplayStream>, Status> {
        Ok(Response::new(crate::export::verify(self.pool.clone())))
    }

    async fn list_call_records(
        &self,
        req: Request<pb::ListCallRecordsRequest>,
    ) -> Result<Response<pb::ListCallRecordsResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let task = waihu_runtime::parse_optional_uuid("task_id", &r.task_id)?;
        let phone = if r.phone.is_empty() {
            None
        } else {
            Some(
                PhoneNumber::parse(&r.phone)
                    .map_err(|e| invalid("phone", e))?
                    .into_string(),
            )
        };
        let from = parse_time("from", &r.from)?;
        let to = parse_time("to", &r.to)?;
        let size = match r.page_size {
            0 => 100,
            n if n > 1000 => return Err(invalid("page_size", "at most 1000").into()),
            n => n,
        };
        let (after, number) = match waihu_runtime::page_token::page(r.page_number, &r.page_token)? {
            Page::After(after) => (after, None),
            Page::Number(n) => (None, Some(n)),
        };
        let filters = |b: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>| {
            b.push(" FROM call_records WHERE tenant_id = ")
                .push_bind(tenant.clone());
            if let Some(t) = task {
                b.push(" AND task_id = ").push_bind(t);
            }
            if let Some(p) = &phone {
                b.push(" AND phone = ").push_bind(p.clone());
            }
            if let Some(f) = from {
                b.push(" AND started_at >= ").push_bind(f);
            }
            if let Some(t) = to {
                b.push(" AND started_at < ").push_bind(t);
            }
        };
        let (cmp, dir) = if r.oldest_first {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        let mut b = sqlx::QueryBuilder::new(format!("SELECT {ROW_COLUMNS}"));
        filters(&mut b);
        if let Some((at, id)) = after {
            b.push(format!(" AND (started_at, call_id) {cmp} ("))
                .push_bind(at)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        // One more than the page, to know whether another follows.
        b.push(format!(" ORDER BY started_at {dir}, call_id {dir} LIMIT "))
            .push_bind(size as i64 + 1);
        if let Some(n) = number {
            b.push(" OFFSET ").push_bind((n as i64 - 1) * size as i64);
        }
        let rows: Vec<Row> = b
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(RecordError::from)?;
        let total = match number {
            Some(_) => {
                let mut c = sqlx::QueryBuilder::new("SELECT count(*)");
                filters(&mut c);
                let n: i64 = c
                    .build_query_scalar()
                    .fetch_one(&self.pool)
                    .await
                    .map_err(RecordError::from)?;
                n.max(0) as u64
            }
            None => 0,
        };
        let more = rows.len() > size as usize;
        let rows = &rows[..rows.len().min(size as usize)];
        let next_page_token = match (more, rows.last(), number) {
            (true, Some(l), None) => waihu_runtime::page_token::encode(l.started_at, l.call_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListCallRecordsResponse {
            records: rows.iter().map(Row::to_pb).collect(),
            next_page_token,
            total,
        }))
    }

    async fn get_call_record(
        &self,
        req: Request<pb::GetCallRecordRequest>,
    ) -> Result<Response<pb::CallRecord>, Status> {
        let tenant = tenant(req.metadata())?;
        let given = &req.get_ref().call_id;
        // By number (decimal digits) or by UUID.
        let key = waihu_runtime::parse_id_or_number("call_id", "call", given)?;
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM call_records WHERE {} = $1 AND tenant_id = $2",
            match key {
                IdOrNumber::Number(_) => "record_no",
                IdOrNumber::Id(_) => "call_id",
            }
        );
        let query = sqlx::query_as(&sql);
        let query = match key {
            IdOrNumber::Number(n) => query.bind(n),
            IdOrNumber::Id(id) => query.bind(id),
        };
        let row: Option<Row> = query
            .bind(&tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(RecordError::from)?;
        row.map(|r| Response::new(r.to_pb()))
            .ok_or_else(|| RecordError::NotFound(format!("call {given}")).into())
    }
}
