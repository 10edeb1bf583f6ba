//! `waihu tenant get|set`: operators read and set a tenant's entitlements (the task service's
//! `TenantService`, with the operator tenant's token).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use waihu_proto::v1::{self as pb, tenant_service_client::TenantServiceClient};

use crate::{export, status, task::as_operator, Cli, CliError};

#[derive(Subcommand)]
pub enum TenantCommand {
    /// A tenant's entitlements (the defaults, marked so, when none were set).
    Get { tenant: String },
    /// Change a tenant's entitlements; what is not given keeps its current value.
    Set(SetArgs),
}

#[derive(Args)]
pub struct SetArgs {
    tenant: String,
    /// Automatic dialing (seed 001 is_open_bot): on or off.
    #[arg(long, value_parser = ["on", "off"])]
    bot: Option<String>,
    /// When automatic dialing ends (RFC 3339), or `never`.
    #[arg(long)]
    expire_at: Option<String>,
    /// Open tasks at once (seed 001 bot_task_num); 0 = no limit.
    #[arg(long)]
    max_tasks: Option<u32>,
    /// Calls out at once over all the tenant's tasks; 0 = no limit.
    #[arg(long)]
    max_concurrent_calls: Option<u32>,
    /// Calls per day (from midnight in the time zone); 0 = no limit.
    #[arg(long)]
    daily_calls: Option<u32>,
    /// IANA time zone of the tenant's day, e.g. Asia/Shanghai.
    #[arg(long)]
    time_zone: Option<String>,
}

pub async fn run(cli: &Cli, cmd: &TenantCommand) -> Result<ExitCode, CliError> {
    let mut c = TenantServiceClient::new(crate::task_channel(cli).await?);
    let get = |tenant: &str| pb::GetEntitlementsRequest {
        tenant_id: tenant.to_string(),
    };
    let shown = match cmd {
        TenantCommand::Get { tenant } => c
            .get_entitlements(as_operator(cli, get(tenant))?)
            .await
            .map_err(|s| status("GetEntitlements", s))?
            .into_inner(),
        TenantCommand::Set(a) => {
            let current = c
                .get_entitlements(as_operator(cli, get(&a.tenant))?)
                .await
                .map_err(|s| status("GetEntitlements", s))?
                .into_inner()
                .entitlements
                .unwrap_or_default();
            let e = apply(current, a)?;
            c.set_entitlements(as_operator(
                cli,
                pb::SetEntitlementsRequest {
                    entitlements: Some(e),
                },
            )?)
            .await
            .map_err(|s| status("SetEntitlements", s))?
            .into_inner()
        }
    };
    println!("{}", text(&shown));
    Ok(ExitCode::SUCCESS)
}

/// `current` with the flags given applied.
fn apply(mut e: pb::Entitlements, a: &SetArgs) -> Result<pb::Entitlements, CliError> {
    e.tenant_id = a.tenant.clone();
    if let Some(b) = &a.bot {
        e.bot_enabled = b == "on";
    }
    match a.expire_at.as_deref() {
        None => {}
        Some("never") => e.bot_expire_at = None,
        Some(t) => {
            let at = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|err| format!("--expire-at {t:?}: not RFC 3339 ({err}) or `never`"))?;
            e.bot_expire_at = Some(prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: at.timestamp_subsec_nanos() as i32,
            });
        }
    }
    e.max_tasks = a.max_tasks.unwrap_or(e.max_tasks);
    e.max_concurrent_calls = a.max_concurrent_calls.unwrap_or(e.max_concurrent_calls);
    e.daily_calls = a.daily_calls.unwrap_or(e.daily_calls);
    if let Some(z) = &a.time_zone {
        e.time_zone = z.clone();
    }
    Ok(e)
}

fn text(t: &pb::TenantEntitlements) -> String {
    let e = t.entitlements.clone().unwrap_or_default();
    let limit = |n: u32| {
        if n == 0 {
            "no limit".to_string()
        } else {
            n.to_string()
        }
    };
    format!(
        "tenant                {}{}\n\
         automatic dialing     {}\n\
         expires               {}\n\
         max open tasks        {}\n\
         max calls at once     {}\n\
         calls per day         {}\n\
         time zone             {}",
        e.tenant_id,
        if t.configured {
            ""
        } else {
            " (none set: defaults)"
        },
        if e.bot_enabled { "on" } else { "off" },
        e.bot_expire_at
            .as_ref()
            .map(export::rfc3339)
            .unwrap_or_else(|| "never".into()),
        limit(e.max_tasks),
        limit(e.max_concurrent_calls),
        limit(e.daily_calls),
        e.time_zone
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_changes_only_what_is_given() {
        let current = pb::Entitlements {
            tenant_id: "acme".into(),
            bot_enabled: true,
            max_tasks: 5,
            daily_calls: 1000,
            time_zone: "Asia/Shanghai".into(),
            ..Default::default()
        };
        let args = SetArgs {
            tenant: "acme".into(),
            bot: Some("off".into()),
            expire_at: Some("2027-01-01T00:00:00+08:00".into()),
            max_tasks: None,
            max_concurrent_calls: Some(30),
            daily_calls: None,
            time_zone: None,
        };
        let e = apply(current, &args).expect("applied");
        assert!(!e.bot_enabled);
        assert_eq!(e.max_tasks, 5);
        assert_eq!(e.max_concurrent_calls, 30);
        assert_eq!(e.daily_calls, 1000);
        assert_eq!(e.bot_expire_at.expect("expiry").seconds, 1798732800);
        let shown = text(&pb::TenantEntitlements {
            entitlements: Some(e),
            configured: true,
        });
        assert!(shown.contains("automatic dialing     off"), "{shown}");
        assert!(shown.contains("max open tasks        5"), "{shown}");
        let bad = SetArgs {
            expire_at: Some("tomorrow".into()),
            ..args
        };
        assert!(apply(pb::Entitlements::default(), &bad)
            .expect_err("bad time")
            .to_string()
            .contains("--expire-at"));
    }
}
