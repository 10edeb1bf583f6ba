//! Campaigns with the four services as separate processes from the release binaries, in a
//! database and NATS prefix of their own: the million-contact campaign (100 tasks of 10,000
//! contacts on 20 lines), and the rules campaigns (10 tasks of 10,000 contacts on 20 lines, with
//! every dialing rule on, and off).
//!
//! Figures: the import rate of the whole list, call attempts per second over a steady-state
//! window (not the whole campaign), the stats lag (event occurred -> projected) over that window,
//! and each service's resident memory.

use std::{
    panic::AssertUnwindSafe,
    time::{Duration, Instant},
};

use futures::FutureExt;
use tonic::transport::Channel;
use waihu_bus::{Bus, BusConfig};
use waihu_e2e::{phones, spec, StatsServiceClient, TaskServiceClient};
use waihu_events::pb;
use waihu_testkit::{nats_url, server_url, with_database};

use crate::{
    procs::{Peak, Sampler, Services},
    report, report_cpu_per, report_with,
};

const CONTACTS_PER_TASK: usize = 10_000;
const LINES: usize = 20;

/// What a campaign runs.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub tasks: usize,
    /// Every dialing rule on: a calling window, paced and capped lines, a per-number daily
    /// limit, mixed priorities, retries by cause and a do-not-call list (1% of the numbers).
    pub rules: bool,
    /// Measured over the whole campaign (as the in-process 20,000-contact campaign is) rather
    /// than over a steady-state window after the ramp-up.
    pub whole: bool,
}

impl Shape {
    pub const MILLION: Shape = Shape {
        tasks: 100,
        rules: false,
        whole: false,
    };
    /// 20,000 contacts (2 tasks) on the same lines and the same processes as the 1M campaign:
    /// the 1M campaign against it is the cost of scale alone, without the in-process
    /// campaign's layout (one process, one task, one line).
    pub const SMALL: Shape = Shape {
        tasks: 2,
        rules: false,
        whole: true,
    };

    /// The rules campaigns: 10 tasks, every rule on or none.
    pub fn rules(rules: bool) -> Shape {
        Shape {
            tasks: 10,
            rules,
            whole: false,
        }
    }

    fn name(&self) -> String {
        if self.tasks == Shape::MILLION.tasks {
            "1m".to_string()
        } else if self.whole {
            format!("{} contacts", self.tasks * CONTACTS_PER_TASK)
        } else {
            format!("rules {}", if self.rules { "on" } else { "off" })
        }
    }
}

const LINE_CONCURRENCY: u32 = 100;
/// The services in start order (the store writer first: it is the one that migrates most).
const SERVICES: [&str; 4] = ["record", "task", "dialer", "provider-adapter"];

pub struct Million {
    shape: Shape,
    contacts: usize,
    import_rate: f64,
    attempts_rate: f64,
    window: Duration,
    window_calls: u64,
    how: &'static str,
    lag: Option<(f64, f64, i64)>,
    memory: Vec<(&'static str, Peak, f64)>,
    /// CPU seconds by part over the window.
    cpu: Vec<(&'static str, f64)>,
}

impl Million {
    pub fn attempts_rate(&self) -> f64 {
        self.attempts_rate
    }

    /// The rules campaigns' lines: attempts/s with every rule on or off, and the dialer's RSS.
    pub fn report_rules(&self) {
        let name = if self.shape.rules { "on" } else { "off" };
        report(
            &format!("call_attempts_rules_{name}"),
            self.attempts_rate,
            "attempts/s",
            &format!(
                "{} attempts in {:.1} s {}, {} contacts in {} tasks, {LINES} lines x {LINE_CONCURRENCY}{}",
                self.window_calls,
                self.window.as_secs_f64(),
                self.how,
                self.contacts,
                self.shape.tasks,
                if self.shape.rules {
                    ": window, cps 1000 and daily cap per line, per-number limit 3, priorities \
                     0-2, retries by cause, 1% do-not-call"
                } else {
                    ": no rules"
                }
            ),
        );
        if let Some((_, peak, _)) = self.memory.iter().find(|(n, _, _)| *n == "dialer") {
            report(
                &format!("rss_peak_dialer_rules_{name}"),
                peak.mib(),
                "MiB",
                "",
            );
        }
    }

    /// The 20,000-contact campaign as processes ([`Shape::SMALL`]): attempts/s and each
    /// part's CPU per attempt.
    pub fn report_small(&self) {
        report(
            "call_attempts_20k_processes",
            self.attempts_rate,
            "attempts/s",
            &format!(
                "{} attempts in {:.1} s {}, {} contacts in {} tasks, {LINES} lines x \
                 {LINE_CONCURRENCY}, services as processes",
                self.window_calls,
                self.window.as_secs_f64(),
                self.how,
                self.contacts,
                self.shape.tasks
            ),
        );
        self.report_cpu("call_attempts_20k_processes_cpu");
    }

    /// Each part's CPU per attempt over the window, as `<name>_<part>` lines.
    fn report_cpu(&self, name: &str) {
        let parts: Vec<_> = self
            .cpu
            .iter()
            .map(|(part, secs)| (*part, *secs, String::new()))
            .collect();
        report_cpu_per(name, &parts, self.window_calls, "us/attempt");
    }

    /// Prints the section's `bench` lines; `call_attempts` is the base section's figure, if
    /// run, `after` the same campaign's right after this one, if run, and `small` the
    /// 20,000-contact campaign's as processes, if run.
    pub fn report(&self, call_attempts: Option<f64>, after: Option<f64>, small: Option<f64>) {
        report(
            "contact_import_1m",
            self.import_rate,
            "contacts/s",
            &format!(
                "{} contacts into {} tasks through AddContacts, one task after another",
                self.contacts, self.shape.tasks
            ),
        );
        report(
            "call_attempts_1m",
            self.attempts_rate,
            "attempts/s",
            &format!(
                "{} attempts in {:.1} s {}, {} contacts loaded, {LINES} lines x {LINE_CONCURRENCY}",
                self.window_calls,
                self.window.as_secs_f64(),
                self.how,
                self.contacts
            ),
        );
        self.report_cpu("call_attempts_1m_cpu");
        match call_attempts.filter(|b| *b > 0.0) {
            Some(before) => {
                let after = after.filter(|a| *a > 0.0);
                let (base, of) = match after {
                    Some(after) => (
                        (before + after) / 2.0,
                        "the mean of call_attempts (right before) and call_attempts_after_1m \
                         (right after)",
                    ),
                    None => (before, "call_attempts"),
                };
                report_with(
                    "call_attempts_1m_vs_20k",
                    self.attempts_rate / base * 100.0,
                    1,
                    "%",
                    &format!("call_attempts_1m / {of} (target 85)"),
                );
                if after.is_some() {
                    report_with(
                        "call_attempts_1m_vs_20k_before",
                        self.attempts_rate / before * 100.0,
                        1,
                        "%",
                        "call_attempts_1m / call_attempts (the 20,000 contacts before it only)",
                    );
                }
            }
            None => {
                eprintln!("      call_attempts_1m_vs_20k needs the base section too (no --only)")
            }
        }
        if let Some(small) = small.filter(|s| *s > 0.0) {
            report_with(
                "call_attempts_1m_vs_20k_processes",
                self.attempts_rate / small * 100.0,
                1,
                "%",
                "call_attempts_1m / call_attempts_20k_processes: the same processes and lines, \
                 50 times the contacts",
            );
        }
        match self.lag {
            Some((p50, p99, events)) => {
                let note = format!(
                    "{events} events recorded in the window: occurred_at (producer) -> recorded_at (store writer's transaction)"
                );
                report_with("stats_lag_p50", p50, 1, "ms", &note);
                report_with("stats_lag_p99", p99, 1, "ms", "");
            }
            None => eprintln!("      stats_lag: no events recorded in the window"),
        }
        for (name, peak, _) in &self.memory {
            report(&format!("rss_peak_{name}"), peak.mib(), "MiB", "");
        }
        for (name, _, end) in &self.memory {
            report(&format!("rss_end_{name}"), *end, "MiB", "");
        }
        eprintln!("      rss: peak = max VmHWM/VmRSS sampled every second; end = VmRSS at the window's end");
    }
}

/// Runs the campaign in a fresh database and prefix, and removes both (and stops the services)
/// whatever happens, Ctrl-C and panics included.
pub async fn run(shape: Shape, scale: f64) -> Result<Million, String> {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let database = format!("waihu_b_{id}");
    let prefix = format!("b{id}");
    let dir = std::env::temp_dir().join(format!("waihu-bench-{id}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let admin_url = with_database(&server_url(), "postgres");
    let admin = waihu_store::connect(&admin_url, 1)
        .await
        .map_err(|e| format!("PostgreSQL unreachable (DATABASE_URL): {e}"))?;
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&admin)
        .await
        .map_err(|e| format!("cannot create database {database}: {e}"))?;
    eprintln!(
        "waihu bench {}: database {database}, prefix {prefix}, service logs in {}",
        shape.name(),
        dir.display()
    );

    let mut services = Services::new(dir.clone());
    let database_url = with_database(&server_url(), &database);
    let body = AssertUnwindSafe(campaign(
        shape,
        &mut services,
        &database_url,
        &prefix,
        scale,
    ))
    .catch_unwind();
    let outcome = tokio::select! {
        r = body => r.unwrap_or_else(|panic| Err(format!("panicked: {}", panic_text(&*panic)))),
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };

    // Cleanup, in every case.
    services.stop().await;
    let complaints = services.complaints(5);
    let _ = sqlx::query(&format!(
        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
    ))
    .execute(&admin)
    .await
    .map_err(|e| eprintln!("      could not drop database {database}: {e}"));
    admin.close().await;
    match Bus::connect(&BusConfig::local(nats_url(), &prefix)).await {
        Ok(bus) => {
            let _ = bus.delete_streams().await;
        }
        Err(e) => eprintln!("      could not delete the streams of prefix {prefix}: {e}"),
    }

    for (name, count, lines) in &complaints {
        eprintln!("      {name}: {count} WARN/ERROR log lines, the first:");
        for l in lines {
            eprintln!("        {l}");
        }
    }
    if outcome.is_err() || !complaints.is_empty() {
        eprintln!("      service logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

async fn campaign(
    shape: Shape,
    services: &mut Services,
    database_url: &str,
    prefix: &str,
    scale: f64,
) -> Result<Million, String> {
    let env = [
        ("WAIHU_NATS_URL", nats_url()),
        ("WAIHU_DATABASE_URL", database_url.to_string()),
        ("WAIHU_PREFIX", prefix.to_string()),
        ("WAIHU_SIMULATOR__TIME_SCALE", "0".to_string()),
        ("WAIHU_PROVIDER__MAX_IN_FLIGHT", "5000".to_string()),
        // The bench runs at any hour.
        ("WAIHU_DIALER__DEFAULT_WINDOW", "00:00-24:00".to_string()),
        (
            "RUST_LOG",
            std::env::var("WAIHU_BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".to_string()),
        ),
        // The bench's clients send no token: the services take them as the development tenant
        // (the RPCs here are a handful; the campaign itself runs on events, not RPCs).
        ("WAIHU_AUTH__DEV_MODE", "true".to_string()),
    ];
    for name in SERVICES {
        services.start(name, &env).await?;
    }
    let mut providers =
        waihu_e2e::ProviderServiceClient::connect(services.addr("provider-adapter")?)
            .await
            .map_err(|e| format!("provider adapter unreachable: {e}"))?;
    for i in 1..=LINES {
        let mut line = waihu_e2e::Line {
            id: format!("sim-{i}"),
            max_concurrent: LINE_CONCURRENCY,
        }
        .to_pb();
        if shape.rules {
            line.cps = 1000.0;
            line.daily_cap = 10_000_000;
        }
        providers
            .create_line(pb::CreateLineRequest {
                line: Some(line),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("CreateLine: {e}"))?;
    }
    let sampler = Sampler::start(services);

    let mut tasks = TaskServiceClient::connect(services.addr("task")?)
        .await
        .map_err(|e| format!("task service unreachable: {e}"))?;
    let stats = StatsServiceClient::connect(services.addr("record")?)
        .await
        .map_err(|e| format!("record service unreachable: {e}"))?;

    // The list: distinct numbers across the whole campaign, so within every task too.
    let per_task = ((CONTACTS_PER_TASK as f64 * scale) as usize).max(1);
    let contacts = per_task * shape.tasks;
    let list = phones(contacts, 7);
    let mut ids = Vec::with_capacity(shape.tasks);
    if shape.rules {
        let mut dialer = waihu_e2e::DialerServiceClient::connect(services.addr("dialer")?)
            .await
            .map_err(|e| format!("dialer unreachable: {e}"))?;
        let listed: Vec<String> = list.iter().step_by(100).cloned().collect();
        for chunk in listed.chunks(5000) {
            dialer
                .add_do_not_call(pb::DoNotCallRequest {
                    phones: chunk.to_vec(),
                    reason: "bench".into(),
                })
                .await
                .map_err(|e| format!("AddDoNotCall: {e}"))?;
        }
    }
    let mut importing = Duration::ZERO;
    for (i, chunk) in list.chunks(per_task).enumerate() {
        let task = tasks
            .create_task(pb::CreateTaskRequest {
                spec: Some(if shape.rules {
                    pb::TaskSpec {
                        priority: (i % 3) as u32,
                        daily_call_limit: 3,
                        window: Some(pb::CallingWindow {
                            hours: waihu_e2e::open_now(),
                            holidays: vec!["2001-01-01".into()],
                            ..Default::default()
                        }),
                        retry: Some(pb::RetryPolicy {
                            rules: vec![pb::RetryRule {
                                causes: vec![17],
                                tries: 1,
                                interval_seconds: 0,
                            }],
                            retry_rejected: false,
                        }),
                        ..spec(&format!("bench-rules-{i}"), 1, 0)
                    }
                } else {
                    spec(&format!("bench-1m-{i}"), 1, 0)
                }),
            })
            .await
            .map_err(|e| format!("CreateTask: {e}"))?
            .into_inner();
        let t = Instant::now();
        let reply = import(&mut tasks, &task.task_id, chunk).await?;
        importing += t.elapsed();
        if reply.accepted as usize != chunk.len() {
            return Err(format!(
                "task {i}: {} of {} contacts accepted ({} duplicates, {} rejected, e.g. {:?})",
                reply.accepted,
                chunk.len(),
                reply.duplicates,
                reply.rejected_total,
                reply.rejected.first()
            ));
        }
        ids.push(task.task_id);
        services.check_alive()?;
    }
    let import_rate = contacts as f64 / importing.as_secs_f64();
    eprintln!(
        "      imported {contacts} contacts in {:.1} s; starting {} tasks",
        importing.as_secs_f64(),
        shape.tasks
    );

    let start = Sample {
        at: Instant::now(),
        wall: chrono::Utc::now(),
        placed: 0,
        cpu: Cpu::now(services),
    };
    for id in &ids {
        tasks
            .start_task(pb::TaskRef {
                task_id: id.clone(),
            })
            .await
            .map_err(|e| format!("StartTask: {e}"))?;
    }

    // Steady state: skip the ramp-up, then count calls placed over the window. A small campaign
    // may finish inside the window; then the window ends where the last call was counted.
    let skip = Duration::from_secs_f64((10.0 * scale).clamp(2.0, 10.0));
    // A whole-campaign measure has no window: it runs from the start to the last call.
    let window = if shape.whole {
        Duration::MAX
    } else {
        Duration::from_secs_f64((60.0 * scale).max(20.0))
    };
    let stall_limit = Duration::from_secs(60);
    // WAIHU_BENCH_TRACE=1 prints every second's totals (to see a campaign's shape).
    let trace = std::env::var("WAIHU_BENCH_TRACE").is_ok_and(|v| v == "1");
    // Progress is read from the record service's counters (the rows GetTaskStats reads) in one
    // query a second: a GetTaskStats per task every second cost the 1M campaign 100 RPCs and
    // about 600 statements a second (the small campaign 2 and 12), load the campaigns it
    // compares did not share. The API is checked against the query at the end.
    let progress = waihu_store::connect(database_url, 1)
        .await
        .map_err(|e| format!("bench database: {e}"))?;
    let task_ids: Vec<uuid::Uuid> = ids
        .iter()
        .map(|id| id.parse().map_err(|e| format!("task id {id}: {e}")))
        .collect::<Result<_, String>>()?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut first: Option<Sample> = shape.whole.then(|| start.clone());
    let mut last_change = start.clone();
    let (end, how) = loop {
        tick.tick().await;
        services.check_alive()?;
        let (at, wall, cpu) = (Instant::now(), chrono::Utc::now(), Cpu::now(services));
        let t = totals(&progress, &task_ids).await?;
        if trace {
            eprintln!(
                "      {:>6.1} s: placed {} released {} finished {}",
                (at - start.at).as_secs_f64(),
                t.placed,
                t.released,
                t.finished
            );
        }
        let now = Sample {
            at,
            wall,
            placed: t.placed,
            cpu,
        };
        if now.placed != last_change.placed {
            last_change = now.clone();
        } else if now.at - last_change.at > stall_limit {
            return Err(format!(
                "stalled: calls_placed stuck at {} for {} s ({} of {contacts} contacts finished)",
                now.placed,
                stall_limit.as_secs(),
                t.finished
            ));
        }
        if first.is_none() && now.at - start.at >= skip {
            first = Some(now.clone());
        }
        let done = t.finished >= contacts as u64 && t.released == t.placed;
        if let Some(f) = &first {
            if now.at - f.at >= window {
                break (now, "in the steady-state window");
            }
            if done && last_change.at > f.at {
                break (
                    last_change,
                    if shape.whole {
                        "over the whole campaign"
                    } else {
                        "in the window, cut short by the campaign's end"
                    },
                );
            }
        }
        if done {
            // Finished before (or right as) the window opened: the whole campaign's rate.
            first = Some(start.clone());
            break (
                last_change,
                "over the whole campaign (it ended before the window)",
            );
        }
    };
    let first = first.ok_or("no window")?;
    // The query and the API agree: counters only grow, so the API, read after, shows at least
    // what the query last saw.
    let (api, read) = (
        api_totals(&stats, &ids).await?,
        totals(&progress, &task_ids).await?,
    );
    progress.close().await;
    if api.placed < end.placed || api.placed > read.placed {
        return Err(format!(
            "progress query and GetTaskStats disagree: calls placed {} by the query at the \
             window's end, {} by the API after, {} by the query after that",
            end.placed, api.placed, read.placed
        ));
    }
    let memory = sampler.finish();
    let secs = (end.at - first.at).as_secs_f64().max(1e-3);
    let window_calls = end.placed - first.placed;
    let cpu = end.cpu.since(&first.cpu);
    let lag = stats_lag(database_url, first.wall, end.wall).await?;
    Ok(Million {
        shape,
        contacts,
        import_rate,
        attempts_rate: window_calls as f64 / secs,
        window: end.at - first.at,
        window_calls,
        how,
        lag,
        memory,
        cpu,
    })
}

#[derive(Clone)]
struct Sample {
    at: Instant,
    wall: chrono::DateTime<chrono::Utc>,
    placed: u64,
    cpu: Cpu,
}

/// CPU seconds so far: PostgreSQL, NATS and the machine, and each service's process.
#[derive(Clone)]
struct Cpu {
    shared: waihu_e2e::cpu::CpuSample,
    services: Vec<(&'static str, f64)>,
}

impl Cpu {
    fn now(services: &Services) -> Cpu {
        Cpu {
            shared: waihu_e2e::cpu::CpuSample::now(),
            services: services
                .list
                .iter()
                .map(|s| {
                    let secs = waihu_e2e::cpu::process_cpu_seconds(s.pid).unwrap_or_default();
                    (s.name, secs)
                })
                .collect(),
        }
    }

    /// CPU seconds by part between `earlier` and this sample: each service, then `postgres`,
    /// `nats`, `bench`, `other` and `idle`.
    fn since(&self, earlier: &Cpu) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = self
            .services
            .iter()
            .zip(&earlier.services)
            .map(|((name, b), (_, a))| (*name, (b - a).max(0.0)))
            .collect();
        if let Some(spent) = self.shared.since(&earlier.shared) {
            let services: f64 = out.iter().map(|(_, s)| s).sum();
            out.push(("postgres", spent.postgres));
            out.push(("nats", spent.nats));
            out.push(("bench", spent.this));
            // The services are not the bench's children: `other` holds them, and the rest
            // (the kernel's own work, other programs).
            out.push(("other", (spent.other - services).max(0.0)));
            out.push(("idle", spent.idle));
        }
        out
    }
}

struct Totals {
    placed: u64,
    released: u64,
    finished: u64,
}

/// The campaign's totals from the record service's counters, in one query.
async fn totals(db: &sqlx::PgPool, ids: &[uuid::Uuid]) -> Result<Totals, String> {
    use waihu_record::projection::{counter_rows, keys, Tables};
    let (placed, released, finished): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT coalesce(sum(r.v) FILTER (WHERE r.k = $2), 0)::bigint,
                coalesce(sum(r.v) FILTER (WHERE r.k = $3), 0)::bigint,
                coalesce(sum(r.v) FILTER (WHERE r.k = $4), 0)::bigint
         FROM ({}) AS r(task_id, k, v)
         WHERE r.task_id = ANY($1)",
        counter_rows(&Tables::live().counters)
    ))
    .bind(ids)
    .bind(keys::CALLS_PLACED)
    .bind(keys::CALLS_RELEASED)
    .bind(keys::CONTACTS_FINISHED)
    .fetch_one(db)
    .await
    .map_err(|e| format!("progress query: {e}"))?;
    Ok(Totals {
        placed: placed.max(0) as u64,
        released: released.max(0) as u64,
        finished: finished.max(0) as u64,
    })
}

/// The campaign's totals through `GetTaskStats`, task by task.
async fn api_totals(stats: &StatsServiceClient<Channel>, ids: &[String]) -> Result<Totals, String> {
    let all = futures::future::try_join_all(ids.iter().map(|id| {
        let mut c = stats.clone();
        let task_id = id.clone();
        async move {
            c.get_task_stats(pb::GetTaskStatsRequest { task_id })
                .await
                .map(|r| r.into_inner())
        }
    }))
    .await
    .map_err(|e| format!("GetTaskStats: {e}"))?;
    Ok(all.iter().fold(
        Totals {
            placed: 0,
            released: 0,
            finished: 0,
        },
        |t, s| Totals {
            placed: t.placed + s.calls_placed,
            released: t.released + s.calls_released,
            finished: t.finished + s.contacts_finished,
        },
    ))
}

/// Imports `phones` through AddContacts (`waihu_e2e::try_import`).
async fn import(
    client: &mut TaskServiceClient<Channel>,
    task_id: &str,
    phones: &[String],
) -> Result<pb::AddContactsResponse, String> {
    waihu_e2e::try_import(client, task_id, phones)
        .await
        .map_err(|e| format!("AddContacts: {e}"))
}

/// p50 and p99 of occurred_at -> recorded_at (ms) of the events recorded in [from, to), with
/// their count; None when there were none.
async fn stats_lag(
    database_url: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(f64, f64, i64)>, String> {
    let pool = waihu_store::connect(database_url, 1)
        .await
        .map_err(|e| format!("bench database: {e}"))?;
    // The event store's table, wherever its schema is (public today, maybe `store` later).
    let schema: Option<String> = sqlx::query_scalar(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'events'
         ORDER BY (table_schema = 'store') DESC, (table_schema = 'public') DESC LIMIT 1",
    )
    .fetch_optional(&pool)
    .await
    .map_err(|e| format!("looking for the events table: {e}"))?;
    let schema = schema.ok_or("no events table in the bench database")?;
    let row: (Option<Vec<f64>>, i64) = sqlx::query_as(&format!(
        "SELECT percentile_cont(ARRAY[0.5, 0.99]::float8[]) WITHIN GROUP
                (ORDER BY (extract(epoch FROM recorded_at - occurred_at) * 1000)::float8),
                count(*)
         FROM \"{schema}\".events WHERE recorded_at >= $1 AND recorded_at < $2"
    ))
    .bind(from)
    .bind(to)
    .fetch_one(&pool)
    .await
    .map_err(|e| format!("stats lag query: {e}"))?;
    pool.close().await;
    Ok(match row {
        (Some(p), n) if p.len() == 2 && n > 0 => Some((p[0], p[1], n)),
        _ => None,
    })
}
