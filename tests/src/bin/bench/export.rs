//! `export_xlsx_1m`: ExportCallRecords of 1,000,000 call records as XLSX (and CSV), through the
//! record service's gRPC API, with the process's peak resident memory while it runs. The
//! records are written straight into the projection (generate_series): the export is measured,
//! not the campaign.

use std::time::Instant;

use tokio_util::sync::CancellationToken;
use waihu_e2e::as_tenant;
use waihu_events::pb;
use waihu_proto::v1::record_service_client::RecordServiceClient;
use waihu_testkit::TestEnv;

const TENANT: &str = "bench";

pub struct Export {
    pub rows: u64,
    pub fill_s: f64,
    /// (format, seconds, bytes, peak RSS MiB above the start, peak RSS MiB).
    pub runs: Vec<(&'static str, f64, u64, f64, f64)>,
    pub rss_start_mb: f64,
}

/// A /proc/self/status figure in MiB (VmRSS, VmHWM).
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak resident set (VmHWM) to the current one.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub async fn run(env: &TestEnv, rows: u64) -> Result<Export, String> {
    let stop = CancellationToken::new();
    let handle = waihu_record::start(waihu_record::RecordConfig::new(env.config()), stop.clone())
        .await
        .map_err(|e| format!("record service: {e}"))?;
    let result = measure(env, &format!("http://{}", handle.addr), rows).await;
    stop.cancel();
    handle.wait().await;
    result
}

async fn measure(env: &TestEnv, addr: &str, rows: u64) -> Result<Export, String> {
    let task = uuid::Uuid::now_v7();
    let t0 = Instant::now();
    sqlx::query(
        "INSERT INTO record.call_records (call_id, task_id, tenant_id, contact_no, started_at,
             phone, line_id, attempt, requested_at, dialing_at, answered_at, released_at, ring_ms,
             talk_ms, answered, cause_q850, cause_name, record_no)
         SELECT gen_random_uuid(), $1, $2, i, now() - make_interval(secs => i),
             '+86138' || lpad(i::text, 8, '0'), 'sim-' || (i % 20), 1 + i % 3,
             now() - make_interval(secs => i), now() - make_interval(secs => i),
             CASE WHEN i % 2 = 0 THEN now() - make_interval(secs => i) END,
             now() - make_interval(secs => i) + interval '30 seconds', 5000 + i % 10000,
             CASE WHEN i % 2 = 0 THEN 1000 * (i % 300) ELSE 0 END, i % 2 = 0,
             CASE WHEN i % 2 = 0 THEN 16 ELSE 19 END,
             CASE WHEN i % 2 = 0 THEN 'NORMAL_CLEARING' ELSE 'NO_ANSWER' END, i
         FROM generate_series(1, $3::bigint) AS i",
    )
    .bind(task)
    .bind(TENANT)
    .bind(rows as i64)
    .execute(&env.pool)
    .await
    .map_err(|e| format!("filling call_records: {e}"))?;
    let fill_s = t0.elapsed().as_secs_f64();
    let mut client = RecordServiceClient::connect(addr.to_string())
        .await
        .map_err(|e| e.to_string())?
        .max_decoding_message_size(16 * 1024 * 1024);
    let rss_start_mb = status_mb("VmRSS:");
    let mut runs = Vec::new();
    for (name, format) in [
        ("xlsx", pb::ExportFormat::Xlsx),
        ("csv", pb::ExportFormat::Csv),
    ] {
        let before = status_mb("VmRSS:");
        reset_peak();
        let t0 = Instant::now();
        let mut stream = client
            .export_call_records(as_tenant(
                TENANT,
                pb::ExportCallRecordsRequest {
                    filter: Some(pb::ListCallRecordsRequest {
                        task_id: task.to_string(),
                        ..Default::default()
                    }),
                    format: format as i32,
                    language: "zh".into(),
                },
            ))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let (mut bytes, mut records) = (0u64, 0u64);
        while let Some(c) = stream.message().await.map_err(|e| e.to_string())? {
            bytes += c.data.len() as u64;
            records = c.records;
        }
        let secs = t0.elapsed().as_secs_f64();
        if records != rows {
            return Err(format!("{name}: {records} records exported of {rows}"));
        }
        let peak = status_mb("VmHWM:");
        runs.push((name, secs, bytes, (peak - before).max(0.0), peak));
    }
    Ok(Export {
        rows,
        fill_s,
        runs,
        rss_start_mb,
    })
}
