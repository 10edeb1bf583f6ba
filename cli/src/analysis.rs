//! `waihu analysis get <call>` and `waihu analysis reanalyze <call>`: where a call's analysis
//! stands in the analysis service, and analysing it again (`--wait` for the outcome). Both print
//! JSON.

use std::{process::ExitCode, time::Duration};

use clap::Subcommand;
use serde_json::{json, Value};
use waihu_proto::v1::{self as pb, analysis_service_client::AnalysisServiceClient};

use crate::{display::time, status, task::with_tenant, Cli, CliError};

#[derive(Subcommand)]
pub enum AnalysisCommand {
    /// Prints the call's analysis: status (pending, completed, failed), the result, the last
    /// failure, attempts.
    Get {
        /// The call's UUID.
        call: String,
    },
    /// Analyses the call again (its transcript, or its recording through the ASR backend).
    Reanalyze {
        /// The call's UUID.
        call: String,
        /// "local" or "llm" (default: the tenant's configured analyzer).
        #[arg(long)]
        analyzer: Option<String>,
        /// Transcribe the stored recording again (the ASR backend) first.
        #[arg(long)]
        retranscribe: bool,
        /// Wait (up to this many seconds) until the new analysis completes or is given up.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
}

fn json_of(a: &pb::Analysis) -> Value {
    let status = pb::AnalysisStatus::try_from(a.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ANALYSIS_STATUS_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| a.status.to_string());
    let result = a.result.as_ref().map(|r| {
        json!({
            "intent": r.intent,
            "grade": r.grade,
            "sentiment": r.sentiment,
            "keywords": r.keywords,
            "summary": r.summary,
            "language": r.language,
            "analyzer": r.analyzer,
        })
    });
    json!({
        "call_id": a.call_id,
        "task_id": a.task_id,
        "status": status,
        "result": result,
        "failure": a.failure,
        "attempts": a.attempts,
        "next_attempt_at": a.next_attempt_at.is_some().then(|| time(&a.next_attempt_at)),
        "transcript_source": a.transcript_source,
        "has_recording": a.has_recording,
        "analyzer": a.analyzer,
    })
}

pub async fn run(cli: &Cli, cmd: &AnalysisCommand) -> Result<ExitCode, CliError> {
    let mut client = AnalysisServiceClient::new(crate::analysis_channel(cli).await?);
    let get = |call: String| pb::GetAnalysisRequest { call_id: call };
    let a = match cmd {
        AnalysisCommand::Get { call } => client
            .get_analysis(with_tenant(&cli.tenant, get(call.clone()))?)
            .await
            .map_err(|s| status("GetAnalysis", s))?
            .into_inner(),
        AnalysisCommand::Reanalyze {
            call,
            analyzer,
            retranscribe,
            wait,
        } => {
            let mut a = client
                .reanalyze(with_tenant(
                    &cli.tenant,
                    pb::ReanalyzeRequest {
                        call_id: call.clone(),
                        analyzer: analyzer.clone().unwrap_or_default(),
                        retranscribe: *retranscribe,
                    },
                )?)
                .await
                .map_err(|s| status("Reanalyze", s))?
                .into_inner();
            if let Some(secs) = wait {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(*secs);
                while a.status == pb::AnalysisStatus::Pending as i32 {
                    if tokio::time::Instant::now() >= deadline {
                        eprintln!("still pending after {secs} s");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    a = client
                        .get_analysis(with_tenant(&cli.tenant, get(call.clone()))?)
                        .await
                        .map_err(|s| status("GetAnalysis", s))?
                        .into_inner();
                }
            }
            a
        }
    };
    println!("{}", json_of(&a));
    Ok(if a.status == pb::AnalysisStatus::Failed as i32 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
