use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;
use waihu_events::timestamp;
use waihu_proto::v1::{
    self as pb, record_service_server::RecordService, stats_service_server::StatsService,
};
pub(crate) use waihu_runtime::parse_time;
use waihu_runtime::{tenant, IdOrNumber};
use waihu_telephony::hangup;

use crate::projection::{analysis_status, keys, task_state, CHECKPOINT};

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
    s.calls_analysed = get(keys::ANALYSED);
    for (k, v) in rows {
        if *v <= 0 {
            continue;
        }
        if let Some(intent) = k.strip_prefix(keys::INTENT_PREFIX) {
            s.intents.push(pb::IntentCount {
                intent: intent.into(),
                count: *v as u64,
            });
        } else if let Some(grade) = k.strip_prefix(keys::GRADE_PREFIX) {
            s.grades.push(pb::GradeCount {
                grade: grade.into(),
                count: *v as u64,
            });
        }
    }
    s.intents.sort_by(|a, b| a.intent.cmp(&b.intent));
    s.grades.sort_by(|a, b| a.grade.cmp(&b.grade));
    let intent = |i: &str| get(&format!("{}{i}", keys::INTENT_PREFIX));
    s.intended_customers = intent("interested");
    // Numbers that do not exist: unallocated (1), no route (3), invalid format (28).
    let no_number: u64 = [1, 3, 28]
        .iter()
        .map(|q| get(&format!("{}{q}", keys::CAUSE_PREFIX)))
        .sum();
    s.categories = Some(pb::ResultCategories {
        success: s.calls_answered,
        failed: s
            .calls_released
            .saturating_sub(s.calls_answered)
            .saturating_sub(no_number),
        interested: intent("interested"),
        not_considering: intent("not_interested"),
        inconvenient: intent("inconvenient"),
        wrong_number: no_number + intent("wrong_number"),
    });
    s
}

/// A task's statistics, the position they are as of and whether the task has ended, from one
/// snapshot.
pub async fn read_stats(pool: &PgPool, task_id: Uuid) -> Result<pb::TaskStats, RecordError> {
    let mut tx = pool.begin().await?;
    waihu_store::read_only_snapshot(&mut tx).await?;
    let position = waihu_store::checkpoint(&mut *tx, CHECKPOINT).await?;
    let row: Option<(Vec<String>, Vec<i64>)> =
        sqlx::query_as("SELECT keys, vals FROM task_counters WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await?;
    let rows: Vec<(String, i64)> = row
        .map(|(keys, values)| keys.into_iter().zip(values).collect())
        .unwrap_or_default();
    let state: Option<i16> =
        sqlx::query_scalar("SELECT state FROM record_tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut stats = stats_from_counters(task_id, &rows, position);
    stats.ended = matches!(state, Some(task_state::COMPLETED | task_state::CANCELLED));
    Ok(stats)
}

pub struct RecordApi {
    pub pool: PgPool,
    /// Where follow-ups are published (None in tests that only read).
    pub bus: Option<waihu_bus::Bus>,
    pub changes: crate::watch::Changes,
    /// Signs recording URLs (None: this instance gives none out).
    pub recordings: Option<RecordingUrls>,
}

/// What GetRecordingUrl needs.
#[derive(Clone)]
pub struct RecordingUrls {
    pub signer: crate::recording::Signer,
    pub ttl: std::time::Duration,
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
        let mut stats = read_stats(&self.pool, task_id).await?;
        // `ended` belongs to the watch.
        stats.ended = false;
        Ok(Response::new(stats))
    }

    type WatchTaskStatsStream = crate::watch::StatsStream;

    async fn watch_task_stats(
        &self,
        req: Request<pb::GetTaskStatsRequest>,
    ) -> Result<Response<Self::WatchTaskStatsStream>, Status> {
        let tenant = tenant(req.metadata())?;
        let task_id = parse_uuid("task_id", &req.get_ref().task_id)?;
        self.check_task_tenant(&tenant, task_id).await?;
        Ok(Response::new(crate::watch::watch(
            self.pool.clone(),
            &self.changes,
            task_id,
        )))
    }

    async fn get_task_report(
        &self,
        req: Request<pb::GetTaskStatsRequest>,
    ) -> Result<Response<pb::TaskReport>, Status> {
        let tenant = tenant(req.metadata())?;
        let task_id = parse_uuid("task_id", &req.get_ref().task_id)?;
        self.check_task_tenant(&tenant, task_id).await?;
        Ok(Response::new(
            crate::report::task_report(&self.pool, task_id).await?,
        ))
    }

    async fn get_dashboard(
        &self,
        req: Request<pb::GetDashboardRequest>,
    ) -> Result<Response<pb::Dashboard>, Status> {
        let tenant = tenant(req.metadata())?;
        let zone = waihu_telephony::zone::parse(&req.get_ref().time_zone)
            .map_err(|e| invalid("time_zone", e))?;
        Ok(Response::new(
            crate::report::dashboard(&self.pool, &tenant, zone, Utc::now()).await?,
        ))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    pub(crate) call_id: Uuid,
    pub(crate) task_id: Option<Uuid>,
    pub(crate) contact_no: i32,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) phone: Option<String>,
    pub(crate) line_id: Option<String>,
    pub(crate) attempt: Option<i32>,
    pub(crate) requested_at: Option<DateTime<Utc>>,
    pub(crate) dialing_at: Option<DateTime<Utc>>,
    pub(crate) ringing_at: Option<DateTime<Utc>>,
    pub(crate) answered_at: Option<DateTime<Utc>>,
    pub(crate) released_at: Option<DateTime<Utc>>,
    pub(crate) ring_ms: Option<i64>,
    pub(crate) talk_ms: Option<i64>,
    pub(crate) cause_q850: Option<i32>,
    pub(crate) cause_name: Option<String>,
    pub(crate) cause_raw: Option<String>,
    pub(crate) record_no: Option<i64>,
    pub(crate) answered: Option<bool>,
    pub(crate) analysis_status: Option<i16>,
}

/// A record's analysis status (seed 002) from its projected status and whether it was
/// answered: PENDING for an answered call until its analysis arrives, NONE for another.
pub(crate) fn analysis_status_of(
    status: Option<i16>,
    answered: Option<bool>,
) -> pb::AnalysisStatus {
    match (status, answered) {
        (Some(analysis_status::COMPLETED), _) => pb::AnalysisStatus::Completed,
        (Some(analysis_status::FAILED), _) => pb::AnalysisStatus::Failed,
        (_, Some(true)) => pb::AnalysisStatus::Pending,
        _ => pb::AnalysisStatus::None,
    }
}

impl Row {
    fn analysis_status(&self) -> pb::AnalysisStatus {
        analysis_status_of(self.analysis_status, self.answered)
    }

    /// What a follow-up copies from its call.
    pub(crate) fn follow_up_target(&self) -> crate::followup::Target {
        crate::followup::Target {
            call_id: self.call_id,
            task_id: self.task_id,
            contact_no: self.contact_no.max(0) as u32,
            phone: self.phone.clone().unwrap_or_default(),
            number: self.record_no.unwrap_or(0).max(0) as u64,
        }
    }

    pub(crate) fn to_pb(&self) -> pb::CallRecord {
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
            analysis_status: self.analysis_status().into(),
            answered: self.answered == Some(true),
            ..Default::default()
        }
    }
}

pub(crate) const ROW_COLUMNS: &str = "call_id, task_id, contact_no, started_at, phone, line_id, attempt, requested_at, \
    dialing_at, ringing_at, answered_at, released_at, ring_ms, talk_ms, cause_q850, cause_name, cause_raw, \
    record_no, answered, analysis_status";

#[tonic::async_trait]
impl RecordService for RecordApi {
    type ExportEventsStream = crate::export::EventStream;
    type VerifyReplayStream = crate::export::VerifyStream;
    type ExportCallRecordsStream = crate::sheet::ChunkStream;

    async fn list_contact_calls(
        &self,
        req: Request<pb::ListContactCallsRequest>,
    ) -> Result<Response<pb::ListContactCallsResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let task_id = parse_uuid("task_id", &r.task_id)?;
        self.check_task_tenant(&tenant, task_id).await?;
        Ok(Response::new(
            crate::records::contact_calls(&self.pool, &tenant, task_id, &r.contact_nos).await?,
        ))
    }

    async fn get_recording_url(
        &self,
        req: Request<pb::GetRecordingUrlRequest>,
    ) -> Result<Response<pb::RecordingUrl>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let Some(urls) = &self.recordings else {
            return Err(Status::unimplemented(
                "this record service keeps no recordings",
            ));
        };
        let ttl = match r.ttl_seconds {
            0 => urls.ttl,
            n => {
                let t = std::time::Duration::from_secs(n as u64);
                if t > crate::recording::MAX_URL_TTL {
                    return Err(invalid("ttl_seconds", "at most 604800 (7 days)").into());
                }
                t
            }
        };
        let call = find_call(&self.pool, &tenant, &r.call_id).await?;
        let rec: Option<crate::recording::projection::RecordingRow> = sqlx::query_as(&format!(
            "SELECT {} FROM recordings WHERE call_id = $1 AND tenant_id = $2",
            crate::recording::projection::ROW_COLUMNS
        ))
        .bind(call.call_id)
        .bind(&tenant)
        .fetch_optional(&self.pool)
        .await
        .map_err(RecordError::from)?;
        let Some(rec) = rec.filter(|r| r.state == crate::recording::projection::state::STORED)
        else {
            return Err(
                RecordError::NotFound(format!("a stored recording of call {}", r.call_id)).into(),
            );
        };
        let ext = rec.format.clone().unwrap_or_default();
        let expires = Utc::now()
            + chrono::Duration::from_std(ttl).map_err(|_| invalid("ttl_seconds", "too long"))?;
        // Whole seconds: the URL carries them.
        let expires = DateTime::from_timestamp(expires.timestamp(), 0).unwrap_or(expires);
        Ok(Response::new(pb::RecordingUrl {
            url: urls.signer.url(&tenant, call.call_id, &ext, expires),
            expires_at: Some(timestamp(expires)),
            content_type: rec.content_type.clone().unwrap_or_default(),
            bytes: rec.bytes.unwrap_or(0).max(0) as u64,
            duration_ms: rec.duration_ms.unwrap_or(0).max(0) as u64,
        }))
    }

    async fn export_call_records(
        &self,
        req: Request<pb::ExportCallRecordsRequest>,
    ) -> Result<Response<Self::ExportCallRecordsStream>, Status> {
        let tenant = tenant(req.metadata())?;
        Ok(Response::new(
            crate::sheet::export(self.pool.clone(), &tenant, req.into_inner()).await?,
        ))
    }

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
        Ok(Response::new(
            crate::records::list(&self.pool, &tenant, &r).await?,
        ))
    }

    async fn get_call_record(
        &self,
        req: Request<pb::GetCallRecordRequest>,
    ) -> Result<Response<pb::CallRecord>, Status> {
        let tenant = tenant(req.metadata())?;
        let given = &req.get_ref().call_id;
        let row = find_call(&self.pool, &tenant, given).await?;
        let mut record = row.to_pb();
        crate::records::detail(&self.pool, &tenant, row.call_id, &mut record).await?;
        Ok(Response::new(record))
    }

    async fn add_follow_up(
        &self,
        req: Request<pb::AddFollowUpRequest>,
    ) -> Result<Response<pb::FollowUp>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let r = req.into_inner();
        let call = find_call(&self.pool, &tenant, &r.call_id).await?;
        Ok(Response::new(
            crate::followup::add(
                self.bus.as_ref(),
                &tenant,
                &actor,
                &call.follow_up_target(),
                r,
            )
            .await?,
        ))
    }

    async fn list_due_follow_ups(
        &self,
        req: Request<pb::ListDueFollowUpsRequest>,
    ) -> Result<Response<pb::ListDueFollowUpsResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        Ok(Response::new(
            crate::followup::due(&self.pool, &tenant, req.get_ref()).await?,
        ))
    }
}

/// The tenant's call record named by UUID or number; NOT_FOUND otherwise.
pub(crate) async fn find_call(
    pool: &PgPool,
    tenant: &str,
    given: &str,
) -> Result<Row, RecordError> {
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
    let row: Option<Row> = query.bind(tenant).fetch_optional(pool).await?;
    row.ok_or_else(|| RecordError::NotFound(format!("call {given}")))
}
