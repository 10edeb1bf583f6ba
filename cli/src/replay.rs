//! `waihu replay`: export events from the record service, or have it rebuild and verify the
//! statistics. Everything goes over gRPC (`RecordService.ExportEvents`, `.VerifyReplay`).

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::Args;
use tonic::transport::Channel;
use waihu_proto::v1::{self as pb, record_service_client::RecordServiceClient};

use crate::{
    export, status,
    task::{as_operator, with_tenant},
    Cli, CliError,
};

#[derive(Args)]
pub struct ReplayArgs {
    /// Rebuild the statistics from position 0 into fresh tables and compare with the live
    /// projection; exit 0 only if identical.
    #[arg(long, conflicts_with_all = ["task", "types", "from", "to", "after", "to_position", "limit", "format", "output"])]
    verify: bool,
    /// Only events of this task.
    #[arg(long)]
    task: Option<uuid::Uuid>,
    /// Only these event types (repeatable), e.g. --type CallReleased.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Occurred at or after (RFC 3339).
    #[arg(long)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Occurred before (RFC 3339).
    #[arg(long)]
    to: Option<chrono::DateTime<chrono::Utc>>,
    /// Start after this store position.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// Stop at this store position, inclusive (0 = the end as of the start of the export).
    #[arg(long, default_value_t = 0)]
    to_position: u64,
    /// Stop after this many events (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: u64,
    /// json: JSON lines (proto3 JSON); csv: one column per envelope field; parquet: the same
    /// columns, typed (needs --output).
    #[arg(long, value_enum, default_value_t = export::Format::Json)]
    format: export::Format,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

/// Events between two progress lines on a terminal.
const PROGRESS_EVERY: u64 = 100_000;

pub async fn record_client(cli: &Cli) -> Result<RecordServiceClient<Channel>, CliError> {
    let channel = crate::record_channel(cli).await?;
    Ok(RecordServiceClient::new(channel).max_decoding_message_size(64 << 20))
}

pub fn request(a: &ReplayArgs) -> Result<pb::ExportEventsRequest, CliError> {
    for t in &a.types {
        if !waihu_events::EVENT_TYPES.contains(&t.as_str()) {
            return Err(format!(
                "--type {t:?}: not an event type ({})",
                waihu_events::EVENT_TYPES.join(", ")
            )
            .into());
        }
    }
    Ok(pb::ExportEventsRequest {
        task_id: a.task.map(|t| t.to_string()).unwrap_or_default(),
        from: a.from.map(waihu_events::timestamp),
        to: a.to.map(waihu_events::timestamp),
        event_types: a.types.clone(),
        after_position: a.after,
        to_position: a.to_position,
        limit: a.limit,
    })
}

pub async fn run(cli: &Cli, a: &ReplayArgs) -> Result<ExitCode, CliError> {
    if a.verify {
        return verify(cli).await;
    }
    let req = request(a)?;
    // A bad --format/--output fails before the server is asked; the file is created only once
    // the server has accepted the export.
    export::check(a.format, a.output.as_deref())?;
    let mut stream = record_client(cli)
        .await?
        .export_events(with_tenant(&cli.tenant, req)?)
        .await
        .map_err(|s| status("export", s))?
        .into_inner();
    let mut sink = export::sink(a.format, a.output.as_deref())?;
    let tty = std::io::stderr().is_terminal();
    let mut n = 0u64;
    let result = loop {
        match stream.message().await {
            Ok(Some(e)) => {
                if let Err(err) = sink.write(&e) {
                    break Err(err);
                }
                n += 1;
                if tty && n.is_multiple_of(PROGRESS_EVERY) {
                    eprint!("\r{n} events");
                }
            }
            Ok(None) => break Ok(()),
            Err(s) => break Err(status("export", s)),
        }
    };
    // What was received is written out even when the stream broke off.
    let finished = sink.finish();
    if tty && n >= PROGRESS_EVERY {
        eprint!("\r");
    }
    eprintln!("{n} events");
    result?;
    finished?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn verify(cli: &Cli) -> Result<ExitCode, CliError> {
    let started = std::time::Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut stream = record_client(cli)
        .await?
        .verify_replay(as_operator(cli, pb::VerifyReplayRequest {})?)
        .await
        .map_err(|s| status("replay --verify", s))?
        .into_inner();
    let mut shown = false;
    let report = loop {
        let update = stream
            .message()
            .await
            .map_err(|s| status("replay --verify", s))?
            .ok_or("replay --verify: the record service ended without a report")?;
        match update.update {
            Some(pb::verify_replay_update::Update::Progress(p)) if tty => {
                eprint!("\rreplaying position {}/{}", p.position, p.head);
                shown = true;
            }
            Some(pb::verify_replay_update::Update::Report(r)) => break r,
            _ => {}
        }
    };
    if shown {
        eprintln!();
    }
    Ok(print_report(&report, started.elapsed()))
}

pub fn print_report(r: &pb::VerifyReplayReport, took: std::time::Duration) -> ExitCode {
    for line in report_lines(r, took) {
        println!("{line}");
    }
    if r.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report_lines(r: &pb::VerifyReplayReport, took: std::time::Duration) -> Vec<String> {
    let mut out = vec![format!(
        "replayed {} events up to position {} in {:.2} s: {} counters over {} tasks",
        r.events_replayed,
        r.position,
        took.as_secs_f64(),
        r.counters,
        r.tasks
    )];
    if r.events_skipped > 0 {
        out.push(format!(
            "{} events skipped: this build does not understand them",
            r.events_skipped
        ));
    }
    if r.identical {
        out.push("replay --verify: rebuilt statistics are identical to the live projection".into());
    } else {
        out.push(format!(
            "replay --verify: {} differences",
            r.differences.len()
        ));
        out.extend(r.differences.iter().take(50).map(|d| format!("  {d}")));
        if r.differences.len() > 50 {
            out.push(format!("  ... and {} more", r.differences.len() - 50));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("waihu").chain(args.iter().copied()))
    }

    fn replay_args(cli: &Cli) -> Result<&ReplayArgs, CliError> {
        match &cli.command {
            crate::Command::Replay(a) => Ok(a),
            _ => Err("not replay".into()),
        }
    }

    #[test]
    fn flags_make_the_request() -> Result<(), CliError> {
        let cli = parse(&[
            "replay",
            "--task",
            "6c1f2d5e-0000-4000-8000-000000000001",
            "--type",
            "CallReleased",
            "--type",
            "ContactFinished",
            "--from",
            "2026-01-01T00:00:00Z",
            "--after",
            "10",
            "--to-position",
            "20",
            "--limit",
            "5",
        ])?;
        let req = request(replay_args(&cli)?)?;
        assert_eq!(req.task_id, "6c1f2d5e-0000-4000-8000-000000000001");
        assert_eq!(req.event_types, ["CallReleased", "ContactFinished"]);
        assert_eq!(req.from.map(|t| t.seconds), Some(1_767_225_600));
        assert_eq!(req.to, None);
        assert_eq!(
            (req.after_position, req.to_position, req.limit),
            (10, 20, 5)
        );
        Ok(())
    }

    #[test]
    fn unknown_type_lists_the_types() -> Result<(), CliError> {
        let cli = parse(&["replay", "--type", "CallExploded"])?;
        let err = request(replay_args(&cli)?)
            .err()
            .ok_or("accepted")?
            .to_string();
        assert!(err.contains("\"CallExploded\""), "{err}");
        assert!(err.contains("CallReleased"), "{err}");
        Ok(())
    }

    #[test]
    fn parquet_needs_an_output_file() -> Result<(), CliError> {
        let err = export::check(export::Format::Parquet, None)
            .err()
            .ok_or("accepted")?
            .to_string();
        assert!(err.contains("--output"), "{err}");
        Ok(())
    }

    #[test]
    fn verify_takes_no_export_flags() {
        assert!(parse(&["replay", "--verify", "--limit", "3"]).is_err());
        assert!(parse(&["replay", "--verify"]).is_ok());
    }

    #[test]
    fn report_lines_match_the_old_output() {
        let mut r = pb::VerifyReplayReport {
            position: 900,
            events_replayed: 900,
            counters: 120,
            tasks: 3,
            events_skipped: 0,
            differences: vec![],
            identical: true,
        };
        let took = std::time::Duration::from_millis(1500);
        assert_eq!(
            report_lines(&r, took),
            [
                "replayed 900 events up to position 900 in 1.50 s: 120 counters over 3 tasks",
                "replay --verify: rebuilt statistics are identical to the live projection",
            ]
        );
        r.identical = false;
        r.events_skipped = 2;
        r.differences = vec!["task t calls_placed: live 3, replayed 4".into()];
        let lines = report_lines(&r, took);
        assert_eq!(
            lines[1],
            "2 events skipped: this build does not understand them"
        );
        assert_eq!(lines[2], "replay --verify: 1 differences");
        assert_eq!(lines[3], "  task t calls_placed: live 3, replayed 4");
    }
}
