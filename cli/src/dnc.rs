//! `waihu dnc add|remove|import|check`: the do-not-call lists (the dialer's `DialerService`):
//! the tenant's own, or with `--global` the platform's (operators).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use tonic::transport::Channel;
use waihu_proto::v1::{self as pb, dialer_service_client::DialerServiceClient};

use crate::{
    import::rows::RowReader,
    status,
    task::{as_operator, with_tenant},
    Cli, CliError,
};

/// Numbers sent per request (the service takes at most 10,000).
const BATCH: usize = 5_000;

#[derive(Subcommand)]
pub enum DncCommand {
    /// Put numbers on the list: they are never dialed again.
    Add(ChangeArgs),
    /// Take numbers off the list.
    Remove(ChangeArgs),
    /// Put every number of a CSV file (a `phone` column) on the list, in batches.
    Import(ImportArgs),
    /// Whether a number is on the tenant's list or the global one.
    Check { phone: String },
}

#[derive(Args)]
pub struct ChangeArgs {
    #[arg(required = true)]
    phones: Vec<String>,
    /// Why (kept with each entry added).
    #[arg(long, default_value = "")]
    reason: String,
    /// The platform-wide list (an operator's token).
    #[arg(long)]
    global: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A CSV file with a header row naming a `phone` column.
    file: std::path::PathBuf,
    #[arg(long, default_value = "")]
    reason: String,
    #[arg(long)]
    global: bool,
}

struct Totals {
    changed: u64,
    unchanged: u64,
    rejected: u64,
}

async fn send(
    cli: &Cli,
    c: &mut DialerServiceClient<Channel>,
    phones: Vec<String>,
    reason: &str,
    global: bool,
    add: bool,
    t: &mut Totals,
) -> Result<(), CliError> {
    let msg = pb::DoNotCallRequest {
        phones,
        reason: reason.to_string(),
    };
    let (name, r) = match (global, add) {
        (false, true) => (
            "AddDoNotCall",
            c.add_do_not_call(with_tenant(&cli.tenant, msg)?).await,
        ),
        (false, false) => (
            "RemoveDoNotCall",
            c.remove_do_not_call(with_tenant(&cli.tenant, msg)?).await,
        ),
        (true, true) => (
            "AddGlobalDoNotCall",
            c.add_global_do_not_call(as_operator(cli, msg)?).await,
        ),
        (true, false) => (
            "RemoveGlobalDoNotCall",
            c.remove_global_do_not_call(as_operator(cli, msg)?).await,
        ),
    };
    let r = r.map_err(|s| status(name, s))?.into_inner();
    for x in &r.rejected {
        eprintln!("  not a phone number: {:?}: {}", x.phone, x.reason);
    }
    t.changed += r.changed as u64;
    t.unchanged += r.unchanged as u64;
    t.rejected += r.rejected_total as u64;
    Ok(())
}

pub async fn run(cli: &Cli, cmd: &DncCommand) -> Result<ExitCode, CliError> {
    let mut c = DialerServiceClient::new(crate::dialer_channel(cli).await?);
    let mut t = Totals {
        changed: 0,
        unchanged: 0,
        rejected: 0,
    };
    let verb = |add: bool| if add { "added" } else { "removed" };
    match cmd {
        DncCommand::Add(a) | DncCommand::Remove(a) => {
            let add = matches!(cmd, DncCommand::Add(_));
            for chunk in a.phones.chunks(BATCH) {
                send(
                    cli,
                    &mut c,
                    chunk.to_vec(),
                    &a.reason,
                    a.global,
                    add,
                    &mut t,
                )
                .await?;
            }
            println!(
                "{} {}, {} {}, {} not phone numbers",
                verb(add),
                t.changed,
                t.unchanged,
                if add { "already listed" } else { "not listed" },
                t.rejected
            );
        }
        DncCommand::Import(a) => {
            let file =
                std::fs::File::open(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
            let mut rows = RowReader::from_reader(std::io::BufReader::new(file))?;
            let mut batch = Vec::with_capacity(BATCH);
            let mut sent = 0u64;
            while let Some(row) = rows.next_row()? {
                batch.push(row.phone);
                if batch.len() == BATCH {
                    sent += batch.len() as u64;
                    send(
                        cli,
                        &mut c,
                        std::mem::take(&mut batch),
                        &a.reason,
                        a.global,
                        true,
                        &mut t,
                    )
                    .await?;
                    eprintln!("  {sent} numbers sent");
                }
            }
            if !batch.is_empty() {
                sent += batch.len() as u64;
                send(cli, &mut c, batch, &a.reason, a.global, true, &mut t).await?;
            }
            for r in rows.stats.rejected.iter().take(20) {
                eprintln!("  line {}: {}", r.line, r.reason);
            }
            println!(
                "{sent} numbers read: {} added, {} already listed, {} not phone numbers, {} rows \
                 unreadable",
                t.changed, t.unchanged, t.rejected, rows.stats.rejected_total
            );
        }
        DncCommand::Check { phone } => {
            let r = c
                .check_do_not_call(with_tenant(
                    &cli.tenant,
                    pb::CheckDoNotCallRequest {
                        phone: phone.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("CheckDoNotCall", s))?
                .into_inner();
            if r.listed {
                let at = r
                    .added_at
                    .as_ref()
                    .and_then(waihu_events::from_timestamp)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                println!(
                    "{} is on the {} do-not-call list since {at}{}",
                    r.phone,
                    r.scope,
                    if r.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", r.reason)
                    }
                );
            } else {
                println!("{} is not on any do-not-call list", r.phone);
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
