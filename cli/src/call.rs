//! `waihu call dial|hangup|status`: click-to-dial through the dialer (`DialerService.Dial`,
//! `Hangup`, `GetCallStatus`), under the same rules as a campaign's calls.

use std::{process::ExitCode, time::Duration};

use clap::{Args, Subcommand};
use waihu_proto::v1::{self as pb, dialer_service_client::DialerServiceClient};

use crate::{status, task::with_tenant, Cli, CliError};

#[derive(Subcommand)]
pub enum CallCommand {
    /// Call one number now (outside any task); prints the call id.
    Dial(DialArgs),
    /// End a call now.
    Hangup { call_id: String },
    /// Where a call is: calling, ringing, connected or ended.
    Status {
        call_id: String,
        /// Keep printing each change until the call ends.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Args)]
pub struct DialArgs {
    /// The number (mainland or E.164).
    phone: String,
    /// The tenant's line to call on (default: the one whose caller number is nearest).
    #[arg(long, default_value = "")]
    line: String,
    #[arg(long, default_value = "")]
    customer_id: String,
    #[arg(long, default_value = "")]
    customer_name: String,
    #[arg(long, default_value = "")]
    order_id: String,
}

fn show(s: &pb::CallStatus) -> String {
    let mut out = format!(
        "{} {} {} line {} {}s",
        s.call_id, s.status, s.phone, s.line_id, s.duration_seconds
    );
    if s.status == "ended" {
        out.push_str(&format!(" cause {} {}", s.cause_q850, s.cause_name));
    }
    if !s.task_id.is_empty() {
        out.push_str(&format!(" task {} contact {}", s.task_id, s.contact_no));
    }
    out
}

pub async fn run(cli: &Cli, cmd: &CallCommand) -> Result<ExitCode, CliError> {
    let mut c = DialerServiceClient::new(crate::dialer_channel(cli).await?);
    match cmd {
        CallCommand::Dial(a) => {
            let r = c
                .dial(with_tenant(
                    &cli.tenant,
                    pb::DialRequest {
                        phone: a.phone.clone(),
                        line_id: a.line.clone(),
                        customer_id: a.customer_id.clone(),
                        customer_name: a.customer_name.clone(),
                        order_id: a.order_id.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("Dial", s))?
                .into_inner();
            eprintln!("calling {} on line {}", r.phone, r.line_id);
            println!("{}", r.call_id);
        }
        CallCommand::Hangup { call_id } => {
            let r = c
                .hangup(with_tenant(
                    &cli.tenant,
                    pb::HangupRequest {
                        call_id: call_id.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("Hangup", s))?
                .into_inner();
            if r.ended {
                println!("{} hung up", r.call_id);
            } else {
                println!("{} had already ended", r.call_id);
            }
        }
        CallCommand::Status { call_id, follow } => {
            let mut last = String::new();
            loop {
                let s = c
                    .get_call_status(with_tenant(
                        &cli.tenant,
                        pb::GetCallStatusRequest {
                            call_id: call_id.clone(),
                        },
                    )?)
                    .await
                    .map_err(|s| status("GetCallStatus", s))?
                    .into_inner();
                if !*follow {
                    println!("{}", show(&s));
                    break;
                }
                if s.status != last {
                    println!("{}", show(&s));
                    last = s.status.clone();
                }
                if s.status == "ended" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
