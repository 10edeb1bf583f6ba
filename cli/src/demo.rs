//! `waihu demo`: one command that shows the whole system working.

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Args;
use tokio::process::{Child, Command};
use waihu_proto::v1::{self as pb, provider_service_client::ProviderServiceClient};

use crate::{display, status, task, Cli, CliError};

#[derive(Args)]
pub struct DemoArgs {
    /// Contacts in the generated list (a few of them malformed or repeated on purpose).
    #[arg(long, default_value_t = 5000)]
    contacts: usize,
    /// Simulator seed: the same seed and list give the same campaign.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How much faster than real time simulated calls run.
    #[arg(long, default_value_t = 300.0)]
    time_scale: f64,
    /// Calls after the first to busy or unanswered contacts.
    #[arg(long, default_value_t = 2)]
    recall: u32,
    /// Concurrent calls over all the demo's simulator lines.
    #[arg(long, default_value_t = 300)]
    concurrency: u32,
    /// Simulator lines the demo creates (sim-1, sim-2, ...) through ProviderService, sharing
    /// --concurrency.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    lines: u32,
    /// Skip the closing `replay --verify` (rebuild the statistics from the store and compare).
    #[arg(long)]
    no_verify: bool,
    /// Where the services this demo starts write their logs.
    #[arg(long, default_value = ".demo/logs")]
    log_dir: PathBuf,
    /// Where the HTTP gateway (the seeds' REST APIs) listens; the demo starts it unless
    /// something already listens there.
    #[arg(long, env = "WAIHU_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: String,
}

/// Where the analysis service the demo starts serves (health).
const ANALYSIS_ADDR: &str = "http://127.0.0.1:50055";

/// Where the record service the demo starts serves recordings.
const RECORDINGS_ADDR: &str = "127.0.0.1:8054";

/// The demo's own directory (beside its logs): recordings and their storage.
fn demo_dir(a: &DemoArgs) -> PathBuf {
    a.log_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".demo"))
}

fn port_of(addr: &str) -> Result<u16, CliError> {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .ok_or_else(|| format!("{addr:?} has no port").into())
}

/// Services this demo started; stopped (SIGTERM, then kill) when the demo ends.
struct Started(Vec<(&'static str, Child)>);

impl Started {
    async fn stop(mut self) {
        for (name, child) in self.0.iter_mut().rev() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()
                    .await;
            }
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                eprintln!("{name} did not stop in 15 s; killing it");
                let _ = child.kill().await;
            }
        }
        self.0.clear();
    }
}

async fn ensure_services(cli: &Cli, a: &DemoArgs) -> Result<Started, CliError> {
    let dir = std::env::current_exe()?
        .parent()
        .map(PathBuf::from)
        .ok_or("cannot locate the waihu binary")?;
    let services = [
        ("waihu-record", cli.record_addr.as_str()),
        ("waihu-task", cli.task_addr.as_str()),
        ("waihu-dialer", cli.dialer_addr.as_str()),
        ("waihu-provider-adapter", cli.provider_addr.as_str()),
        ("waihu-analysis", ANALYSIS_ADDR),
    ];
    let mut started = Started(Vec::new());
    std::fs::create_dir_all(&a.log_dir)?;
    // One key for the services this demo starts, so every signed URL verifies.
    let url_key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    for (name, addr) in services {
        if waihu_runtime::is_serving(addr).await {
            println!("  {name:<24} already running at {addr}");
            continue;
        }
        let bin = dir.join(name);
        if !bin.exists() {
            started.stop().await;
            return Err(format!(
                "{} is missing: build the workspace first (cargo build --release --bins)",
                bin.display()
            )
            .into());
        }
        let log = a.log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&bin)
            .env("WAIHU_GRPC_ADDR", format!("127.0.0.1:{}", port_of(addr)?))
            .env("WAIHU_SIMULATOR__SEED", a.seed.to_string())
            .env("WAIHU_SIMULATOR__TIME_SCALE", a.time_scale.to_string())
            .env("WAIHU_PROVIDER__DIALER_URL", &cli.dialer_addr)
            .env("WAIHU_DIALER__TICK_MS", "50")
            // Answered simulated calls leave a recording (a generated WAV), which the record
            // service moves into its storage and serves by signed URL.
            .env("WAIHU_SIMULATOR__RECORDINGS", "true")
            // ... and a transcript (a generated dialogue), which the analysis service analyses.
            .env("WAIHU_SIMULATOR__TRANSCRIPTS", "true")
            // About a second of audio for the average call (16 KB), at most 2 s.
            .env("WAIHU_SIMULATOR__RECORDING_SCALE", "100")
            .env("WAIHU_SIMULATOR__RECORDING_MAX_MS", "2000")
            .env(
                "WAIHU_PROVIDER__RECORDINGS_DIR",
                demo_dir(a).join("recordings"),
            )
            .env(
                "WAIHU_RECORDINGS__SOURCE_DIRS",
                demo_dir(a).join("recordings"),
            )
            .env(
                "WAIHU_RECORDINGS__ROOT",
                demo_dir(a).join("recordings-store"),
            )
            .env("WAIHU_RECORDINGS__HTTP_ADDR", RECORDINGS_ADDR)
            .env(
                "WAIHU_RECORDINGS__PUBLIC_URL",
                format!("http://{RECORDINGS_ADDR}"),
            )
            .env("WAIHU_RECORDINGS__URL_KEY", &url_key)
            // Only the provider adapter serves HTTP (providers' callbacks): on loopback, and not
            // wherever WAIHU_HTTP_ADDR (the gateway's, for this demo) points.
            .env("WAIHU_HTTP_ADDR", "127.0.0.1:8053")
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        started.0.push((name, child));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if waihu_runtime::is_serving(addr).await {
                println!("  {name:<24} started at {addr} (log: {})", log.display());
                break;
            }
            let exited = started
                .0
                .last_mut()
                .and_then(|(_, c)| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                started.stop().await;
                return Err(format!("{name} did not become healthy; see {}", log.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    start_gateway(cli, a, &dir, &mut started).await;
    Ok(started)
}

/// Starts the HTTP gateway beside the services, unless something listens at `--http-addr`
/// already. The campaign does not need it: a gateway that cannot start is reported, not fatal.
async fn start_gateway(cli: &Cli, a: &DemoArgs, dir: &std::path::Path, started: &mut Started) {
    let name = "waihu-gateway";
    let listening = || async { tokio::net::TcpStream::connect(&a.http_addr).await.is_ok() };
    if listening().await {
        println!("  {name:<24} something already listens at {}", a.http_addr);
        return;
    }
    let bin = dir.join(name);
    let log = a.log_dir.join(format!("{name}.log"));
    let spawned = std::fs::File::create(&log).and_then(|out| {
        Command::new(&bin)
            .env("WAIHU_HTTP_ADDR", &a.http_addr)
            .env("WAIHU_GATEWAY__TASK_ADDR", &cli.task_addr)
            .env("WAIHU_GATEWAY__RECORD_ADDR", &cli.record_addr)
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
    });
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            println!(
                "  {name:<24} not started ({}: {e}); the demo goes on without it",
                bin.display()
            );
            return;
        }
    };
    started.0.push((name, child));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if listening().await {
            println!(
                "  {name:<24} started at http://{}/api/v1/lead-generation/call-tasks (log: {})",
                a.http_addr,
                log.display()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "  {name:<24} did not start listening; see {} (the demo goes on)",
        log.display()
    );
}

/// A generated contact list: mostly valid mobiles, with every 97th row malformed and every
/// 151st a repeat, so the import report has something to say.
fn generated(n: usize, seed: u64) -> Vec<pb::ContactRow> {
    let mobile = |i: usize| {
        format!(
            "1{}{:09}",
            3 + (seed + i as u64) % 7,
            (i as u64) * 7919 % 1_000_000_000
        )
    };
    (0..n)
        .map(|i| {
            let phone = if i % 97 == 96 {
                format!("12{:05}", i)
            } else if i % 151 == 150 {
                // The previous row's number, spelled differently.
                format!("+86 {}", mobile(i - 1))
            } else {
                mobile(i)
            };
            let mut variables = std::collections::HashMap::new();
            variables.insert(
                "city".to_string(),
                ["上海", "北京", "厦门", "深圳"][i % 4].to_string(),
            );
            pb::ContactRow {
                name: format!("候选人{i:05}"),
                phone,
                external_id: format!("resume-{}", 100_000 + i),
                variables,
            }
        })
        .collect()
}

pub async fn run(cli: &Cli, a: &DemoArgs) -> Result<ExitCode, CliError> {
    if !(a.time_scale.is_finite() && a.time_scale >= 0.0) {
        return Err("--time-scale must be 0 or more".into());
    }
    println!(
        "waihu demo: {} contacts, simulator seed {}, time x{}, recall {}, {} lines carrying {} \
         calls at once",
        a.contacts, a.seed, a.time_scale, a.recall, a.lines, a.concurrency
    );
    println!("services:");
    let started = ensure_services(cli, a).await?;
    // The replay check runs while the services (the record service serves it) are still up.
    let result = match campaign(cli, a).await {
        Ok(code) if code == ExitCode::SUCCESS && !a.no_verify => {
            println!("waihu replay --verify:");
            crate::replay::verify(cli).await
        }
        other => other,
    };
    if !started.0.is_empty() {
        println!("stopping the services this demo started");
        started.stop().await;
    }
    result
}

/// The demo's lines, `sim-1` ... `sim-<lines>`, sharing `concurrency`, each with a caller
/// number of its own city.
fn demo_lines(a: &DemoArgs) -> Vec<pb::Line> {
    const CALLERS: [&str; 4] = [
        "021-61234567",
        "010-81234567",
        "020-31234567",
        "0592-5123456",
    ];
    (1..=a.lines)
        .map(|i| {
            let share = a.concurrency / a.lines + u32::from(i <= a.concurrency % a.lines);
            pb::Line {
                line_id: format!("sim-{i}"),
                name: format!("demo simulator line {i}"),
                provider: "sim".into(),
                caller_number: CALLERS[(i as usize - 1) % CALLERS.len()].into(),
                max_concurrent: share.max(1),
                time_zone: "Asia/Shanghai".into(),
                ..Default::default()
            }
        })
        .collect()
}

/// Creates the demo's lines through `ProviderService`; a line left by an earlier demo gets the
/// settings asked for now (and is switched on).
async fn make_lines(cli: &Cli, a: &DemoArgs) -> Result<Vec<String>, CliError> {
    let mut p = ProviderServiceClient::new(crate::provider_channel(cli).await?);
    let mut ids = Vec::new();
    for line in demo_lines(a) {
        let id = line.line_id.clone();
        let made = p
            .create_line(task::with_tenant(
                &cli.tenant,
                pb::CreateLineRequest {
                    line: Some(line.clone()),
                    ..Default::default()
                },
            )?)
            .await;
        let l = match made {
            Ok(l) => l.into_inner(),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                p.update_line(task::with_tenant(
                    &cli.tenant,
                    pb::UpdateLineRequest {
                        line: Some(line),
                        expected_version: 0,
                        ..Default::default()
                    },
                )?)
                .await
                .map_err(|s| status("UpdateLine", s))?;
                p.enable_line(task::with_tenant(
                    &cli.tenant,
                    pb::LineRequest {
                        line_id: id.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("EnableLine", s))?
                .into_inner()
            }
            Err(s) => return Err(status("CreateLine", s)),
        };
        println!("line {}", crate::line::text(&l));
        ids.push(id);
    }
    Ok(ids)
}

async fn campaign(cli: &Cli, a: &DemoArgs) -> Result<ExitCode, CliError> {
    let lines = make_lines(cli, a).await?;
    let mut tasks = task::task_client(cli).await?;
    let spec = pb::TaskSpec {
        name: format!("demo {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")),
        description: "generated by waihu demo".into(),
        script_id: "demo-script".into(),
        priority: 1,
        recall_count: a.recall,
        recall_interval_seconds: 1,
        tags: vec!["demo".into()],
        source: "waihu demo".into(),
        // The simulator wakes nobody: the demo may call at any hour (real tasks default to the
        // dialer's window, 09:00-20:00 in the callee's zone).
        window: Some(pb::CallingWindow {
            hours: vec!["00:00-24:00".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = tasks
        .create_task(task::with_tenant(
            &cli.tenant,
            pb::CreateTaskRequest { spec: Some(spec) },
        )?)
        .await
        .map_err(|s| status("create", s))?
        .into_inner();
    println!("task {} created", t.task_id);

    let rows = generated(a.contacts, a.seed);
    let t0 = Instant::now();
    let chunks = pb::AddContactsRequest::chunked(&t.task_id, &rows);
    let reply = tasks
        .add_contacts(task::with_tenant(&cli.tenant, tokio_stream::iter(chunks))?)
        .await
        .map_err(|s| status("import", s))?
        .into_inner();
    print!("imported in {:.2} s: ", t0.elapsed().as_secs_f64());
    crate::import::print_import(
        &crate::import::ImportReport {
            reply,
            local: Default::default(),
        },
        3,
    );

    tasks
        .start_task(task::with_tenant(
            &cli.tenant,
            pb::TaskRef {
                task_id: t.task_id.clone(),
            },
        )?)
        .await
        .map_err(|s| status("start", s))?;
    println!("task started; dialing:");
    let t1 = Instant::now();
    let stats = task::watch_stats(cli, &t.task_id).await?;
    let secs = t1.elapsed().as_secs_f64();
    println!(
        "campaign finished in {:.1} s ({:.0} call attempts/s)\n{}",
        secs,
        stats.calls_placed as f64 / secs.max(0.001),
        display::stats_table(&stats)
    );
    recordings(cli, &t.task_id, stats.calls_answered).await?;
    let mut p = ProviderServiceClient::new(crate::provider_channel(cli).await?);
    println!("lines:");
    for id in lines {
        let s = p
            .get_line_status(task::with_tenant(
                &cli.tenant,
                pb::LineRequest { line_id: id },
            )?)
            .await
            .map_err(|s| status("GetLineStatus", s))?
            .into_inner();
        println!("  {}", crate::line::status_text(&s));
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits (a while) for the answered calls' recordings to be stored, then shows how many, their
/// size, and one signed URL fetched back.
async fn recordings(cli: &Cli, task_id: &str, answered: u64) -> Result<(), CliError> {
    use waihu_proto::v1::record_service_client::RecordServiceClient;
    let mut records = RecordServiceClient::new(crate::record_channel(cli).await?);
    let t0 = Instant::now();
    let mut example = None;
    let (stored, bytes, failed) = loop {
        let (mut stored, mut bytes, mut failed) = (0u64, 0u64, 0u64);
        let mut token = String::new();
        loop {
            let page = records
                .list_call_records(task::with_tenant(
                    &cli.tenant,
                    pb::ListCallRecordsRequest {
                        task_id: task_id.to_string(),
                        answered: Some(true),
                        page_size: 1000,
                        page_token: token,
                        ..Default::default()
                    },
                )?)
                .await
                .map_err(|s| status("ListCallRecords", s))?
                .into_inner();
            for r in &page.records {
                match r.recording.as_ref().map(|x| x.state()) {
                    Some(pb::RecordingState::Stored) => {
                        stored += 1;
                        bytes += r.recording.as_ref().map_or(0, |x| x.bytes);
                        example.get_or_insert_with(|| r.call_id.clone());
                    }
                    Some(pb::RecordingState::Failed) => failed += 1,
                    _ => {}
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        if stored + failed >= answered || t0.elapsed() > Duration::from_secs(120) {
            break (stored, bytes, failed);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "recordings: {stored} of {answered} answered calls stored ({:.1} MiB){}, {:.1} s after the campaign",
        bytes as f64 / 1048576.0,
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        },
        t0.elapsed().as_secs_f64()
    );
    if let Some(call) = example {
        let u = records
            .get_recording_url(task::with_tenant(
                &cli.tenant,
                pb::GetRecordingUrlRequest {
                    call_id: call.clone(),
                    ttl_seconds: 0,
                },
            )?)
            .await
            .map_err(|s| status("GetRecordingUrl", s))?
            .into_inner();
        let fetched = match reqwest::get(&u.url).await {
            Ok(r) => format!(
                "HTTP {} {}",
                r.status().as_u16(),
                r.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
            ),
            Err(e) => format!("not fetched: {e}"),
        };
        println!(
            "  e.g. call {call}: {} ({fetched}); waihu recording url {call} --download call.wav",
            u.url
        );
    }
    Ok(())
}
