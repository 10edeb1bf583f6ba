//! `waihu screen create|status|list|results|rollback|check|mark`: batch number screening
//! (seed 004, the provider adapter's `ScreeningService`).

use std::{io::Write, process::ExitCode, time::Duration};

use clap::{Args, Subcommand, ValueEnum};
use tonic::transport::Channel;
use waihu_proto::v1::{
    self as pb, screening_service_client::ScreeningServiceClient,
    task_service_client::TaskServiceClient,
};

use crate::{display, import::rows::RowReader, status, task::with_tenant, Cli, CliError};

/// Numbers sent per message (the service takes at most 10,000).
const PER_MESSAGE: usize = 5_000;

#[derive(Subcommand)]
pub enum ScreenCommand {
    /// Screen numbers on a line whose provider has a batch API: from a CSV file (a `phone`
    /// column), a task's contacts, or the command line. The three jobs start at once.
    Create(CreateArgs),
    /// A job's progress and its batches' send and query log; --watch redraws until done.
    Status {
        screening_id: String,
        #[arg(long)]
        watch: bool,
    },
    /// The tenant's screening jobs, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Download a job's results as JSON or XLSX.
    Results {
        screening_id: String,
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
        /// Where to write (standard output for JSON when not given).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Roll a job's unfinished batches back to "sent" (or "generated" when sending failed).
    Rollback { screening_id: String },
    /// What is known of numbers' validity.
    Check {
        #[arg(required = true)]
        phones: Vec<String>,
    },
    /// Override numbers' validity (valid or unknown: later tasks dial them again).
    Mark {
        #[arg(long, value_enum)]
        validity: Mark,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(required = true)]
        phones: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Xlsx,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Mark {
    Valid,
    Invalid,
    Unknown,
}

#[derive(Args)]
pub struct CreateArgs {
    /// The tenant's line whose provider screens the numbers.
    #[arg(long)]
    line: String,
    /// A CSV file with a header row naming a `phone` column.
    #[arg(long, conflicts_with = "task")]
    file: Option<std::path::PathBuf>,
    /// Screen this task's contacts.
    #[arg(long)]
    task: Option<String>,
    /// The external system's batch id the numbers come from (kept with the job).
    #[arg(long, default_value = "")]
    batch_id: String,
    /// Numbers a batch holds (0 = the service's setting, 1,000 by default).
    #[arg(long, default_value_t = 0)]
    batch_size: u32,
    /// Leave out numbers already known valid.
    #[arg(long)]
    skip_known_valid: bool,
    /// Follow the job's progress until it is done.
    #[arg(long)]
    watch: bool,
    /// Numbers given on the command line.
    phones: Vec<String>,
}

fn batch_status(s: i32) -> &'static str {
    match pb::ScreeningBatchStatus::try_from(s) {
        Ok(pb::ScreeningBatchStatus::Generated) => "generated",
        Ok(pb::ScreeningBatchStatus::Sent) => "sent",
        Ok(pb::ScreeningBatchStatus::Queried) => "queried",
        Ok(pb::ScreeningBatchStatus::Failed) => "failed",
        _ => "-",
    }
}

fn job_status(s: i32) -> &'static str {
    match pb::ScreeningStatus::try_from(s) {
        Ok(pb::ScreeningStatus::Created) => "created",
        Ok(pb::ScreeningStatus::Running) => "running",
        Ok(pb::ScreeningStatus::Done) => "done",
        Ok(pb::ScreeningStatus::Failed) => "failed",
        _ => "-",
    }
}

async fn create(
    cli: &Cli,
    c: &mut ScreeningServiceClient<Channel>,
    a: &CreateArgs,
) -> Result<pb::Screening, CliError> {
    let head = pb::CreateScreeningRequest {
        line_id: a.line.clone(),
        external_batch_id: a.batch_id.clone(),
        task_id: a.task.clone().unwrap_or_default(),
        batch_size: a.batch_size,
        skip_known_valid: a.skip_known_valid,
        phones: vec![],
    };
    // The numbers go out in messages as they are read: a file of any size in bounded memory.
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::CreateScreeningRequest>(4);
    let reader = {
        let file = a.file.clone();
        let phones = a.phones.clone();
        // A task's contacts, page by page (a task number or UUID).
        let mut task = match &a.task {
            Some(t) => Some((
                TaskServiceClient::new(crate::task_channel(cli).await?),
                crate::task::task_uuid(cli, t).await?,
                cli.tenant.clone(),
            )),
            None => None,
        };
        tokio::spawn(async move {
            let send = |phones: Vec<String>| pb::CreateScreeningRequest {
                phones,
                ..Default::default()
            };
            if tx.send(head).await.is_err() {
                return Ok(0u64);
            }
            let mut n = 0u64;
            for chunk in phones.chunks(PER_MESSAGE) {
                n += chunk.len() as u64;
                if tx.send(send(chunk.to_vec())).await.is_err() {
                    return Ok(n);
                }
            }
            if let Some((client, task_id, tenant)) = &mut task {
                let mut after = 0u32;
                loop {
                    let req = with_tenant(
                        tenant,
                        pb::ListContactsRequest {
                            task_id: task_id.clone(),
                            page_size: 1000,
                            after_contact_no: after,
                        },
                    )
                    .map_err(|e| e.to_string())?;
                    let page = client
                        .list_contacts(req)
                        .await
                        .map_err(|s| status("ListContacts", s).to_string())?
                        .into_inner()
                        .contacts;
                    let Some(last) = page.last() else { break };
                    after = last.contact_no;
                    n += page.len() as u64;
                    let numbers = page.into_iter().map(|c| c.phone).collect();
                    if tx.send(send(numbers)).await.is_err() {
                        return Ok(n);
                    }
                }
            }
            if let Some(path) = file {
                let f =
                    std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut rows = RowReader::from_reader(std::io::BufReader::new(f))
                    .map_err(|e| e.to_string())?;
                let mut batch = Vec::with_capacity(PER_MESSAGE);
                while let Some(row) = rows.next_row().map_err(|e| e.to_string())? {
                    batch.push(row.phone);
                    if batch.len() == PER_MESSAGE {
                        n += batch.len() as u64;
                        if tx.send(send(std::mem::take(&mut batch))).await.is_err() {
                            return Ok(n);
                        }
                    }
                }
                n += batch.len() as u64;
                if !batch.is_empty() {
                    let _ = tx.send(send(batch)).await;
                }
                for r in rows.stats.rejected.iter().take(20) {
                    eprintln!("  line {}: {}", r.line, r.reason);
                }
            }
            Ok::<u64, String>(n)
        })
    };
    let r = c
        .create_screening(with_tenant(
            &cli.tenant,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )?)
        .await;
    let read = reader.await.map_err(|e| e.to_string())??;
    let s = r.map_err(|s| status("CreateScreening", s))?.into_inner();
    for x in &s.rejected {
        eprintln!("  not a phone number: {:?}: {}", x.phone, x.reason);
    }
    println!(
        "screening {} created: {read} numbers read, {} to screen in batches of {}, {} left out \
         (duplicates or known valid), {} not phone numbers",
        s.screening_id, s.total, s.batch_size, s.skipped, s.rejected_total
    );
    Ok(s)
}

fn progress_line(s: &pb::Screening) -> String {
    let width = 30;
    let done = if s.total == 0 {
        0.0
    } else {
        s.numbers_queried as f64 / s.total as f64
    };
    let filled = ((done * width as f64).round() as usize).min(width);
    format!(
        "[{}{}] {:>7}/{} numbers | batches {}/{} sent, {} queried | valid {} invalid {} unknown {} | {}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        s.numbers_queried,
        s.total,
        s.batches_sent,
        s.batches,
        s.batches_queried,
        s.valid,
        s.invalid,
        s.unknown,
        job_status(s.status)
    )
}

fn show(s: &pb::Screening) {
    let rows = vec![
        ("screening".to_string(), s.screening_id.clone()),
        ("status".into(), job_status(s.status).into()),
        ("line".into(), s.line_id.clone()),
        (
            "external batch id".into(),
            display::or_dash(&s.external_batch_id).into(),
        ),
        ("task".into(), display::or_dash(&s.task_id).into()),
        ("numbers".into(), s.total.to_string()),
        ("batch size".into(), s.batch_size.to_string()),
        ("created".into(), display::time(&s.createtime)),
        ("run began".into(), display::time(&s.runbegintime)),
        ("run ended".into(), display::time(&s.runendtime)),
        ("valid".into(), s.valid.to_string()),
        ("invalid".into(), s.invalid.to_string()),
        ("unknown".into(), s.unknown.to_string()),
    ];
    print!("{}", display::kv_table(&rows));
    let rows: Vec<Vec<String>> = s
        .batch_log
        .iter()
        .map(|b| {
            vec![
                b.order.to_string(),
                b.total.to_string(),
                batch_status(b.status).into(),
                format!("{}/{}", b.send_fromflag, b.send_recvflag),
                b.send_ms.to_string(),
                format!("{}/{}", b.query_fromflag, b.query_recvflag),
                b.query_ms.to_string(),
                display::or_dash(&b.query_res_suminfo).into(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print!(
            "{}",
            display::columns(
                &["batch", "numbers", "status", "send", "send ms", "query", "query ms", "result"],
                &[0, 1, 4, 6],
                &rows
            )
        );
    }
}

async fn watch(
    cli: &Cli,
    c: &mut ScreeningServiceClient<Channel>,
    id: &str,
) -> Result<pb::Screening, CliError> {
    let mut progress = display::LineProgress::new(10);
    loop {
        let s = c
            .get_screening(with_tenant(
                &cli.tenant,
                pb::GetScreeningRequest {
                    screening_id: id.to_string(),
                },
            )?)
            .await
            .map_err(|s| status("GetScreening", s))?
            .into_inner();
        let status = pb::ScreeningStatus::try_from(s.status);
        if matches!(
            status,
            Ok(pb::ScreeningStatus::Done | pb::ScreeningStatus::Failed)
        ) {
            progress.last(&progress_line(&s));
            return Ok(s);
        }
        progress.show(&progress_line(&s));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(cli: &Cli, cmd: &ScreenCommand) -> Result<ExitCode, CliError> {
    let mut c = ScreeningServiceClient::new(crate::provider_channel(cli).await?);
    match cmd {
        ScreenCommand::Create(a) => {
            if a.file.is_none() && a.task.is_none() && a.phones.is_empty() {
                return Err("name numbers: --file FILE.csv, --task TASK_ID or phones".into());
            }
            let s = create(cli, &mut c, a).await?;
            if a.watch {
                let s = watch(cli, &mut c, &s.screening_id).await?;
                show(&s);
            }
        }
        ScreenCommand::Status {
            screening_id,
            watch: w,
        } => {
            let s = if *w {
                watch(cli, &mut c, screening_id).await?
            } else {
                let s = c
                    .get_screening(with_tenant(
                        &cli.tenant,
                        pb::GetScreeningRequest {
                            screening_id: screening_id.clone(),
                        },
                    )?)
                    .await
                    .map_err(|s| status("GetScreening", s))?
                    .into_inner();
                println!("{}", progress_line(&s));
                s
            };
            show(&s);
        }
        ScreenCommand::List { limit } => {
            let r = c
                .list_screenings(with_tenant(
                    &cli.tenant,
                    pb::ListScreeningsRequest {
                        page_size: (*limit).clamp(1, 500),
                        page_token: String::new(),
                    },
                )?)
                .await
                .map_err(|s| status("ListScreenings", s))?
                .into_inner();
            let rows: Vec<Vec<String>> = r
                .screenings
                .iter()
                .map(|s| {
                    vec![
                        s.screening_id.clone(),
                        job_status(s.status).into(),
                        s.line_id.clone(),
                        display::or_dash(&s.external_batch_id).into(),
                        s.total.to_string(),
                        format!("{}/{}", s.batches_queried, s.batches),
                        s.invalid.to_string(),
                        display::time(&s.createtime),
                    ]
                })
                .collect();
            print!(
                "{}",
                display::columns(
                    &[
                        "screening",
                        "status",
                        "line",
                        "batch id",
                        "numbers",
                        "batches",
                        "invalid",
                        "created"
                    ],
                    &[4, 6],
                    &rows
                )
            );
        }
        ScreenCommand::Results {
            screening_id,
            format,
            output,
        } => {
            let format = match format {
                Format::Json => "json",
                Format::Xlsx => "xlsx",
            };
            if format == "xlsx" && output.is_none() {
                return Err(
                    "--format xlsx writes a binary file: give it with --output FILE.xlsx".into(),
                );
            }
            let mut stream = c
                .download_screening_results(with_tenant(
                    &cli.tenant,
                    pb::DownloadScreeningResultsRequest {
                        screening_id: screening_id.clone(),
                        format: format.into(),
                    },
                )?)
                .await
                .map_err(|s| status("DownloadScreeningResults", s))?
                .into_inner();
            let mut out: Box<dyn Write> = match output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut records = 0;
            while let Some(chunk) = stream
                .message()
                .await
                .map_err(|s| status("DownloadScreeningResults", s))?
            {
                out.write_all(&chunk.data)?;
                records = chunk.records;
            }
            out.flush()?;
            if let Some(p) = output {
                eprintln!("{records} numbers written to {}", p.display());
            }
        }
        ScreenCommand::Rollback { screening_id } => {
            let s = c
                .rollback_screening(with_tenant(
                    &cli.tenant,
                    pb::GetScreeningRequest {
                        screening_id: screening_id.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("RollbackScreening", s))?
                .into_inner();
            println!("{}", progress_line(&s));
        }
        ScreenCommand::Check { phones } => {
            let r = c
                .get_number_validity(with_tenant(
                    &cli.tenant,
                    pb::GetNumberValidityRequest {
                        phones: phones.clone(),
                    },
                )?)
                .await
                .map_err(|s| status("GetNumberValidity", s))?
                .into_inner();
            let rows: Vec<Vec<String>> = r
                .numbers
                .iter()
                .map(|n| {
                    vec![
                        n.phone.clone(),
                        pb::NumberValidity::try_from(n.validity)
                            .map(|v| v.as_str_name().trim_start_matches("NUMBER_VALIDITY_"))
                            .unwrap_or("-")
                            .to_lowercase(),
                        display::or_dash(&n.source).into(),
                        n.cause
                            .as_ref()
                            .map(|c| format!("{} {}", c.q850, c.name))
                            .unwrap_or_else(|| "-".into()),
                        display::time(&n.updated_at),
                    ]
                })
                .collect();
            print!(
                "{}",
                display::columns(
                    &["phone", "validity", "source", "cause", "since"],
                    &[],
                    &rows
                )
            );
        }
        ScreenCommand::Mark {
            validity,
            reason,
            phones,
        } => {
            let v = match validity {
                Mark::Valid => pb::NumberValidity::Valid,
                Mark::Invalid => pb::NumberValidity::Invalid,
                Mark::Unknown => pb::NumberValidity::Unknown,
            };
            let mut changed = 0;
            for chunk in phones.chunks(PER_MESSAGE) {
                let r = c
                    .set_number_validity(with_tenant(
                        &cli.tenant,
                        pb::SetNumberValidityRequest {
                            phones: chunk.to_vec(),
                            validity: v as i32,
                            reason: reason.clone(),
                        },
                    )?)
                    .await
                    .map_err(|s| status("SetNumberValidity", s))?
                    .into_inner();
                for x in &r.rejected {
                    eprintln!("  not a phone number: {:?}: {}", x.phone, x.reason);
                }
                changed += r.changed;
            }
            println!("{changed} numbers changed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
