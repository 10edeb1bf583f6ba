//! Tenant isolation, proven RPC by RPC: tenant B, holding every permission, calls every RPC of
//! every service against tenant A's task, calls and events, and must get NOT_FOUND,
//! PERMISSION_DENIED or nothing of A's. The table below is matched against the methods that
//! exist (enumerated from the compiled descriptors, as reflection serves them), so an RPC added
//! later fails this test until it says how it keeps tenants apart.

use std::{collections::BTreeSet, time::Duration};

use tokio_stream::StreamExt;
use tonic::{Code, Request};
use waihu_auth::{AuthConfig, Claims, Keys, ALL_PERMISSIONS};
use waihu_e2e::*;
use waihu_events::pb;
use waihu_runtime::CommonConfig;

/// Tenant A: the cluster's token-less development tenant the helpers act as.
const A: &str = "default";
const B: &str = "beta";

/// What tenant B may see of A's: the ids it must never get back.
struct Secrets {
    task_id: String,
    task_number: u64,
    call_id: String,
    call_number: u64,
    webhook_id: String,
    delivery_id: String,
    /// A line only A has (B has none by that id).
    line_id: String,
    /// A number on A's do-not-call list.
    dnc_phone: String,
    /// A work phone A has bound.
    device: u64,
    /// An answered call of A's whose analysis completed.
    analysed_call: String,
    /// A's screening job, and a number A marked invalid.
    screening_id: String,
    invalid_phone: String,
}

/// How B's call of one RPC must end.
type Verdict = Result<(), String>;

fn expect_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, allowed: &[Code]) -> Verdict {
    match r {
        Err(s) if allowed.contains(&s.code()) => Ok(()),
        Err(s) => Err(format!(
            "got {:?} ({}), wanted one of {allowed:?}",
            s.code(),
            s.message()
        )),
        Ok(v) => Err(format!("succeeded ({v:?}), wanted one of {allowed:?}")),
    }
}

const HIDDEN: &[Code] = &[Code::NotFound, Code::PermissionDenied];
const OPERATOR_ONLY: &[Code] = &[Code::PermissionDenied];

/// B's request: B's token, and an `x-tenant-id` naming A that must be ignored.
fn as_b<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    r.metadata_mut()
        .insert("x-tenant-id", A.parse().expect("ascii"));
    r
}

/// Calls `method` as B against A's resources and judges the answer; None for a method the
/// table does not list.
async fn probe(cluster: &Cluster, token: &str, a: &Secrets, method: &str) -> Option<Verdict> {
    let mut tasks = cluster.tasks().await;
    let mut stats = cluster.stats().await;
    let mut records = cluster.records().await;
    let mut admin = cluster.admin().await;
    let mut hooks = cluster.webhooks().await;
    let mut analyses = cluster.analyses().await;
    let webhook = || a.webhook_id.clone();
    let task = || pb::TaskRef {
        task_id: a.task_id.clone(),
    };
    let verdict = match method {
        "/waihu.v1.TaskService/CreateTask" => {
            // B's own task: A must not see it.
            let mine = tasks
                .create_task(as_b(
                    token,
                    pb::CreateTaskRequest {
                        spec: Some(spec("b's task", 0, 0)),
                    },
                ))
                .await
                .map_err(|s| s.to_string());
            match mine {
                Err(e) => Err(format!("B cannot create its own task: {e}")),
                Ok(t) => expect_code(
                    tasks
                        .get_task(pb::TaskRef {
                            task_id: t.into_inner().task_id,
                        })
                        .await,
                    &[Code::NotFound],
                )
                .map_err(|e| format!("A reading B's new task: {e}")),
            }
        }
        "/waihu.v1.TaskService/AddContacts" => expect_code(
            tasks
                .add_contacts(as_b(
                    token,
                    tokio_stream::iter(vec![pb::AddContactsRequest {
                        task_id: a.task_id.clone(),
                        rows: vec![pb::ContactRow {
                            phone: "13900000001".into(),
                            ..Default::default()
                        }],
                    }]),
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.TaskService/StartTask" => {
            expect_code(tasks.start_task(as_b(token, task())).await, HIDDEN)
        }
        "/waihu.v1.TaskService/PauseTask" => {
            expect_code(tasks.pause_task(as_b(token, task())).await, HIDDEN)
        }
        "/waihu.v1.TaskService/ResumeTask" => {
            expect_code(tasks.resume_task(as_b(token, task())).await, HIDDEN)
        }
        "/waihu.v1.TaskService/CancelTask" => expect_code(
            tasks
                .cancel_task(as_b(
                    token,
                    pb::CancelTaskRequest {
                        task_id: a.task_id.clone(),
                        reason: "not mine".into(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.TaskService/GetTask" => {
            // By UUID and by number alike.
            let by_number = pb::TaskRef {
                task_id: a.task_number.to_string(),
            };
            expect_code(tasks.get_task(as_b(token, task())).await, HIDDEN).and(expect_code(
                tasks.get_task(as_b(token, by_number)).await,
                HIDDEN,
            ))
        }
        "/waihu.v1.TaskService/ListContacts" => {
            let mut verdict = Ok(());
            for task_id in [a.task_id.clone(), a.task_number.to_string()] {
                let r = tasks
                    .list_contacts(as_b(
                        token,
                        pb::ListContactsRequest {
                            task_id,
                            ..Default::default()
                        },
                    ))
                    .await;
                verdict = verdict.and(expect_code(r, HIDDEN));
            }
            verdict
        }
        "/waihu.v1.TaskService/ListTasks" => {
            match tasks
                .list_tasks(as_b(token, pb::ListTasksRequest::default()))
                .await
            {
                Err(s) => Err(format!("B cannot list its own tasks: {s}")),
                Ok(r) if r.get_ref().tasks.iter().any(|t| t.task_id == a.task_id) => {
                    Err("B's list holds A's task".into())
                }
                Ok(_) => Ok(()),
            }
        }
        "/waihu.v1.StatsService/GetTaskStats" => expect_code(
            stats
                .get_task_stats(as_b(
                    token,
                    pb::GetTaskStatsRequest {
                        task_id: a.task_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.StatsService/WatchTaskStats" => expect_code(
            stats
                .watch_task_stats(as_b(
                    token,
                    pb::GetTaskStatsRequest {
                        task_id: a.task_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.StatsService/GetTaskReport" => expect_code(
            stats
                .get_task_report(as_b(
                    token,
                    pb::GetTaskStatsRequest {
                        task_id: a.task_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.StatsService/GetDashboard" => {
            match stats
                .get_dashboard(as_b(token, pb::GetDashboardRequest::default()))
                .await
            {
                Err(s) => Err(format!("B cannot read its own dashboard: {s}")),
                Ok(d) => {
                    let d = d.into_inner();
                    if d.calls_today > 0 || d.follow_ups_due_today > 0 || d.running_tasks > 0 {
                        Err(format!("B's dashboard counts A's calls: {d:?}"))
                    } else {
                        Ok(())
                    }
                }
            }
        }
        "/waihu.v1.RecordService/AddFollowUp" => {
            let mut verdict = Ok(());
            for call_id in [a.call_id.clone(), a.call_number.to_string()] {
                let r = records
                    .add_follow_up(as_b(
                        token,
                        pb::AddFollowUpRequest {
                            call_id,
                            result: "not mine".into(),
                            ..Default::default()
                        },
                    ))
                    .await;
                verdict = verdict.and(expect_code(r, HIDDEN));
            }
            verdict
        }
        "/waihu.v1.RecordService/ListContactCalls" => expect_code(
            records
                .list_contact_calls(as_b(
                    token,
                    pb::ListContactCallsRequest {
                        task_id: a.task_id.clone(),
                        contact_nos: vec![1, 2, 3],
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.AnalysisService/GetAnalysis" => expect_code(
            analyses
                .get_analysis(as_b(
                    token,
                    pb::GetAnalysisRequest {
                        call_id: a.analysed_call.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.AnalysisService/Reanalyze" => {
            let r = analyses
                .reanalyze(as_b(
                    token,
                    pb::ReanalyzeRequest {
                        call_id: a.analysed_call.clone(),
                        analyzer: "local".into(),
                        retranscribe: false,
                    },
                ))
                .await;
            expect_code(r, HIDDEN)
        }
        "/waihu.v1.RecordService/GetRecordingUrl" => {
            let mut verdict = Ok(());
            for call_id in [a.call_id.clone(), a.call_number.to_string()] {
                let r = records
                    .get_recording_url(as_b(
                        token,
                        pb::GetRecordingUrlRequest {
                            call_id,
                            ttl_seconds: 0,
                        },
                    ))
                    .await;
                verdict = verdict.and(expect_code(r, HIDDEN));
            }
            verdict
        }
        "/waihu.v1.RecordService/ExportCallRecords" => {
            match records
                .export_call_records(as_b(
                    token,
                    pb::ExportCallRecordsRequest {
                        filter: Some(pb::ListCallRecordsRequest {
                            task_id: a.task_id.clone(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ))
                .await
            {
                Err(s) => Err(format!("B cannot export its own records: {s}")),
                Ok(r) => {
                    let mut stream = r.into_inner();
                    let mut text = Vec::new();
                    let mut n = 0;
                    while let Ok(Some(c)) = stream.message().await {
                        text.extend_from_slice(&c.data);
                        n = c.records;
                    }
                    let text = String::from_utf8_lossy(&text);
                    if n > 0 || text.contains(&a.call_id) {
                        Err(format!("B's export holds A's records ({n})"))
                    } else {
                        Ok(())
                    }
                }
            }
        }
        "/waihu.v1.RecordService/ListDueFollowUps" => {
            match records
                .list_due_follow_ups(as_b(token, pb::ListDueFollowUpsRequest::default()))
                .await
            {
                Err(s) => Err(format!("B cannot list its own follow-ups: {s}")),
                Ok(r)
                    if r.get_ref()
                        .follow_ups
                        .iter()
                        .any(|f| f.call_id == a.call_id) =>
                {
                    Err("B's to-do list holds A's follow-up".into())
                }
                Ok(_) => Ok(()),
            }
        }
        "/waihu.v1.RecordService/ListCallRecords" => {
            let by_task = records
                .list_call_records(as_b(
                    token,
                    pb::ListCallRecordsRequest {
                        task_id: a.task_id.clone(),
                        ..Default::default()
                    },
                ))
                .await;
            let all = records
                .list_call_records(as_b(token, pb::ListCallRecordsRequest::default()))
                .await;
            match (by_task, all) {
                (Ok(r), _) if !r.get_ref().records.is_empty() => {
                    Err("B read A's call records by task".into())
                }
                (Err(s), _) if !HIDDEN.contains(&s.code()) => {
                    Err(format!("by A's task: {:?} {}", s.code(), s.message()))
                }
                (_, Err(s)) => Err(format!("B cannot list its own records: {s}")),
                (_, Ok(r)) if r.get_ref().records.iter().any(|c| c.task_id == a.task_id) => {
                    Err("B's listing holds A's call records".into())
                }
                _ => Ok(()),
            }
        }
        "/waihu.v1.RecordService/GetCallRecord" => {
            let mut verdict = Ok(());
            // By UUID and by number alike.
            for call_id in [a.call_id.clone(), a.call_number.to_string()] {
                let r = records
                    .get_call_record(as_b(token, pb::GetCallRecordRequest { call_id }))
                    .await;
                verdict = verdict.and(expect_code(r, HIDDEN));
            }
            verdict
        }
        "/waihu.v1.RecordService/ExportEvents" => {
            let mut leaked = Vec::new();
            for task_id in [a.task_id.clone(), String::new()] {
                match records
                    .export_events(as_b(
                        token,
                        pb::ExportEventsRequest {
                            task_id,
                            ..Default::default()
                        },
                    ))
                    .await
                {
                    Err(s) if HIDDEN.contains(&s.code()) => {}
                    Err(s) => leaked.push(format!("{:?} {}", s.code(), s.message())),
                    Ok(r) => {
                        let mut stream = r.into_inner();
                        while let Some(item) = stream.next().await {
                            match item {
                                Ok(e) => {
                                    let env = e.envelope.unwrap_or_default();
                                    if env.tenant_id != B {
                                        leaked.push(format!("an event of {}", env.tenant_id));
                                        break;
                                    }
                                }
                                Err(s) => {
                                    leaked.push(format!("stream error {s}"));
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            if leaked.is_empty() {
                Ok(())
            } else {
                Err(leaked.join("; "))
            }
        }
        "/waihu.v1.RecordService/VerifyReplay" => expect_code(
            records
                .verify_replay(as_b(token, pb::VerifyReplayRequest {}))
                .await
                .map(|_| ()),
            OPERATOR_ONLY,
        ),
        "/waihu.v1.TenantService/GetEntitlements" => expect_code(
            tenants_of(cluster)
                .await
                .get_entitlements(as_b(
                    token,
                    pb::GetEntitlementsRequest {
                        tenant_id: A.into(),
                    },
                ))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.TenantService/SetEntitlements" => expect_code(
            tenants_of(cluster)
                .await
                .set_entitlements(as_b(
                    token,
                    pb::SetEntitlementsRequest {
                        entitlements: Some(pb::Entitlements {
                            tenant_id: B.into(),
                            bot_enabled: true,
                            ..Default::default()
                        }),
                    },
                ))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.AdminService/ListDeadLetters" => expect_code(
            admin
                .list_dead_letters(as_b(token, pb::ListDeadLettersRequest::default()))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.AdminService/GetDeadLetter" => expect_code(
            admin
                .get_dead_letter(as_b(token, pb::GetDeadLetterRequest { sequence: 1 }))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.AdminService/ReplayDeadLetter" => expect_code(
            admin
                .replay_dead_letter(as_b(token, pb::ReplayDeadLetterRequest { sequence: 1 }))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.AdminService/GetStoreStatus" => expect_code(
            admin
                .get_store_status(as_b(token, pb::GetStoreStatusRequest {}))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.AdminService/RebaseStore" => expect_code(
            admin
                .rebase_store(as_b(token, pb::RebaseStoreRequest { force: true }))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.WebhookService/CreateWebhook" => {
            // B's own webhook: A must not see it.
            let mine = hooks
                .create_webhook(as_b(
                    token,
                    pb::CreateWebhookRequest {
                        url: "http://127.0.0.1:1/b".into(),
                        event_types: vec!["task.status".into()],
                        secret: String::new(),
                    },
                ))
                .await;
            match mine {
                Err(e) => Err(format!("B cannot create its own webhook: {e}")),
                Ok(w) => {
                    let id = w.into_inner().webhook_id;
                    let a_sees = hooks
                        .list_webhooks(pb::ListWebhooksRequest {})
                        .await
                        .map(|r| r.into_inner().webhooks);
                    match a_sees {
                        Ok(ws) if ws.iter().any(|w| w.webhook_id == id) => {
                            Err("A lists B's new webhook".into())
                        }
                        Ok(_) => Ok(()),
                        Err(e) => Err(format!("A cannot list its webhooks: {e}")),
                    }
                }
            }
        }
        "/waihu.v1.WebhookService/ListWebhooks" => {
            match hooks
                .list_webhooks(as_b(token, pb::ListWebhooksRequest {}))
                .await
            {
                Ok(r)
                    if r.get_ref()
                        .webhooks
                        .iter()
                        .any(|w| w.webhook_id == a.webhook_id) =>
                {
                    Err("B lists A's webhook".into())
                }
                Ok(_) => Ok(()),
                Err(e) => Err(format!("B cannot list its own webhooks: {e}")),
            }
        }
        "/waihu.v1.WebhookService/DeleteWebhook" => expect_code(
            hooks
                .delete_webhook(as_b(
                    token,
                    pb::DeleteWebhookRequest {
                        webhook_id: webhook(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.WebhookService/TestWebhook" => expect_code(
            hooks
                .test_webhook(as_b(
                    token,
                    pb::TestWebhookRequest {
                        webhook_id: webhook(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.WebhookService/ListWebhookDeliveries" => expect_code(
            hooks
                .list_webhook_deliveries(as_b(
                    token,
                    pb::ListWebhookDeliveriesRequest {
                        webhook_id: webhook(),
                        ..Default::default()
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.WebhookService/RedeliverWebhooks" => expect_code(
            hooks
                .redeliver_webhooks(as_b(
                    token,
                    pb::RedeliverWebhooksRequest {
                        webhook_id: webhook(),
                        delivery_ids: vec![a.delivery_id.clone()],
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ProviderService/CreateLine" => {
            // B's own line: A must not see it, and B's line ids are B's own.
            let mut providers = cluster.providers().await;
            let mut line = Line {
                id: "b-line".into(),
                max_concurrent: 1,
            }
            .to_pb();
            line.caller_number = "+861088880000".into();
            match providers
                .create_line(as_b(
                    token,
                    pb::CreateLineRequest {
                        line: Some(line),
                        ..Default::default()
                    },
                ))
                .await
            {
                Err(e) => Err(format!("B cannot create its own line: {e}")),
                Ok(_) => expect_code(
                    providers
                        .get_line(pb::LineRequest {
                            line_id: "b-line".into(),
                        })
                        .await,
                    &[Code::NotFound],
                )
                .map_err(|e| format!("A reading B's new line: {e}")),
            }
        }
        "/waihu.v1.ProviderService/UpdateLine" => {
            let mut line = Line {
                id: a.line_id.clone(),
                max_concurrent: 1,
            }
            .to_pb();
            line.name = "taken over".into();
            expect_code(
                cluster
                    .providers()
                    .await
                    .update_line(as_b(
                        token,
                        pb::UpdateLineRequest {
                            line: Some(line),
                            expected_version: 0,
                            ..Default::default()
                        },
                    ))
                    .await,
                HIDDEN,
            )
        }
        "/waihu.v1.ProviderService/DisableLine" => expect_code(
            cluster
                .providers()
                .await
                .disable_line(as_b(
                    token,
                    pb::DisableLineRequest {
                        line_id: a.line_id.clone(),
                        reason: "not mine".into(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ProviderService/EnableLine" => expect_code(
            cluster
                .providers()
                .await
                .enable_line(as_b(
                    token,
                    pb::LineRequest {
                        line_id: a.line_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ProviderService/GetLine" => expect_code(
            cluster
                .providers()
                .await
                .get_line(as_b(
                    token,
                    pb::LineRequest {
                        line_id: a.line_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ProviderService/GetLineStatus" => expect_code(
            cluster
                .providers()
                .await
                .get_line_status(as_b(
                    token,
                    pb::LineRequest {
                        line_id: a.line_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ProviderService/CreateDeviceBinding" => {
            // B binds for itself; the token is B's own (its phone would be B's).
            match cluster
                .providers()
                .await
                .create_device_binding(as_b(
                    token,
                    pb::CreateDeviceBindingRequest {
                        user_id: "b-user".into(),
                    },
                ))
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("B cannot make its own binding: {e}")),
            }
        }
        "/waihu.v1.ProviderService/ListDevices" => {
            match cluster
                .providers()
                .await
                .list_devices(as_b(token, pb::ListDevicesRequest::default()))
                .await
            {
                Ok(r) if r.get_ref().devices.iter().any(|d| d.id == a.device) => {
                    Err("B's list holds A's phone".into())
                }
                Ok(_) => Ok(()),
                Err(e) => Err(format!("B cannot list its own phones: {e}")),
            }
        }
        "/waihu.v1.ProviderService/GetDevice" => expect_code(
            cluster
                .providers()
                .await
                .get_device(as_b(token, pb::DeviceRequest { id: a.device }))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ProviderService/UnbindDevice" => {
            let verdict = expect_code(
                cluster
                    .providers()
                    .await
                    .unbind_device(as_b(token, pb::DeviceRequest { id: a.device }))
                    .await,
                HIDDEN,
            );
            if cluster.device(a.device).await.unbound_at.is_some() {
                Err("B unbound A's phone".into())
            } else {
                verdict
            }
        }
        "/waihu.v1.ProviderService/TestLine" => expect_code(
            cluster
                .providers()
                .await
                .test_line(as_b(
                    token,
                    pb::LineRequest {
                        line_id: a.line_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ProviderService/ListLines" => {
            match cluster
                .providers()
                .await
                .list_lines(as_b(token, pb::ListLinesRequest {}))
                .await
            {
                Err(e) => Err(format!("B cannot list its own lines: {e}")),
                Ok(r) => {
                    let ids: Vec<String> = r
                        .into_inner()
                        .lines
                        .into_iter()
                        .map(|l| l.line_id)
                        .collect();
                    if ids.iter().any(|id| id == &a.line_id || id == "sim-1") {
                        Err(format!("B's list holds A's lines: {ids:?}"))
                    } else {
                        Ok(())
                    }
                }
            }
        }
        "/waihu.v1.ScreeningService/CreateScreening" => expect_code(
            cluster
                .screening()
                .await
                .create_screening(as_b(
                    token,
                    tokio_stream::iter(vec![pb::CreateScreeningRequest {
                        line_id: a.line_id.clone(),
                        phones: vec!["+8613911110001".into()],
                        ..Default::default()
                    }]),
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ScreeningService/GetScreening" => expect_code(
            cluster
                .screening()
                .await
                .get_screening(as_b(
                    token,
                    pb::GetScreeningRequest {
                        screening_id: a.screening_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ScreeningService/RollbackScreening" => expect_code(
            cluster
                .screening()
                .await
                .rollback_screening(as_b(
                    token,
                    pb::GetScreeningRequest {
                        screening_id: a.screening_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.ScreeningService/DownloadScreeningResults" => expect_code(
            cluster
                .screening()
                .await
                .download_screening_results(as_b(
                    token,
                    pb::DownloadScreeningResultsRequest {
                        screening_id: a.screening_id.clone(),
                        format: "json".into(),
                    },
                ))
                .await
                .map(|_| "a stream"),
            HIDDEN,
        ),
        "/waihu.v1.ScreeningService/ListScreenings" => {
            match cluster
                .screening()
                .await
                .list_screenings(as_b(token, pb::ListScreeningsRequest::default()))
                .await
            {
                Err(e) => Err(format!("B cannot list its own: {e}")),
                Ok(r) if r.get_ref().screenings.is_empty() => Ok(()),
                Ok(r) => Err(format!("B lists A's jobs: {:?}", r.into_inner())),
            }
        }
        "/waihu.v1.ScreeningService/GetNumberValidity" => {
            match cluster
                .screening()
                .await
                .get_number_validity(as_b(
                    token,
                    pb::GetNumberValidityRequest {
                        phones: vec![a.invalid_phone.clone()],
                    },
                ))
                .await
            {
                Err(e) => Err(format!("B cannot ask: {e}")),
                Ok(r) => {
                    let n = &r.get_ref().numbers[0];
                    if n.validity == pb::NumberValidity::Unknown as i32 && n.source.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("B sees A's finding: {n:?}"))
                    }
                }
            }
        }
        "/waihu.v1.ScreeningService/SetNumberValidity" => {
            // Only B's own view changes: A's number stays invalid for A.
            let mut s = cluster.screening().await;
            let set = s
                .set_number_validity(as_b(
                    token,
                    pb::SetNumberValidityRequest {
                        phones: vec![a.invalid_phone.clone()],
                        validity: pb::NumberValidity::Valid as i32,
                        reason: "b's".into(),
                    },
                ))
                .await;
            let still = s
                .get_number_validity(pb::GetNumberValidityRequest {
                    phones: vec![a.invalid_phone.clone()],
                })
                .await
                .map(|r| r.into_inner().numbers[0].validity);
            match (set, still) {
                (Ok(_), Ok(v)) if v == pb::NumberValidity::Invalid as i32 => Ok(()),
                (set, still) => Err(format!("B reached A's validity: {set:?} {still:?}")),
            }
        }
        "/waihu.v1.DialerService/AddDoNotCall" => {
            // On B's own list only: A's check does not see it.
            let mut dialer = cluster.dialer().await;
            let mine = pb::DoNotCallRequest {
                phones: vec!["+8613911110000".into()],
                reason: "b's".into(),
            };
            match dialer.add_do_not_call(as_b(token, mine)).await {
                Err(e) => Err(format!("B cannot add to its own list: {e}")),
                Ok(_) => {
                    let seen = dialer
                        .check_do_not_call(pb::CheckDoNotCallRequest {
                            phone: "+8613911110000".into(),
                        })
                        .await
                        .map(|r| r.into_inner().listed);
                    match seen {
                        Ok(false) => Ok(()),
                        other => Err(format!("A sees B's entry: {other:?}")),
                    }
                }
            }
        }
        "/waihu.v1.DialerService/RemoveDoNotCall" => {
            let mut dialer = cluster.dialer().await;
            let gone = dialer
                .remove_do_not_call(as_b(
                    token,
                    pb::DoNotCallRequest {
                        phones: vec![a.dnc_phone.clone()],
                        reason: String::new(),
                    },
                ))
                .await
                .map(|r| r.into_inner().changed);
            let still = dialer
                .check_do_not_call(pb::CheckDoNotCallRequest {
                    phone: a.dnc_phone.clone(),
                })
                .await
                .map(|r| r.into_inner().listed);
            match (gone, still) {
                (Ok(0), Ok(true)) => Ok(()),
                other => Err(format!("B reached A's list: {other:?}")),
            }
        }
        "/waihu.v1.DialerService/CheckDoNotCall" => {
            match cluster
                .dialer()
                .await
                .check_do_not_call(as_b(
                    token,
                    pb::CheckDoNotCallRequest {
                        phone: a.dnc_phone.clone(),
                    },
                ))
                .await
            {
                Ok(r) if !r.get_ref().listed => Ok(()),
                other => Err(format!("B sees A's entry: {other:?}")),
            }
        }
        "/waihu.v1.DialerService/ExplainContact" => expect_code(
            cluster
                .dialer()
                .await
                .explain_contact(as_b(
                    token,
                    pb::ExplainContactRequest {
                        task_id: a.task_id.clone(),
                        contact_no: 1,
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.DialerService/AddGlobalDoNotCall" => expect_code(
            cluster
                .dialer()
                .await
                .add_global_do_not_call(as_b(
                    token,
                    pb::DoNotCallRequest {
                        phones: vec![a.dnc_phone.clone()],
                        reason: String::new(),
                    },
                ))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.DialerService/RemoveGlobalDoNotCall" => expect_code(
            cluster
                .dialer()
                .await
                .remove_global_do_not_call(as_b(
                    token,
                    pb::DoNotCallRequest {
                        phones: vec![a.dnc_phone.clone()],
                        reason: String::new(),
                    },
                ))
                .await,
            OPERATOR_ONLY,
        ),
        "/waihu.v1.DialerService/Dial" => expect_code(
            // On A's line: B has no line by that id.
            cluster
                .dialer()
                .await
                .dial(as_b(
                    token,
                    pb::DialRequest {
                        phone: "13911110001".into(),
                        line_id: a.line_id.clone(),
                        ..Default::default()
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.DialerService/Hangup" => expect_code(
            cluster
                .dialer()
                .await
                .hangup(as_b(
                    token,
                    pb::HangupRequest {
                        call_id: a.call_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.DialerService/GetCallStatus" => expect_code(
            cluster
                .dialer()
                .await
                .get_call_status(as_b(
                    token,
                    pb::GetCallStatusRequest {
                        call_id: a.call_id.clone(),
                    },
                ))
                .await,
            HIDDEN,
        ),
        "/waihu.v1.DialerService/GetLineUsage" => {
            let ask = pb::GetLineUsageRequest {
                line_ids: vec![a.line_id.clone(), "sim-1".into()],
            };
            match cluster
                .dialer()
                .await
                .get_line_usage(as_b(token, ask))
                .await
            {
                Err(e) => Err(format!("B cannot ask for line usage: {e}")),
                Ok(r) => {
                    let got = r.into_inner().lines;
                    if got.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("B got A's line usage: {got:?}"))
                    }
                }
            }
        }
        _ => return None,
    };
    Some(verdict)
}

/// A plain `TenantService` client (B's requests carry B's own token).
async fn tenants_of(cluster: &Cluster) -> TenantServiceClient<tonic::transport::Channel> {
    TenantServiceClient::connect(cluster.task_addr().to_string())
        .await
        .expect("task service reachable")
}

/// Calls the HTTP route `method` `path` as B against A's resources and judges the answer; None
/// for a route the table does not list.
/// Seed 003's routes: the call status and A's phones are hidden; the routes not built answer
/// 501 (they hold nothing of anyone's).
async fn probe_calls_route(
    calls: &HttpApi,
    token: &str,
    a: &Secrets,
    method: &str,
    route: &str,
) -> Option<Verdict> {
    let (code, v) = match route {
        "/{callId}/status" => {
            for id in [a.call_id.clone(), a.call_number.to_string()] {
                let (code, v) = calls
                    .call_raw("GET", &format!("/{id}/status"), None, Some(token))
                    .await;
                if code != 404 {
                    return Some(Err(format!("HTTP {code}: {v}")));
                }
            }
            return Some(Ok(()));
        }
        "/dial" => {
            let body = format!(
                r#"{{"customerPhone":"13911110002","lineId":"{}"}}"#,
                a.line_id
            );
            let (code, v) = calls
                .call_raw("POST", "/dial", Some(&body), Some(token))
                .await;
            return Some(if code == 404 {
                Ok(())
            } else {
                Err(format!("HTTP {code}: {v}"))
            });
        }
        "/hangup" => {
            let body = format!(r#"{{"callId":"{}"}}"#, a.call_id);
            let (code, v) = calls
                .call_raw("POST", "/hangup", Some(&body), Some(token))
                .await;
            return Some(if code == 404 {
                Ok(())
            } else {
                Err(format!("HTTP {code}: {v}"))
            });
        }
        // B's own QR code; the app's bind is sent on to the adapter (308), whose token is
        // the proof.
        "/device/bindQRCode" | "/device/bind" => {
            let (code, v) = calls.call_raw(method, route, Some("{}"), Some(token)).await;
            return Some(if (route == "/device/bind" && code == 308) || code == 200 {
                Ok(())
            } else {
                Err(format!("HTTP {code}: {v}"))
            });
        }
        "/device/list" => {
            let (code, v) = calls.call_raw("GET", route, None, Some(token)).await;
            let holds_a = v["devices"]
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d["id"].as_u64() == Some(a.device)));
            return Some(if code == 200 && !holds_a {
                Ok(())
            } else {
                Err(format!("HTTP {code}: {v}"))
            });
        }
        "/device/{id}" | "/device/{id}/status" => {
            let path = route.replace("{id}", &a.device.to_string());
            let (code, v) = calls.call_raw(method, &path, None, Some(token)).await;
            return Some(if code == 404 {
                Ok(())
            } else {
                Err(format!("HTTP {code}: {v}"))
            });
        }
        "/lines" | "/lines/{id}" | "/lines/{id}/test" => {
            let path = route.replace("{id}", "1");
            calls.call_raw(method, &path, Some("{}"), Some(token)).await
        }
        _ => return None,
    };
    Some(if code == 501 {
        Ok(())
    } else {
        Err(format!("HTTP {code}: {v}"))
    })
}

/// Seed 000's routes (all POST), in its envelope: hidden is 404 or 403.
async fn probe_caller_route(
    caller: &HttpApi,
    token: &str,
    a: &Secrets,
    route: &str,
) -> Option<Verdict> {
    let t = a.task_number;
    let hidden = |(code, v): (u16, serde_json::Value)| -> Verdict {
        if code == 404 || code == 403 {
            Ok(())
        } else {
            Err(format!("HTTP {code}: {v}"))
        }
    };
    let verdict = match route {
        "/addTask" => {
            let body = r#"{"task_name":"b's","list":[{"phone":"13600000002"}]}"#;
            let (code, v) = caller
                .call_caller("/addTask", Some(body), Some(token))
                .await;
            match (code, v["results"].as_u64()) {
                (200, Some(n)) if n != t => Ok(()),
                _ => Err(format!("HTTP {code}: {v}")),
            }
        }
        "/listTask" => {
            let (code, v) = caller
                .call_caller("/listTask", Some(r#"{"size":500}"#), Some(token))
                .await;
            let leaked = v["results"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|x| x["id"] == t));
            if code != 200 || leaked {
                Err(format!("HTTP {code}: {v}"))
            } else {
                Ok(())
            }
        }
        "/getTaskDetail" => hidden(
            caller
                .call_caller(
                    "/getTaskDetail",
                    Some(&format!(r#"{{"task_id":{t}}}"#)),
                    Some(token),
                )
                .await,
        ),
        "/getCallerDetail" => hidden(
            caller
                .call_caller(
                    "/getCallerDetail",
                    Some(&format!(r#"{{"task_id":{t},"phone":"13800000001"}}"#)),
                    Some(token),
                )
                .await,
        ),
        _ => return None,
    };
    Some(verdict)
}

/// A client per seed's API base.
struct Apis {
    lead: HttpApi,
    caller: HttpApi,
    calls: HttpApi,
}

async fn probe_route(
    apis: &Apis,
    token: &str,
    a: &Secrets,
    method: &str,
    path: &str,
) -> Option<Verdict> {
    // Hidden by the service, not missed by the router.
    let hidden = |(code, v): (u16, serde_json::Value)| -> Verdict {
        if (code == 404 || code == 403) && v["message"] != "no such route" {
            Ok(())
        } else {
            Err(format!("HTTP {code}: {v}"))
        }
    };
    let (t, r) = (a.task_number, a.call_number);
    if let Some(route) = path.strip_prefix(waihu_gateway::caller::BASE) {
        return probe_caller_route(&apis.caller, token, a, route).await;
    }
    if let Some(route) = path.strip_prefix(waihu_gateway::calls::BASE) {
        return probe_calls_route(&apis.calls, token, a, method, route).await;
    }
    let api = &apis.lead;
    let base = waihu_gateway::lead::BASE;
    let verdict = match (method, path.strip_prefix(base)?) {
        ("POST", "/call-tasks") => {
            let body = serde_json::json!({
                "name": "b's", "phoneNumbers": ["13600000001"], "callScript": "hi",
                "scheduledTime": "2099-01-01T00:00:00Z"
            })
            .to_string();
            let (code, v) = api
                .call("POST", "/call-tasks", Some(&body), Some(token))
                .await;
            match (code, v["data"]["taskId"].as_u64()) {
                (201, Some(n)) if n != t => Ok(()),
                _ => Err(format!("HTTP {code}: {v}")),
            }
        }
        ("GET", "/call-tasks") => {
            let (code, v) = api
                .call("GET", "/call-tasks?size=500", None, Some(token))
                .await;
            let leaked = v["data"]["records"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|x| x["taskId"] == t));
            if code != 200 || leaked {
                Err(format!("HTTP {code}: {v}"))
            } else {
                Ok(())
            }
        }
        ("GET", "/call-tasks/{taskId}") => hidden(
            api.call("GET", &format!("/call-tasks/{t}"), None, Some(token))
                .await,
        ),
        ("PUT", "/call-tasks/{taskId}/status") => {
            let body = r#"{"action":"START"}"#;
            hidden(
                api.call(
                    "PUT",
                    &format!("/call-tasks/{t}/status"),
                    Some(body),
                    Some(token),
                )
                .await,
            )
        }
        ("PUT", "/call-tasks/{taskId}/cancel") => hidden(
            api.call("PUT", &format!("/call-tasks/{t}/cancel"), None, Some(token))
                .await,
        ),
        ("GET", "/call-records") => {
            let (code, v) = api
                .call(
                    "GET",
                    &format!("/call-records?taskId={t}"),
                    None,
                    Some(token),
                )
                .await;
            let (code_all, all) = api
                .call("GET", "/call-records?size=500", None, Some(token))
                .await;
            let leaked = all["data"]["records"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|x| x["recordId"] == r));
            if code != 200 || v["data"]["total"] != 0 || code_all != 200 || leaked {
                Err(format!(
                    "by task: HTTP {code} {v}; all: HTTP {code_all} {all}"
                ))
            } else {
                Ok(())
            }
        }
        ("GET", "/call-records/{recordId}") => hidden(
            api.call("GET", &format!("/call-records/{r}"), None, Some(token))
                .await,
        ),
        ("GET", "/call-records/{recordId}/recording") => hidden(
            api.call(
                "GET",
                &format!("/call-records/{r}/recording"),
                None,
                Some(token),
            )
            .await,
        ),
        _ => return None,
    };
    Some(verdict)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_b_reaches_nothing_of_tenant_a_through_any_rpc() {
    let cluster = Cluster::start_analysed(fast_sim(11), one_line(50)).await;
    // A's webhook (to a closed port: its deliveries fail), made before the campaign so the
    // campaign makes deliveries for it.
    let webhook_id = cluster
        .webhooks()
        .await
        .create_webhook(pb::CreateWebhookRequest {
            url: "http://127.0.0.1:1/a".into(),
            event_types: vec!["task.status".into()],
            secret: String::new(),
        })
        .await
        .expect("A's webhook")
        .into_inner()
        .webhook_id;
    // A's campaign, run to the end, so it has a task, call records and events.
    let mut tasks = cluster.tasks().await;
    let phones = phones(20, 4);
    let task_id = create_with_contacts(&mut tasks, spec("a's task", 0, 0), &phones).await;
    run_to_completion(&mut tasks, &task_id, Duration::from_secs(60)).await;
    wait_stats_settled(&cluster, &task_id, 20, Duration::from_secs(60)).await;
    let mut records = cluster.records().await;
    let a_records = records
        .list_call_records(pb::ListCallRecordsRequest {
            task_id: task_id.clone(),
            ..Default::default()
        })
        .await
        .expect("A's records")
        .into_inner()
        .records;
    // Every call has a number of its own, and A reaches a call by it.
    let numbers: BTreeSet<u64> = a_records.iter().map(|r| r.number).collect();
    assert_eq!(numbers.len(), a_records.len());
    assert!(!numbers.contains(&0));
    // An answered call of A's, analysed.
    let answered = a_records
        .iter()
        .find(|r| r.answered_at.is_some())
        .expect("an answered call")
        .call_id
        .clone();
    let analysed_before =
        waihu_testkit::eventually(Duration::from_secs(30), "A's analysis", || {
            let (c, id) = (&cluster, answered.clone());
            async move {
                let a = c
                    .analyses()
                    .await
                    .get_analysis(pb::GetAnalysisRequest { call_id: id })
                    .await
                    .ok()?
                    .into_inner();
                (a.status() == pb::AnalysisStatus::Completed).then_some(a)
            }
        })
        .await;
    let call = a_records.first().expect("a call");
    let (call_id, call_number) = (call.call_id.clone(), call.number);
    let by_number = records
        .get_call_record(pb::GetCallRecordRequest {
            call_id: call_number.to_string(),
        })
        .await
        .expect("A's call by number")
        .into_inner();
    assert_eq!(by_number.call_id, call_id);
    // A's follow-up, due within the hour.
    records
        .add_follow_up(pb::AddFollowUpRequest {
            call_id: call_id.clone(),
            result: "a's".into(),
            next_follow_up_at: Some(waihu_events::timestamp(
                chrono::Utc::now() + chrono::Duration::minutes(30),
            )),
            ..Default::default()
        })
        .await
        .expect("A's follow-up");
    waihu_testkit::eventually(Duration::from_secs(20), "A's follow-up listed", || {
        let mut r = records.clone();
        async move {
            let due = r
                .list_due_follow_ups(pb::ListDueFollowUpsRequest::default())
                .await
                .ok()?
                .into_inner();
            (!due.follow_ups.is_empty()).then_some(())
        }
    })
    .await;
    let task_number = tasks
        .get_task(pb::TaskRef {
            task_id: task_id.clone(),
        })
        .await
        .expect("A's task")
        .into_inner()
        .number;
    assert!(task_number > 0);
    let delivery_id = waihu_testkit::eventually(Duration::from_secs(30), "A's delivery", || {
        let (c, id) = (&cluster, webhook_id.clone());
        async move {
            let page = c
                .webhooks()
                .await
                .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
                    webhook_id: id,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            page.deliveries.first().map(|d| d.delivery_id.clone())
        }
    })
    .await;
    let a_line = Line {
        id: "a-only".into(),
        max_concurrent: 1,
    };
    cluster
        .providers()
        .await
        .create_line(pb::CreateLineRequest {
            line: Some(a_line.to_pb()),
            ..Default::default()
        })
        .await
        .expect("A's second line");
    let a = Secrets {
        task_id,
        task_number,
        call_id,
        call_number,
        webhook_id,
        delivery_id,
        line_id: a_line.id.clone(),
        dnc_phone: "+8613922220000".into(),
        device: cluster
            .bind_phone("a-user", "a-phone", "13912349999", "android")
            .await
            .id,
        analysed_call: answered,
        screening_id: String::new(),
        invalid_phone: "+8613922220001".into(),
    };
    // A's screening job, run to its end, and a number A marked invalid.
    let mut screening = cluster.screening().await;
    let job = screening
        .create_screening(tokio_stream::iter(vec![pb::CreateScreeningRequest {
            line_id: "sim-1".into(),
            phones: vec!["13922220002".into(), "13922220003".into()],
            ..Default::default()
        }]))
        .await
        .expect("A's screening")
        .into_inner();
    waihu_testkit::eventually(Duration::from_secs(30), "A's screening done", || {
        let (mut s, id) = (screening.clone(), job.screening_id.clone());
        async move {
            let j = s
                .get_screening(pb::GetScreeningRequest { screening_id: id })
                .await
                .ok()?
                .into_inner();
            (j.status == pb::ScreeningStatus::Done as i32).then_some(())
        }
    })
    .await;
    screening
        .set_number_validity(pb::SetNumberValidityRequest {
            phones: vec![a.invalid_phone.clone()],
            validity: pb::NumberValidity::Invalid as i32,
            reason: "a's".into(),
        })
        .await
        .expect("A's override");
    let a = Secrets {
        screening_id: job.screening_id,
        ..a
    };
    cluster
        .dialer()
        .await
        .add_do_not_call(pb::DoNotCallRequest {
            phones: vec![a.dnc_phone.clone()],
            reason: "a's".into(),
        })
        .await
        .expect("A's do-not-call entry");

    let keys = Keys::load(&AuthConfig::with_hs256(CommonConfig::TEST_KEY)).expect("keys");
    let token = keys
        .mint(&Claims::new(B, "bob", ALL_PERMISSIONS, 600))
        .expect("mint");

    let mut unlisted = BTreeSet::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for s in waihu_proto::descriptor_pool().services() {
        for m in s.methods() {
            let method = format!("/{}/{}", s.full_name(), m.name());
            match probe(&cluster, &token, &a, &method).await {
                None => {
                    unlisted.insert(method);
                }
                Some(Err(e)) => failures.push(format!("{method}: {e}")),
                Some(Ok(())) => checked += 1,
            }
        }
    }
    // Every HTTP route of the gateway, likewise.
    let stop = tokio_util::sync::CancellationToken::new();
    let gateway = start_gateway(&cluster, stop.clone()).await;
    let base = |b: &str| HttpApi::new(format!("http://{}{b}", gateway.addr));
    let apis = Apis {
        lead: base(waihu_gateway::lead::BASE),
        caller: base(waihu_gateway::caller::BASE),
        calls: base(waihu_gateway::calls::BASE),
    };
    let mut routes = 0;
    for (method, path) in waihu_gateway::routes() {
        match probe_route(&apis, &token, &a, method, &path).await {
            None => {
                unlisted.insert(format!("{method} {path}"));
            }
            Some(Err(e)) => failures.push(format!("{method} {path}: {e}")),
            Some(Ok(())) => routes += 1,
        }
    }
    stop.cancel();
    gateway.wait().await.expect("gateway stopped");
    assert!(
        unlisted.is_empty(),
        "RPCs or routes the isolation table does not list (add them to `probe` or \
         `probe_route`): {unlisted:?}"
    );
    assert!(
        failures.is_empty(),
        "tenant B reached tenant A: {failures:#?}"
    );
    assert!(routes >= 8, "checked {routes} routes");
    assert!(checked >= 35, "checked {checked} RPCs");
    // A's analysis is as it was: B's reanalysis queued nothing.
    let analysed_after = cluster
        .analyses()
        .await
        .get_analysis(pb::GetAnalysisRequest {
            call_id: a.analysed_call.clone(),
        })
        .await
        .expect("A's analysis")
        .into_inner();
    assert_eq!(analysed_after, analysed_before);
    // A's lines are as A made them.
    let mine = cluster
        .providers()
        .await
        .get_line(pb::LineRequest {
            line_id: a.line_id.clone(),
        })
        .await
        .expect("A's line")
        .into_inner();
    assert_eq!((mine.version, mine.enabled), (1, true));
    assert_eq!(mine.name, "test line a-only");

    // A is untouched: its task is still complete, its statistics whole.
    let t = tasks
        .get_task(pb::TaskRef {
            task_id: a.task_id.clone(),
        })
        .await
        .expect("A's task")
        .into_inner();
    assert_eq!(t.status, pb::TaskStatus::Completed as i32);
    cluster.shutdown().await;
}
