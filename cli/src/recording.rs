//! `waihu recording url <call>`: a signed, expiring URL of a call's stored recording (the
//! record service's `GetRecordingUrl`); `--download` fetches it.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use waihu_proto::v1::{self as pb, record_service_client::RecordServiceClient};

use crate::{display::time, status, task::with_tenant, Cli, CliError};

#[derive(Subcommand)]
pub enum RecordingCommand {
    /// Prints the signed URL of the call's recording (valid 15 minutes unless --ttl).
    Url {
        /// The call's UUID or number.
        call: String,
        /// Seconds the URL stays valid (at most 604800, 7 days).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=604_800))]
        ttl: Option<u32>,
        /// Fetch the recording into this file ("-": standard output) instead of printing the
        /// URL.
        #[arg(long, value_name = "FILE")]
        download: Option<PathBuf>,
    },
}

pub async fn run(cli: &Cli, cmd: &RecordingCommand) -> Result<ExitCode, CliError> {
    let RecordingCommand::Url {
        call,
        ttl,
        download,
    } = cmd;
    let u = RecordServiceClient::new(crate::record_channel(cli).await?)
        .get_recording_url(with_tenant(
            &cli.tenant,
            pb::GetRecordingUrlRequest {
                call_id: call.clone(),
                ttl_seconds: ttl.unwrap_or(0),
            },
        )?)
        .await
        .map_err(|s| status("GetRecordingUrl", s))?
        .into_inner();
    let Some(path) = download else {
        println!("{}", u.url);
        eprintln!(
            "{}, {} bytes, {:.1} s; valid until {}",
            u.content_type,
            u.bytes,
            u.duration_ms as f64 / 1000.0,
            time(&u.expires_at)
        );
        return Ok(ExitCode::SUCCESS);
    };
    let mut resp = reqwest::get(&u.url)
        .await
        .map_err(|e| format!("cannot fetch the recording from {}: {e}", u.url))?;
    if !resp.status().is_success() {
        return Err(format!(
            "the recordings endpoint answered {} for {}",
            resp.status(),
            u.url
        )
        .into());
    }
    let mut out = crate::output::Output::create(Some(path))?;
    let mut bytes = 0u64;
    let copied: Result<(), CliError> = async {
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("the download stopped: {e}"))?
        {
            bytes += chunk.len() as u64;
            out.write_all(&chunk)?;
        }
        Ok(())
    }
    .await;
    let written = out
        .path()
        .map(|p| format!(" written to {}", p.display()))
        .unwrap_or_default();
    out.finish(copied)?;
    eprintln!("{bytes} bytes ({}){written}", u.content_type);
    Ok(ExitCode::SUCCESS)
}
