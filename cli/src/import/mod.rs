//! `waihu task import`: a contact CSV streamed to `TaskService.AddContacts` in bounded memory.

pub mod rows;

use std::io::IsTerminal;

use tokio_stream::wrappers::ReceiverStream;
use waihu_proto::v1 as pb;

use crate::{
    status,
    task::{task_client, with_tenant},
    Cli, CliError,
};

/// What an import did: the server's report plus the rows the file itself spoiled.
pub struct ImportReport {
    pub reply: pb::AddContactsResponse,
    pub local: rows::ReadStats,
}

/// Streams a CSV file to `AddContacts` in chunks, in bounded memory: a blocking reader feeds a
/// small channel that is the request stream. Progress goes to a terminal's stderr.
pub async fn import_csv(
    cli: &Cli,
    task_id: &str,
    path: &std::path::Path,
) -> Result<ImportReport, CliError> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut rows =
        rows::RowReader::from_reader(file).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut client = task_client(cli).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::AddContactsRequest>(4);
    let stop = tokio_util::sync::CancellationToken::new();
    let progress = std::io::stderr().is_terminal();
    let reading = {
        let (task_id, stop, handle) = (
            task_id.to_string(),
            stop.clone(),
            tokio::runtime::Handle::current(),
        );
        tokio::task::spawn_blocking(move || -> Result<rows::ReadStats, CliError> {
            while let Some(chunk) = rows.next_chunk()? {
                let req = pb::AddContactsRequest {
                    task_id: task_id.clone(),
                    rows: chunk,
                };
                // Stops when the call has ended (the server refused or failed it).
                let sent = handle.block_on(async {
                    tokio::select! {
                        r = tx.send(req) => r.is_ok(),
                        _ = stop.cancelled() => false,
                    }
                });
                if !sent {
                    break;
                }
                if progress {
                    let pct = rows.byte_offset() as f64 * 100.0 / size.max(1) as f64;
                    eprint!("\rsending {} rows ({pct:.0}%)", rows.stats.rows);
                }
            }
            Ok(rows.stats)
        })
    };
    let call = client.add_contacts(with_tenant(&cli.tenant, ReceiverStream::new(rx))?);
    tokio::pin!(call);
    let mut reading = reading;
    let mut read = None;
    let reply = tokio::select! {
        r = &mut call => r,
        r = &mut reading => {
            // A read error ends here, dropping (and so cancelling) the call.
            read = Some(r.map_err(|e| format!("reading {}: {e}", path.display()))?.map_err(
                |e| {
                    format!(
                        "{}: {e}; import stopped (rows sent before it may have been added)",
                        path.display()
                    )
                },
            )?);
            call.await
        }
    };
    stop.cancel();
    let local = match read {
        Some(r) => r,
        None => reading
            .await
            .map_err(|e| format!("reading {}: {e}", path.display()))?
            .map_err(|e| format!("{}: {e}", path.display()))?,
    };
    if progress {
        eprintln!();
    }
    let reply = reply.map_err(|s| status("import", s))?.into_inner();
    Ok(ImportReport { reply, local })
}

/// The import report: counts (the file's spoiled rows included), then up to `listed`
/// rejected rows: those the file spoiled by file line, then the server's by row in the stream.
pub fn print_import(r: &ImportReport, listed: usize) {
    for line in import_lines(r, listed) {
        println!("{line}");
    }
}

fn import_lines(r: &ImportReport, listed: usize) -> Vec<String> {
    let (s, l) = (&r.reply, &r.local);
    let mut out = vec![format!(
        "received {}  accepted {}  duplicates {}  rejected {}  (task now has {} contacts)",
        s.received + l.rejected_total,
        s.accepted,
        s.duplicates,
        s.rejected_total + l.rejected_total,
        s.contacts_total
    )];
    let local = l
        .rejected
        .iter()
        .map(|x| format!("  line {:>5}  {}", x.line, x.reason));
    let server = s
        .rejected
        .iter()
        .map(|x| format!("  row {:>6}  {}", x.row, x.reason));
    out.extend(local.chain(server).take(listed));
    let shown = (out.len() - 1) as u64;
    let total = s.rejected_total + l.rejected_total;
    if total > shown {
        out.push(format!("  ... and {} more rejected rows", total - shown));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_merges_local_and_server_rejections() {
        let r = ImportReport {
            reply: pb::AddContactsResponse {
                received: 8,
                accepted: 6,
                duplicates: 1,
                rejected_total: 1,
                rejected: vec![pb::RejectedRow {
                    row: 4,
                    phone: "12".into(),
                    reason: "phone: too short".into(),
                }],
                contacts_total: 6,
            },
            local: rows::ReadStats {
                rows: 8,
                rejected: vec![rows::LocalRejection {
                    line: 3,
                    reason: "2 fields, the header has 3".into(),
                }],
                rejected_total: 2,
            },
        };
        assert_eq!(
            import_lines(&r, 50),
            [
                "received 10  accepted 6  duplicates 1  rejected 3  (task now has 6 contacts)",
                "  line     3  2 fields, the header has 3",
                "  row      4  phone: too short",
                "  ... and 1 more rejected rows",
            ]
        );
        assert_eq!(import_lines(&r, 1).len(), 3);
    }
}
