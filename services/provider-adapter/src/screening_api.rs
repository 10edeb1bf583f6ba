//! `ScreeningService`: create screening jobs, follow them, download their results, roll back
//! unfinished batches, and read or override what is known of numbers' validity. Every call acts
//! within the caller's tenant; another tenant's job is NOT_FOUND.

use std::{collections::HashSet, pin::Pin};

use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;
use waihu_events::{pb, timestamp, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_proto::v1::screening_service_server::ScreeningService;
use waihu_runtime::{check_text, page_token, parse_uuid, tenant, ApiError};
use waihu_store::StoreError;
use waihu_telephony::PhoneNumber;

use crate::screening::{batch_api, validity_name, Cell, ResultRow, Screener, MAX_BATCH_SIZE};

/// Numbers one message may carry, and one job.
pub const MAX_PHONES_PER_MESSAGE: usize = 10_000;
pub const MAX_PHONES_PER_JOB: u32 = 1_000_000;
/// Batches one job may make at most (its batch log stays one reply).
pub const MAX_BATCHES_PER_JOB: u32 = 10_000;
/// How long an upload may stay silent (its transaction holds a connection meanwhile).
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// Rows per page read for a download, and bytes per chunk sent.
const DOWNLOAD_PAGE: i64 = 5_000;
const CHUNK: usize = 256 * 1024;

pub struct ScreeningApi {
    pub screener: Screener,
}

fn store_err(e: sqlx::Error) -> ApiError {
    StoreError::from(e).into()
}

fn ts(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(timestamp)
}

fn ms_between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> u64 {
    match (a, b) {
        (Some(a), Some(b)) if b >= a => (b - a).num_milliseconds() as u64,
        _ => 0,
    }
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    line_id: String,
    batchid: String,
    task_id: String,
    status: i16,
    totalnum: i32,
    batch_size: i32,
    skipped: i32,
    creator: String,
    createtime: DateTime<Utc>,
    runbegintime: Option<DateTime<Utc>>,
    runendtime: Option<DateTime<Utc>>,
}

const JOB_COLUMNS: &str = "id, line_id, batchid, task_id, status, totalnum, batch_size, \
                           skipped, creator, createtime, runbegintime, runendtime";

#[derive(sqlx::FromRow)]
struct BatchLog {
    batch_no: i32,
    totalnum: i32,
    status: i16,
    send_fromflag: i16,
    send_recvflag: i16,
    send_begintime: Option<DateTime<Utc>>,
    send_recvtime: Option<DateTime<Utc>>,
    send_res_suminfo: String,
    query_fromflag: i16,
    query_recvflag: i16,
    query_begintime: Option<DateTime<Utc>>,
    query_recvtime: Option<DateTime<Utc>>,
    query_res_suminfo: String,
    provider_ref: String,
    attempts: i32,
}

impl JobRow {
    fn to_pb(&self) -> pb::Screening {
        pb::Screening {
            screening_id: self.id.to_string(),
            line_id: self.line_id.clone(),
            external_batch_id: self.batchid.clone(),
            task_id: self.task_id.clone(),
            status: self.status as i32,
            total: self.totalnum as u32,
            batch_size: self.batch_size as u32,
            creator: self.creator.clone(),
            createtime: ts(Some(self.createtime)),
            runbegintime: ts(self.runbegintime),
            runendtime: ts(self.runendtime),
            skipped: self.skipped as u32,
            ..Default::default()
        }
    }
}

impl ScreeningApi {
    async fn job(&self, tenant: &str, id: &str) -> Result<JobRow, ApiError> {
        let id = parse_uuid("screening_id", id)?;
        sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM call_filter_task WHERE id = $1 AND tenant_id = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.screener.pool)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::NotFound(format!("screening {id}")))
    }

    /// A job with its progress and (`with_log`) its batches.
    async fn describe(&self, job: JobRow, with_log: bool) -> Result<pb::Screening, ApiError> {
        let pool = &self.screener.pool;
        let mut s = job.to_pb();
        // From the batches' own counts: at most a job's batch count of rows, however many
        // numbers it holds.
        let (batches, sent, queried, n, v, i, u): (i64, i64, i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE status IN (2, 3)),
                        count(*) FILTER (WHERE status = 3),
                        coalesce(sum(totalnum) FILTER (WHERE status = 3), 0)::bigint,
                        coalesce(sum(valid_n), 0)::bigint, coalesce(sum(invalid_n), 0)::bigint,
                        coalesce(sum(unknown_n), 0)::bigint
                 FROM call_filter_send_batch WHERE filter_task_id = $1",
            )
            .bind(job.id)
            .fetch_one(pool)
            .await
            .map_err(store_err)?;
        (s.batches, s.batches_sent, s.batches_queried) =
            (batches as u32, sent as u32, queried as u32);
        (s.numbers_queried, s.valid, s.invalid, s.unknown) =
            (n as u32, v as u32, i as u32, u as u32);
        if with_log {
            let logs: Vec<BatchLog> = sqlx::query_as(
                "SELECT batch_no, totalnum, status, send_fromflag, send_recvflag,
                        send_begintime, send_recvtime, send_res_suminfo, query_fromflag,
                        query_recvflag, query_begintime, query_recvtime, query_res_suminfo,
                        provider_ref, attempts
                 FROM call_filter_send_batch WHERE filter_task_id = $1 ORDER BY batch_no",
            )
            .bind(job.id)
            .fetch_all(pool)
            .await
            .map_err(store_err)?;
            s.batch_log = logs
                .into_iter()
                .map(|b| pb::ScreeningBatch {
                    order: b.batch_no as u32,
                    total: b.totalnum as u32,
                    status: b.status as i32,
                    send_fromflag: b.send_fromflag as i32,
                    send_recvflag: b.send_recvflag as i32,
                    send_begintime: ts(b.send_begintime),
                    send_recvtime: ts(b.send_recvtime),
                    send_res_suminfo: b.send_res_suminfo,
                    query_fromflag: b.query_fromflag as i32,
                    query_recvflag: b.query_recvflag as i32,
                    query_begintime: ts(b.query_begintime),
                    query_recvtime: ts(b.query_recvtime),
                    query_res_suminfo: b.query_res_suminfo,
                    send_ms: ms_between(b.send_begintime, b.send_recvtime),
                    query_ms: if b.query_recvflag == 1 {
                        ms_between(b.send_recvtime, b.query_recvtime)
                    } else {
                        0
                    },
                    provider_ref: b.provider_ref,
                    attempts: b.attempts as u32,
                })
                .collect();
        }
        Ok(s)
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ExportChunk, Status>> + Send>>;

#[tonic::async_trait]
impl ScreeningService for ScreeningApi {
    async fn create_screening(
        &self,
        req: Request<Streaming<pb::CreateScreeningRequest>>,
    ) -> Result<Response<pb::Screening>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let mut stream = req.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            ApiError::invalid("line_id", "is required (send at least one message)")
        })?;
        if first.line_id.is_empty() {
            return Err(ApiError::invalid("line_id", "is required").into());
        }
        check_text("line_id", &first.line_id, 64)?;
        check_text("external_batch_id", &first.external_batch_id, 128)?;
        if !first.task_id.is_empty() {
            parse_uuid("task_id", &first.task_id)?;
        }
        let batch_size = match first.batch_size {
            0 => self.screener.config.batch_size,
            n if n <= MAX_BATCH_SIZE => n,
            _ => {
                return Err(ApiError::invalid(
                    "batch_size",
                    format!("1-{MAX_BATCH_SIZE} (0 = the service's setting)"),
                )
                .into())
            }
        };
        let line = self
            .screener
            .lines
            .config(&tenant, &first.line_id)
            .await
            .map_err(ApiError::Unavailable)?
            .ok_or_else(|| ApiError::NotFound(format!("line {}", first.line_id)))?;
        batch_api(&line.provider, &self.screener.sim).map_err(ApiError::FailedPrecondition)?;

        let skip_known_valid = first.skip_known_valid;
        let id = Uuid::now_v7();
        let pool = &self.screener.pool;
        let mut tx = pool.begin().await.map_err(store_err)?;
        sqlx::query(
            "INSERT INTO call_filter_task
                 (id, tenant_id, line_id, status, batchid, task_id, batch_size, skip_known_valid,
                  creator)
             VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(&tenant)
        .bind(&first.line_id)
        .bind(&first.external_batch_id)
        .bind(&first.task_id)
        .bind(batch_size as i32)
        .bind(first.skip_known_valid)
        .bind(&actor)
        .execute(&mut *tx)
        .await
        .map_err(store_err)?;
        let (mut rejected, mut rejected_total) = (Vec::new(), 0u32);
        let (mut seen, mut stored, mut seq) = (0usize, 0u32, 0i32);
        let mut msg = Some(first);
        while let Some(m) = msg {
            if m.phones.len() > MAX_PHONES_PER_MESSAGE {
                return Err(ApiError::invalid(
                    "phones",
                    format!("at most {MAX_PHONES_PER_MESSAGE} a message (stream more messages)"),
                )
                .into());
            }
            let phones = waihu_telephony::phone::parse_many(
                &m.phones,
                seen,
                &mut rejected,
                &mut rejected_total,
            );
            seen += m.phones.len();
            if seen > MAX_PHONES_PER_JOB as usize {
                return Err(ApiError::invalid(
                    "phones",
                    format!("at most {MAX_PHONES_PER_JOB} a job (split the list)"),
                )
                .into());
            }
            if !phones.is_empty() {
                let seqs: Vec<i32> = (seq + 1..=seq + phones.len() as i32).collect();
                seq += phones.len() as i32;
                // Duplicates (in this job) and, if asked, numbers known valid are left out.
                let n = sqlx::query(
                    "INSERT INTO call_filter_send_detail (filter_task_id, seq, telno)
                     SELECT $1, s, p FROM UNNEST($2::int[], $3::text[]) AS u(s, p)
                     WHERE NOT ($4 AND EXISTS (
                         SELECT 1 FROM number_validity v
                         WHERE v.tenant_id = $5 AND v.phone = u.p AND v.validity = 2))
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(&seqs)
                .bind(&phones)
                .bind(skip_known_valid)
                .bind(&tenant)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?
                .rows_affected();
                stored += n as u32;
            }
            msg = match tokio::time::timeout(UPLOAD_IDLE, stream.message()).await {
                Ok(m) => m?,
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "no message for {} s: the upload is dropped (nothing was created)",
                        UPLOAD_IDLE.as_secs()
                    )))
                }
            };
        }
        if stored == 0 {
            return Err(ApiError::invalid(
                "phones",
                format!(
                    "no number to screen ({seen} sent, {rejected_total} refused, the rest \
                     duplicates or known valid)"
                ),
            )
            .into());
        }
        if stored.div_ceil(batch_size) > MAX_BATCHES_PER_JOB {
            return Err(ApiError::invalid(
                "batch_size",
                format!(
                    "{batch_size} makes more than {MAX_BATCHES_PER_JOB} batches of {stored} \
                     numbers: use larger batches"
                ),
            )
            .into());
        }
        let skipped = seen as u32 - rejected_total - stored;
        sqlx::query(
            "UPDATE call_filter_task SET status = 1, totalnum = $2, skipped = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(stored as i32)
        .bind(skipped as i32)
        .execute(&mut *tx)
        .await
        .map_err(store_err)?;
        let job: JobRow = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM call_filter_task WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_err)?;
        let created = crate::screening::screening_event(
            &tenant,
            id,
            1,
            "created",
            Event::ScreeningCreated(pb::ScreeningCreated {
                screening_id: id.to_string(),
                line_id: job.line_id.clone(),
                external_batch_id: job.batchid.clone(),
                task_id: job.task_id.clone(),
                total: stored,
                batch_size,
                creator: actor.clone(),
            }),
        );
        let audit = waihu_events::audit(
            &tenant,
            &actor,
            "ScreeningService/CreateScreening",
            &format!("screening {id}"),
            &format!("{stored} numbers on line {}", job.line_id),
        );
        self.screener
            .outbox
            .push(&mut tx, &[created, (audit, waihu_bus::Expect::Any)])
            .await
            .map_err(ApiError::from)?;
        tx.commit().await.map_err(store_err)?;
        self.screener.outbox.wake();
        self.screener.wake.notify_one();
        let mut s = job.to_pb();
        s.rejected = rejected;
        s.rejected_total = rejected_total;
        Ok(Response::new(s))
    }

    async fn get_screening(
        &self,
        req: Request<pb::GetScreeningRequest>,
    ) -> Result<Response<pb::Screening>, Status> {
        let tenant = tenant(req.metadata())?;
        let job = self.job(&tenant, &req.get_ref().screening_id).await?;
        Ok(Response::new(self.describe(job, true).await?))
    }

    async fn list_screenings(
        &self,
        req: Request<pb::ListScreeningsRequest>,
    ) -> Result<Response<pb::ListScreeningsResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let size = match r.page_size {
            0 => 50,
            n @ 1..=500 => n as i64,
            _ => return Err(ApiError::invalid("page_size", "1-500 (0 = 50)").into()),
        };
        let after = page_token::decode(&r.page_token)?;
        let (at, id) = after.unwrap_or((DateTime::<Utc>::MAX_UTC, Uuid::max()));
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM call_filter_task
             WHERE tenant_id = $1 AND status > 0 AND (createtime, id) < ($2, $3)
             ORDER BY createtime DESC, id DESC LIMIT $4"
        ))
        .bind(&tenant)
        .bind(at)
        .bind(id)
        .bind(size + 1)
        .fetch_all(&self.screener.pool)
        .await
        .map_err(store_err)?;
        let more = rows.len() as i64 > size;
        let mut out = pb::ListScreeningsResponse::default();
        for j in rows.into_iter().take(size as usize) {
            if more {
                out.next_page_token = page_token::encode(j.createtime, j.id);
            }
            out.screenings.push(self.describe(j, false).await?);
        }
        if !more {
            out.next_page_token.clear();
        }
        Ok(Response::new(out))
    }

    type DownloadScreeningResultsStream = ChunkStream;

    async fn download_screening_results(
        &self,
        req: Request<pb::DownloadScreeningResultsRequest>,
    ) -> Result<Response<Self::DownloadScreeningResultsStream>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        let xlsx = match r.format.as_str() {
            "" | "json" => false,
            "xlsx" => true,
            _ => return Err(ApiError::invalid("format", "\"json\" or \"xlsx\"").into()),
        };
        let job = self.job(&tenant, &r.screening_id).await?;
        let queried: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM call_filter_send_batch WHERE filter_task_id = $1 AND status = 3",
        )
        .bind(job.id)
        .fetch_one(&self.screener.pool)
        .await
        .map_err(store_err)?;
        if queried == 0 {
            return Err(ApiError::FailedPrecondition(format!(
                "screening {}: no batch has its results yet",
                job.id
            ))
            .into());
        }
        let (tx, rx) = mpsc::channel::<Result<pb::ExportChunk, Status>>(4);
        let pool = self.screener.pool.clone();
        let dir = self.screener.config.dir.clone();
        tokio::spawn(async move {
            let name = format!(
                "screening-{}.{}",
                job.id,
                if xlsx { "xlsx" } else { "json" }
            );
            let result = if xlsx {
                send_xlsx(&pool, job.id, &dir, &name, &tx).await
            } else {
                send_json(&pool, job.id, &name, &tx).await
            };
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn rollback_screening(
        &self,
        req: Request<pb::GetScreeningRequest>,
    ) -> Result<Response<pb::Screening>, Status> {
        let tenant = tenant(req.metadata())?;
        let job = self.job(&tenant, &req.get_ref().screening_id).await?;
        let mut tx = self.screener.pool.begin().await.map_err(store_err)?;
        // The job first, as the query job takes it (then its batches).
        sqlx::query("SELECT 1 FROM call_filter_task WHERE id = $1 FOR UPDATE")
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        // Sent batches without results start querying again; batches whose sending failed (or
        // gave up before being accepted) are sent again. A batch a worker holds now is left to
        // it (rolling it back would hand the provider the same batch twice).
        sqlx::query(
            "UPDATE call_filter_send_batch SET
                 status = CASE WHEN send_recvflag = 1 THEN 2 ELSE 1 END,
                 send_fromflag = CASE WHEN send_recvflag = 1 THEN 1 ELSE 0 END,
                 send_recvflag = CASE WHEN send_recvflag = 1 THEN 1 ELSE 0 END,
                 query_fromflag = 0, query_recvflag = 0,
                 attempts = 0, next_at = now(), lease_until = NULL
             WHERE filter_task_id = $1 AND status <> 3
               AND (lease_until IS NULL OR lease_until < now())",
        )
        .bind(job.id)
        .execute(&mut *tx)
        .await
        .map_err(store_err)?;
        sqlx::query("UPDATE call_filter_task SET status = 2 WHERE id = $1 AND status = 4")
            .bind(job.id)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        self.screener.wake.notify_one();
        let job = self.job(&tenant, &job.id.to_string()).await?;
        Ok(Response::new(self.describe(job, true).await?))
    }

    async fn get_number_validity(
        &self,
        req: Request<pb::GetNumberValidityRequest>,
    ) -> Result<Response<pb::GetNumberValidityResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let r = req.into_inner();
        if r.phones.is_empty() || r.phones.len() > 1_000 {
            return Err(ApiError::invalid("phones", "name 1-1000 numbers").into());
        }
        let mut phones = Vec::with_capacity(r.phones.len());
        for (i, p) in r.phones.iter().enumerate() {
            phones.push(
                PhoneNumber::parse(p)
                    .map_err(|e| ApiError::invalid(format!("phones[{i}]"), e))?
                    .into_string(),
            );
        }
        #[allow(clippy::type_complexity)]
        let known: Vec<(String, i16, String, DateTime<Utc>, i32, String)> = sqlx::query_as(
            "SELECT phone, validity, source, updated_at, q850, raw_cause FROM number_validity
             WHERE tenant_id = $1 AND phone = ANY($2)",
        )
        .bind(&tenant)
        .bind(&phones)
        .fetch_all(&self.screener.pool)
        .await
        .map_err(store_err)?;
        let known: std::collections::HashMap<_, _> =
            known.into_iter().map(|k| (k.0.clone(), k)).collect();
        let numbers = phones
            .iter()
            .map(|p| match known.get(p) {
                Some((_, v, source, at, q850, raw)) => pb::NumberValidityEntry {
                    phone: p.clone(),
                    validity: *v as i32,
                    source: source.clone(),
                    updated_at: Some(timestamp(*at)),
                    cause: (*q850 > 0 || !raw.is_empty())
                        .then(|| waihu_telephony::hangup::cause(*q850 as u32, raw.clone())),
                },
                None => pb::NumberValidityEntry {
                    phone: p.clone(),
                    validity: pb::NumberValidity::Unknown as i32,
                    ..Default::default()
                },
            })
            .collect();
        Ok(Response::new(pb::GetNumberValidityResponse { numbers }))
    }

    async fn set_number_validity(
        &self,
        req: Request<pb::SetNumberValidityRequest>,
    ) -> Result<Response<pb::SetNumberValidityResponse>, Status> {
        let tenant = tenant(req.metadata())?;
        let actor = waihu_runtime::actor(&req);
        let r = req.into_inner();
        if r.phones.is_empty() || r.phones.len() > MAX_PHONES_PER_MESSAGE {
            return Err(ApiError::invalid(
                "phones",
                format!("name 1-{MAX_PHONES_PER_MESSAGE} numbers"),
            )
            .into());
        }
        let validity = match pb::NumberValidity::try_from(r.validity) {
            Ok(
                v @ (pb::NumberValidity::Valid
                | pb::NumberValidity::Invalid
                | pb::NumberValidity::Unknown),
            ) => v,
            _ => return Err(ApiError::invalid("validity", "VALID, INVALID or UNKNOWN").into()),
        };
        check_text("reason", &r.reason, 200)?;
        let (mut rejected, mut rejected_total) = (Vec::new(), 0u32);
        let mut phones =
            waihu_telephony::phone::parse_many(&r.phones, 0, &mut rejected, &mut rejected_total);
        let mut seen = HashSet::new();
        phones.retain(|p| seen.insert(p.clone()));
        if phones.is_empty() {
            return Err(ApiError::invalid("phones", "none of them is a number").into());
        }
        let mut tx = self.screener.pool.begin().await.map_err(store_err)?;
        // Rows in phone order (as the screening jobs take them); each change gets the next
        // version under its row's lock. Numbers already so by override are left as they are.
        let mut changed: Vec<(String, i64)> = sqlx::query_as(
            "INSERT INTO number_validity (tenant_id, phone, validity, source, version)
             SELECT $1, p, $3, 'override', nextval('number_validity_version')
             FROM (SELECT p FROM UNNEST($2::text[]) AS u(p) ORDER BY p) s
             ON CONFLICT (tenant_id, phone) DO UPDATE
             SET validity = EXCLUDED.validity, source = 'override', q850 = 0, raw_cause = '',
                 updated_at = now(), version = nextval('number_validity_version')
             WHERE number_validity.validity <> EXCLUDED.validity
                OR number_validity.source <> 'override'
             RETURNING phone, version",
        )
        .bind(&tenant)
        .bind(&phones)
        .bind(validity as i16)
        .fetch_all(&mut *tx)
        .await
        .map_err(store_err)?;
        changed.sort_unstable();
        let mut events = Vec::with_capacity(2);
        if !changed.is_empty() {
            let id = Uuid::now_v7();
            let (phones, versions) = changed.iter().map(|(p, v)| (p.clone(), *v as u64)).unzip();
            events.push((
                RecordedEvent::new(
                    EventMeta::new(&tenant, Aggregate::Screening(id), 1),
                    Event::NumberValidityOverridden(pb::NumberValidityOverridden {
                        phones,
                        validity: validity as i32,
                        reason: r.reason.clone(),
                        actor: actor.clone(),
                        versions,
                    }),
                ),
                waihu_bus::Expect::Any,
            ));
        }
        // The audit record never names the numbers (they are the tenant's customers').
        let audit = waihu_events::audit(
            &tenant,
            &actor,
            "ScreeningService/SetNumberValidity",
            &format!("{} numbers", phones.len()),
            validity_name(validity as i16),
        );
        events.push((audit, waihu_bus::Expect::Any));
        self.screener
            .outbox
            .push(&mut tx, &events)
            .await
            .map_err(ApiError::from)?;
        tx.commit().await.map_err(store_err)?;
        self.screener.outbox.wake();
        Ok(Response::new(pb::SetNumberValidityResponse {
            changed: changed.len() as u32,
            rejected_total,
            rejected,
        }))
    }
}

#[derive(sqlx::FromRow)]
struct Stored {
    batch_no: i32,
    phone: String,
    validity: i16,
    call_status: String,
    billsec: i32,
    call_start_time: Option<DateTime<Utc>>,
    answer_time: Option<DateTime<Utc>>,
    call_end_time: Option<DateTime<Utc>>,
    wait_time: i32,
    q850: i32,
    raw_cause: String,
}

impl From<Stored> for ResultRow {
    fn from(s: Stored) -> Self {
        ResultRow {
            batch: s.batch_no,
            validity: validity_name(s.validity),
            phone: s.phone,
            call_status: s.call_status,
            billsec: s.billsec,
            call_start_time: s.call_start_time,
            answer_time: s.answer_time,
            call_end_time: s.call_end_time,
            wait_time: s.wait_time,
            q850: s.q850,
            cause: waihu_telephony::hangup::q850_name(s.q850 as u32),
            raw_cause: s.raw_cause,
        }
    }
}

/// One page of a job's stored results after `after` in (batch, phone) order.
async fn page(
    pool: &sqlx::PgPool,
    job: Uuid,
    after: &mut (i32, String),
) -> Result<Vec<ResultRow>, Status> {
    let rows: Vec<Stored> = sqlx::query_as(
        "SELECT batch_no, phone, validity, call_status, billsec, call_start_time,
                answer_time, call_end_time, wait_time, q850, raw_cause
         FROM call_filter_send_queryres
         WHERE filter_task_id = $1 AND (batch_no, phone) > ($2, $3)
         ORDER BY batch_no, phone LIMIT $4",
    )
    .bind(job)
    .bind(after.0)
    .bind(&after.1)
    .bind(DOWNLOAD_PAGE)
    .fetch_all(pool)
    .await
    .map_err(|e| Status::from(store_err(e)))?;
    if let Some(last) = rows.last() {
        *after = (last.batch_no, last.phone.clone());
    }
    Ok(rows.into_iter().map(ResultRow::from).collect())
}

/// The results as one JSON array, page by page: memory holds one page and one chunk whatever
/// the job's size.
async fn send_json(
    pool: &sqlx::PgPool,
    job: Uuid,
    name: &str,
    tx: &mpsc::Sender<Result<pb::ExportChunk, Status>>,
) -> Result<(), Status> {
    let mut buf: Vec<u8> = b"[".to_vec();
    let (mut first_chunk, mut first_row, mut n) = (true, true, 0u64);
    let mut after = (0, String::new());
    loop {
        let rows = page(pool, job, &mut after).await?;
        let last_page = rows.len() < DOWNLOAD_PAGE as usize;
        let mut chunks = Vec::new();
        for r in rows {
            if !first_row {
                buf.push(b',');
            }
            first_row = false;
            serde_json::to_writer(&mut buf, &r).map_err(|e| Status::internal(e.to_string()))?;
            n += 1;
            if buf.len() >= CHUNK {
                chunks.push(std::mem::take(&mut buf));
            }
        }
        if last_page {
            buf.push(b']');
            chunks.push(std::mem::take(&mut buf));
        }
        for data in chunks {
            let mut c = pb::ExportChunk {
                data,
                records: n,
                ..Default::default()
            };
            if first_chunk {
                c.content_type = "application/json".into();
                c.file_name = name.to_string();
                first_chunk = false;
            }
            if tx.send(Ok(c)).await.is_err() {
                return Ok(());
            }
        }
        if last_page {
            return Ok(());
        }
    }
}

async fn send_xlsx(
    pool: &sqlx::PgPool,
    job: Uuid,
    dir: &std::path::Path,
    name: &str,
    tx: &mpsc::Sender<Result<pb::ExportChunk, Status>>,
) -> Result<(), Status> {
    let internal = |e: String| {
        tracing::error!(error = %e, "screening results not written");
        Status::internal("the results file could not be written")
    };
    std::fs::create_dir_all(dir).map_err(|e| internal(e.to_string()))?;
    let path = dir.join(format!(".download-{}.xlsx", Uuid::new_v4()));
    // Rows go from the pages to a writer thread through a small channel: bounded memory.
    let (rows_tx, mut rows_rx) = mpsc::channel::<Vec<ResultRow>>(2);
    let writer_path = path.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let rows = std::iter::from_fn(move || rows_rx.blocking_recv())
            .flatten()
            .map(|r| r.cells().into_iter().collect::<Vec<Cell>>());
        crate::screening::write_xlsx(&writer_path, &crate::screening::RESULT_HEADERS, rows)
    });
    let mut after = (0, String::new());
    let n = async {
        let mut n = 0u64;
        loop {
            let rows = page(pool, job, &mut after).await?;
            let (got, last) = (rows.len() as u64, rows.len() < DOWNLOAD_PAGE as usize);
            n += got;
            if got > 0 && rows_tx.send(rows).await.is_err() {
                return Err(Status::internal("the results writer stopped"));
            }
            if last {
                return Ok(n);
            }
        }
    }
    .await;
    drop(rows_tx);
    let written = writer.await.map_err(|e| internal(e.to_string()))?;
    let result = match (n, written) {
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(internal(e)),
        (Ok(n), Ok(())) => send_file(&path, name, n, tx).await,
    };
    let _ = tokio::fs::remove_file(&path).await;
    result
}

async fn send_file(
    path: &std::path::Path,
    name: &str,
    records: u64,
    tx: &mpsc::Sender<Result<pb::ExportChunk, Status>>,
) -> Result<(), Status> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut first = true;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        while n < CHUNK {
            let got = f
                .read(&mut buf[n..])
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
            if got == 0 {
                break;
            }
            n += got;
        }
        buf.truncate(n);
        let done = n < CHUNK;
        let mut c = pb::ExportChunk {
            data: buf,
            records,
            ..Default::default()
        };
        if first {
            c.content_type =
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into();
            c.file_name = name.to_string();
            first = false;
        }
        if tx.send(Ok(c)).await.is_err() || done {
            return Ok(());
        }
    }
}
