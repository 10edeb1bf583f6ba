//! `make bench`: waihu's pipeline figures side by side with this machine's raw NATS JetStream
//! and PostgreSQL ceilings, measured in the same run. Prints `bench <name> <value> <unit>` lines.
//!
//! `WAIHU_BENCH_SCALE` (default 1.0) scales every workload, e.g. 0.1 for a quick look.
//! `--only base` runs the ceilings and the in-process pipeline figures; `--only 1m` runs the
//! million-contact campaign against the release service binaries as separate processes.

#[path = "bench/analysis.rs"]
mod analysis;
#[path = "bench/export.rs"]
mod export;
#[path = "bench/million.rs"]
mod million;
#[path = "bench/procs.rs"]
mod procs;
#[path = "bench/screening.rs"]
mod screening;
#[path = "bench/sip.rs"]
mod sip;
#[path = "bench/watch.rs"]
mod watch;
#[path = "bench/webhooks.rs"]
mod webhooks;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use waihu_bus::Expect;
use waihu_e2e::*;
use waihu_events::{pb, RecordedEvent};
use waihu_testkit::TestEnv;

/// The services' allocator: the record, task and dialer services run in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str =
    "usage: waihu-bench [--only base|ingest|watch|export|analysis|screening|webhooks|sip|1m|dial|rules]

  --only base   raw NATS/PostgreSQL ceilings, store ingest, contact import, call attempts,
                webhook ingestion, SIP call setup
  --only ingest raw PostgreSQL ceiling and store ingest only
  --only watch  WatchTaskStats lag at 1,000 calls/s (and the PostgreSQL ceiling)
  --only export 1,000,000 call records exported as XLSX and CSV, with peak RSS (and the
                PostgreSQL ceiling)
  --only analysis the local analyzer on the labelled sets' held-out part: intent macro-F1,
                intent and sentiment accuracy, transcripts/s on one core
  --only screening 100,000 numbers through the three batch screening jobs in batches of 1,000
                (and the PostgreSQL ceiling)
  --only webhooks raw JetStream ceiling and provider callback ingestion only
  --only sip    SIP calls set up per second against sipp (and the JetStream ceiling)
  --only 1m     1,000,000 contacts over 100 tasks and 20 lines, services as separate processes
                (needs the release binaries: cargo build --release --bins)
  --only dial   the 20,000-contact campaign in-process, then as processes on the 1M campaign's
                lines, then the 1M campaign, and the 1M campaign's ratios to both (release
                binaries too)
  --only rules  100,000 contacts over 10 tasks and 20 lines, with every dialing rule on and
                then off, services as separate processes (release binaries too)

WAIHU_BENCH_SCALE (default 1.0) scales every workload; 0.01 gives a quick look.
WAIHU_BENCH_WRITER_BATCH sets the store writer's batch for the store ingest figure.
BENCH_TRACE (a tracing filter, e.g. waihu_record=debug) prints the in-process services' logs.";

fn scale() -> f64 {
    std::env::var("WAIHU_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0)
        .unwrap_or(1.0)
}

fn n(base: usize) -> usize {
    ((base as f64 * scale()) as usize).max(100)
}

fn report(name: &str, value: f64, unit: &str, note: &str) {
    report_with(name, value, 0, unit, note);
}

/// Prints `bench <name> <value> <unit>` with `decimals` digits after the point.
fn report_with(name: &str, value: f64, decimals: usize, unit: &str, note: &str) {
    println!("bench {name} {value:.decimals$} {unit}");
    if !note.is_empty() {
        eprintln!("      {note}");
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Only {
    All,
    Base,
    Ingest,
    Watch,
    Export,
    Analysis,
    Screening,
    Webhooks,
    Sip,
    Million,
    Dial,
    Rules,
}

fn parse_args() -> Result<Only, String> {
    let mut args = std::env::args().skip(1);
    let mut only = Only::All;
    while let Some(a) = args.next() {
        let value = match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--only" => args.next().ok_or(
                "--only needs a value: base, ingest, watch, export, analysis, screening, webhooks, sip, 1m, dial or rules",
            )?,
            _ => match a.strip_prefix("--only=") {
                Some(v) => v.to_string(),
                None => return Err(format!("unknown argument {a:?}")),
            },
        };
        only = match value.as_str() {
            "base" => Only::Base,
            "ingest" => Only::Ingest,
            "watch" => Only::Watch,
            "export" => Only::Export,
            "analysis" => Only::Analysis,
            "screening" => Only::Screening,
            "webhooks" => Only::Webhooks,
            "sip" => Only::Sip,
            "1m" => Only::Million,
            "dial" => Only::Dial,
            "rules" => Only::Rules,
            other => {
                return Err(format!(
                    "--only {other:?}: expected base, ingest, watch, export, analysis, screening, webhooks, sip, 1m, dial or rules"
                ))
            }
        };
    }
    Ok(only)
}

/// The JetStream ceiling, measured and reported (`raw_jetstream_acked_publish`).
async fn raw_jetstream(env: &TestEnv) -> f64 {
    let rate = raw_jetstream_rate(env).await;
    report(
        "raw_jetstream_acked_publish",
        rate,
        "msg/s",
        "300-byte messages, acks awaited in windows of 1000",
    );
    rate
}

async fn raw_jetstream_rate(env: &TestEnv) -> f64 {
    let js = env.bus.jetstream();
    let name = format!("{}_RAW", env.prefix.to_uppercase());
    let subject = format!("{}.raw.bench", env.prefix);
    let _ = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .expect("raw stream");
    let payload = bytes::Bytes::from(vec![b'x'; 300]);
    let total = n(200_000);
    let t = Instant::now();
    let mut sent = 0;
    while sent < total {
        let mut acks = Vec::with_capacity(1000);
        for _ in 0..1000.min(total - sent) {
            acks.push(
                js.publish(subject.clone(), payload.clone())
                    .await
                    .expect("publish"),
            );
            sent += 1;
        }
        for a in acks {
            a.await.expect("ack");
        }
    }
    let rate = total as f64 / t.elapsed().as_secs_f64();
    let _ = js.delete_stream(&name).await;
    rate
}

async fn raw_postgres(env: &TestEnv) -> f64 {
    let pool = &env.pool;
    // Each measurement starts from a fresh table and with no dirty buffers left by what ran
    // before (the ingest's, when it is measured again after it).
    for sql in [
        "DROP TABLE IF EXISTS raw_bench",
        "CREATE TABLE raw_bench (id bigint PRIMARY KEY, payload bytea NOT NULL)",
    ] {
        sqlx::query(sql).execute(pool).await.expect(sql);
    }
    if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
        // Needs a superuser or pg_checkpoint; the measurement is then a little noisier.
        eprintln!("waihu-bench: no CHECKPOINT before the PostgreSQL ceiling: {e}");
    }
    let total = n(200_000);
    let payload = vec![b'x'; 300];
    let t = Instant::now();
    let mut id = 0i64;
    while (id as usize) < total {
        let ids: Vec<i64> = (id..id + 500).collect();
        let payloads: Vec<&[u8]> = ids.iter().map(|_| payload.as_slice()).collect();
        sqlx::query("INSERT INTO raw_bench SELECT * FROM UNNEST($1::bigint[], $2::bytea[])")
            .bind(&ids)
            .bind(&payloads)
            .execute(pool)
            .await
            .expect("insert");
        id += 500;
    }
    id as f64 / t.elapsed().as_secs_f64()
}

/// A call's five lifecycle events, as the dialer and the simulator produce them (time-ordered
/// ids, as the dialer makes them).
fn call_events(task: uuid::Uuid, no: u32) -> Vec<(RecordedEvent, Expect)> {
    waihu_testkit::call_lifecycle(
        "bench",
        task,
        uuid::Uuid::now_v7(),
        no,
        1,
        true,
        5000,
        60_000,
    )
    .into_iter()
    .map(|e| (e, Expect::Any))
    .collect()
}

/// Store ingest, from a stream holding a campaign's call events to their being stored and
/// projected.
struct Ingest {
    /// Events in the stream.
    events: usize,
    /// Events a second from the record service's start (migrations included).
    whole_run: f64,
    /// Events a second between 10 % and 90 % of the events projected (the rate a running store
    /// sustains: at both ends as much work is under way ahead of the projections, so it cancels
    /// out), over `steady_events` events.
    steady: f64,
    steady_events: u64,
    /// CPU spent over the steady part.
    spent: Option<waihu_e2e::cpu::CpuSpent>,
}

async fn store_ingest(env: &TestEnv) -> Ingest {
    let calls = n(40_000);
    let tasks: Vec<uuid::Uuid> = (0..20).map(|_| uuid::Uuid::now_v7()).collect();
    let mut events = Vec::with_capacity(calls * 5);
    for i in 0..calls {
        events.extend(call_events(tasks[i % tasks.len()], i as u32 + 1));
    }
    for chunk in events.chunks(20_000) {
        for r in env.bus.publish_all(chunk, 1000).await {
            r.expect("publish");
        }
    }
    let last = env.bus.last_sequence().await.expect("last seq");
    let stop = CancellationToken::new();
    let cpu = waihu_e2e::cpu::CpuSample::now();
    let t = Instant::now();
    let mut config = waihu_record::RecordConfig::new(env.config());
    if let Some(b) = std::env::var("WAIHU_BENCH_WRITER_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.writer.batch = b;
    }
    let handle = waihu_record::start(config, stop.clone())
        .await
        .expect("record");
    eprintln!(
        "waihu-bench: store ingest: the record service started in {:?} (migrations included)",
        t.elapsed()
    );
    // Stored and projected: the call records and statistics are part of ingest. The steady
    // part runs from 10 % to 90 % of the events projected.
    let first = last - events.len() as u64;
    let (lo, hi) = (
        first + events.len() as u64 / 10,
        first + events.len() as u64 * 9 / 10,
    );
    type Mark = (Instant, waihu_e2e::cpu::CpuSample, u64);
    let (mut from, mut to): (Option<Mark>, Option<Mark>) = (None, None);
    loop {
        let at = waihu_store::checkpoint(&env.pool, waihu_record::projection::CHECKPOINT)
            .await
            .expect("checkpoint");
        let mark = || Some((Instant::now(), waihu_e2e::cpu::CpuSample::now(), at));
        if at >= lo && from.is_none() {
            from = mark();
        }
        if at >= hi && to.is_none() {
            to = mark();
        }
        if at >= last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let whole_run = events.len() as f64 / t.elapsed().as_secs_f64();
    let ingest = match (from, to) {
        (Some((t1, c1, a1)), Some((t2, c2, a2))) if a2 > a1 => Ingest {
            events: events.len(),
            whole_run,
            steady: (a2 - a1) as f64 / (t2 - t1).as_secs_f64(),
            steady_events: a2 - a1,
            spent: c2.since(&c1),
        },
        // Projected in too few steps to tell a steady part.
        _ => Ingest {
            events: events.len(),
            whole_run,
            steady: whole_run,
            steady_events: events.len() as u64,
            spent: waihu_e2e::cpu::CpuSample::now().since(&cpu),
        },
    };
    stop.cancel();
    handle.wait().await;
    ingest
}

/// The 20,000-contact campaign in-process (after a 200,000-contact import into another task):
/// the import rate, its size, the attempts rate and the attempts, with each part's CPU per
/// attempt printed as `<cpu_name>_<part>` lines.
async fn import_and_dial(cpu_name: &str) -> (f64, usize, f64, u64) {
    let sim = waihu_provider::sim::Simulator {
        seed: 1,
        time_scale: 0.0,
        ..Default::default()
    };
    let cluster = Cluster::start(
        sim,
        vec![Line {
            id: "sim-1".into(),
            max_concurrent: 2000,
        }],
    )
    .await;
    let mut tasks = cluster.tasks().await;

    // Import rate: a large list through AddContacts.
    let big = n(200_000);
    let task = tasks
        .create_task(pb::CreateTaskRequest {
            spec: Some(spec("import-bench", 0, 0)),
        })
        .await
        .expect("create")
        .into_inner();
    let list = phones(big, 5);
    let t = Instant::now();
    let reply = import(&mut tasks, &task.task_id, &list).await;
    let import_rate = reply.accepted as f64 / t.elapsed().as_secs_f64();
    assert_eq!(reply.accepted as usize, big);

    // Call attempts: a campaign on the instant simulator.
    let contacts = n(20_000);
    let task_id =
        create_with_contacts(&mut tasks, spec("dial-bench", 1, 0), &phones(contacts, 6)).await;
    let t = Instant::now();
    let cpu = waihu_e2e::cpu::CpuSample::now();
    run_to_completion(&mut tasks, &task_id, Duration::from_secs(900)).await;
    let secs = t.elapsed().as_secs_f64();
    let spent = waihu_e2e::cpu::CpuSample::now().since(&cpu);
    let stats = wait_stats_settled(
        &cluster,
        &task_id,
        contacts as u64,
        Duration::from_secs(300),
    )
    .await;
    let attempts_rate = stats.calls_placed as f64 / secs;
    if let Some(c) = spent {
        // Per attempt, as the 1M campaign's lines count it (`services` here is every service
        // in this one process, with the bench's client).
        report_cpu_per(
            cpu_name,
            &[
                ("services", c.this, String::new()),
                ("postgres", c.postgres, String::new()),
                ("nats", c.nats, String::new()),
                ("other", c.other, String::new()),
                ("idle", c.idle, String::new()),
            ],
            stats.calls_placed,
            "us/attempt",
        );
    }
    cluster.shutdown().await;
    (import_rate, big, attempts_rate, stats.calls_placed)
}

/// Provider callbacks accepted and turned into call events, beside the JetStream ceiling.
async fn webhook_ingest(js_ceiling: f64) {
    let calls = n(3000);
    match webhooks::run(calls).await {
        Ok((rate, sent)) => {
            report(
                "webhook_ingest",
                rate,
                "callbacks/s",
                &format!(
                    "{sent} signed Twilio status callbacks over HTTP ({calls} calls x ringing, \
                     in-progress, completed), {} at once: authenticated, kept, turned into call \
                     events and projected",
                    webhooks::CONCURRENCY
                ),
            );
            report_with(
                "webhook_ingest_share",
                rate / js_ceiling * 100.0,
                1,
                "%",
                "webhook_ingest callbacks/s as a share of raw_jetstream_acked_publish msg/s, same run",
            );
        }
        Err(e) => eprintln!("waihu-bench: webhook ingestion failed: {e}"),
    }
}

/// SIP calls set up per second against sipp, beside the JetStream ceiling.
async fn sip_setup(js_ceiling: f64) {
    let calls = n(3000);
    match sip::run(calls).await {
        Ok((rate, calls)) => {
            report(
                "sip_call_setup",
                rate,
                "calls/s",
                &format!(
                    "{calls} calls on a sip line to sipp on loopback, up to {} at once: each \
                     INVITE/100/180/200/ACK, {} ms of RTP recorded, BYE from the trunk, projected",
                    sip::CONCURRENCY,
                    sip::TALK_MS
                ),
            );
            report_with(
                "sip_call_setup_share",
                rate / js_ceiling * 100.0,
                1,
                "%",
                "sip_call_setup calls/s as a share of raw_jetstream_acked_publish msg/s, same run",
            );
        }
        Err(e) => eprintln!("waihu-bench: SIP call setup not measured: {e}"),
    }
}

/// How soon a WatchTaskStats client sees a change, at 1,000 calls/s.
async fn watch_lag(env: &TestEnv) {
    match watch::run(env, n(10_000)).await {
        Ok((p50, p99, rate, calls)) => {
            let note = format!(
                "{calls} calls at {rate:.0} calls/s (4-5 events each) into the record service alone; \
                 lag from a release's publish to the first snapshot counting it (target p99 <= 1000)"
            );
            report_with("watch_stats_lag_p50", p50, 1, "ms", &note);
            report_with("watch_stats_lag_p99", p99, 1, "ms", "");
        }
        Err(e) => eprintln!("waihu-bench: the watch lag run failed: {e}"),
    }
}

/// The analyzer's quality on the held-out part of the labelled sets, and its speed.
fn analysis_quality() {
    match analysis::run() {
        Ok(q) => {
            let h = &q.heldout;
            let note = format!(
                "{} held-out transcripts (tune part: {} transcripts, macro-F1 {:.3}, sentiment {:.3}); targets: macro-F1 >= 0.85, sentiment >= 0.85",
                h.n, q.tune.n, q.tune.intent_macro_f1, q.tune.sentiment_accuracy
            );
            report_with("analysis_intent_macro_f1", h.intent_macro_f1, 3, "", &note);
            report_with("analysis_intent_accuracy", h.intent_accuracy, 3, "", "");
            report_with(
                "analysis_sentiment_accuracy",
                h.sentiment_accuracy,
                3,
                "",
                "",
            );
            report(
                "analysis_throughput",
                q.per_second,
                "transcripts/s",
                &format!(
                    "one thread, every labelled transcript ({:.0} characters on average) over and over for 2 s (target 500)",
                    q.chars_per_transcript
                ),
            );
        }
        Err(e) => eprintln!("waihu-bench: the analysis run failed: {e}"),
    }
}

/// A million call records exported as XLSX and CSV, with the peak memory of the process.
async fn export_records(env: &TestEnv) {
    match export::run(env, n(1_000_000) as u64).await {
        Ok(x) => {
            eprintln!(
                "      {} call records written into the projection in {:.1} s; process RSS {:.0} MiB before the exports",
                x.rows, x.fill_s, x.rss_start_mb
            );
            for (format, secs, bytes, growth, peak) in x.runs {
                report_with(
                    &format!("export_{format}_records"),
                    x.rows as f64 / secs,
                    0,
                    "records/s",
                    &format!(
                        "{} records in {secs:.1} s, {:.1} MiB file, through ExportCallRecords (gRPC stream)",
                        x.rows,
                        bytes as f64 / 1048576.0
                    ),
                );
                report_with(
                    &format!("export_{format}_peak_rss"),
                    peak,
                    0,
                    "MiB",
                    &format!(
                        "peak resident memory of the process (record service and client) during the export; \
                         {growth:.0} MiB above where it started ({})",
                        if format == "xlsx" {
                            "rows stream from one cursor; the XLSX is built on disk in constant-memory mode"
                        } else {
                            "rows stream from one cursor straight to the client"
                        }
                    ),
                );
            }
        }
        Err(e) => eprintln!("waihu-bench: the export run failed: {e}"),
    }
}

/// The PostgreSQL ceiling, measured and reported (`raw_postgres_batched_insert`).
async fn postgres_ceiling(env: &TestEnv) -> f64 {
    let cpu = waihu_e2e::cpu::CpuSample::now();
    let pg = raw_postgres(env).await;
    let spent = waihu_e2e::cpu::CpuSample::now().since(&cpu);
    report(
        "raw_postgres_batched_insert",
        pg,
        "rows/s",
        "300-byte rows, 500 rows per INSERT, one connection",
    );
    if let Some(c) = spent {
        report_with(
            "raw_postgres_cpu_postgres",
            // raw_postgres inserts whole statements of 500 rows.
            c.postgres * 1e6 / (n(200_000).div_ceil(500) * 500) as f64,
            1,
            "us/row",
            "CPU time of every PostgreSQL process per row of the ceiling",
        );
    }
    pg
}

/// The PostgreSQL ceiling and the store writer's ingest rate, and the one as a share of the other.
/// The ceiling is measured right before the ingest and again right after it, and the share
/// taken of their mean: this machine's speed drifts by a fifth within a minute, and a single
/// ceiling a few seconds away from the ingest made the share move between 21 and 54 % over
/// eleven runs of the same build.
async fn ingest_share(env: &TestEnv) {
    let before = postgres_ceiling(env).await;
    let i = store_ingest(env).await;
    let after = raw_postgres(env).await;
    report(
        "raw_postgres_batched_insert_after_ingest",
        after,
        "rows/s",
        "the same ceiling, measured again right after the store ingest",
    );
    let pg = (before + after) / 2.0;
    report(
        "store_ingest",
        i.steady,
        "events/s",
        &format!(
            "{} call events: JetStream -> event store + call records + task statistics, over the {} \
             between 10 % and 90 % of them projected (target 30000)",
            i.events, i.steady_events
        ),
    );
    report_with(
        "store_ingest_share",
        i.steady / pg * 100.0,
        1,
        "%",
        "store_ingest events/s as a share of the mean of raw_postgres_batched_insert and \
         raw_postgres_batched_insert_after_ingest rows/s, same run",
    );
    report(
        "store_ingest_whole_run",
        i.whole_run,
        "events/s",
        "the same, from the record service's start (its migrations and the first batch included)",
    );
    report_with(
        "store_ingest_whole_run_share",
        i.whole_run / pg * 100.0,
        1,
        "%",
        "store_ingest_whole_run events/s as a share of the same mean",
    );
    let (events, spent) = (i.steady_events, i.spent);
    // What each part of the pipeline spent per event: steadier than the rate, which moves with
    // the machine's other load.
    if let Some(c) = spent {
        let note = |what: &str| format!("CPU time of {what} per event stored and projected");
        report_cpu_per(
            "store_ingest_cpu",
            &[
                ("postgres", c.postgres, note("every PostgreSQL process (the writer's and projector's backends)")),
                ("nats", c.nats, note("the NATS server delivering the stream")),
                ("record", c.this, note("the record service (reading, decoding, COPY encoding, projecting), in this process")),
                ("other", c.other, note("everything else on the machine meanwhile")),
                ("idle", c.idle, note("idle CPU (all cores)")),
            ],
            events,
            "us/event",
        );
    }
}

/// Prints `bench <prefix>_<part> <µs> <unit>` for each part's CPU seconds spread over `items`
/// (a `-` in a part's name becomes `_`), each with its note when it has one.
fn report_cpu_per(prefix: &str, parts: &[(&str, f64, String)], items: u64, unit: &str) {
    for (part, secs, note) in parts {
        report_with(
            &format!("{prefix}_{}", part.replace('-', "_")),
            secs * 1e6 / items.max(1) as f64,
            1,
            unit,
            note,
        );
    }
}

async fn base() {
    let env = TestEnv::new().await;
    let js = raw_jetstream(&env).await;
    webhook_ingest(js).await;
    sip_setup(js).await;
    ingest_share(&env).await;
    env.cleanup().await;
    let env = TestEnv::new().await;
    watch_lag(&env).await;
    env.cleanup().await;
    let env = TestEnv::new().await;
    export_records(&env).await;
    env.cleanup().await;
    analysis_quality();
}

/// `contact_import` and `call_attempts` (the 20,000-contact campaign): the attempts rate.
async fn call_attempts() -> f64 {
    let (import_rate, contacts, attempts, calls) = import_and_dial("call_attempts_cpu").await;
    report(
        "contact_import",
        import_rate,
        "contacts/s",
        &format!(
            "{contacts} contacts through AddContacts, validated and deduplicated (target 50000)"
        ),
    );
    report("call_attempts", attempts, "attempts/s", &format!("{calls} attempts: dialer -> simulator (no waiting) -> release -> recall/finish (target 500)"));
    attempts
}

/// `call_attempts_after_1m`: the 20,000-contact campaign again, right after the 1M campaign.
/// This machine's speed drifts by a fifth within minutes, so the 1M campaign is compared with
/// the mean of the 20,000-contact figure measured right before and right after it.
async fn call_attempts_after() -> f64 {
    let (_, _, attempts, calls) = import_and_dial("call_attempts_after_1m_cpu").await;
    report(
        "call_attempts_after_1m",
        attempts,
        "attempts/s",
        &format!("{calls} attempts: call_attempts again, right after the 1M campaign"),
    );
    attempts
}

/// `screening_throughput`: whether it ran.
async fn screening_throughput() -> bool {
    match screening::run(n(100_000), 1_000).await {
        Ok(x) => {
            report(
                "screening_throughput",
                x.numbers as f64 / x.total_s,
                "numbers/s",
                &format!(
                    "{} numbers in {} batches through create, send and query in {:.1} s \
                     (upload {:.1} s), {} found invalid; files written per batch (JSON and XLSX \
                     in, raw JSON and XLSX out), the simulator's results ready at once",
                    x.numbers, x.batches, x.total_s, x.create_s, x.invalid
                ),
            );
            true
        }
        Err(e) => {
            eprintln!("waihu-bench: the screening run failed: {e}");
            false
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // As the services' own `main` does: the record service runs in this process for the store
    // ingest figure.
    if let Err(e) = waihu_runtime::memory::no_transparent_huge_pages() {
        eprintln!("waihu-bench: cannot turn transparent huge pages off: {e}");
    }
    if std::env::var("BENCH_TRACE").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("BENCH_TRACE"))
            .with_writer(std::io::stderr)
            .init();
    }
    let only = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("waihu-bench: {e}\n\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    eprintln!(
        "waihu bench (scale {}): {}",
        scale(),
        match only {
            Only::All => {
                "raw ceilings first, then the pipeline, the 1M campaign and the rules campaigns, \
                 in one run"
            }
            Only::Base => "raw ceilings first, then the pipeline, in one run",
            Only::Ingest => "the PostgreSQL ceiling and store ingest, in one run",
            Only::Watch => "the PostgreSQL ceiling and the WatchTaskStats lag, in one run",
            Only::Export => "the PostgreSQL ceiling and the 1M-record export, in one run",
            Only::Analysis => "the analyzer's quality on the held-out set and its speed",
            Only::Screening => "the PostgreSQL ceiling and batch screening, in one run",
            Only::Webhooks => "the JetStream ceiling and webhook ingestion, in one run",
            Only::Sip => "the JetStream ceiling and SIP call setup, in one run",
            Only::Million => "the 1M campaign only",
            Only::Dial => "the 20,000-contact campaign, then the 1M campaign, in one run",
            Only::Rules => "the rules campaigns only (every rule on, then off)",
        }
    );
    if only == Only::Webhooks {
        let env = TestEnv::new().await;
        let js = raw_jetstream(&env).await;
        env.cleanup().await;
        webhook_ingest(js).await;
        return std::process::ExitCode::SUCCESS;
    }
    if only == Only::Sip {
        let env = TestEnv::new().await;
        let js = raw_jetstream(&env).await;
        env.cleanup().await;
        sip_setup(js).await;
        return std::process::ExitCode::SUCCESS;
    }
    if only == Only::Watch {
        let env = TestEnv::new().await;
        postgres_ceiling(&env).await;
        watch_lag(&env).await;
        env.cleanup().await;
        return std::process::ExitCode::SUCCESS;
    }
    if only == Only::Analysis {
        analysis_quality();
        return std::process::ExitCode::SUCCESS;
    }
    if only == Only::Screening {
        let env = TestEnv::new().await;
        postgres_ceiling(&env).await;
        env.cleanup().await;
        return if screening_throughput().await {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        };
    }
    if only == Only::Export {
        let env = TestEnv::new().await;
        postgres_ceiling(&env).await;
        export_records(&env).await;
        env.cleanup().await;
        return std::process::ExitCode::SUCCESS;
    }
    if only == Only::Ingest {
        let env = TestEnv::new().await;
        ingest_share(&env).await;
        env.cleanup().await;
        return std::process::ExitCode::SUCCESS;
    }
    if matches!(only, Only::All | Only::Base) {
        base().await;
        if !screening_throughput().await {
            return std::process::ExitCode::FAILURE;
        }
    }
    // The 20,000-contact campaign runs right before the 1M campaign it is compared with, and
    // again right after it (`call_attempts_after_1m`), so the two meet the machine in the same
    // state as far as can be: its speed drifts by a fifth within minutes.
    let call_attempts = if matches!(only, Only::All | Only::Base | Only::Dial) {
        Some(call_attempts().await)
    } else {
        None
    };
    if matches!(only, Only::All | Only::Million | Only::Dial) {
        let scale = scale();
        // The same 20,000 contacts as processes on the 1M campaign's lines, right before it.
        let small = if only == Only::Million {
            None
        } else {
            match million::run(million::Shape::SMALL, scale).await {
                Ok(m) => {
                    m.report_small();
                    Some(m.attempts_rate())
                }
                Err(e) => {
                    eprintln!("waihu-bench: the 20,000-contact campaign as processes failed: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        };
        match million::run(million::Shape::MILLION, scale).await {
            Ok(m) => {
                let after = match call_attempts {
                    Some(_) => Some(call_attempts_after().await),
                    None => None,
                };
                m.report(call_attempts, after, small)
            }
            Err(e) => {
                eprintln!("waihu-bench: the million-contact campaign failed: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if matches!(only, Only::All | Only::Rules) {
        let scale = scale();
        let mut rates = Vec::new();
        for rules in [true, false] {
            let shape = million::Shape::rules(rules);
            match million::run(shape, scale).await {
                Ok(m) => {
                    m.report_rules();
                    rates.push(m.attempts_rate());
                }
                Err(e) => {
                    eprintln!("waihu-bench: the rules campaign (rules {rules}) failed: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        if let [on, off] = rates[..] {
            report_with(
                "rules_cost",
                (1.0 - on / off.max(1e-9)) * 100.0,
                1,
                "%",
                "1 - rules_on / rules_off (target under 20)",
            );
        }
    }
    std::process::ExitCode::SUCCESS
}
