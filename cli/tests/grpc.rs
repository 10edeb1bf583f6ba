//! The `waihu` binary against small in-process gRPC servers standing in for the task and record
//! services: export formats, the tenant header, verify, dead letters, streaming import, and
//! ending quietly when its output pipe closes.

use std::{
    pin::Pin,
    process::Output,
    sync::{Arc, Mutex},
    time::Duration,
};

use prost::Message;
use tokio_stream::{wrappers::TcpListenerStream, Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use waihu_proto::v1::{
    self as pb, admin_service_server::AdminServiceServer,
    record_service_server::RecordServiceServer, task_service_server::TaskServiceServer,
};

type Error = Box<dyn std::error::Error + Send + Sync>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What the fake servers saw.
#[derive(Default)]
struct Seen {
    tenants: Vec<String>,
    export: Option<pb::ExportEventsRequest>,
    chunk_sizes: Vec<usize>,
}

#[derive(Clone)]
struct Fake {
    events: u64,
    identical: bool,
    dead_letters: u64,
    seen: Arc<Mutex<Seen>>,
}

impl Fake {
    fn tenant<T>(&self, r: &Request<T>) {
        let t = r
            .metadata()
            .get("x-tenant-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Ok(mut s) = self.seen.lock() {
            s.tenants.push(t);
        }
    }
}

fn event(position: u64) -> pb::ExportedEvent {
    let payload = pb::ContactFinished {
        task_id: "t-1".into(),
        contact_no: position as u32,
        outcome: pb::ContactOutcome::Answered as i32,
        attempts: 1,
        last_call_id: "c-1".into(),
    };
    pb::ExportedEvent {
        position,
        envelope: Some(pb::Envelope {
            event_id: format!("e-{position}"),
            event_type: "ContactFinished".into(),
            schema_version: 1,
            tenant_id: "acme".into(),
            stream_id: format!("contact-t-1-{position}"),
            stream_version: 1,
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_790_000_000 + position as i64,
                nanos: 0,
            }),
            task_id: "t-1".into(),
            payload: payload.encode_to_vec(),
            ..Default::default()
        }),
        recorded_at: position
            .is_multiple_of(2)
            .then_some(prost_types::Timestamp {
                seconds: 1_790_000_100,
                nanos: 5_000,
            }),
        // Every 1000th is of a type this build does not know.
        known: !position.is_multiple_of(1000),
    }
}

#[tonic::async_trait]
impl pb::record_service_server::RecordService for Fake {
    async fn list_call_records(
        &self,
        _: Request<pb::ListCallRecordsRequest>,
    ) -> Result<Response<pb::ListCallRecordsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn get_call_record(
        &self,
        _: Request<pb::GetCallRecordRequest>,
    ) -> Result<Response<pb::CallRecord>, Status> {
        Err(Status::unimplemented("fake"))
    }
    type ExportEventsStream = BoxStream<pb::ExportedEvent>;
    async fn export_events(
        &self,
        r: Request<pb::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        self.tenant(&r);
        let req = r.into_inner();
        let n = if req.limit > 0 {
            req.limit.min(self.events)
        } else {
            self.events
        };
        if let Ok(mut s) = self.seen.lock() {
            s.export = Some(req.clone());
        }
        let first = req.after_position + 1;
        Ok(Response::new(Box::pin(tokio_stream::iter(
            (first..first + n).map(|p| Ok(event(p))),
        ))))
    }
    type VerifyReplayStream = BoxStream<pb::VerifyReplayUpdate>;
    async fn verify_replay(
        &self,
        r: Request<pb::VerifyReplayRequest>,
    ) -> Result<Response<Self::VerifyReplayStream>, Status> {
        self.tenant(&r);
        use pb::verify_replay_update::Update;
        let progress = (1..=3).map(|i| {
            Update::Progress(pb::VerifyReplayProgress {
                position: i * 100,
                head: 300,
                events_replayed: i * 100,
            })
        });
        let report = Update::Report(pb::VerifyReplayReport {
            position: 300,
            events_replayed: 300,
            counters: 40,
            tasks: 2,
            events_skipped: 1,
            differences: if self.identical {
                vec![]
            } else {
                vec!["task t-1 calls_placed: live 10, replayed 11".into()]
            },
            identical: self.identical,
        });
        let updates = progress.chain(std::iter::once(report));
        Ok(Response::new(Box::pin(tokio_stream::iter(
            updates.map(|u| Ok(pb::VerifyReplayUpdate { update: Some(u) })),
        ))))
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for Fake {
    async fn list_dead_letters(
        &self,
        r: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        self.tenant(&r);
        let r = r.into_inner();
        let size = u64::from(r.page_size.clamp(1, 1000));
        let last = (r.after_sequence + size).min(self.dead_letters);
        let dead_letters = (r.after_sequence + 1..=last)
            .map(|sequence| pb::DeadLetter {
                sequence,
                consumer: r.consumer.clone(),
                reason: "poison".into(),
                ..Default::default()
            })
            .collect();
        let next_after_sequence = if last < self.dead_letters { last } else { 0 };
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters,
            next_after_sequence,
        }))
    }
    async fn get_dead_letter(
        &self,
        _: Request<pb::GetDeadLetterRequest>,
    ) -> Result<Response<pb::DeadLetter>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn replay_dead_letter(
        &self,
        r: Request<pb::ReplayDeadLetterRequest>,
    ) -> Result<Response<pb::ReplayDeadLetterResponse>, Status> {
        match r.into_inner().sequence {
            7 => Err(Status::not_found("no dead letter 7")),
            s => Ok(Response::new(pb::ReplayDeadLetterResponse {
                republished_sequence: 1000 + s,
                subject: "waihu.evt.call.c-1".into(),
            })),
        }
    }
    async fn get_store_status(
        &self,
        _: Request<pb::GetStoreStatusRequest>,
    ) -> Result<Response<pb::StoreStatus>, Status> {
        Ok(Response::new(pb::StoreStatus {
            position: 10,
            stream_last_sequence: 3,
            halted: "stream recreated".into(),
            ..Default::default()
        }))
    }
    async fn rebase_store(
        &self,
        _: Request<pb::RebaseStoreRequest>,
    ) -> Result<Response<pb::StoreStatus>, Status> {
        Err(Status::failed_precondition("not halted"))
    }
}

#[tonic::async_trait]
impl pb::task_service_server::TaskService for Fake {
    async fn create_task(
        &self,
        _: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn add_contacts(
        &self,
        r: Request<Streaming<pb::AddContactsRequest>>,
    ) -> Result<Response<pb::AddContactsResponse>, Status> {
        self.tenant(&r);
        let mut stream = r.into_inner();
        let mut reply = pb::AddContactsResponse::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if chunk.task_id == "missing" {
                return Err(Status::not_found("task missing"));
            }
            if let Ok(mut s) = self.seen.lock() {
                s.chunk_sizes.push(chunk.rows.len());
            }
            for row in chunk.rows {
                reply.received += 1;
                if row.phone.len() < 5 {
                    reply.rejected_total += 1;
                    reply.rejected.push(pb::RejectedRow {
                        row: reply.received,
                        phone: row.phone,
                        reason: "phone: too short".into(),
                    });
                } else {
                    reply.accepted += 1;
                }
            }
        }
        reply.contacts_total = reply.accepted as u32;
        Ok(Response::new(reply))
    }
    async fn start_task(&self, _: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn pause_task(&self, _: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn resume_task(&self, _: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn cancel_task(
        &self,
        _: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn get_task(&self, _: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_tasks(
        &self,
        _: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn list_contacts(
        &self,
        _: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

/// Serves `fake` on a free loopback port; returns its address.
async fn serve(fake: Fake) -> Result<String, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RecordServiceServer::new(fake.clone()))
            .add_service(AdminServiceServer::new(fake.clone()))
            .add_service(TaskServiceServer::new(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok(addr)
}

fn fake(events: u64) -> Fake {
    Fake {
        events,
        identical: true,
        dead_letters: 0,
        seen: Arc::default(),
    }
}

/// Runs `waihu --task-addr A --record-addr A --tenant acme <args>`.
async fn waihu(addr: &str, args: &[&str]) -> Result<Output, Error> {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_waihu"));
    cmd.args([
        "--task-addr",
        addr,
        "--record-addr",
        addr,
        "--tenant",
        "acme",
    ])
    .args(args)
    .env_remove("RUST_LOG")
    .env_remove("WAIHU_TOKEN")
    .env(
        "WAIHU_AUTH__HS256_KEY",
        waihu_runtime::CommonConfig::TEST_KEY,
    )
    .kill_on_drop(true);
    Ok(tokio::time::timeout(Duration::from_secs(60), cmd.output()).await??)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("waihu-cli-it-{}-{name}", std::process::id()))
}

#[tokio::test]
async fn replay_exports_json_csv_and_parquet_with_the_tenant() -> Result<(), Error> {
    let f = fake(25_000);
    let addr = serve(f.clone()).await?;

    let out = waihu(
        &addr,
        &[
            "replay",
            "--type",
            "ContactFinished",
            "--after",
            "5",
            "--to-position",
            "9",
            "--limit",
            "3",
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["position"], 6);
    assert_eq!(lines[0]["payload"]["outcome"], "CONTACT_OUTCOME_ANSWERED");
    assert_eq!(text(&out.stderr), "3 events\n");
    {
        let seen = f.seen.lock().map_err(|e| e.to_string())?;
        let req = seen.export.clone().ok_or("no export request")?;
        assert_eq!(req.event_types, ["ContactFinished"]);
        assert_eq!((req.after_position, req.to_position, req.limit), (5, 9, 3));
        assert_eq!(seen.tenants, ["acme"]);
    }

    let csv = temp("export.csv");
    let out = waihu(
        &addr,
        &[
            "replay",
            "--format",
            "csv",
            "--output",
            csv.to_str().ok_or("path")?,
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "25000 events\n");
    let mut rows = csv::Reader::from_path(&csv)?;
    assert_eq!(rows.headers()?.get(14), Some("payload"));
    let records = rows.records().collect::<Result<Vec<_>, _>>()?;
    assert_eq!(records.len(), 25_000);
    let unknown: Vec<_> = records.iter().filter(|r| r[14].is_empty()).collect();
    assert_eq!(unknown.len(), 25, "every 1000th is unknown");
    assert!(unknown.iter().all(|r| !r[15].is_empty()), "kept as base64");
    std::fs::remove_file(&csv)?;

    let pq = temp("export.parquet");
    let out = waihu(
        &addr,
        &[
            "replay",
            "--format",
            "parquet",
            "-o",
            pq.to_str().ok_or("path")?,
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(&pq)?)?;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 25_000);
    assert_eq!(reader.metadata().num_row_groups(), 3);
    std::fs::remove_file(&pq)?;

    let out = waihu(&addr, &["replay", "--format", "parquet"]).await?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--output"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn closed_stdout_ends_quietly() -> Result<(), Error> {
    let addr = serve(fake(50_000)).await?;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_waihu"))
        .args(["--record-addr", &addr, "replay"])
        .env(
            "WAIHU_AUTH__HS256_KEY",
            waihu_runtime::CommonConfig::TEST_KEY,
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // Read a little, like `| head -1`, then close the pipe.
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut buf = [0u8; 100];
    tokio::io::AsyncReadExt::read(&mut stdout, &mut buf).await?;
    drop(stdout);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await??;
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(13), "ended by SIGPIPE: {stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn verify_prints_the_report_and_exits_by_it() -> Result<(), Error> {
    let addr = serve(fake(0)).await?;
    let out = waihu(&addr, &["replay", "--verify"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("replayed 300 events up to position 300 in "),
        "{stdout}"
    );
    assert!(
        stdout.contains(": 40 counters over 2 tasks\n1 events skipped"),
        "{stdout}"
    );
    assert!(stdout.ends_with("rebuilt statistics are identical to the live projection\n"));

    let addr = serve(Fake {
        identical: false,
        ..fake(0)
    })
    .await?;
    let out = waihu(&addr, &["replay", "--verify"]).await?;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("replay --verify: 1 differences\n  task t-1 calls_placed"));
    Ok(())
}

#[tokio::test]
async fn dlq_and_store_commands() -> Result<(), Error> {
    let addr = serve(Fake {
        dead_letters: 2_345,
        ..fake(0)
    })
    .await?;
    let out = waihu(&addr, &["dlq", "list", "--consumer", "store-writer"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 2_345, "pages through all");
    assert!(stdout.lines().all(|l| l.contains("store-writer")));
    let out = waihu(&addr, &["dlq", "list", "--after", "2340", "--limit", "3"]).await?;
    assert_eq!(text(&out.stdout).lines().count(), 3);
    assert!(text(&out.stdout).starts_with("    2341  "));

    let out = waihu(&addr, &["dlq", "replay", "5", "7", "9"]).await?;
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stdout),
        "dead letter 5: republished on waihu.evt.call.c-1 at stream sequence 1005\n\
         dead letter 9: republished on waihu.evt.call.c-1 at stream sequence 1009\n"
    );
    assert!(text(&out.stderr).contains("dead letter 7: no dead letter 7"));

    let out = waihu(&addr, &["store", "status"]).await?;
    assert!(text(&out.stdout).starts_with("store writer      HALTED: stream recreated\n"));
    let out = waihu(&addr, &["store", "rebase"]).await?;
    assert!(text(&out.stderr).contains("not halted"));
    Ok(())
}

#[tokio::test]
async fn import_streams_in_chunks_and_reports_bad_rows() -> Result<(), Error> {
    let f = fake(0);
    let addr = serve(f.clone()).await?;
    let path = temp("contacts.csv");
    let mut csv = b"phone,name,city\n".to_vec();
    for i in 0..2_500u32 {
        match i {
            10 => csv.extend_from_slice(b"13800000010,ragged\n"),
            20 => csv.extend_from_slice(b"13800000020,N\xff,X\n"),
            30 => csv.extend_from_slice(b"123,short,Y\n"),
            _ => csv.extend_from_slice(format!("1380000{i:04},n{i},Shanghai\n").as_bytes()),
        }
    }
    std::fs::write(&path, &csv)?;
    let p = path.to_str().ok_or("path")?;
    let out = waihu(&addr, &["task", "import", "t-1", p]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "received 2500  accepted 2497  duplicates 0  rejected 3  (task now has 2497 contacts)\n\
         \x20 line    12  2 fields, the header has 3\n\
         \x20 line    22  field 2 is not valid UTF-8\n\
         \x20 row     29  phone: too short\n"
    );
    {
        let seen = f.seen.lock().map_err(|e| e.to_string())?;
        assert_eq!(seen.chunk_sizes, [1000, 1000, 498]);
        assert_eq!(seen.tenants, ["acme"]);
    }

    // The server refuses at once: a clear error, no hang.
    let out = waihu(&addr, &["task", "import", "missing", p]).await?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("task missing"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(&path)?;
    Ok(())
}
