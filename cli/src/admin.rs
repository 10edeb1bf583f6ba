//! `waihu dlq ...` and `waihu store ...`: operator tools over the record service's
//! `AdminService`.

use std::process::ExitCode;

use clap::Subcommand;
use tonic::transport::Channel;
use waihu_proto::v1::{self as pb, admin_service_client::AdminServiceClient};

use crate::{
    export::{self, json::EnvelopeJson},
    status,
    task::as_operator,
    Cli, CliError,
};

#[derive(Subcommand)]
pub enum DlqCommand {
    /// One line per dead letter, oldest first: sequence, time, consumer, event type, subject,
    /// reason.
    List {
        /// Only dead letters of this consumer (e.g. store-writer, task-completion).
        #[arg(long)]
        consumer: Option<String>,
        /// Start after this dead-letter sequence.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Stop after this many (0 = all).
        #[arg(long, default_value_t = 0)]
        limit: u64,
    },
    /// Every field of one dead letter, and its envelope as proto3 JSON.
    Show { sequence: u64 },
    /// Publish dead letters again on their original subjects, then remove them.
    Replay {
        #[arg(required = true)]
        sequences: Vec<u64>,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// The store writer's position, the stream's last sequence, and why it is halted if it is.
    Status,
    /// Make the store follow the events stream as it is now, after the stream was recreated or
    /// lost its tail. Refused unless the writer halted for that reason, or --force.
    Rebase {
        #[arg(long)]
        force: bool,
    },
}

async fn client(cli: &Cli) -> Result<AdminServiceClient<Channel>, CliError> {
    let channel = crate::record_channel(cli).await?;
    Ok(AdminServiceClient::new(channel).max_decoding_message_size(64 << 20))
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .map(export::rfc3339)
        .unwrap_or_else(|| "-".into())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `dlq list` line.
pub fn list_line(d: &pb::DeadLetter) -> String {
    format!(
        "{:>8}  {}  {:<18} {:<16} {}  {}",
        d.sequence,
        time(&d.dead_lettered_at),
        or_dash(&d.consumer),
        or_dash(&d.event_type),
        or_dash(&d.subject),
        d.reason
    )
}

/// `dlq show` text.
pub fn show_text(d: &pb::DeadLetter) -> Result<String, CliError> {
    let mut out = format!(
        "sequence          {}\n\
         dead-lettered at  {}\n\
         consumer          {}\n\
         reason            {}\n\
         subject           {}\n\
         stream sequence   {}\n\
         deliveries        {}\n\
         event type        {}\n\
         original size     {} bytes\n\
         payload           {} bytes{}\n",
        d.sequence,
        time(&d.dead_lettered_at),
        d.consumer,
        d.reason,
        d.subject,
        d.stream_sequence,
        d.deliveries,
        d.event_type,
        d.original_size,
        d.payload.len(),
        if d.payload_truncated {
            " (truncated)"
        } else {
            ""
        },
    );
    match &d.envelope {
        Some(env) => {
            let decoded = export::decode_payload(&env.event_type, &env.payload, true);
            let json = serde_json::to_string_pretty(&EnvelopeJson::new(env, decoded.as_ref()))?;
            out.push_str("envelope\n");
            out.push_str(&json);
            out.push('\n');
        }
        None => {
            out.push_str("envelope          - (the payload is not an envelope)\n");
            out.push_str(&format!(
                "payload (base64)  {}\n",
                export::base64(&d.payload)
            ));
        }
    }
    Ok(out)
}

/// `store status` text; the halt reason comes first when there is one.
pub fn status_text(s: &pb::StoreStatus) -> String {
    let mut out = String::new();
    if s.halted.is_empty() {
        out.push_str("store writer      running\n");
    } else {
        out.push_str(&format!("store writer      HALTED: {}\n", s.halted));
    }
    out.push_str(&format!(
        "stored position   {}\n\
         projected to      {}\n\
         stream last seq   {}\n\
         base              {}\n\
         stream created    {}\n\
         unknown events    {}\n\
         dead-lettered     {}\n\
         not projected     {}",
        s.position,
        s.projected_position,
        s.stream_last_sequence,
        s.base,
        time(&s.stream_created),
        s.unknown_events,
        s.dead_lettered,
        s.projection_refused
    ));
    out
}

pub async fn dlq(cli: &Cli, cmd: &DlqCommand) -> Result<ExitCode, CliError> {
    let mut c = client(cli).await?;
    match cmd {
        DlqCommand::List {
            consumer,
            after,
            limit,
        } => {
            let mut after = *after;
            let mut shown = 0u64;
            loop {
                let want = if *limit == 0 {
                    1000
                } else {
                    (limit - shown).min(1000)
                };
                let page = c
                    .list_dead_letters(as_operator(
                        cli,
                        pb::ListDeadLettersRequest {
                            consumer: consumer.clone().unwrap_or_default(),
                            after_sequence: after,
                            page_size: want as u32,
                        },
                    )?)
                    .await
                    .map_err(|s| status("dlq list", s))?
                    .into_inner();
                for d in &page.dead_letters {
                    println!("{}", list_line(d));
                    shown += 1;
                    if *limit > 0 && shown >= *limit {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                // Guard against a server that would hand the same page back.
                if page.next_after_sequence == 0 || page.next_after_sequence <= after {
                    break;
                }
                after = page.next_after_sequence;
            }
            eprintln!("{shown} dead letters");
        }
        DlqCommand::Show { sequence } => {
            let d = c
                .get_dead_letter(as_operator(
                    cli,
                    pb::GetDeadLetterRequest {
                        sequence: *sequence,
                    },
                )?)
                .await
                .map_err(|s| status("dlq show", s))?
                .into_inner();
            print!("{}", show_text(&d)?);
        }
        DlqCommand::Replay { sequences } => {
            let mut failed = 0;
            for &sequence in sequences {
                match c
                    .replay_dead_letter(as_operator(cli, pb::ReplayDeadLetterRequest { sequence })?)
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        println!(
                            "dead letter {sequence}: republished on {} at stream sequence {}",
                            r.subject, r.republished_sequence
                        );
                    }
                    Err(s) => {
                        failed += 1;
                        eprintln!("{}", status(&format!("dead letter {sequence}"), s));
                    }
                }
            }
            if failed > 0 {
                return Err(format!("{failed} of {} not replayed", sequences.len()).into());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn store(cli: &Cli, cmd: &StoreCommand) -> Result<ExitCode, CliError> {
    let mut c = client(cli).await?;
    let s = match cmd {
        StoreCommand::Status => c
            .get_store_status(as_operator(cli, pb::GetStoreStatusRequest {})?)
            .await
            .map_err(|s| status("store status", s))?,
        StoreCommand::Rebase { force } => c
            .rebase_store(as_operator(cli, pb::RebaseStoreRequest { force: *force })?)
            .await
            .map_err(|s| status("store rebase", s))?,
    }
    .into_inner();
    if matches!(cmd, StoreCommand::Rebase { .. }) {
        println!("store re-based");
    }
    println!("{}", status_text(&s));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::testdata;

    fn dead_letter(envelope: Option<pb::Envelope>) -> pb::DeadLetter {
        pb::DeadLetter {
            sequence: 42,
            consumer: "task-completion".into(),
            reason: "undecodable: invalid wire type".into(),
            subject: "waihu.evt.call.6f7c".into(),
            stream_sequence: 1234,
            deliveries: 5,
            event_type: "CallReleased".into(),
            dead_lettered_at: Some(prost_types::Timestamp {
                seconds: 1_790_000_000,
                nanos: 0,
            }),
            original_size: 210,
            payload_truncated: false,
            payload: vec![1, 2, 3],
            envelope,
        }
    }

    #[test]
    fn list_line_has_every_column() {
        assert_eq!(
            list_line(&dead_letter(None)),
            "      42  2026-09-21T14:13:20Z  task-completion    CallReleased     \
             waihu.evt.call.6f7c  undecodable: invalid wire type"
        );
    }

    #[test]
    fn show_prints_the_envelope_as_proto3_json() -> Result<(), CliError> {
        let env = testdata::call_released(1).envelope;
        let text = show_text(&dead_letter(env))?;
        assert!(text.contains("stream sequence   1234\n"), "{text}");
        assert!(text.contains("deliveries        5\n"), "{text}");
        let json = &text[text.find("envelope\n").ok_or("no envelope")? + 9..];
        let v: serde_json::Value = serde_json::from_str(json)?;
        assert_eq!(v["eventType"], "CallReleased");
        assert_eq!(v["payload"]["cause"]["name"], "USER_BUSY");
        assert_eq!(v["streamVersion"], "4");

        let text = show_text(&dead_letter(None))?;
        assert!(text.contains("payload (base64)  AQID\n"), "{text}");
        Ok(())
    }

    #[test]
    fn halted_reason_comes_first() {
        let s = pb::StoreStatus {
            position: 10,
            stream_last_sequence: 3,
            halted: "the events stream was recreated (last sequence 3 < stored 10)".into(),
            ..Default::default()
        };
        let text = status_text(&s);
        assert!(text.starts_with("store writer      HALTED: the events stream was recreated"));
        assert!(text.contains("stream last seq   3"));
        assert!(status_text(&pb::StoreStatus::default()).starts_with("store writer      running"));
    }
}
