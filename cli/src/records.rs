//! `waihu records list|get|report|dashboard`: call records (CDR) and the figures made from
//! them (the record service's `RecordService` and `StatsService`).

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use prost::Message;
use waihu_proto::v1::{
    self as pb, record_service_client::RecordServiceClient,
    stats_service_client::StatsServiceClient,
};

use crate::{
    display::{self, columns, kv_table, or_dash, time},
    export, status,
    task::{task_uuid, with_tenant},
    Cli, CliError,
};

#[derive(Subcommand)]
pub enum RecordsCommand {
    /// One page of the tenant's call records, newest first (by default), with filters.
    List(ListArgs),
    /// The call records the filters select as a CSV or XLSX file (to standard output unless
    /// --output), streamed: any number of records in flat memory.
    Export(ExportArgs),
    /// One call record in full: its fields, timeline, analysis and follow-ups.
    Get {
        /// The call's UUID or number.
        call: String,
        /// The record as one proto3 JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A task's calls per hour (UTC, by start) and per line.
    Report {
        /// Task id or number.
        task: String,
    },
    /// The tenant's day: calls, answered, connect rate, talk time, running tasks, follow-ups
    /// due.
    Dashboard {
        /// IANA time zone that says when "today" starts (default: the server's, Asia/Shanghai).
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
    },
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// The page to show (1 is the first).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    page: u32,
    /// Records a page.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    size: u32,
    /// One proto3 JSON object per record (the page line goes to standard error).
    #[arg(long)]
    json: bool,
}

/// `records export`.
#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// The file's format.
    #[arg(long, value_enum, default_value_t = SheetFormat::Csv)]
    format: SheetFormat,
    /// Column headers in Chinese (zh, seed 002's names) or English (en).
    #[arg(long = "lang", value_enum, default_value_t = Lang::Zh)]
    lang: Lang,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
}

/// `records export --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SheetFormat {
    Csv,
    Xlsx,
}

/// `records export --lang`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Zh,
    En,
}

/// The filters `records list` and `records export` share.
#[derive(Args)]
pub struct FilterArgs {
    /// Only calls of this task (id or number).
    #[arg(long)]
    task: Option<String>,
    /// Only calls to this number (any spelling; compared in E.164).
    #[arg(long)]
    phone: Option<String>,
    /// Only calls placed on this line.
    #[arg(long)]
    line: Option<String>,
    /// Only records with this analysis status.
    #[arg(long, value_enum)]
    analysis: Option<Analysis>,
    /// Only answered calls.
    #[arg(long, conflicts_with = "unanswered")]
    answered: bool,
    /// Only calls released unanswered.
    #[arg(long)]
    unanswered: bool,
    /// Only calls released with this Q.850 cause (repeat, or comma-separated, for more).
    #[arg(
        long = "cause",
        value_name = "Q850",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u32).range(0..=127)
    )]
    causes: Vec<u32>,
    /// Calls started at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    from: Option<prost_types::Timestamp>,
    /// Calls started before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    to: Option<prost_types::Timestamp>,
    /// The order: start time, talk time, ring time or call number.
    #[arg(long, value_enum, default_value_t = Sort::Start)]
    sort: Sort,
    /// Ascending (oldest, shortest, lowest first) instead of descending.
    #[arg(long)]
    asc: bool,
}

impl FilterArgs {
    /// The request these filters make (no page chosen yet).
    async fn request(&self, cli: &Cli) -> Result<pb::ListCallRecordsRequest, CliError> {
        let task_id = match &self.task {
            Some(t) => task_uuid(cli, t).await?,
            None => String::new(),
        };
        Ok(pb::ListCallRecordsRequest {
            task_id,
            phone: self.phone.clone().unwrap_or_default(),
            from: self.from,
            to: self.to,
            oldest_first: self.asc,
            line_id: self.line.clone().unwrap_or_default(),
            analysis_status: self
                .analysis
                .map_or(pb::AnalysisStatus::Unspecified, Analysis::to_pb)
                as i32,
            answered: match (self.answered, self.unanswered) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            causes: self.causes.clone(),
            sort: self.sort.to_pb() as i32,
            ..Default::default()
        })
    }
}

/// `--analysis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Analysis {
    /// Answered; no analysis result yet.
    Pending,
    Completed,
    Failed,
    /// Nothing to analyse: not answered (or not ended).
    None,
}

impl Analysis {
    fn to_pb(self) -> pb::AnalysisStatus {
        match self {
            Analysis::Pending => pb::AnalysisStatus::Pending,
            Analysis::Completed => pb::AnalysisStatus::Completed,
            Analysis::Failed => pb::AnalysisStatus::Failed,
            Analysis::None => pb::AnalysisStatus::None,
        }
    }
}

/// `--sort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sort {
    /// When the call started.
    Start,
    /// Talk time.
    Duration,
    /// Ring time.
    Ring,
    /// The call's number.
    Number,
}

impl Sort {
    fn to_pb(self) -> pb::CallRecordSort {
        match self {
            Sort::Start => pb::CallRecordSort::StartTime,
            Sort::Duration => pb::CallRecordSort::Duration,
            Sort::Ring => pb::CallRecordSort::RingTime,
            Sort::Number => pb::CallRecordSort::Number,
        }
    }
}

/// An RFC 3339 time argument (`2026-10-01T09:00:00+08:00`); clap names the flag in the error.
pub fn parse_time(s: &str) -> Result<prost_types::Timestamp, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| waihu_events::timestamp(t.with_timezone(&chrono::Utc)))
        .map_err(|e| format!("not an RFC 3339 time ({e}); e.g. 2026-10-01T09:00:00+08:00"))
}

/// `message` (of the proto type `name`, e.g. `CallRecord`) as canonical proto3 JSON.
pub fn proto_json(name: &str, message: &impl Message) -> Result<serde_json::Value, CliError> {
    let desc = waihu_proto::descriptor_pool()
        .get_message_by_name(&format!("{}.{name}", waihu_proto::PACKAGE))
        .ok_or_else(|| format!("{name} is not in the descriptor pool"))?;
    let dynamic = prost_reflect::DynamicMessage::decode(desc, message.encode_to_vec().as_slice())?;
    Ok(serde_json::to_value(export::ProtoJson(&dynamic))?)
}

pub fn analysis_name(s: i32) -> &'static str {
    match pb::AnalysisStatus::try_from(s).unwrap_or_default() {
        pb::AnalysisStatus::Unspecified => "-",
        pb::AnalysisStatus::None => "none",
        pb::AnalysisStatus::Pending => "pending",
        pb::AnalysisStatus::Completed => "completed",
        pb::AnalysisStatus::Failed => "failed",
    }
}

/// `yes`, `no` once released unanswered, `-` while the call goes on.
fn answered(r: &pb::CallRecord) -> &'static str {
    if r.answered {
        "yes"
    } else if r.state == "released" {
        "no"
    } else {
        "-"
    }
}

fn cause(c: &Option<pb::HangupCause>) -> String {
    match c {
        Some(c) if c.q850 != 0 || !c.name.is_empty() => format!("{} {}", c.q850, c.name),
        _ => "-".into(),
    }
}

fn number(n: u64) -> String {
    if n == 0 {
        "-".into()
    } else {
        n.to_string()
    }
}

/// The `records list` table.
pub fn list_table(records: &[pb::CallRecord]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                number(r.number),
                r.call_id.clone(),
                or_dash(&r.task_id).to_string(),
                or_dash(&r.phone).to_string(),
                or_dash(&r.line_id).to_string(),
                or_dash(&r.state).to_string(),
                answered(r).to_string(),
                format!("{:.1}", r.talk_seconds),
                cause(&r.cause),
                analysis_name(r.analysis_status).to_string(),
            ]
        })
        .collect();
    columns(
        &[
            "NUMBER", "CALL", "TASK", "PHONE", "LINE", "STATE", "ANSWERED", "TALK S", "CAUSE",
            "ANALYSIS",
        ],
        &[0, 7],
        &rows,
    )
}

/// `page X of Y, Z records`.
pub fn page_line(p: &pb::ListCallRecordsResponse) -> String {
    format!(
        "page {} of {}, {} records",
        p.current,
        p.pages.max(1),
        p.total
    )
}

/// The `records get` text.
pub fn record_text(r: &pb::CallRecord) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("call".into(), r.call_id.clone()),
        ("number".into(), number(r.number)),
        ("task".into(), or_dash(&r.task_id).into()),
        ("contact".into(), r.contact_no.to_string()),
        ("attempt".into(), r.attempt.to_string()),
        ("phone".into(), or_dash(&r.phone).into()),
        ("line".into(), or_dash(&r.line_id).into()),
        ("state".into(), or_dash(&r.state).into()),
        ("answered".into(), answered(r).into()),
        ("requested at".into(), time(&r.requested_at)),
        ("dialing at".into(), time(&r.dialing_at)),
        ("ringing at".into(), time(&r.ringing_at)),
        ("answered at".into(), time(&r.answered_at)),
        ("released at".into(), time(&r.released_at)),
        ("ring".into(), format!("{:.1} s", r.ring_seconds)),
        ("talk".into(), format!("{:.1} s", r.talk_seconds)),
        ("cause".into(), {
            let mut c = cause(&r.cause);
            if let Some(raw) = r.cause.as_ref().map(|c| &c.raw).filter(|s| !s.is_empty()) {
                c.push_str(&format!(" ({raw})"));
            }
            c
        }),
        ("analysis".into(), analysis_name(r.analysis_status).into()),
        ("recording".into(), recording_line(r.recording.as_ref())),
    ];
    let w = rows.iter().map(|r| display::width(&r.0)).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows.drain(..) {
        out.push_str(&format!("{k:<w$}  {v}\n"));
    }
    out.push_str("\ntimeline\n");
    if r.timeline.is_empty() {
        out.push_str("  (no events)\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .timeline
            .iter()
            .map(|e| {
                vec![
                    time(&e.occurred_at),
                    e.event_type.clone(),
                    or_dash(&e.detail).to_string(),
                ]
            })
            .collect();
        out.push_str(&indent(&columns(&["TIME", "EVENT", "DETAIL"], &[], &rows)));
    }
    out.push_str("\nanalysis\n");
    match &r.analysis {
        Some(a) if *a != pb::CallAnalysis::default() => {
            let mut rows: Vec<(&str, String)> = vec![
                ("intent", a.intent.clone()),
                ("grade", a.grade.clone()),
                ("sentiment", a.sentiment.clone()),
                ("keywords", a.keywords.join(", ")),
                ("summary", a.summary.clone()),
                ("language", a.language.clone()),
                ("analyzer", a.analyzer.clone()),
                ("failure", a.failure.clone()),
            ];
            rows.retain(|(_, v)| !v.is_empty());
            for (k, v) in rows {
                out.push_str(&format!(
                    "  {k:<10} {}\n",
                    v.replace('\n', "\n             ")
                ));
            }
            if !a.transcript.is_empty() {
                out.push_str("  transcript\n");
                for l in a.transcript.lines() {
                    out.push_str(&format!("    {l}\n"));
                }
            }
        }
        _ => out.push_str(&format!("  ({})\n", analysis_name(r.analysis_status))),
    }
    out.push_str("\nfollow-ups\n");
    if r.follow_ups.is_empty() {
        out.push_str("  (none)\n");
    }
    for f in &r.follow_ups {
        out.push_str(&format!(
            "  {} by {}: result {}, intention {}, next {}\n",
            time(&f.added_at),
            or_dash(&f.added_by),
            or_dash(&f.result),
            or_dash(&f.intention),
            time(&f.next_follow_up_at)
        ));
        for l in f.note.lines() {
            out.push_str(&format!("    {l}\n"));
        }
    }
    out
}

/// `stored wav 3.0 s, 48044 bytes` (or why there is none).
pub fn recording_line(r: Option<&pb::Recording>) -> String {
    let Some(r) = r else {
        return "-".into();
    };
    let what = format!(
        "{} {:.1} s, {} bytes",
        or_dash(&r.format),
        r.duration_ms as f64 / 1000.0,
        r.bytes
    );
    match r.state() {
        pb::RecordingState::Unspecified => "-".into(),
        pb::RecordingState::Pending => "pending (announced, not yet stored)".into(),
        pb::RecordingState::Stored => format!("stored {what} ({})", r.key),
        pb::RecordingState::Failed => format!("failed: {}", r.reason),
        pb::RecordingState::Deleted => format!("deleted {} ({})", time(&r.deleted_at), r.reason),
    }
}

/// Writes a stream of chunks to `output` (or standard output; see [`crate::output`]),
/// showing progress on standard error; the count the last chunk carried.
pub async fn save_stream<T>(
    stream: &mut tonic::Streaming<T>,
    output: Option<&std::path::Path>,
    part: impl Fn(&T) -> (&[u8], u64),
) -> Result<u64, CliError> {
    use std::io::IsTerminal;
    let mut out = crate::output::Output::create(output)?;
    let progress = std::io::stderr().is_terminal();
    let mut count = 0;
    let result: Result<(), CliError> = async {
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| status("the export", s))?
        {
            let (data, n) = part(&chunk);
            out.write_all(data)?;
            count = n;
            if progress {
                eprint!("\r{count} records");
            }
        }
        Ok(())
    }
    .await;
    if progress {
        eprint!("\r");
    }
    out.finish(result).map(|()| count)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// The `records report` text: the per-hour and the per-line table.
pub fn report_text(r: &pb::TaskReport) -> String {
    let hours: Vec<Vec<String>> = r
        .hours
        .iter()
        .map(|h| {
            vec![
                time(&h.hour),
                h.calls.to_string(),
                h.answered.to_string(),
                percent(h.connect_rate),
                format!("{:.1}", h.average_talk_seconds),
            ]
        })
        .collect();
    let lines: Vec<Vec<String>> = r
        .lines
        .iter()
        .map(|l| {
            vec![
                or_dash(&l.line_id).to_string(),
                l.calls.to_string(),
                l.answered.to_string(),
                percent(l.connect_rate),
                format!("{:.1}", l.average_talk_seconds),
                l.total_talk_seconds.to_string(),
            ]
        })
        .collect();
    format!(
        "task {}\n\nper hour (UTC)\n{}\nper line\n{}\nas of store position {}\n",
        r.task_id,
        indent(&columns(
            &["HOUR", "CALLS", "ANSWERED", "CONNECT", "AVG TALK S"],
            &[1, 2, 3, 4],
            &hours
        )),
        indent(&columns(
            &[
                "LINE",
                "CALLS",
                "ANSWERED",
                "CONNECT",
                "AVG TALK S",
                "TOTAL TALK S"
            ],
            &[1, 2, 3, 4, 5],
            &lines
        )),
        r.as_of_position
    )
}

/// The `records dashboard` table.
pub fn dashboard_table(d: &pb::Dashboard) -> String {
    kv_table(&[
        ("day start".into(), time(&d.day_start)),
        ("calls today".into(), d.calls_today.to_string()),
        ("answered today".into(), d.answered_today.to_string()),
        ("connect rate today".into(), percent(d.connect_rate_today)),
        ("talk today".into(), format!("{} s", d.talk_seconds_today)),
        ("running tasks".into(), d.running_tasks.to_string()),
        (
            "follow-ups due today".into(),
            d.follow_ups_due_today.to_string(),
        ),
        ("as of store position".into(), d.as_of_position.to_string()),
    ])
}

pub async fn run(cli: &Cli, cmd: &RecordsCommand) -> Result<ExitCode, CliError> {
    let tenant = cli.tenant.as_str();
    match cmd {
        RecordsCommand::List(a) => {
            let req = pb::ListCallRecordsRequest {
                page_size: a.size,
                page_number: a.page,
                ..a.filter.request(cli).await?
            };
            let page = RecordServiceClient::new(crate::record_channel(cli).await?)
                .list_call_records(with_tenant(tenant, req)?)
                .await
                .map_err(|s| status("ListCallRecords", s))?
                .into_inner();
            if a.json {
                for r in &page.records {
                    println!("{}", proto_json("CallRecord", r)?);
                }
                eprintln!("{}", page_line(&page));
            } else {
                print!("{}", list_table(&page.records));
                println!("{}", page_line(&page));
            }
        }
        RecordsCommand::Export(a) => {
            let req = pb::ExportCallRecordsRequest {
                filter: Some(a.filter.request(cli).await?),
                format: match a.format {
                    SheetFormat::Csv => pb::ExportFormat::Csv,
                    SheetFormat::Xlsx => pb::ExportFormat::Xlsx,
                } as i32,
                language: match a.lang {
                    Lang::Zh => "zh",
                    Lang::En => "en",
                }
                .into(),
            };
            if a.format == SheetFormat::Xlsx && a.output.is_none() {
                use std::io::IsTerminal;
                if std::io::stdout().is_terminal() {
                    return Err("--format xlsx writes a binary file: give it with --output FILE.xlsx or redirect standard output".into());
                }
            }
            let mut stream = RecordServiceClient::new(crate::record_channel(cli).await?)
                .export_call_records(with_tenant(tenant, req)?)
                .await
                .map_err(|s| status("ExportCallRecords", s))?
                .into_inner();
            let written = save_stream(&mut stream, a.output.as_deref(), |c| {
                (c.data.as_slice(), c.records)
            })
            .await?;
            eprintln!("{written} records exported");
        }
        RecordsCommand::Get { call, json } => {
            let r = RecordServiceClient::new(crate::record_channel(cli).await?)
                .get_call_record(with_tenant(
                    tenant,
                    pb::GetCallRecordRequest {
                        call_id: call.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("GetCallRecord", s))?
                .into_inner();
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&proto_json("CallRecord", &r)?)?
                );
            } else {
                print!("{}", record_text(&r));
            }
        }
        RecordsCommand::Report { task } => {
            let task_id = task_uuid(cli, task).await?;
            let r = StatsServiceClient::new(crate::record_channel(cli).await?)
                .get_task_report(with_tenant(tenant, pb::GetTaskStatsRequest { task_id })?)
                .await
                .map_err(|s| status("GetTaskReport", s))?
                .into_inner();
            print!("{}", report_text(&r));
        }
        RecordsCommand::Dashboard { time_zone } => {
            let d = StatsServiceClient::new(crate::record_channel(cli).await?)
                .get_dashboard(with_tenant(
                    tenant,
                    pb::GetDashboardRequest {
                        time_zone: time_zone.clone().unwrap_or_default(),
                    },
                )?)
                .await
                .map_err(|s| match (s.code(), time_zone) {
                    // The zone is the only thing the server can refuse here.
                    (tonic::Code::InvalidArgument, Some(z)) => {
                        format!("--time-zone {z:?}: {}", s.message()).into()
                    }
                    _ => status("GetDashboard", s),
                })?
                .into_inner();
            println!("{}", dashboard_table(&d));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> pb::CallRecord {
        pb::CallRecord {
            call_id: "0190a1b2-0000-7000-8000-000000000001".into(),
            task_id: "0190a1b2-0000-7000-8000-0000000000aa".into(),
            contact_no: 7,
            phone: "+8613800000000".into(),
            line_id: "sim-1".into(),
            attempt: 1,
            talk_seconds: 31.25,
            ring_seconds: 4.0,
            cause: Some(pb::HangupCause {
                q850: 16,
                name: "NORMAL_CLEARING".into(),
                raw: "sip:200".into(),
            }),
            state: "released".into(),
            number: 1234,
            analysis_status: pb::AnalysisStatus::Completed as i32,
            answered: true,
            ..Default::default()
        }
    }

    #[test]
    fn times_parse_and_bad_ones_say_the_form() {
        assert_eq!(
            parse_time("2026-10-01T09:00:00+08:00"),
            Ok(prost_types::Timestamp {
                seconds: 1_790_816_400,
                nanos: 0
            })
        );
        for bad in ["", "tomorrow", "2026-10-01", "2026-10-01 09:00"] {
            let e = parse_time(bad).expect_err(bad);
            assert!(e.contains("RFC 3339"), "{e}");
        }
    }

    #[test]
    fn list_table_has_a_header_and_aligned_rows() {
        let mut unanswered = record();
        unanswered.number = 99;
        unanswered.answered = false;
        unanswered.talk_seconds = 0.0;
        unanswered.analysis_status = pb::AnalysisStatus::None as i32;
        let t = list_table(&[record(), unanswered]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NUMBER  CALL"), "{t}");
        assert!(lines[1].starts_with("  1234  0190a1b2-"), "{t}");
        assert!(lines[1].contains("  yes  "), "{t}");
        assert!(
            lines[1].contains("31.2  16 NORMAL_CLEARING  completed"),
            "{t}"
        );
        assert!(lines[2].starts_with("    99  "), "{t}");
        assert!(lines[2].ends_with("none"), "{t}");
    }

    #[test]
    fn record_json_is_proto3_json() -> Result<(), CliError> {
        let v = proto_json("CallRecord", &record())?;
        assert_eq!(v["number"], "1234");
        assert_eq!(v["analysisStatus"], "ANALYSIS_STATUS_COMPLETED");
        assert_eq!(v["cause"]["q850"], 16);
        assert_eq!(v["answered"], true);
        Ok(())
    }

    #[test]
    fn record_text_shows_timeline_analysis_and_follow_ups() {
        let mut r = record();
        r.timeline.push(pb::CallTimelineEntry {
            position: 5,
            event_type: "CallRequested".into(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_790_000_000,
                nanos: 0,
            }),
            detail: "line sim-1, attempt 1".into(),
            event_id: "e-5".into(),
        });
        r.analysis = Some(pb::CallAnalysis {
            intent: "interested".into(),
            grade: "A".into(),
            transcript: "hello\nbye".into(),
            ..Default::default()
        });
        r.follow_ups.push(pb::FollowUp {
            result: "called back".into(),
            note: "first\nsecond".into(),
            added_by: "li".into(),
            ..Default::default()
        });
        let t = record_text(&r);
        assert!(t.starts_with("call          0190a1b2-"), "{t}");
        assert!(
            t.contains("  2026-09-21T14:13:20Z  CallRequested  line sim-1, attempt 1\n"),
            "{t}"
        );
        assert!(t.contains("  intent     interested\n"), "{t}");
        assert!(t.contains("  transcript\n    hello\n    bye\n"), "{t}");
        assert!(
            t.contains(
                "  - by li: result called back, intention -, next -\n    first\n    second\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("cause         16 NORMAL_CLEARING (sip:200)\n"),
            "{t}"
        );
    }
}
