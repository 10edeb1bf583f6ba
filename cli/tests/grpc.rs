//! The `waihu` binary against small in-process gRPC servers standing in for the task and record
//! services: export formats, the tenant header, verify, dead letters, streaming import, ending
//! quietly when its output pipe closes, call records, follow-ups and the live statistics.

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
    record_service_server::RecordServiceServer, stats_service_server::StatsServiceServer,
    task_service_server::TaskServiceServer,
};

type Error = Box<dyn std::error::Error + Send + Sync>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What the fake servers saw.
#[derive(Default)]
struct Seen {
    tenants: Vec<String>,
    export: Option<pb::ExportEventsRequest>,
    chunk_sizes: Vec<usize>,
    list_records: Option<pb::ListCallRecordsRequest>,
    follow_up: Option<pb::AddFollowUpRequest>,
    due: Vec<pb::ListDueFollowUpsRequest>,
    watch_calls: u32,
    dashboard: Option<pb::GetDashboardRequest>,
    sheet: Option<pb::ExportCallRecordsRequest>,
    recording_url: Option<pb::GetRecordingUrlRequest>,
}

/// The task the fake task service knows, as number 7.
const TASK: &str = "0190a1b2-0000-7000-8000-0000000000aa";

fn call_record(number: u64) -> pb::CallRecord {
    pb::CallRecord {
        call_id: format!("0190a1b2-0000-7000-8000-{number:012}"),
        task_id: TASK.into(),
        contact_no: number as u32,
        phone: "+8613800000000".into(),
        line_id: "sim-1".into(),
        attempt: 1,
        talk_seconds: 12.5,
        cause: Some(pb::HangupCause {
            q850: 16,
            name: "NORMAL_CLEARING".into(),
            raw: String::new(),
        }),
        state: "released".into(),
        number,
        analysis_status: pb::AnalysisStatus::Completed as i32,
        answered: true,
        ..Default::default()
    }
}

fn follow_up(n: u64) -> pb::FollowUp {
    pb::FollowUp {
        follow_up_id: format!("fu-{n}"),
        call_number: n,
        phone: "+8613800000000".into(),
        result: "回访".into(),
        intention: "有意向".into(),
        note: format!("note {n}\nsecond line"),
        next_follow_up_at: Some(prost_types::Timestamp {
            seconds: 1_790_816_400 + n as i64,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn snapshot(calls: u64, ended: bool) -> pb::TaskStats {
    pb::TaskStats {
        task_id: TASK.into(),
        contacts_total: 30,
        contacts_dialed: calls,
        contacts_finished: calls,
        calls_placed: calls,
        calls_released: calls,
        calls_answered: calls / 2,
        connect_rate: 0.5,
        as_of_position: calls * 10,
        calls_analysed: calls / 2,
        intents: vec![pb::IntentCount {
            intent: "interested".into(),
            count: calls / 4,
        }],
        grades: vec![pb::GradeCount {
            grade: "A".into(),
            count: 3,
        }],
        intended_customers: calls / 4,
        categories: Some(pb::ResultCategories {
            success: calls / 2,
            failed: calls / 2,
            interested: calls / 4,
            ..Default::default()
        }),
        ended,
        ..Default::default()
    }
}

#[derive(Clone)]
struct Fake {
    events: u64,
    identical: bool,
    dead_letters: u64,
    seen: Arc<Mutex<Seen>>,
    /// Where recording URLs point (a test's HTTP server).
    recordings: Arc<Mutex<String>>,
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
            payload: payload.encode_to_vec().into(),
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
    /// Ten records in pages of `page_size`; two on every page.
    async fn list_call_records(
        &self,
        r: Request<pb::ListCallRecordsRequest>,
    ) -> Result<Response<pb::ListCallRecordsResponse>, Status> {
        self.tenant(&r);
        let r = r.into_inner();
        if let Ok(mut s) = self.seen.lock() {
            s.list_records = Some(r.clone());
        }
        Ok(Response::new(pb::ListCallRecordsResponse {
            records: vec![call_record(1234), call_record(99)],
            next_page_token: String::new(),
            total: 10,
            pages: 10u64.div_ceil(u64::from(r.page_size.max(1))),
            size: r.page_size,
            current: r.page_number,
        }))
    }
    async fn get_call_record(
        &self,
        r: Request<pb::GetCallRecordRequest>,
    ) -> Result<Response<pb::CallRecord>, Status> {
        let n: u64 = r
            .into_inner()
            .call_id
            .parse()
            .map_err(|_| Status::not_found("no such call"))?;
        let mut rec = call_record(n);
        rec.timeline = vec![pb::CallTimelineEntry {
            position: 5,
            event_type: "CallReleased".into(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_790_000_000,
                nanos: 0,
            }),
            detail: "NORMAL_CLEARING (Q.850 16); talked 12.5 s".into(),
            event_id: "e-5".into(),
        }];
        rec.analysis = Some(pb::CallAnalysis {
            intent: "interested".into(),
            grade: "A".into(),
            ..Default::default()
        });
        rec.follow_ups = vec![follow_up(n)];
        Ok(Response::new(rec))
    }
    async fn add_follow_up(
        &self,
        r: Request<pb::AddFollowUpRequest>,
    ) -> Result<Response<pb::FollowUp>, Status> {
        self.tenant(&r);
        let r = r.into_inner();
        if let Ok(mut s) = self.seen.lock() {
            s.follow_up = Some(r.clone());
        }
        Ok(Response::new(pb::FollowUp {
            follow_up_id: "0190a1b2-0000-7000-8000-0000000f0001".into(),
            result: r.result,
            ..Default::default()
        }))
    }
    /// Five follow-ups in pages of two.
    async fn list_due_follow_ups(
        &self,
        r: Request<pb::ListDueFollowUpsRequest>,
    ) -> Result<Response<pb::ListDueFollowUpsResponse>, Status> {
        let r = r.into_inner();
        if let Ok(mut s) = self.seen.lock() {
            s.due.push(r.clone());
        }
        let first: u64 = if r.page_token.is_empty() {
            1
        } else {
            r.page_token
                .parse()
                .map_err(|_| Status::invalid_argument("page_token"))?
        };
        let last = (first + 1).min(5);
        Ok(Response::new(pb::ListDueFollowUpsResponse {
            follow_ups: (first..=last).map(follow_up).collect(),
            next_page_token: if last < 5 {
                (last + 1).to_string()
            } else {
                String::new()
            },
        }))
    }
    type ExportCallRecordsStream = BoxStream<pb::ExportChunk>;
    /// Three chunks of a CSV file: 2 records, then 3, then the total.
    async fn export_call_records(
        &self,
        r: Request<pb::ExportCallRecordsRequest>,
    ) -> Result<Response<Self::ExportCallRecordsStream>, Status> {
        self.tenant(&r);
        if let Ok(mut s) = self.seen.lock() {
            s.sheet = Some(r.into_inner());
        }
        let chunks = vec![
            Ok(pb::ExportChunk {
                data: b"recordId,phone\n1,13800000001\n2,13800000002\n".to_vec(),
                records: 2,
                content_type: "text/csv; charset=utf-8".into(),
                file_name: "call-records.csv".into(),
            }),
            Ok(pb::ExportChunk {
                data: b"3,13800000003\n".to_vec(),
                records: 3,
                ..Default::default()
            }),
            Ok(pb::ExportChunk {
                records: 3,
                ..Default::default()
            }),
        ];
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
    /// Contacts 1 and 3 of those asked were called.
    async fn list_contact_calls(
        &self,
        r: Request<pb::ListContactCallsRequest>,
    ) -> Result<Response<pb::ListContactCallsResponse>, Status> {
        let r = r.into_inner();
        Ok(Response::new(pb::ListContactCallsResponse {
            contacts: r
                .contact_nos
                .iter()
                .filter(|n| **n % 2 == 1)
                .map(|&n| pb::ContactCalls {
                    contact_no: n,
                    calls: 2,
                    talk_seconds: 12.5,
                    answered: true,
                    intent: "interested".into(),
                    recording_call_number: 100 + n as u64,
                    ..Default::default()
                })
                .collect(),
        }))
    }
    /// A URL on the HTTP server the test names in `Fake::recordings`.
    async fn get_recording_url(
        &self,
        r: Request<pb::GetRecordingUrlRequest>,
    ) -> Result<Response<pb::RecordingUrl>, Status> {
        self.tenant(&r);
        let r = r.into_inner();
        if let Ok(mut s) = self.seen.lock() {
            s.recording_url = Some(r.clone());
        }
        if r.call_id == "404" {
            return Err(Status::not_found("a stored recording of call 404"));
        }
        let base = self
            .recordings
            .lock()
            .map_err(|e| Status::internal(e.to_string()))?
            .clone();
        Ok(Response::new(pb::RecordingUrl {
            url: format!("{base}/recordings/{}.wav?signature=abc", r.call_id),
            expires_at: Some(prost_types::Timestamp {
                seconds: 1_790_000_900,
                nanos: 0,
            }),
            content_type: "audio/wav".into(),
            bytes: 48,
            duration_ms: 3000,
        }))
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
impl pb::stats_service_server::StatsService for Fake {
    async fn get_task_stats(
        &self,
        _: Request<pb::GetTaskStatsRequest>,
    ) -> Result<Response<pb::TaskStats>, Status> {
        Ok(Response::new(snapshot(20, false)))
    }
    type WatchTaskStatsStream = BoxStream<pb::TaskStats>;
    /// Not found at first (the task is new), then a stream that breaks (UNAVAILABLE), then one
    /// that runs to the end.
    async fn watch_task_stats(
        &self,
        r: Request<pb::GetTaskStatsRequest>,
    ) -> Result<Response<Self::WatchTaskStatsStream>, Status> {
        if r.get_ref().task_id != TASK {
            return Err(Status::invalid_argument("task_id: not a UUID"));
        }
        let call = match self.seen.lock() {
            Ok(mut s) => {
                s.watch_calls += 1;
                s.watch_calls
            }
            Err(_) => return Err(Status::internal("poisoned")),
        };
        let items = match call {
            1 => return Err(Status::not_found("task not projected yet")),
            2 => vec![
                Ok(snapshot(10, false)),
                Err(Status::unavailable("record service restarting")),
            ],
            _ => vec![Ok(snapshot(20, false)), Ok(snapshot(30, true))],
        };
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
    async fn get_task_report(
        &self,
        r: Request<pb::GetTaskStatsRequest>,
    ) -> Result<Response<pb::TaskReport>, Status> {
        Ok(Response::new(pb::TaskReport {
            task_id: r.into_inner().task_id,
            hours: vec![pb::HourFigures {
                hour: Some(prost_types::Timestamp {
                    seconds: 1_790_816_400,
                    nanos: 0,
                }),
                calls: 120,
                answered: 60,
                connect_rate: 0.5,
                average_talk_seconds: 33.3,
            }],
            lines: vec![pb::LineFigures {
                line_id: "sim-1".into(),
                calls: 120,
                answered: 60,
                connect_rate: 0.5,
                average_talk_seconds: 33.3,
                total_talk_seconds: 1998,
            }],
            as_of_position: 777,
        }))
    }
    async fn get_dashboard(
        &self,
        r: Request<pb::GetDashboardRequest>,
    ) -> Result<Response<pb::Dashboard>, Status> {
        let r = r.into_inner();
        if r.time_zone == "Mars/Base" {
            return Err(Status::invalid_argument(
                "time_zone: \"Mars/Base\" is not an IANA time zone",
            ));
        }
        if let Ok(mut s) = self.seen.lock() {
            s.dashboard = Some(r);
        }
        Ok(Response::new(pb::Dashboard {
            calls_today: 500,
            answered_today: 200,
            connect_rate_today: 0.4,
            running_tasks: 2,
            follow_ups_due_today: 3,
            ..Default::default()
        }))
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
    /// Task 7 ([`TASK`]), running until its statistics watch has run to the end.
    async fn get_task(&self, r: Request<pb::TaskRef>) -> Result<Response<pb::Task>, Status> {
        let id = r.into_inner().task_id;
        if id != TASK && id != "7" {
            return Err(Status::not_found(format!("task {id}")));
        }
        let ended = self
            .seen
            .lock()
            .map(|s| s.watch_calls >= 3)
            .unwrap_or(false);
        Ok(Response::new(pb::Task {
            task_id: TASK.into(),
            number: 7,
            status: if ended {
                pb::TaskStatus::Completed
            } else {
                pb::TaskStatus::Running
            } as i32,
            contacts_total: 30,
            ..Default::default()
        }))
    }
    async fn list_tasks(
        &self,
        _: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
    /// Contacts 1-3 of the task; 4 follows.
    async fn list_contacts(
        &self,
        r: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let r = r.into_inner();
        if r.task_id != TASK {
            return Err(Status::not_found("task"));
        }
        Ok(Response::new(pb::ListContactsResponse {
            contacts: (1..=3)
                .map(|n| pb::ListedContact {
                    contact_no: n,
                    phone: format!("+861380000000{n}"),
                    outcome: if n == 1 {
                        pb::ContactOutcome::Answered as i32
                    } else {
                        0
                    },
                    ..Default::default()
                })
                .collect(),
            next_after_contact_no: 4,
        }))
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
            .add_service(StatsServiceServer::new(fake.clone()))
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
        recordings: Arc::default(),
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

#[tokio::test]
async fn records_list_sends_the_filters_and_prints_a_page() -> Result<(), Error> {
    let f = fake(0);
    let addr = serve(f.clone()).await?;
    let out = waihu(
        &addr,
        &[
            "records",
            "list",
            "--task",
            "7",
            "--phone",
            "138 0000 0000",
            "--line",
            "sim-1",
            "--analysis",
            "completed",
            "--answered",
            "--cause",
            "17",
            "--cause",
            "18,19",
            "--from",
            "2026-10-01T09:00:00+08:00",
            "--to",
            "2026-10-02T00:00:00Z",
            "--sort",
            "duration",
            "--asc",
            "--page",
            "2",
            "--size",
            "3",
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    {
        let seen = f.seen.lock().map_err(|e| e.to_string())?;
        let r = seen
            .list_records
            .clone()
            .ok_or("no ListCallRecords request")?;
        assert_eq!(r.task_id, TASK, "task number 7 looked up");
        assert_eq!(r.phone, "138 0000 0000");
        assert_eq!(r.line_id, "sim-1");
        assert_eq!(r.analysis_status, pb::AnalysisStatus::Completed as i32);
        assert_eq!(r.answered, Some(true));
        assert_eq!(r.causes, [17, 18, 19]);
        assert_eq!(r.from.map(|t| t.seconds), Some(1_790_816_400));
        assert_eq!(r.to.map(|t| t.seconds), Some(1_790_899_200));
        assert_eq!(r.sort, pb::CallRecordSort::Duration as i32);
        assert!(r.oldest_first);
        assert_eq!((r.page_number, r.page_size), (2, 3));
        assert!(r.page_token.is_empty());
        assert_eq!(seen.tenants, ["acme"]);
    }
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("NUMBER  CALL") && lines[0].ends_with("CAUSE               ANALYSIS"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "  1234  0190a1b2-0000-7000-8000-000000001234  {TASK}"
        )),
        "{stdout}"
    );
    assert!(
        lines[1].ends_with("released  yes         12.5  16 NORMAL_CLEARING  completed"),
        "{stdout}"
    );
    assert_eq!(lines[3], "page 2 of 4, 10 records");

    // Defaults: nothing filtered, newest first, page 1 of 50; --unanswered; JSON lines.
    let out = waihu(&addr, &["records", "list", "--unanswered", "--json"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    {
        let seen = f.seen.lock().map_err(|e| e.to_string())?;
        let r = seen
            .list_records
            .clone()
            .ok_or("no ListCallRecords request")?;
        assert_eq!(r.answered, Some(false));
        assert_eq!(
            (
                r.task_id.as_str(),
                r.analysis_status,
                r.sort,
                r.oldest_first
            ),
            ("", 0, 0, false)
        );
        assert_eq!((r.page_number, r.page_size), (1, 50));
        assert!(r.causes.is_empty() && r.from.is_none() && r.to.is_none());
    }
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["number"], "1234");
    assert_eq!(records[0]["analysisStatus"], "ANALYSIS_STATUS_COMPLETED");
    assert_eq!(records[1]["callId"], "0190a1b2-0000-7000-8000-000000000099");
    assert_eq!(text(&out.stderr), "page 1 of 1, 10 records\n");

    // Bad input: a clear error naming the flag, and nothing asked of the server.
    for (args, flag) in [
        (&["--from", "yesterday"][..], "--from"),
        (&["--to", "2026-10-02"][..], "--to"),
        (&["--analysis", "maybe"][..], "--analysis"),
        (&["--sort", "phone"][..], "--sort"),
        (&["--cause", "17,x"][..], "--cause"),
        (&["--cause", "300"][..], "--cause"),
        (&["--page", "0"][..], "--page"),
        (&["--answered", "--unanswered"][..], "--unanswered"),
    ] {
        let out = waihu(&addr, &[&["records", "list"][..], args].concat()).await?;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn records_get_report_and_dashboard() -> Result<(), Error> {
    let f = fake(0);
    let addr = serve(f.clone()).await?;
    let out = waihu(&addr, &["records", "get", "1234"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "call          0190a1b2-0000-7000-8000-000000001234
number        1234
"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "timeline\n  TIME                  EVENT         DETAIL\n  2026-09-21T14:13:20Z  CallReleased  NORMAL_CLEARING (Q.850 16); talked 12.5 s\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("analysis\n  intent     interested\n  grade      A\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("follow-ups\n  - by -: result 回访, intention 有意向, next 2026-10-01T01:20:34Z\n    note 1234\n    second line\n"),
        "{stdout}"
    );
    let out = waihu(&addr, &["records", "get", "1234", "--json"]).await?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["timeline"][0]["eventType"], "CallReleased");
    assert_eq!(v["followUps"][0]["note"], "note 1234\nsecond line");
    let out = waihu(&addr, &["records", "get", "nope"]).await?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("GetCallRecord: no such call (NotFound)"));

    let out = waihu(&addr, &["records", "report", "7"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "task {TASK}\n\nper hour (UTC)\n\
             \x20 HOUR                  CALLS  ANSWERED  CONNECT  AVG TALK S\n\
             \x20 2026-10-01T01:00:00Z    120        60    50.0%        33.3\n\
             \nper line\n\
             \x20 LINE   CALLS  ANSWERED  CONNECT  AVG TALK S  TOTAL TALK S\n\
             \x20 sim-1    120        60    50.0%        33.3          1998\n\
             \nas of store position 777\n"
        )
    );

    let out = waihu(
        &addr,
        &["records", "dashboard", "--time-zone", "Asia/Shanghai"],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("| connect rate today   | 40.0% |\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| follow-ups due today |     3 |\n"),
        "{stdout}"
    );
    {
        let seen = f.seen.lock().map_err(|e| e.to_string())?;
        assert_eq!(
            seen.dashboard.as_ref().map(|d| d.time_zone.as_str()),
            Some("Asia/Shanghai")
        );
    }
    let out = waihu(&addr, &["records", "dashboard", "--time-zone", "Mars/Base"]).await?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--time-zone \"Mars/Base\": time_zone: \"Mars/Base\" is not"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn followup_add_sends_the_form() -> Result<(), Error> {
    let f = fake(0);
    let addr = serve(f.clone()).await?;
    let out = waihu(
        &addr,
        &[
            "followup",
            "add",
            "1234",
            "--result",
            "已回访",
            "--intention",
            "有意向",
            "--note",
            "first line\nsecond line",
            "--next",
            "2026-10-01T09:00:00+08:00",
            "--request-id",
            "form-1",
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "0190a1b2-0000-7000-8000-0000000f0001\n");
    {
        let seen = f.seen.lock().map_err(|e| e.to_string())?;
        let r = seen.follow_up.clone().ok_or("no AddFollowUp request")?;
        assert_eq!(
            r,
            pb::AddFollowUpRequest {
                call_id: "1234".into(),
                result: "已回访".into(),
                intention: "有意向".into(),
                note: "first line\nsecond line".into(),
                next_follow_up_at: Some(prost_types::Timestamp {
                    seconds: 1_790_816_400,
                    nanos: 0
                }),
                request_id: "form-1".into(),
            }
        );
        assert_eq!(seen.tenants, ["acme"]);
    }

    // Only a note: the rest stays empty.
    let out = waihu(
        &addr,
        &[
            "followup",
            "add",
            "0190a1b2-0000-7000-8000-000000000001",
            "--note",
            "n",
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    {
        let seen = f.seen.lock().map_err(|e| e.to_string())?;
        let r = seen.follow_up.clone().ok_or("no AddFollowUp request")?;
        assert_eq!(r.call_id, "0190a1b2-0000-7000-8000-000000000001");
        assert_eq!((r.result.as_str(), r.note.as_str()), ("", "n"));
        assert!(r.next_follow_up_at.is_none() && r.request_id.is_empty());
    }

    for (args, flag) in [
        (&["--next", "tomorrow"][..], "--next"),
        (&[][..], "--result"),
    ] {
        let out = waihu(&addr, &[&["followup", "add", "1234"][..], args].concat()).await?;
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn followup_due_lists_every_page() -> Result<(), Error> {
    let f = fake(0);
    let addr = serve(f.clone()).await?;
    let out = waihu(
        &addr,
        &[
            "followup",
            "due",
            "--from",
            "2026-10-01T00:00:00Z",
            "--to",
            "2026-10-02T00:00:00Z",
            "--mine-only-user",
            "li",
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "a header and five follow-ups: {stdout}");
    assert_eq!(
        lines[1],
        "2026-10-01T01:00:01Z     1  +8613800000000  回访    有意向     note 1"
    );
    let seen = f.seen.lock().map_err(|e| e.to_string())?;
    assert_eq!(seen.due.len(), 3);
    assert!(seen.due.iter().all(|r| r.added_by == "li"
        && r.from.map(|t| t.seconds) == Some(1_790_812_800)
        && r.to.map(|t| t.seconds) == Some(1_790_899_200)));
    assert_eq!(
        seen.due
            .iter()
            .map(|r| r.page_token.as_str())
            .collect::<Vec<_>>(),
        ["", "3", "5"]
    );
    Ok(())
}

#[tokio::test]
async fn stats_watch_waits_for_the_task_and_reconnects() -> Result<(), Error> {
    let f = fake(0);
    let addr = serve(f.clone()).await?;
    let out = waihu(&addr, &["task", "stats", "7", "--watch"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // Not a terminal: progress lines now and then, then the last snapshot's table.
    // The table of before, unchanged, then the results and analysis figures.
    assert!(
        stdout.ends_with(
            "+----------------------+-------+\n\
             | contacts             |    30 |\n\
             | contacts dialed      |    30 |\n\
             | contacts finished    |    30 |\n\
             | calls placed         |    30 |\n\
             | calls answered       |    15 |\n\
             | connect rate         | 50.0% |\n\
             | average talk         | 0.0 s |\n\
             | total talk           |   0 s |\n\
             | as of store position |   300 |\n\
             +----------------------+-------+\n\
             +---------------------------------+----+\n\
             | result success (成功)           | 15 |\n\
             | result failed (失败)            | 15 |\n\
             | result interested (有意向)      |  7 |\n\
             | result not considering (不考虑) |  0 |\n\
             | result inconvenient (不方便)    |  0 |\n\
             | result wrong number (号码错误)  |  0 |\n\
             | calls analysed                  | 15 |\n\
             | intended customers              |  7 |\n\
             | intent interested               |  7 |\n\
             | grade A                         |  3 |\n\
             +---------------------------------+----+\n"
        ),
        "{stdout}"
    );
    assert_eq!(f.seen.lock().map_err(|e| e.to_string())?.watch_calls, 3);

    // A task that is not there: the task service says so at once.
    let out = waihu(&addr, &["task", "stats", "8", "--watch"]).await?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("task: task 8 (NotFound)"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn records_export_writes_the_file_with_the_filters() -> Result<(), Error> {
    let f = fake(0);
    let addr = serve(f.clone()).await?;
    let file = temp("export.csv");
    let file_arg = file.to_string_lossy().into_owned();
    let out = waihu(
        &addr,
        &[
            "records",
            "export",
            "--task",
            "7",
            "--answered",
            "--sort",
            "duration",
            "--lang",
            "en",
            "--format",
            "csv",
            "--output",
            &file_arg,
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&file)?,
        "recordId,phone\n1,13800000001\n2,13800000002\n3,13800000003\n"
    );
    assert!(
        text(&out.stderr).contains("3 records exported"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(&file)?;
    {
        let seen = f.seen.lock().map_err(|e| e.to_string())?;
        let r = seen.sheet.clone().ok_or("no ExportCallRecords request")?;
        let filter = r.filter.clone().ok_or("no filter")?;
        assert_eq!(filter.task_id, TASK, "task number 7 looked up");
        assert_eq!(filter.answered, Some(true));
        assert_eq!(filter.sort, pb::CallRecordSort::Duration as i32);
        assert_eq!(r.format, pb::ExportFormat::Csv as i32);
        assert_eq!(r.language, "en");
        assert_eq!(seen.tenants.last().map(String::as_str), Some("acme"));
    }
    // To standard output by default.
    let out = waihu(&addr, &["records", "export", "--format", "csv"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("3,13800000003\n"));
    let r = f.seen.lock().map_err(|e| e.to_string())?.sheet.clone();
    assert_eq!(
        r.map(|r| r.language),
        Some("zh".into()),
        "Chinese headers by default"
    );
    Ok(())
}

/// An HTTP server answering every request with `body` as audio/wav, once per connection.
async fn audio_server(body: &'static [u8]) -> Result<String, Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: audio/wav\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body).await;
        }
    });
    Ok(addr)
}

#[tokio::test]
async fn recording_url_prints_it_and_download_saves_the_file() -> Result<(), Error> {
    let f = fake(0);
    let body: &'static [u8] = b"RIFF....WAVEfmt fake recording bytes";
    *f.recordings.lock().map_err(|e| e.to_string())? = audio_server(body).await?;
    let addr = serve(f.clone()).await?;
    let out = waihu(&addr, &["recording", "url", "42", "--ttl", "60"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .trim_end()
            .ends_with("/recordings/42.wav?signature=abc"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("audio/wav, 48 bytes, 3.0 s"),
        "{}",
        text(&out.stderr)
    );
    let r = f
        .seen
        .lock()
        .map_err(|e| e.to_string())?
        .recording_url
        .clone();
    assert_eq!(
        r.map(|r| (r.call_id, r.ttl_seconds)),
        Some(("42".into(), 60))
    );

    let file = temp("recording.wav");
    let file_arg = file.to_string_lossy().into_owned();
    let out = waihu(&addr, &["recording", "url", "42", "--download", &file_arg]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&file)?, body);
    std::fs::remove_file(&file)?;

    let out = waihu(&addr, &["recording", "url", "404"]).await?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("NotFound"),
        "{}",
        text(&out.stderr)
    );
    let out = waihu(&addr, &["recording", "url", "42", "--ttl", "0"]).await?;
    assert!(!out.status.success(), "a zero TTL is refused by the CLI");
    Ok(())
}

#[tokio::test]
async fn task_contacts_joins_the_contacts_and_their_calls() -> Result<(), Error> {
    let f = fake(0);
    let addr = serve(f.clone()).await?;
    let out = waihu(&addr, &["task", "contacts", "7", "--size", "3"]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("NO"), "{t}");
    // Contact 1: called twice, interested, recording of call 101; contact 2: never called.
    assert!(
        lines[1].contains("+8613800000001") && lines[1].contains("12.5"),
        "{t}"
    );
    assert!(
        lines[1].contains("interested") && lines[1].trim_end().ends_with("101"),
        "{t}"
    );
    assert!(
        lines[2].contains("+8613800000002") && lines[2].trim_end().ends_with('-'),
        "{t}"
    );
    assert!(t.contains("next page: --after 4"), "{t}");
    Ok(())
}

#[tokio::test]
async fn analyze_reads_a_transcript_or_json_lines() -> Result<(), Error> {
    let one = temp("one.txt");
    std::fs::write(
        &one,
        "坐席：您好，明天上午十点来面试可以吗？\n客户：可以，我一定准时到。\n",
    )?;
    let out = waihu("http://127.0.0.1:1", &["analyze", &one.to_string_lossy()]).await?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["intent"], "interested");
    assert_eq!(v["grade"], "A");
    assert_eq!(v["language"], "zh");
    for field in ["sentiment", "keywords", "summary"] {
        assert!(!v[field].is_null(), "{field}: {v}");
    }
    std::fs::remove_file(&one)?;

    let many = temp("many.jsonl");
    std::fs::write(
        &many,
        concat!(
            r#"{"id": "a", "transcript": "Agent: Hi\nCustomer: Not interested, take me off your list.", "other": 1}"#,
            "\n",
            "not json\n",
            r#"{"id": 7, "transcript": "Hi, you've reached Tom. Leave a message after the tone."}"#,
            "\n"
        ),
    )?;
    let out = waihu(
        "http://127.0.0.1:1",
        &["analyze", "--jsonl", &many.to_string_lossy()],
    )
    .await?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad line makes the exit code 1"
    );
    assert!(
        text(&out.stderr).contains("line 2"),
        "{}",
        text(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["id"].clone(), lines[0]["intent"].clone()),
        ("a".into(), "not_interested".into())
    );
    assert_eq!(
        (lines[1]["id"].clone(), lines[1]["intent"].clone()),
        (7.into(), "no_conversation".into())
    );
    std::fs::remove_file(&many)?;
    Ok(())
}
