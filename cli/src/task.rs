//! `waihu task ...`

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Subcommand;
use tokio_stream::StreamExt;
use tonic::{metadata::MetadataValue, transport::Channel, Request};
use waihu_proto::v1::{
    self as pb, stats_service_client::StatsServiceClient, task_service_client::TaskServiceClient,
};

use crate::{
    display,
    import::{import_csv, print_import},
    status, Cli, CliError,
};

// Parsed once per run: the size of `Create`'s flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum TaskCommand {
    /// Create a task; prints its id.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value = "")]
        script_id: String,
        /// 0..2, higher dials first.
        #[arg(long, default_value_t = 0)]
        priority: u32,
        /// Calls after the first to a busy or unanswered contact.
        #[arg(long, default_value_t = 0)]
        recall_count: u32,
        /// Seconds between attempts.
        #[arg(long, default_value_t = 600)]
        recall_interval: u32,
        /// Calls a day to one number (0 = no limit).
        #[arg(long, default_value_t = 0)]
        daily_call_limit: u32,
        /// RFC 3339 time before which nothing is dialed.
        #[arg(long)]
        scheduled_start: Option<String>,
        /// The lines it may dial on: one id, several comma-separated, or "any" (the default).
        #[arg(long, visible_alias = "line", default_value = "")]
        caller_line: String,
        /// Calling hours, `HH:MM-HH:MM` (repeat for more ranges; default 09:00-20:00, or the
        /// dialer's default window).
        #[arg(long = "window", value_name = "HH:MM-HH:MM")]
        window: Vec<String>,
        /// ISO weekdays it calls on: `1-5`, `1,3,5`, `6-7` (default every day).
        #[arg(long)]
        weekdays: Option<String>,
        /// A date nothing is dialed on, `YYYY-MM-DD` (repeat for more).
        #[arg(long = "holiday", value_name = "DATE")]
        holidays: Vec<String>,
        /// IANA time zone of the window for numbers that tell none (default Asia/Shanghai).
        #[arg(long)]
        timezone: Option<String>,
        /// Dial only numbers in the caller line's city (seed 000 number_city_limit).
        #[arg(long)]
        number_city_limit: bool,
        /// Provider-campaign mode (seed 001): hand due contacts over to the line's provider in
        /// campaigns of at most this many (its campaign API dials them); 0 = dial each call.
        #[arg(long, default_value_t = 0)]
        campaign_size: u32,
        /// Comma-separated.
        #[arg(long, default_value = "")]
        tags: String,
        #[arg(long, default_value = "")]
        source: String,
        /// Recalls for some hangup causes, `CAUSES:TRIES/INTERVAL_SECONDS` (repeat for more),
        /// e.g. `17:3/600` (busy: 3 more calls, 10 minutes apart) or `18,19:2/7200`.
        #[arg(long = "retry", value_name = "CAUSES:TRIES/SECONDS", value_parser = parse_retry_rule)]
        retry: Vec<pb::RetryRule>,
        /// Call a contact again after CALL_REJECTED 21 (default: the refusal is final).
        #[arg(long)]
        retry_rejected: bool,
    },
    /// Import contacts from a CSV file with a header row: `phone` is required; `name`,
    /// `external_id` are recognised; every other column becomes a variable.
    Import {
        task_id: String,
        csv: std::path::PathBuf,
    },
    Start {
        task_id: String,
    },
    Pause {
        task_id: String,
    },
    Resume {
        task_id: String,
    },
    Cancel {
        task_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    Get {
        task_id: String,
    },
    List {
        /// PENDING, RUNNING, PAUSED, COMPLETED or CANCELLED.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Task statistics; `--watch` refreshes until the task ends.
    Stats {
        task_id: String,
        #[arg(long)]
        watch: bool,
    },
    /// Why a contact is not being called now: the rule holding it back, and until when.
    Explain {
        task_id: String,
        contact_no: u32,
    },
    /// A task's contacts, a page at a time, each with what its calls came to: calls, first
    /// call, talk time, result, intention and recording (seed 000 getTaskDetail).
    Contacts {
        /// Task id or number.
        task_id: String,
        /// Contacts a page.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        size: u32,
        /// Contacts after this contact number (the page line prints the next one).
        #[arg(long, default_value_t = 0)]
        after: u32,
    },
}

/// The `task contacts` table: each contact with its calls.
pub fn contacts_table(contacts: &[pb::ListedContact], calls: &[pb::ContactCalls]) -> String {
    let by_no: std::collections::HashMap<u32, &pb::ContactCalls> =
        calls.iter().map(|c| (c.contact_no, c)).collect();
    let rows: Vec<Vec<String>> = contacts
        .iter()
        .map(|c| {
            let k = by_no.get(&c.contact_no);
            vec![
                c.contact_no.to_string(),
                c.phone.clone(),
                display::or_dash(&c.name).to_string(),
                k.map_or("0".into(), |k| k.calls.to_string()),
                k.map_or("-".into(), |k| display::time(&k.first_call_at)),
                k.map_or("0.0".into(), |k| format!("{:.1}", k.talk_seconds)),
                if k.is_some_and(|k| k.in_call) {
                    "calling".into()
                } else {
                    display::outcome_name(c.outcome).to_string()
                },
                k.map_or("-", |k| display::or_dash(&k.intent)).to_string(),
                k.filter(|k| k.recording_call_number > 0)
                    .map_or("-".into(), |k| k.recording_call_number.to_string()),
            ]
        })
        .collect();
    display::columns(
        &[
            "NO",
            "PHONE",
            "NAME",
            "CALLS",
            "FIRST CALL",
            "TALK S",
            "RESULT",
            "INTENT",
            "RECORDING",
        ],
        &[0, 3, 5],
        &rows,
    )
}

/// `1-5`, `1,3,5`, `6-7`: ISO weekdays.
fn parse_weekdays(s: &str) -> Result<Vec<u32>, CliError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let day = |d: &str| {
            d.trim()
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=7).contains(d))
                .ok_or_else(|| format!("--weekdays {s:?}: {d:?} is not a weekday 1-7"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                if a > b {
                    return Err(format!("--weekdays {s:?}: {part} runs backwards").into());
                }
                out.extend(a..=b);
            }
            None => out.push(day(part)?),
        }
    }
    Ok(out)
}

pub fn with_tenant<T>(tenant: &str, msg: T) -> Result<Request<T>, CliError> {
    request(tenant, crate::auth::current(), msg)
}

/// A deployment-wide request: it carries the operator's token ([`crate::auth::operator`]).
pub fn as_operator<T>(cli: &Cli, msg: T) -> Result<Request<T>, CliError> {
    match crate::auth::operator(cli) {
        Some((token, tenant)) => request(tenant, Some(token), msg),
        None => request(&cli.tenant, crate::auth::current(), msg),
    }
}

fn request<T>(tenant: &str, token: Option<&str>, msg: T) -> Result<Request<T>, CliError> {
    let mut r = Request::new(msg);
    let v: MetadataValue<_> = tenant
        .parse()
        .map_err(|_| format!("tenant {tenant:?} is not valid ASCII"))?;
    r.metadata_mut().insert("x-tenant-id", v);
    if let Some(token) = token {
        let v: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the token is not valid ASCII".to_string())?;
        r.metadata_mut().insert("authorization", v);
    }
    Ok(r)
}

pub async fn task_client(cli: &Cli) -> Result<TaskServiceClient<Channel>, CliError> {
    Ok(TaskServiceClient::new(crate::task_channel(cli).await?))
}

pub async fn stats_client(cli: &Cli) -> Result<StatsServiceClient<Channel>, CliError> {
    Ok(StatsServiceClient::new(crate::record_channel(cli).await?))
}

fn print_task(t: &pb::Task) {
    let name = t.spec.as_ref().map(|s| s.name.as_str()).unwrap_or("");
    println!(
        "{:>6}  {}  {:<10} {:>7}/{:<7} {}",
        t.number,
        t.task_id,
        display::status_name(t.status),
        t.contacts_finished,
        t.contacts_total,
        name
    );
}

/// The task's UUID: `task` itself when it is one, else the task service's answer for a task
/// number (the record service and the dialer know tasks by UUID only).
pub async fn task_uuid(cli: &Cli, task: &str) -> Result<String, CliError> {
    if uuid::Uuid::parse_str(task).is_ok() {
        return Ok(task.to_string());
    }
    Ok(task_client(cli)
        .await?
        .get_task(with_tenant(
            &cli.tenant,
            pb::TaskRef {
                task_id: task.to_string(),
            },
        )?)
        .await
        .map_err(|s| status("GetTask", s))?
        .into_inner()
        .task_id)
}

/// How long a watch waits for the record service to see a new task (NOT_FOUND at the start).
const NOT_FOUND_FOR: Duration = Duration::from_secs(30);
/// How long a broken watch keeps trying to open the stream again.
const RECONNECT_FOR: Duration = Duration::from_secs(60);
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(4);

/// When a `WatchTaskStats` stream that failed is opened again, and after how long.
struct Reopen {
    started: Instant,
    /// A snapshot has arrived: the task is known, NOT_FOUND is final from now on.
    known: bool,
    /// Since when the stream has been failing (None while it delivers).
    broken_since: Option<Instant>,
    delay: Duration,
}

impl Reopen {
    fn new(now: Instant) -> Self {
        Reopen {
            started: now,
            known: false,
            broken_since: None,
            delay: RETRY_FIRST,
        }
    }

    /// A snapshot arrived.
    fn delivered(&mut self) {
        self.known = true;
        self.broken_since = None;
        self.delay = RETRY_FIRST;
    }

    /// How long to wait before opening the stream again after `e`, or the error to give up
    /// with: NOT_FOUND before the first snapshot (the record service has not projected the new
    /// task yet) for up to [`NOT_FOUND_FOR`]; UNAVAILABLE, or a broken connection, for up to
    /// [`RECONNECT_FOR`] in a row, backing off.
    fn after(&mut self, e: tonic::Status, now: Instant) -> Result<Duration, CliError> {
        if !self.known
            && e.code() == tonic::Code::NotFound
            && now.duration_since(self.started) < NOT_FOUND_FOR
        {
            return Ok(RETRY_FIRST);
        }
        // A status that has a source error is the transport's (the connection broke), not
        // the server's answer.
        let broken =
            e.code() == tonic::Code::Unavailable || std::error::Error::source(&e).is_some();
        if broken {
            let since = *self.broken_since.get_or_insert(now);
            if now.duration_since(since) < RECONNECT_FOR {
                let d = self.delay;
                self.delay = (d * 2).min(RETRY_MAX);
                return Ok(d);
            }
        }
        Err(status("stats", e))
    }
}

/// Calls a second since the first snapshot.
struct Rate(Option<(Instant, u64)>);

impl Rate {
    fn of(&mut self, s: &pb::TaskStats) -> f64 {
        let (t0, c0) = *self.0.get_or_insert((Instant::now(), s.calls_placed));
        let secs = t0.elapsed().as_secs_f64();
        if secs > 0.5 {
            s.calls_placed.saturating_sub(c0) as f64 / secs
        } else {
            0.0
        }
    }
}

/// The task's status for the progress line, if the task service tells it within 2 s (the
/// statistics stream waits meanwhile).
async fn status_now(
    tasks: &mut TaskServiceClient<Channel>,
    r: Request<pb::TaskRef>,
) -> Option<i32> {
    match tokio::time::timeout(Duration::from_secs(2), tasks.get_task(r)).await {
        Ok(Ok(t)) => Some(t.into_inner().status),
        _ => None,
    }
}

/// Shows a task's statistics live (`WatchTaskStats`) until it has ended; returns the last
/// snapshot. `task` is a task id or number.
pub async fn watch_stats(cli: &Cli, task: &str) -> Result<pb::TaskStats, CliError> {
    let mut tasks = task_client(cli).await?;
    let task_ref = |task_id: &str| {
        with_tenant(
            &cli.tenant,
            pb::TaskRef {
                task_id: task_id.into(),
            },
        )
    };
    let t = tasks
        .get_task(task_ref(task)?)
        .await
        .map_err(|s| status("task", s))?
        .into_inner();
    let task_id = t.task_id;
    let mut task_status = t.status;
    let mut stats = stats_client(cli).await?;
    let mut progress = display::Progress::new(8);
    let mut rate = Rate(None);
    let mut reopen = Reopen::new(Instant::now());
    let mut last: Option<pb::TaskStats> = None;
    // The task's status (paused, ...) is the task service's: read again now and then, and the
    // line redrawn, whether snapshots come or not.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let opened = stats
            .watch_task_stats(with_tenant(
                &cli.tenant,
                pb::GetTaskStatsRequest {
                    task_id: task_id.clone(),
                },
            )?)
            .await;
        let mut stream = match opened {
            Ok(r) => r.into_inner(),
            Err(e) => {
                tokio::time::sleep(reopen.after(e, Instant::now())?).await;
                continue;
            }
        };
        let failed = loop {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = tick.tick() => {
                    if let Some(s) = status_now(&mut tasks, task_ref(&task_id)?).await {
                        task_status = s;
                    }
                    if let Some(s) = &last {
                        progress.show(display::status_name(task_status), s, rate.of(s));
                    }
                    continue;
                }
            };
            match next {
                Some(Ok(s)) => {
                    reopen.delivered();
                    if s.ended {
                        // COMPLETED or CANCELLED, as the task service says it.
                        let ended = match status_now(&mut tasks, task_ref(&task_id)?).await {
                            Some(s) => display::status_name(s),
                            None => "ENDED",
                        };
                        progress.show(ended, &s, rate.of(&s));
                        progress.finish();
                        return Ok(s);
                    }
                    progress.show(display::status_name(task_status), &s, rate.of(&s));
                    last = Some(s);
                }
                Some(Err(e)) => break e,
                None => {
                    break tonic::Status::unavailable(
                        "the statistics stream closed before the task ended",
                    )
                }
            }
        };
        tokio::time::sleep(reopen.after(failed, Instant::now())?).await;
    }
}

/// `CAUSES:TRIES/SECONDS`, e.g. `17:3/600` or `18,19:2/7200`.
fn parse_retry_rule(s: &str) -> Result<pb::RetryRule, String> {
    let bad = || format!("{s:?}: expected CAUSES:TRIES/SECONDS, e.g. 17:3/600 or 18,19:2/7200");
    let (causes, rest) = s.split_once(':').ok_or_else(bad)?;
    let (tries, interval) = rest.split_once('/').ok_or_else(bad)?;
    let causes = causes
        .split(',')
        .map(|c| c.trim().parse::<u32>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pb::RetryRule {
        causes,
        tries: tries.trim().parse().map_err(|_| bad())?,
        interval_seconds: interval.trim().parse().map_err(|_| bad())?,
    })
}

pub async fn run(cli: &Cli, cmd: &TaskCommand) -> Result<ExitCode, CliError> {
    let tenant = cli.tenant.as_str();
    match cmd {
        TaskCommand::Create {
            name,
            description,
            script_id,
            priority,
            recall_count,
            recall_interval,
            daily_call_limit,
            scheduled_start,
            caller_line,
            window,
            weekdays,
            holidays,
            timezone,
            number_city_limit,
            campaign_size,
            tags,
            source,
            retry,
            retry_rejected,
        } => {
            let weekdays = weekdays.as_deref().map(parse_weekdays).transpose()?;
            let window = (!window.is_empty()
                || weekdays.is_some()
                || !holidays.is_empty()
                || timezone.is_some())
            .then(|| pb::CallingWindow {
                hours: window.clone(),
                weekdays: weekdays.unwrap_or_default(),
                holidays: holidays.clone(),
                time_zone: timezone.clone().unwrap_or_default(),
            });
            let scheduled_start = scheduled_start
                .as_deref()
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|t| waihu_events::timestamp(t.with_timezone(&chrono::Utc)))
                        .map_err(|e| format!("--scheduled-start {s:?}: {e}"))
                })
                .transpose()?;
            let spec = pb::TaskSpec {
                name: name.clone(),
                description: description.clone(),
                script_id: script_id.clone(),
                priority: *priority,
                recall_count: *recall_count,
                recall_interval_seconds: *recall_interval,
                daily_call_limit: *daily_call_limit,
                scheduled_start,
                caller_line: caller_line.clone(),
                tags: tags
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
                source: source.clone(),
                retry: (!retry.is_empty() || *retry_rejected).then(|| pb::RetryPolicy {
                    rules: retry.clone(),
                    retry_rejected: *retry_rejected,
                }),
                window,
                number_city_limit: *number_city_limit,
                campaign_size: *campaign_size,
                ..Default::default()
            };
            let t = task_client(cli)
                .await?
                .create_task(with_tenant(
                    tenant,
                    pb::CreateTaskRequest { spec: Some(spec) },
                )?)
                .await
                .map_err(|s| status("create", s))?
                .into_inner();
            println!("{}", t.task_id);
        }
        TaskCommand::Explain {
            task_id,
            contact_no,
        } => {
            // The dialer knows tasks by UUID: a task number is looked up first.
            let task_id = task_uuid(cli, task_id).await?;
            let e = waihu_proto::v1::dialer_service_client::DialerServiceClient::new(
                crate::dialer_channel(cli).await?,
            )
            .explain_contact(with_tenant(
                tenant,
                pb::ExplainContactRequest {
                    task_id,
                    contact_no: *contact_no,
                },
            )?)
            .await
            .map_err(|s| status("ExplainContact", s))?
            .into_inner();
            let until = e
                .until
                .as_ref()
                .and_then(waihu_events::from_timestamp)
                .map(|t| format!(" until {}", t.to_rfc3339()))
                .unwrap_or_default();
            println!(
                "contact {} ({}, {} calls so far): {}{until}\n  {}",
                e.contact_no, e.state, e.attempts, e.reason, e.detail
            );
        }
        TaskCommand::Import { task_id, csv } => {
            print_import(&import_csv(cli, task_id, csv).await?, 50)
        }
        TaskCommand::Start { task_id }
        | TaskCommand::Pause { task_id }
        | TaskCommand::Resume { task_id } => {
            let mut c = task_client(cli).await?;
            let r = with_tenant(
                tenant,
                pb::TaskRef {
                    task_id: task_id.clone(),
                },
            )?;
            let t = match cmd {
                TaskCommand::Start { .. } => c.start_task(r).await,
                TaskCommand::Pause { .. } => c.pause_task(r).await,
                _ => c.resume_task(r).await,
            }
            .map_err(|s| status("task", s))?
            .into_inner();
            print_task(&t);
        }
        TaskCommand::Cancel { task_id, reason } => {
            let t = task_client(cli)
                .await?
                .cancel_task(with_tenant(
                    tenant,
                    pb::CancelTaskRequest {
                        task_id: task_id.clone(),
                        reason: reason.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("cancel", s))?
                .into_inner();
            print_task(&t);
        }
        TaskCommand::Get { task_id } => {
            let t = task_client(cli)
                .await?
                .get_task(with_tenant(
                    tenant,
                    pb::TaskRef {
                        task_id: task_id.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("get", s))?
                .into_inner();
            print_task(&t);
        }
        TaskCommand::List { status: st, name } => {
            let status_code = match st {
                None => 0,
                Some(s) => {
                    pb::TaskStatus::from_str_name(&format!("TASK_STATUS_{}", s.to_uppercase()))
                        .ok_or_else(|| {
                            format!(
                        "--status {s:?}: not one of PENDING, RUNNING, PAUSED, COMPLETED, CANCELLED"
                    )
                        })? as i32
                }
            };
            let mut c = task_client(cli).await?;
            let mut token = String::new();
            loop {
                let page = c
                    .list_tasks(with_tenant(
                        tenant,
                        pb::ListTasksRequest {
                            status: status_code,
                            name_contains: name.clone(),
                            page_size: 200,
                            page_token: token,
                            ..Default::default()
                        },
                    )?)
                    .await
                    .map_err(|s| status("list", s))?
                    .into_inner();
                page.tasks.iter().for_each(print_task);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
        TaskCommand::Contacts {
            task_id,
            size,
            after,
        } => {
            let task = task_uuid(cli, task_id).await?;
            let page = task_client(cli)
                .await?
                .list_contacts(with_tenant(
                    tenant,
                    pb::ListContactsRequest {
                        task_id: task.clone(),
                        page_size: *size,
                        after_contact_no: *after,
                    },
                )?)
                .await
                .map_err(|s| status("ListContacts", s))?
                .into_inner();
            let calls = if page.contacts.is_empty() {
                Vec::new()
            } else {
                waihu_proto::v1::record_service_client::RecordServiceClient::new(
                    crate::record_channel(cli).await?,
                )
                .list_contact_calls(with_tenant(
                    tenant,
                    pb::ListContactCallsRequest {
                        task_id: task,
                        contact_nos: page.contacts.iter().map(|c| c.contact_no).collect(),
                    },
                )?)
                .await
                .map_err(|s| status("ListContactCalls", s))?
                .into_inner()
                .contacts
            };
            print!("{}", contacts_table(&page.contacts, &calls));
            if page.next_after_contact_no > 0 {
                println!("next page: --after {}", page.next_after_contact_no);
            }
        }
        TaskCommand::Stats { task_id, watch } => {
            let s = if *watch {
                watch_stats(cli, task_id).await?
            } else {
                stats_client(cli)
                    .await?
                    .get_task_stats(with_tenant(
                        tenant,
                        pb::GetTaskStatsRequest {
                            task_id: task_id.clone(),
                        },
                    )?)
                    .await
                    .map_err(|s| status("stats", s))?
                    .into_inner()
            };
            println!("{}", display::stats_table(&s));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules_parse_and_bad_ones_say_the_form() {
        assert_eq!(
            parse_retry_rule("18,19:2/7200"),
            Ok(pb::RetryRule {
                causes: vec![18, 19],
                tries: 2,
                interval_seconds: 7200
            })
        );
        for bad in ["17", "17:3", "x:3/600", "17:3/ten"] {
            let e = parse_retry_rule(bad).expect_err(bad);
            assert!(e.contains("CAUSES:TRIES/SECONDS"), "{e}");
        }
    }

    #[test]
    fn a_watch_waits_for_a_new_task_then_not_found_is_final() {
        let t0 = Instant::now();
        let mut r = Reopen::new(t0);
        let not_found = || tonic::Status::not_found("task t");
        assert_eq!(r.after(not_found(), t0).ok(), Some(RETRY_FIRST));
        let late = t0 + NOT_FOUND_FOR + Duration::from_millis(1);
        assert!(r.after(not_found(), late).is_err(), "gave up after 30 s");
        let mut r = Reopen::new(t0);
        r.delivered();
        let e = r.after(not_found(), t0).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("stats: task t (NotFound)"));
    }

    #[test]
    fn a_broken_watch_reconnects_with_backoff_for_a_while() {
        let t0 = Instant::now();
        let mut r = Reopen::new(t0);
        r.delivered();
        let down = || tonic::Status::unavailable("restarting");
        let delays: Vec<_> = (0..6).filter_map(|_| r.after(down(), t0).ok()).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 4000].map(Duration::from_millis)
        );
        // A snapshot resets the backoff and the clock.
        r.delivered();
        assert_eq!(r.after(down(), t0 + RECONNECT_FOR).ok(), Some(RETRY_FIRST));
        assert!(r
            .after(down(), t0 + RECONNECT_FOR * 2 + Duration::from_millis(1))
            .is_err());
        // A connection that broke (the status has a source) counts as UNAVAILABLE; a server's
        // other answers do not.
        let mut r = Reopen::new(t0);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let broken = tonic::Status::from_error(Box::new(io));
        assert_eq!(broken.code(), tonic::Code::Unknown);
        assert!(r.after(broken, t0).is_ok());
        assert!(r.after(tonic::Status::permission_denied("no"), t0).is_err());
    }
}
