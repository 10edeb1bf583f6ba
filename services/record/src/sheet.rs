//! Call records as a file (CSV or XLSX), with Chinese or English headers: rows stream from one
//! database cursor into the file, and the file streams to the client in chunks, so memory stays
//! flat whatever the number of records. An XLSX is written with rust_xlsxwriter's constant
//! memory mode into a temporary file (a zip needs its end before its start can be sent), then
//! read out; a sheet holds at most 1,048,575 records and further ones go on the next sheet.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::{PgPool, QueryBuilder};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use uuid::Uuid;
use waihu_proto::v1 as pb;

use crate::{
    grpc::{invalid, RecordError},
    records::{sort_key, Filters},
};

pub type ChunkStream = ReceiverStream<Result<pb::ExportChunk, Status>>;

/// Bytes per chunk sent.
const CHUNK: usize = 256 * 1024;
/// Rows a sheet holds besides its header (Excel's limit is 1,048,576 rows).
const SHEET_ROWS: u32 = 1_048_575;

#[derive(sqlx::FromRow)]
struct Line {
    call_id: Uuid,
    record_no: Option<i64>,
    task_id: Option<Uuid>,
    contact_no: i32,
    phone: Option<String>,
    line_id: Option<String>,
    attempt: Option<i32>,
    requested_at: Option<DateTime<Utc>>,
    answered_at: Option<DateTime<Utc>>,
    released_at: Option<DateTime<Utc>>,
    ring_ms: Option<i64>,
    talk_ms: Option<i64>,
    answered: Option<bool>,
    cause_q850: Option<i32>,
    cause_name: Option<String>,
    analysis_status: Option<i16>,
    intent: Option<String>,
    grade: Option<String>,
    recording: Option<i16>,
}

const COLUMNS: &str = "c.call_id, c.record_no, c.task_id, c.contact_no, c.phone, c.line_id, \
    c.attempt, c.requested_at, c.answered_at, c.released_at, c.ring_ms, c.talk_ms, c.answered, \
    c.cause_q850, c.cause_name, c.analysis_status, a.intent, a.grade, r.state AS recording";

const HEADERS_ZH: [&str; 18] = [
    "记录ID",
    "通话ID",
    "任务ID",
    "联系人序号",
    "电话号码",
    "线路",
    "第几次呼叫",
    "开始时间",
    "接通时间",
    "结束时间",
    "振铃时长(秒)",
    "通话时长(秒)",
    "是否接通",
    "挂断原因(Q.850)",
    "挂断原因",
    "分析状态",
    "意向",
    "评级",
];
const HEADERS_EN: [&str; 18] = [
    "recordId",
    "callId",
    "taskId",
    "contactNo",
    "phoneNumber",
    "lineId",
    "attempt",
    "startTime",
    "answerTime",
    "endTime",
    "ringSeconds",
    "duration",
    "answered",
    "q850",
    "hangupCause",
    "analysisStatus",
    "intention",
    "grade",
];
/// The recording column, last.
const RECORDING_ZH: &str = "录音";
const RECORDING_EN: &str = "recording";

enum Cell {
    Text(String),
    Number(f64),
}

/// Free text a spreadsheet must not take for a formula: a leading `=`, `+`, `-` or `@` is
/// quoted.
fn text(s: String) -> Cell {
    if s.starts_with(['=', '+', '-', '@']) {
        Cell::Text(format!("'{s}"))
    } else {
        Cell::Text(s)
    }
}

impl Line {
    fn cells(&self, zh: bool) -> Vec<Cell> {
        let t = |v: Option<DateTime<Utc>>| {
            Cell::Text(
                v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default(),
            )
        };
        let analysis = crate::grpc::analysis_status_of(self.analysis_status, self.answered)
            .as_str_name()
            .trim_start_matches("ANALYSIS_STATUS_");
        let answered = match (self.answered, zh) {
            (Some(true), true) => "是",
            (Some(false), true) => "否",
            (Some(true), false) => "yes",
            (Some(false), false) => "no",
            (None, _) => "",
        };
        let recording = match self
            .recording
            .and_then(|r| pb::RecordingState::try_from(r as i32).ok())
        {
            None | Some(pb::RecordingState::Unspecified) => String::new(),
            Some(r) => r
                .as_str_name()
                .trim_start_matches("RECORDING_STATE_")
                .to_ascii_lowercase(),
        };
        vec![
            Cell::Number(self.record_no.unwrap_or(0) as f64),
            Cell::Text(self.call_id.to_string()),
            Cell::Text(self.task_id.map(|t| t.to_string()).unwrap_or_default()),
            Cell::Number(self.contact_no as f64),
            Cell::Text(self.phone.clone().unwrap_or_default()),
            text(self.line_id.clone().unwrap_or_default()),
            Cell::Number(self.attempt.unwrap_or(0) as f64),
            t(self.requested_at),
            t(self.answered_at),
            t(self.released_at),
            Cell::Number(self.ring_ms.unwrap_or(0) as f64 / 1000.0),
            Cell::Number(self.talk_ms.unwrap_or(0) as f64 / 1000.0),
            Cell::Text(answered.into()),
            Cell::Text(self.cause_q850.map(|q| q.to_string()).unwrap_or_default()),
            text(self.cause_name.clone().unwrap_or_default()),
            Cell::Text(analysis.into()),
            text(self.intent.clone().unwrap_or_default()),
            text(self.grade.clone().unwrap_or_default()),
            Cell::Text(recording),
        ]
    }
}

fn headers(zh: bool) -> Vec<&'static str> {
    let (h, r) = if zh {
        (HEADERS_ZH, RECORDING_ZH)
    } else {
        (HEADERS_EN, RECORDING_EN)
    };
    h.into_iter().chain([r]).collect()
}

/// Exports running at once in this process at most: each holds a database connection for its
/// whole run.
const CONCURRENT: usize = 4;
static RUNNING: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::OnceLock::new();

/// Starts an export: checks the request, then streams the file.
pub async fn export(
    pool: PgPool,
    tenant: &str,
    r: pb::ExportCallRecordsRequest,
) -> Result<ChunkStream, RecordError> {
    let filter = r.filter.unwrap_or_default();
    let filters = Filters::parse(tenant, &filter)?;
    let sort = pb::CallRecordSort::try_from(filter.sort).map_err(|_| {
        invalid(
            "filter.sort",
            format!("{} is not a sort field", filter.sort),
        )
    })?;
    let format = pb::ExportFormat::try_from(r.format)
        .map_err(|_| invalid("format", format!("{} is not a format", r.format)))?;
    let zh = match r.language.as_str() {
        "" | "zh" | "zh-CN" => true,
        "en" => false,
        other => return Err(invalid("language", format!("{other:?} is not zh or en"))),
    };
    let (key, _) = sort_key(sort, "c.");
    let order = format!(
        " ORDER BY {key} {d}, c.call_id {d}",
        d = if filter.oldest_first { "ASC" } else { "DESC" }
    );
    let query = Query { filters, order };
    let permit = RUNNING
        .get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT)))
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            RecordError::Unavailable(format!(
                "{CONCURRENT} exports are running: try again when one has finished"
            ))
        })?;
    let (tx, rx) = mpsc::channel(8);
    let stamp = Utc::now().format("%Y%m%d-%H%M%S");
    let (content_type, name) = match format {
        pb::ExportFormat::Csv => (
            "text/csv; charset=utf-8",
            format!("call-records-{stamp}.csv"),
        ),
        pb::ExportFormat::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            format!("call-records-{stamp}.xlsx"),
        ),
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut out = Out {
            tx,
            first: Some((content_type.to_string(), name)),
            records: 0,
        };
        let result = match format {
            pb::ExportFormat::Csv => csv_file(&pool, &query, zh, &mut out).await,
            pb::ExportFormat::Xlsx => xlsx_file(&pool, &query, zh, &mut out).await,
        };
        match result {
            Ok(()) => {
                // The last chunk (possibly empty) carries the total.
                let _ = out.send(Vec::new()).await;
            }
            Err(e) => {
                let _ = out.tx.send(Err(e)).await;
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// The records' query: filters and order.
struct Query {
    filters: Filters,
    order: String,
}

impl Query {
    fn build(&self) -> QueryBuilder<'static, sqlx::Postgres> {
        let mut b = QueryBuilder::new(format!("SELECT {COLUMNS}"));
        self.filters.push_from(
            &mut b,
            "call_records c LEFT JOIN call_analyses a ON a.call_id = c.call_id \
             LEFT JOIN recordings r ON r.call_id = c.call_id",
            "c.",
        );
        b.push(&self.order);
        b
    }
}

/// The chunks on their way to the client.
struct Out {
    tx: mpsc::Sender<Result<pb::ExportChunk, Status>>,
    first: Option<(String, String)>,
    records: u64,
}

impl Out {
    /// Sends `data`; Err when the client has gone.
    async fn send(&mut self, data: Vec<u8>) -> Result<(), Status> {
        let (content_type, file_name) = self.first.take().unwrap_or_default();
        // A client that stops reading for a minute ends its export (and frees the connection).
        self.tx
            .send_timeout(
                Ok(pb::ExportChunk {
                    data,
                    records: self.records,
                    content_type,
                    file_name,
                }),
                std::time::Duration::from_secs(60),
            )
            .await
            .map_err(|_| Status::cancelled("the client went away or stopped reading"))
    }
}

fn storage(e: impl std::fmt::Display) -> Status {
    tracing::warn!(error = %e, "export failed");
    Status::unavailable(format!("the export stopped: {e}"))
}

async fn csv_file(pool: &PgPool, query: &Query, zh: bool, out: &mut Out) -> Result<(), Status> {
    let writer = || csv::WriterBuilder::new().from_writer(Vec::with_capacity(CHUNK + 4096));
    // A byte-order mark, so spreadsheet programs read the Chinese as UTF-8.
    let mut start = "\u{feff}".as_bytes().to_vec();
    let mut w = writer();
    w.write_record(headers(zh)).map_err(storage)?;
    let mut b = query.build();
    let mut rows = b.build_query_as::<Line>().fetch(pool);
    while let Some(row) = rows.next().await {
        let row = row.map_err(storage)?;
        let fields: Vec<String> = row
            .cells(zh)
            .into_iter()
            .map(|c| match c {
                Cell::Text(s) => s,
                Cell::Number(n) => n.to_string(),
            })
            .collect();
        w.write_record(&fields).map_err(storage)?;
        out.records += 1;
        if w.get_ref().len() >= CHUNK {
            let data = std::mem::replace(&mut w, writer())
                .into_inner()
                .map_err(|e| storage(e.error()))?;
            start.extend_from_slice(&data);
            out.send(std::mem::take(&mut start)).await?;
        }
    }
    let data = w.into_inner().map_err(|e| storage(e.error()))?;
    start.extend_from_slice(&data);
    if !start.is_empty() {
        out.send(start).await?;
    }
    Ok(())
}

async fn xlsx_file(pool: &PgPool, query: &Query, zh: bool, out: &mut Out) -> Result<(), Status> {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("waihu-export-{}.xlsx", Uuid::new_v4()));
    // The rows go to a writer thread through a bounded channel.
    let (rows_tx, rows_rx) = mpsc::channel::<Vec<Cell>>(1024);
    let file = path.clone();
    let writer = tokio::task::spawn_blocking(move || write_xlsx(&file, zh, rows_rx));
    let mut failed = None;
    {
        let mut b = query.build();
        let mut rows = b.build_query_as::<Line>().fetch(pool);
        while let Some(row) = rows.next().await {
            match row {
                Ok(row) => {
                    // Waits while the writer is behind: at most the channel's rows in memory.
                    if rows_tx.send(row.cells(zh)).await.is_err() {
                        break;
                    }
                    out.records += 1;
                    if out.records.is_multiple_of(50_000) && out.tx.is_closed() {
                        failed = Some(Status::cancelled("the client went away"));
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(storage(e));
                    break;
                }
            }
        }
    }
    drop(rows_tx);
    let written = writer
        .await
        .map_err(storage)
        .and_then(|r| r.map_err(storage));
    let result = match (failed, written) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => send_file(&path, out).await,
    };
    let _ = tokio::fs::remove_file(&path).await;
    result
}

fn write_xlsx(
    path: &std::path::Path,
    zh: bool,
    mut rows: mpsc::Receiver<Vec<Cell>>,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let names = headers(zh);
    let mut sheet = book.add_worksheet_with_constant_memory()?;
    let mut sheets = 1;
    let mut row: u32 = 0;
    let header =
        |sheet: &mut rust_xlsxwriter::Worksheet| -> Result<(), rust_xlsxwriter::XlsxError> {
            for (c, h) in names.iter().enumerate() {
                sheet.write_string_with_format(0, c as u16, *h, &bold)?;
            }
            sheet.set_freeze_panes(1, 0)?;
            Ok(())
        };
    header(sheet)?;
    while let Some(cells) = rows.blocking_recv() {
        if row == SHEET_ROWS {
            sheets += 1;
            sheet = book.add_worksheet_with_constant_memory()?;
            sheet.set_name(format!("Sheet{sheets}"))?;
            header(sheet)?;
            row = 0;
        }
        row += 1;
        for (c, cell) in cells.into_iter().enumerate() {
            match cell {
                Cell::Text(s) if s.is_empty() => {}
                Cell::Text(s) => {
                    sheet.write_string(row, c as u16, s)?;
                }
                Cell::Number(n) => {
                    sheet.write_number(row, c as u16, n)?;
                }
            }
        }
    }
    book.save(path)
}

async fn send_file(path: &std::path::Path, out: &mut Out) -> Result<(), Status> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path).await.map_err(storage)?;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        while n < CHUNK {
            let got = f.read(&mut buf[n..]).await.map_err(storage)?;
            if got == 0 {
                break;
            }
            n += got;
        }
        if n == 0 {
            return Ok(());
        }
        buf.truncate(n);
        out.send(buf).await?;
    }
}
