//! `waihu followup add|due`: what came of a call (seed 003's post-call form), and the
//! follow-ups due (the record service's `AddFollowUp`, `ListDueFollowUps`).

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use waihu_proto::v1::{self as pb, record_service_client::RecordServiceClient};

use crate::{
    display::{columns, or_dash, time},
    records::parse_time,
    status,
    task::with_tenant,
    Cli, CliError,
};

#[derive(Subcommand)]
pub enum FollowUpCommand {
    /// Write down what came of a call; prints the follow-up's id.
    Add(AddArgs),
    /// The follow-ups whose next follow-up time falls in [--from, --to), soonest first.
    Due(DueArgs),
}

#[derive(Args)]
#[command(group(
    ArgGroup::new("form")
        .required(true)
        .multiple(true)
        .args(["result", "intention", "note", "next"])
))]
pub struct AddArgs {
    /// The call's UUID or number.
    call: String,
    /// What came of it.
    #[arg(long)]
    result: Option<String>,
    /// The customer's intention.
    #[arg(long)]
    intention: Option<String>,
    /// A note (line breaks allowed).
    #[arg(long)]
    note: Option<String>,
    /// When to follow up next (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    next: Option<prost_types::Timestamp>,
    /// The same id always adds the follow-up once: safe to retry.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
}

#[derive(Args)]
pub struct DueArgs {
    /// Next follow-up at or after this time (RFC 3339; default: no lower bound).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    from: Option<prost_types::Timestamp>,
    /// Next follow-up before this time (RFC 3339; default: no upper bound).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    to: Option<prost_types::Timestamp>,
    /// Only the follow-ups this user wrote.
    #[arg(long = "mine-only-user", value_name = "USER")]
    added_by: Option<String>,
}

/// Follow-ups asked for a page.
const PAGE: u32 = 500;

/// The `followup due` table.
pub fn due_table(follow_ups: &[pb::FollowUp]) -> String {
    let rows: Vec<Vec<String>> = follow_ups
        .iter()
        .map(|f| {
            vec![
                time(&f.next_follow_up_at),
                if f.call_number == 0 {
                    "-".into()
                } else {
                    f.call_number.to_string()
                },
                or_dash(&f.phone).to_string(),
                or_dash(&f.result).to_string(),
                or_dash(&f.intention).to_string(),
                or_dash(f.note.lines().next().unwrap_or("")).to_string(),
            ]
        })
        .collect();
    columns(
        &["DUE", "CALL", "PHONE", "RESULT", "INTENTION", "NOTE"],
        &[1],
        &rows,
    )
}

pub async fn run(cli: &Cli, cmd: &FollowUpCommand) -> Result<ExitCode, CliError> {
    let mut c = RecordServiceClient::new(crate::record_channel(cli).await?);
    let tenant = cli.tenant.as_str();
    match cmd {
        FollowUpCommand::Add(a) => {
            let f = c
                .add_follow_up(with_tenant(
                    tenant,
                    pb::AddFollowUpRequest {
                        call_id: a.call.clone(),
                        result: a.result.clone().unwrap_or_default(),
                        intention: a.intention.clone().unwrap_or_default(),
                        note: a.note.clone().unwrap_or_default(),
                        next_follow_up_at: a.next,
                        request_id: a.request_id.clone().unwrap_or_default(),
                    },
                )?)
                .await
                .map_err(|s| status("AddFollowUp", s))?
                .into_inner();
            println!("{}", f.follow_up_id);
        }
        FollowUpCommand::Due(a) => {
            let mut all = Vec::new();
            let mut token = String::new();
            loop {
                let page = c
                    .list_due_follow_ups(with_tenant(
                        tenant,
                        pb::ListDueFollowUpsRequest {
                            from: a.from,
                            to: a.to,
                            added_by: a.added_by.clone().unwrap_or_default(),
                            page_size: PAGE,
                            page_token: token,
                        },
                    )?)
                    .await
                    .map_err(|s| status("ListDueFollowUps", s))?
                    .into_inner();
                all.extend(page.follow_ups);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if all.is_empty() {
                println!("no follow-ups due");
            } else {
                print!("{}", due_table(&all));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_table_shows_the_note_s_first_line() {
        let t = due_table(&[pb::FollowUp {
            call_number: 42,
            phone: "+8613800000000".into(),
            result: "回访".into(),
            note: "call after 6\nshe is at work".into(),
            next_follow_up_at: Some(prost_types::Timestamp {
                seconds: 1_790_816_400,
                nanos: 0,
            }),
            ..Default::default()
        }]);
        assert_eq!(
            t,
            "DUE                   CALL  PHONE           RESULT  INTENTION  NOTE\n\
             2026-10-01T01:00:00Z    42  +8613800000000  回访    -          call after 6\n"
        );
    }
}
