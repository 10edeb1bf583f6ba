//! `waihu replay`: export events from the store, or rebuild and verify the statistics.

use std::{io::Write, process::ExitCode};

use clap::Args;
use waihu_store::EventQuery;

use crate::CliError;

#[derive(Args)]
pub struct ReplayArgs {
    /// Rebuild the statistics from position 0 into fresh tables and compare with the live
    /// projection; exit 0 only if identical.
    #[arg(long)]
    verify: bool,
    /// PostgreSQL holding the event store.
    /// (default: `DATABASE_URL`, else the local default).
    #[arg(long, env = "WAIHU_DATABASE_URL")]
    database_url: Option<String>,
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
    /// Stop after this many events (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: u64,
}

pub async fn run(a: &ReplayArgs) -> Result<ExitCode, CliError> {
    let url = a
        .database_url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| waihu_runtime::config::DEFAULT_DATABASE_URL.to_string());
    let pool = waihu_store::connect(&url, 4).await.map_err(|e| {
        format!(
            "cannot reach the event store ({}): {e}",
            waihu_runtime::config::redact(&url)
        )
    })?;
    if a.verify {
        return verify(&pool).await;
    }
    for t in &a.types {
        if !waihu_events::EVENT_TYPES.contains(&t.as_str()) {
            return Err(format!(
                "--type {t:?}: not an event type ({})",
                waihu_events::EVENT_TYPES.join(", ")
            )
            .into());
        }
    }
    let mut q = EventQuery {
        after_position: a.after,
        task_id: a.task,
        occurred_from: a.from,
        occurred_to: a.to,
        event_types: a.types.clone(),
        limit: 5000,
        ..Default::default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    'pages: loop {
        let page = waihu_store::read(&pool, &q).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for e in &page {
            let m = &e.event.meta;
            let line = serde_json::json!({
                "position": e.position,
                "event_id": m.event_id,
                "event_type": e.event.type_name(),
                "tenant_id": m.tenant_id,
                "stream_id": m.aggregate.stream_id(),
                "stream_version": m.stream_version,
                "task_id": m.task_id,
                "occurred_at": m.occurred_at,
                "correlation_id": m.correlation_id,
                "causation_id": m.causation_id,
                "payload": format!("{:?}", e.event.event),
            });
            writeln!(out, "{line}")?;
            n += 1;
            if a.limit > 0 && n >= a.limit {
                break 'pages;
            }
        }
        q.after_position = last;
    }
    out.flush()?;
    eprintln!("{n} events");
    Ok(ExitCode::SUCCESS)
}

async fn verify(pool: &sqlx::PgPool) -> Result<ExitCode, CliError> {
    let started = std::time::Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = waihu_record::replay::verify(pool, |at, head| {
        if tty {
            eprint!("\rreplaying position {at}/{head}");
        }
    })
    .await?;
    if tty {
        eprintln!();
    }
    println!(
        "replayed {} events up to position {} in {:.2} s: {} counters over {} tasks",
        report.events_replayed,
        report.position,
        started.elapsed().as_secs_f64(),
        report.counters,
        report.tasks
    );
    if report.identical() {
        println!("replay --verify: rebuilt statistics are identical to the live projection");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("replay --verify: {} differences", report.differences.len());
        for d in report.differences.iter().take(50) {
            println!("  {d}");
        }
        Ok(ExitCode::FAILURE)
    }
}
