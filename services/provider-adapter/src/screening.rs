//! Batch number screening (seed 004, 批量筛号): three jobs that run continuously and survive
//! any restart, each a pass over rows in a given state, taken with `FOR UPDATE SKIP LOCKED`
//! and a lease so replicas share the work:
//! - job 1 (make batches): a created job's numbers are split into batches of at most
//!   `batch_size`; each gets a JSON instruction file for the call centre and an XLSX for people;
//! - job 2 (send): each generated batch is read back from its instruction file (the seed's
//!   optimisation: no database query to rebuild it) and handed to the line's provider batch API;
//! - job 3 (query): each sent batch's results are asked for; once there, they are stored with
//!   each number's validity, the raw result (JSON) and a per-user XLSX are written, and
//!   `NumbersScreened` tells the dialer (which then finishes contacts of invalid numbers as
//!   INVALID_NUMBER without a call).
//!
//! Send and query flags, times and summaries follow the seed's call_filter_send_batch_log.

use std::{path::PathBuf, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use waihu_bus::Expect;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_provider_sim::batch::{ScreenCall, SimBatchApi};
use waihu_store::{Outbox, StoreError};

use crate::lines::Lines;

/// Numbers a batch may hold at most (its `NumbersScreened` event stays well under the bus'
/// message limit).
pub const MAX_BATCH_SIZE: u32 = 5_000;

#[derive(Debug, Clone)]
pub struct ScreeningConfig {
    /// Where instruction and result files are written (`[provider] screening_dir`).
    pub dir: PathBuf,
    /// Numbers a batch holds unless a job says otherwise (`screening_batch_size`, 1,000).
    pub batch_size: u32,
    /// How often the jobs look for work when nothing wakes them, and how long an unready
    /// batch waits before it is queried again (`screening_poll_ms`; the seed's 5 minutes).
    pub poll: Duration,
    /// Failed sends or queries of a batch before it gives up (`screening_max_attempts`, 10).
    pub max_attempts: u32,
    /// How long a replica holds a batch it works on before another may take it over.
    pub lease: Duration,
}

impl Default for ScreeningConfig {
    fn default() -> Self {
        ScreeningConfig {
            dir: PathBuf::from("./data/screening"),
            batch_size: 1_000,
            poll: Duration::from_secs(300),
            max_attempts: 10,
            lease: Duration::from_secs(120),
        }
    }
}

/// A number's validity from what its screening call found: it exists if anyone or anything
/// answered for it (answered, busy, no answer, declined); it does not if the network says so
/// (unallocated 1, no route 3, number changed 22, invalid format 28); anything else (a
/// temporary failure on the way) tells nothing.
pub fn validity_of(q850: u32, answered: bool) -> pb::NumberValidity {
    if answered {
        return pb::NumberValidity::Valid;
    }
    match q850 {
        16..=21 => pb::NumberValidity::Valid,
        1 | 3 | 22 | 28 => pb::NumberValidity::Invalid,
        _ => pb::NumberValidity::Unknown,
    }
}

/// A provider's batch screening API. Only the simulator offers one here so far; the cloud
/// call centres' batch APIs are not wired (the README says so).
#[derive(Clone)]
pub enum BatchApi {
    Sim(SimBatchApi),
}

/// The batch API of a line's provider, or why there is none.
pub fn batch_api(provider: &str, sim: &SimBatchApi) -> Result<BatchApi, String> {
    match provider {
        "sim" => Ok(BatchApi::Sim(sim.clone())),
        other => Err(format!(
            "provider {other:?} has no batch screening API in waihu (only \"sim\" has one)"
        )),
    }
}

/// The instruction file of a batch (what the call centre is sent).
#[derive(Serialize, serde::Deserialize)]
struct Instruction {
    name: String,
    screening_id: Uuid,
    batch: u32,
    line_id: String,
    numbers: Vec<String>,
}

/// One number's result as the files and downloads show it (seed call_filter_send_queryres).
#[derive(Serialize, Debug, Clone)]
pub struct ResultRow {
    pub batch: i32,
    pub phone: String,
    pub validity: &'static str,
    pub call_status: String,
    pub billsec: i32,
    pub call_start_time: Option<DateTime<Utc>>,
    pub answer_time: Option<DateTime<Utc>>,
    pub call_end_time: Option<DateTime<Utc>>,
    pub wait_time: i32,
    pub q850: i32,
    pub cause: &'static str,
    pub raw_cause: String,
}

/// Column headers of the XLSX files (English / the seed's field names).
pub const RESULT_HEADERS: [&str; 12] = [
    "batch",
    "phone",
    "validity",
    "call_status",
    "billsec",
    "call_start_time",
    "answer_time",
    "call_end_time",
    "wait_time",
    "q850",
    "cause",
    "raw_cause",
];

pub fn validity_name(v: i16) -> &'static str {
    match pb::NumberValidity::try_from(v as i32).unwrap_or(pb::NumberValidity::Unspecified) {
        pb::NumberValidity::Valid => "valid",
        pb::NumberValidity::Invalid => "invalid",
        pb::NumberValidity::Unknown => "unknown",
        pb::NumberValidity::Unspecified => "",
    }
}

impl ResultRow {
    pub fn cells(&self) -> [Cell; 12] {
        let t =
            |t: &Option<DateTime<Utc>>| Cell::Text(t.map(|t| t.to_rfc3339()).unwrap_or_default());
        [
            Cell::Number(self.batch as f64),
            Cell::Text(self.phone.clone()),
            Cell::Text(self.validity.to_string()),
            Cell::Text(self.call_status.clone()),
            Cell::Number(self.billsec as f64),
            t(&self.call_start_time),
            t(&self.answer_time),
            t(&self.call_end_time),
            Cell::Number(self.wait_time as f64),
            Cell::Number(self.q850 as f64),
            Cell::Text(self.cause.to_string()),
            Cell::Text(self.raw_cause.clone()),
        ]
    }
}

pub enum Cell {
    Text(String),
    Number(f64),
}

/// Writes rows to an XLSX file at `path` (constant memory: rows go straight to disk).
pub fn write_xlsx(
    path: &std::path::Path,
    headers: &[&str],
    rows: impl Iterator<Item = Vec<Cell>>,
) -> Result<(), String> {
    use rust_xlsxwriter::{Format, Workbook};
    let e = |e: rust_xlsxwriter::XlsxError| format!("{}: {e}", path.display());
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = book.add_worksheet_with_constant_memory().map_err(e)?;
    for (c, h) in headers.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, *h, &bold)
            .map_err(e)?;
    }
    sheet.set_freeze_panes(1, 0).map_err(e)?;
    for (r, cells) in rows.enumerate() {
        // One sheet holds 1,048,575 rows below its header; a job holds at most 1,000,000.
        let row = r as u32 + 1;
        for (c, cell) in cells.into_iter().enumerate() {
            match cell {
                Cell::Text(s) if s.is_empty() => {}
                Cell::Text(s) => {
                    sheet.write_string(row, c as u16, s).map_err(e)?;
                }
                Cell::Number(n) => {
                    sheet.write_number(row, c as u16, n).map_err(e)?;
                }
            }
        }
    }
    let tmp = path.with_extension("xlsx.part");
    book.save(&tmp).map_err(e)?;
    std::fs::rename(&tmp, path).map_err(|err| format!("{}: {err}", path.display()))
}

/// Writes `bytes` to `path` through a temporary file, so a crash never leaves half a file.
fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("part");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Files(String),
}

impl From<sqlx::Error> for ScreenError {
    fn from(e: sqlx::Error) -> Self {
        ScreenError::Store(e.into())
    }
}

/// The three jobs of one adapter.
#[derive(Clone)]
pub struct Screener {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub lines: Lines,
    pub sim: SimBatchApi,
    pub config: ScreeningConfig,
    /// Wakes the jobs (a job created or rolled back).
    pub wake: Arc<Notify>,
}

/// The event of a job (`screening-<id>`), its id derived from what it says, so a retried
/// step never announces it twice.
pub fn screening_event(
    tenant: &str,
    id: Uuid,
    version: u64,
    name: &str,
    event: Event,
) -> (RecordedEvent, Expect) {
    let meta = EventMeta::new(tenant, Aggregate::Screening(id), version)
        .with_deterministic_id(&format!("screening/{id}/{name}"));
    (RecordedEvent::new(meta, event), Expect::Any)
}

/// A batch this worker claimed was taken over (its lease expired) or rolled back meanwhile.
fn lost(b: &BatchRow) {
    warn!(screening = %b.filter_task_id, batch = b.batch_no,
          "screening batch no longer ours (lease expired or rolled back): left to its new owner");
}

/// A batch's results as columns, for one `UNNEST` insert.
#[derive(Default)]
struct ResultColumns {
    phone: Vec<String>,
    status: Vec<String>,
    billsec: Vec<i32>,
    answer: Vec<Option<DateTime<Utc>>>,
    wait: Vec<i32>,
    q850: Vec<i32>,
    raw: Vec<String>,
    validity: Vec<i16>,
    start: Vec<DateTime<Utc>>,
    end: Vec<DateTime<Utc>>,
}

/// A batch's numbers in upload order ($1 the job, $2 the batch).
const BATCH_NUMBERS: &str = "SELECT d.telno FROM call_filter_send_batch b
     JOIN call_filter_send_detail d
       ON d.filter_task_id = b.filter_task_id AND d.seq BETWEEN b.seq_from AND b.seq_to
     WHERE b.filter_task_id = $1 AND b.batch_no = $2 ORDER BY d.seq";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    tenant_id: String,
    line_id: String,
    batch_size: i32,
}

#[derive(sqlx::FromRow)]
struct BatchRow {
    filter_task_id: Uuid,
    batch_no: i32,
    tenant_id: String,
    attempts: i32,
    provider_ref: String,
    send_recvtime: Option<DateTime<Utc>>,
    /// The job's line (whose provider screens).
    line_id: String,
    /// This worker's lease: every write after the claim checks it is still ours (another
    /// replica may have taken an expired lease over, or an operator rolled the batch back).
    lease_until: DateTime<Utc>,
}

impl Screener {
    /// The job's directory of files.
    pub fn job_dir(&self, id: Uuid) -> PathBuf {
        self.config.dir.join(id.to_string())
    }

    fn batch_file(&self, id: Uuid, batch: i32, suffix: &str) -> PathBuf {
        self.job_dir(id).join(format!("batch-{batch:05}{suffix}"))
    }

    /// Runs the three jobs until `stop`: each pass does all the work that is due, then waits
    /// for `poll`, a wake-up or the next batch due, whichever comes first.
    pub async fn run(self, stop: CancellationToken) -> Result<(), String> {
        std::fs::create_dir_all(&self.config.dir).map_err(|e| {
            format!(
                "screening files directory {} (WAIHU_PROVIDER__SCREENING_DIR): {e}",
                self.config.dir.display()
            )
        })?;
        while !stop.is_cancelled() {
            let wait = match self.pass().await {
                Ok(true) => Duration::ZERO,
                Ok(false) => self.next_due().await.unwrap_or(self.config.poll),
                Err(e) => {
                    warn!(error = %e, "screening pass failed");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        Ok(())
    }

    /// How long until the next open batch is due (capped at `poll`).
    async fn next_due(&self) -> Result<Duration, ScreenError> {
        let at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT min(greatest(next_at, coalesce(lease_until, next_at)))
             FROM call_filter_send_batch WHERE status IN (1, 2)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(at
            .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(self.config.poll)
            .clamp(Duration::from_millis(20), self.config.poll))
    }

    /// One pass of the three jobs: whether any did something.
    pub async fn pass(&self) -> Result<bool, ScreenError> {
        let mut did = false;
        while self.make_batches().await? {
            did = true;
        }
        did |= self.send_due().await? > 0;
        did |= self.query_due().await? > 0;
        Ok(did)
    }

    /// Job 1: makes the batches and files of one created job; whether there was one.
    pub async fn make_batches(&self) -> Result<bool, ScreenError> {
        let mut tx = self.pool.begin().await?;
        let job: Option<JobRow> = sqlx::query_as(
            "SELECT id, tenant_id, line_id, batch_size FROM call_filter_task
             WHERE status = 1 ORDER BY createtime LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job) = job else {
            return Ok(false);
        };
        // Numbers in upload order, batch n holding the n-th `batch_size` of them: a range of
        // seq each (one read of the job's numbers, no row written per number).
        let batches: Vec<(i32, i64)> = sqlx::query_as(
            "INSERT INTO call_filter_send_batch
                 (filter_task_id, batch_no, tenant_id, totalnum, seq_from, seq_to)
             SELECT $1, b, $2, count(*), min(seq), max(seq)
             FROM (SELECT seq, ((row_number() OVER (ORDER BY seq) - 1) / $3 + 1)::int AS b
                   FROM call_filter_send_detail WHERE filter_task_id = $1) o
             GROUP BY b
             ON CONFLICT DO NOTHING
             RETURNING batch_no, totalnum::bigint",
        )
        .bind(job.id)
        .bind(&job.tenant_id)
        .bind(job.batch_size as i64)
        .fetch_all(&mut *tx)
        .await?;
        let dir = self.job_dir(job.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ScreenError::Files(format!("{}: {e}", dir.display())))?;
        for (batch, _) in &batches {
            let numbers: Vec<String> = sqlx::query_scalar(BATCH_NUMBERS)
                .bind(job.id)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
            self.write_instruction(job.id, &job.line_id, *batch, numbers)
                .await?;
        }
        sqlx::query(
            "UPDATE call_filter_task SET status = 2, step = 1,
                    runbegintime = coalesce(runbegintime, now())
             WHERE id = $1",
        )
        .bind(job.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        info!(screening = %job.id, batches = batches.len(), "screening batches made");
        Ok(true)
    }

    /// Writes a batch's instruction file (JSON) and its XLSX for people; the instruction.
    async fn write_instruction(
        &self,
        job: Uuid,
        line_id: &str,
        batch: i32,
        numbers: Vec<String>,
    ) -> Result<Instruction, ScreenError> {
        let ins = Instruction {
            name: format!("waihu-{job}-{batch}"),
            screening_id: job,
            batch: batch as u32,
            line_id: line_id.to_string(),
            numbers,
        };
        let (json, xlsx) = (
            self.batch_file(job, batch, ".json"),
            self.batch_file(job, batch, ".xlsx"),
        );
        tokio::task::spawn_blocking(move || -> Result<Instruction, String> {
            let bytes = serde_json::to_vec(&ins).map_err(|e| e.to_string())?;
            write_atomic(&json, &bytes)?;
            write_xlsx(
                &xlsx,
                &["batch", "seq", "phone"],
                ins.numbers.iter().enumerate().map(|(i, p)| {
                    vec![
                        Cell::Number(batch as f64),
                        Cell::Number(i as f64 + 1.0),
                        Cell::Text(p.clone()),
                    ]
                }),
            )?;
            Ok(ins)
        })
        .await
        .map_err(|e| ScreenError::Files(e.to_string()))?
        .map_err(ScreenError::Files)
    }

    /// Takes up to `n` batches in `status` that are due and free, marking the job's flag as
    /// started (`which`: "send" or "query") and leasing them.
    async fn claim(&self, status: i16, which: &str, n: i64) -> Result<Vec<BatchRow>, ScreenError> {
        let sql = format!(
            "UPDATE call_filter_send_batch b SET
                 {which}_fromflag = 1,
                 {which}_begintime = CASE WHEN $4 = 'send' OR b.query_begintime IS NULL
                                          THEN now() ELSE b.{which}_begintime END,
                 lease_until = now() + $3 * interval '1 millisecond'
             FROM (SELECT filter_task_id, batch_no FROM call_filter_send_batch
                   WHERE status = $1 AND next_at <= now()
                     AND (lease_until IS NULL OR lease_until < now())
                   ORDER BY next_at, filter_task_id, batch_no
                   LIMIT $2 FOR UPDATE SKIP LOCKED) c, call_filter_task t
             WHERE b.filter_task_id = c.filter_task_id AND b.batch_no = c.batch_no
               AND t.id = b.filter_task_id
             RETURNING b.filter_task_id, b.batch_no, b.tenant_id, b.attempts, b.provider_ref,
                       b.send_recvtime, t.line_id, b.lease_until"
        );
        Ok(sqlx::query_as(&sql)
            .bind(status)
            .bind(n)
            .bind(self.config.lease.as_millis() as i64)
            .bind(which)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Extends a claimed batch's lease before working on it; false when it is no longer ours.
    async fn renew(&self, b: &mut BatchRow) -> Result<bool, ScreenError> {
        let until: Option<DateTime<Utc>> = sqlx::query_scalar(
            "UPDATE call_filter_send_batch SET lease_until = now() + $4 * interval '1 millisecond'
             WHERE filter_task_id = $1 AND batch_no = $2 AND lease_until = $3
             RETURNING lease_until",
        )
        .bind(b.filter_task_id)
        .bind(b.batch_no)
        .bind(b.lease_until)
        .bind(self.config.lease.as_millis() as i64)
        .fetch_optional(&self.pool)
        .await?;
        match until {
            Some(t) => {
                b.lease_until = t;
                Ok(true)
            }
            None => {
                lost(b);
                Ok(false)
            }
        }
    }

    /// The batch API of the provider of a batch's line.
    async fn api_of(&self, b: &BatchRow) -> Result<BatchApi, String> {
        let config = self
            .lines
            .config(&b.tenant_id, &b.line_id)
            .await?
            .ok_or_else(|| format!("line {} is gone", b.line_id))?;
        batch_api(&config.provider, &self.sim)
    }

    /// Job 2: sends due generated batches; how many it handled.
    pub async fn send_due(&self) -> Result<usize, ScreenError> {
        let claimed = self.claim(1, "send", 16).await?;
        let n = claimed.len();
        for mut b in claimed {
            if !self.renew(&mut b).await? {
                continue;
            }
            let result = self.send_one(&b).await;
            let mut tx = self.pool.begin().await?;
            let ours = match result {
                Ok((reference, numbers)) => {
                    sqlx::query(
                        "UPDATE call_filter_send_batch SET status = 2, send_recvflag = 1,
                                send_recvtime = now(), provider_ref = $3,
                                send_res_suminfo = $4, lease_until = NULL, next_at = now(),
                                attempts = 0
                         WHERE filter_task_id = $1 AND batch_no = $2 AND lease_until = $5",
                    )
                    .bind(b.filter_task_id)
                    .bind(b.batch_no)
                    .bind(&reference)
                    .bind(format!("accepted {numbers} numbers"))
                    .bind(b.lease_until)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                }
                Err(e) => self.failed(&mut tx, &b, "send", &e).await?,
            };
            if ours {
                tx.commit().await?;
            } else {
                lost(&b);
            }
        }
        Ok(n)
    }

    /// Reads a batch's instruction file (rebuilt from the database if it is missing, e.g.
    /// written by another replica) and hands it to the provider: its reference and size.
    async fn send_one(&self, b: &BatchRow) -> Result<(String, usize), String> {
        let path = self.batch_file(b.filter_task_id, b.batch_no, ".json");
        let ins: Instruction = match tokio::fs::read(&path).await {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let numbers = self.numbers(b.filter_task_id, b.batch_no).await?;
                self.write_instruction(b.filter_task_id, &b.line_id, b.batch_no, numbers)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        match self.api_of(b).await? {
            BatchApi::Sim(sim) => Ok((
                sim.submit(&ins.name, Utc::now().timestamp_millis()),
                ins.numbers.len(),
            )),
        }
    }

    async fn numbers(&self, job: Uuid, batch: i32) -> Result<Vec<String>, String> {
        sqlx::query_scalar(BATCH_NUMBERS)
            .bind(job)
            .bind(batch)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| e.to_string())
    }

    /// A failed send or query: flag -1, the reason, a later retry (2 s doubling to 5 min), or
    /// the batch (and its job) given up after `max_attempts`. False when the batch is no
    /// longer this worker's (nothing written).
    async fn failed(
        &self,
        tx: &mut waihu_store::Tx<'_>,
        b: &BatchRow,
        which: &str,
        reason: &str,
    ) -> Result<bool, ScreenError> {
        let attempts = b.attempts + 1;
        let give_up = attempts as u32 >= self.config.max_attempts;
        warn!(screening = %b.filter_task_id, batch = b.batch_no, attempts, give_up,
              error = %reason, "screening {which} failed");
        let backoff = (2_000i64 << (attempts - 1).clamp(0, 8)).min(300_000);
        let sql = format!(
            "UPDATE call_filter_send_batch SET {which}_recvflag = -1,
                    {which}_res_suminfo = $3, attempts = $4, lease_until = NULL,
                    next_at = now() + $5 * interval '1 millisecond',
                    status = CASE WHEN $6 THEN 4 ELSE status END
             WHERE filter_task_id = $1 AND batch_no = $2 AND lease_until = $7"
        );
        let reason: String = reason.chars().take(500).collect();
        let applied = sqlx::query(&sql)
            .bind(b.filter_task_id)
            .bind(b.batch_no)
            .bind(&reason)
            .bind(attempts)
            .bind(backoff)
            .bind(give_up)
            .bind(b.lease_until)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1;
        if !applied {
            return Ok(false);
        }
        if give_up {
            sqlx::query("UPDATE call_filter_task SET status = 4 WHERE id = $1")
                .bind(b.filter_task_id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(true)
    }

    /// Job 3: queries due sent batches; how many it handled.
    pub async fn query_due(&self) -> Result<usize, ScreenError> {
        let claimed = self.claim(2, "query", 16).await?;
        let n = claimed.len();
        for mut b in claimed {
            if !self.renew(&mut b).await? {
                continue;
            }
            let error = match self.query_one(&b).await {
                // A result that cannot be stored (a full disk, an event over the limit) counts
                // as a failed query: retried, then given up.
                Ok(Some(calls)) => self
                    .store_results(&b, calls)
                    .await
                    .err()
                    .map(|e| e.to_string()),
                Ok(None) => {
                    // Not ready: asked again after `poll` (the seed's schedule).
                    sqlx::query(
                        "UPDATE call_filter_send_batch SET lease_until = NULL,
                                next_at = now() + $3 * interval '1 millisecond',
                                query_res_suminfo = 'not ready'
                         WHERE filter_task_id = $1 AND batch_no = $2 AND lease_until = $4",
                    )
                    .bind(b.filter_task_id)
                    .bind(b.batch_no)
                    .bind(self.config.poll.as_millis() as i64)
                    .bind(b.lease_until)
                    .execute(&self.pool)
                    .await?;
                    None
                }
                Err(e) => Some(e),
            };
            if let Some(e) = error {
                let mut tx = self.pool.begin().await?;
                if self.failed(&mut tx, &b, "query", &e).await? {
                    tx.commit().await?;
                } else {
                    lost(&b);
                }
            }
        }
        Ok(n)
    }

    async fn query_one(&self, b: &BatchRow) -> Result<Option<Vec<ScreenCall>>, String> {
        let api = self.api_of(b).await?;
        let numbers = self.numbers(b.filter_task_id, b.batch_no).await?;
        match api {
            BatchApi::Sim(sim) => sim
                .query(&b.provider_ref, &numbers, Utc::now().timestamp_millis())
                .map_err(|e| e.to_string()),
        }
    }

    /// Stores a batch's results: every number's row and validity, the files, the event; and
    /// completes the job when it was the last batch.
    async fn store_results(&self, b: &BatchRow, calls: Vec<ScreenCall>) -> Result<(), ScreenError> {
        let sent = b.send_recvtime.unwrap_or_else(Utc::now);
        let mut rows = Vec::with_capacity(calls.len());
        let (mut valid, mut invalid, mut unknown) = (0u32, 0u32, 0u32);
        let mut screened = Vec::with_capacity(calls.len());
        // The rows as columns, for one `UNNEST` insert.
        let mut cols = ResultColumns::default();
        for c in &calls {
            let v = validity_of(c.cause.q850, c.answered);
            match v {
                pb::NumberValidity::Valid => valid += 1,
                pb::NumberValidity::Invalid => invalid += 1,
                _ => unknown += 1,
            }
            let start = sent;
            let ring = chrono::Duration::milliseconds(c.wait_ms as i64);
            let answer = c.answered.then_some(start + ring);
            let end = start + ring + chrono::Duration::milliseconds(c.billsec_ms as i64);
            let (billsec, wait) = ((c.billsec_ms / 1000) as i32, (c.wait_ms / 1000) as i32);
            cols.phone.push(c.phone.clone());
            cols.status.push(c.call_status.to_string());
            cols.billsec.push(billsec);
            cols.answer.push(answer);
            cols.wait.push(wait);
            cols.q850.push(c.cause.q850 as i32);
            cols.raw.push(c.cause.raw.clone());
            cols.validity.push(v as i16);
            cols.start.push(start);
            cols.end.push(end);
            rows.push(ResultRow {
                batch: b.batch_no,
                phone: c.phone.clone(),
                validity: validity_name(v as i16),
                call_status: c.call_status.to_string(),
                billsec,
                call_start_time: Some(start),
                answer_time: answer,
                call_end_time: Some(end),
                wait_time: wait,
                q850: c.cause.q850 as i32,
                cause: waihu_telephony::hangup::q850_name(c.cause.q850),
                raw_cause: c.cause.raw.clone(),
            });
            screened.push(pb::ScreenedNumber {
                phone: c.phone.clone(),
                validity: v as i32,
                // The name follows from the Q.850 value; the event carries the value and raw.
                cause: Some(pb::HangupCause {
                    q850: c.cause.q850,
                    name: String::new(),
                    raw: c.cause.raw.clone(),
                }),
                answered: c.answered,
                call_status: c.call_status.to_string(),
                version: 0,
            });
        }
        // The raw result and the per-user XLSX, before the commit (a crash leaves them to be
        // written again).
        let (json, xlsx) = (
            self.batch_file(b.filter_task_id, b.batch_no, "-result.json"),
            self.batch_file(b.filter_task_id, b.batch_no, "-result.xlsx"),
        );
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            if let Some(dir) = json.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let bytes = serde_json::to_vec(&rows).map_err(|e| e.to_string())?;
            write_atomic(&json, &bytes)?;
            write_xlsx(
                &xlsx,
                &RESULT_HEADERS,
                rows.iter().map(|r| r.cells().into_iter().collect()),
            )
        })
        .await
        .map_err(|e| ScreenError::Files(e.to_string()))?
        .map_err(ScreenError::Files)?;

        let mut tx = self.pool.begin().await?;
        // The job row first: the last two batches of a job cannot both miss its completion.
        let job: Option<(i16,)> =
            sqlx::query_as("SELECT status FROM call_filter_task WHERE id = $1 FOR UPDATE")
                .bind(b.filter_task_id)
                .fetch_optional(&mut *tx)
                .await?;
        if job.is_none() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO call_filter_send_queryres
                 (filter_task_id, batch_no, phone, call_status, billsec, answer_time, wait_time,
                  q850, raw_cause, validity, call_start_time, call_end_time)
             SELECT $1, $2, * FROM UNNEST($3::text[], $4::text[], $5::int[], $6::timestamptz[],
                                          $7::int[], $8::int[], $9::text[], $10::int2[],
                                          $11::timestamptz[], $12::timestamptz[])
             ON CONFLICT DO NOTHING",
        )
        .bind(b.filter_task_id)
        .bind(b.batch_no)
        .bind(&cols.phone)
        .bind(&cols.status)
        .bind(&cols.billsec)
        .bind(&cols.answer)
        .bind(&cols.wait)
        .bind(&cols.q850)
        .bind(&cols.raw)
        .bind(&cols.validity)
        .bind(&cols.start)
        .bind(&cols.end)
        .execute(&mut *tx)
        .await?;
        // What is known of each number: an unknown result never hides an earlier finding.
        // Rows are taken in phone order (as overrides take them), and each change gets the next
        // version under its row's lock.
        let versions: Vec<(String, i64)> = sqlx::query_as(
            "INSERT INTO number_validity
                 (tenant_id, phone, validity, source, q850, raw_cause, version)
             SELECT $1, p, v, $2, q, r, nextval('number_validity_version')
             FROM (SELECT * FROM UNNEST($3::text[], $4::int2[], $5::int[], $6::text[])
                       AS u(p, v, q, r)
                   WHERE v <> 1 ORDER BY p) s
             ON CONFLICT (tenant_id, phone) DO UPDATE
             SET validity = EXCLUDED.validity, source = EXCLUDED.source, q850 = EXCLUDED.q850,
                 raw_cause = EXCLUDED.raw_cause, updated_at = now(),
                 version = nextval('number_validity_version')
             RETURNING phone, version",
        )
        .bind(&b.tenant_id)
        .bind(format!("screening:{}", b.filter_task_id))
        .bind(&cols.phone)
        .bind(&cols.validity)
        .bind(&cols.q850)
        .bind(&cols.raw)
        .fetch_all(&mut *tx)
        .await?;
        let versions: std::collections::HashMap<String, i64> = versions.into_iter().collect();
        for n in &mut screened {
            n.version = versions.get(&n.phone).copied().unwrap_or(0) as u64;
        }
        if sqlx::query(
            "UPDATE call_filter_send_batch SET status = 3, query_recvflag = 1,
                    query_recvtime = now(), query_res_suminfo = $3, lease_until = NULL,
                    valid_n = $4, invalid_n = $5, unknown_n = $6
             WHERE filter_task_id = $1 AND batch_no = $2 AND lease_until = $7",
        )
        .bind(b.filter_task_id)
        .bind(b.batch_no)
        .bind(format!(
            "valid {valid}, invalid {invalid}, unknown {unknown}"
        ))
        .bind(valid as i32)
        .bind(invalid as i32)
        .bind(unknown as i32)
        .bind(b.lease_until)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 0
        {
            // Taken over or rolled back meanwhile: the other worker's results count.
            lost(b);
            return Ok(());
        }
        let mut events = vec![screening_event(
            &b.tenant_id,
            b.filter_task_id,
            b.batch_no as u64 + 1,
            &format!("batch/{}", b.batch_no),
            Event::NumbersScreened(pb::NumbersScreened {
                screening_id: b.filter_task_id.to_string(),
                batch: b.batch_no as u32,
                numbers: screened,
            }),
        )];
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM call_filter_send_batch WHERE filter_task_id = $1 AND status <> 3",
        )
        .bind(b.filter_task_id)
        .fetch_one(&mut *tx)
        .await?;
        if open == 0 {
            let (batches, v, i, u): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT count(*), coalesce(sum(valid_n), 0)::bigint,
                        coalesce(sum(invalid_n), 0)::bigint, coalesce(sum(unknown_n), 0)::bigint
                 FROM call_filter_send_batch WHERE filter_task_id = $1",
            )
            .bind(b.filter_task_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE call_filter_task SET status = 3, step = 3, runendtime = now()
                 WHERE id = $1",
            )
            .bind(b.filter_task_id)
            .execute(&mut *tx)
            .await?;
            events.push(screening_event(
                &b.tenant_id,
                b.filter_task_id,
                batches as u64 + 2,
                "completed",
                Event::ScreeningCompleted(pb::ScreeningCompleted {
                    screening_id: b.filter_task_id.to_string(),
                    valid: v as u32,
                    invalid: i as u32,
                    unknown: u as u32,
                }),
            ));
            info!(screening = %b.filter_task_id, valid = v, invalid = i, unknown = u,
                  "screening done");
        }
        self.outbox.push(&mut tx, &events).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_follows_what_the_network_said_of_the_number() {
        use pb::NumberValidity::*;
        assert_eq!(validity_of(16, true), Valid);
        for q in [16, 17, 18, 19, 21] {
            assert_eq!(validity_of(q, false), Valid, "{q}");
        }
        for q in [1, 3, 22, 28] {
            assert_eq!(validity_of(q, false), Invalid, "{q}");
        }
        for q in [0, 31, 34, 38, 41, 127] {
            assert_eq!(validity_of(q, false), Unknown, "{q}");
        }
    }

    #[test]
    fn only_the_simulator_has_a_batch_api_and_the_others_say_so() {
        let sim = SimBatchApi {
            sim: Default::default(),
            delay: Duration::ZERO,
        };
        assert!(batch_api("sim", &sim).is_ok());
        let Err(e) = batch_api("tencent", &sim) else {
            panic!("tencent has none here")
        };
        assert!(e.contains("tencent"), "{e}");
    }
}
