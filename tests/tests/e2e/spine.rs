//! Spine II: a wide CRM export dials to completion, a stream recreated under the store writer is
//! detected and re-based explicitly, every service answers gRPC reflection, and analysts export
//! through the record service.

use std::{collections::HashMap, time::Duration};

use futures::StreamExt;
use waihu_e2e::*;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};

/// 12 columns of Chinese notes, as a CRM export carries them (about 700 bytes a row).
fn wide_row(phone: &str, i: usize) -> pb::ContactRow {
    let notes = [
        "客户表示对岗位感兴趣，希望了解薪资待遇和上班地点",
        "上次通话时在开会，约定下周二下午再联系",
        "简历来自招聘网站，三年销售经验，期望薪资八千",
    ];
    pb::ContactRow {
        name: format!("候选人{i}"),
        phone: phone.to_string(),
        external_id: format!("resume-{i}"),
        variables: (0..12)
            .map(|k| (format!("备注{k}"), notes[(i + k) % 3].repeat(2)))
            .collect::<HashMap<_, _>>(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3000_row_export_with_12_wide_chinese_columns_dials_to_completion() {
    let cluster = Cluster::start(fast_sim(11), one_line(300)).await;
    let mut tasks = cluster.tasks().await;
    let task = tasks
        .create_task(pb::CreateTaskRequest {
            spec: Some(spec("crm-export", 1, 0)),
        })
        .await
        .expect("create")
        .into_inner();
    let phones = phones(3000, 4);
    let rows: Vec<pb::ContactRow> = phones
        .iter()
        .enumerate()
        .map(|(i, p)| wide_row(p, i))
        .collect();
    let bytes: usize = rows.iter().map(prost::Message::encoded_len).sum();
    assert!(bytes > 2 * 1024 * 1024, "the export is over 2 MB ({bytes})");
    let msgs: Vec<pb::AddContactsRequest> = rows
        .chunks(1000)
        .map(|c| pb::AddContactsRequest {
            task_id: task.task_id.clone(),
            rows: c.to_vec(),
        })
        .collect();
    let reply = tasks
        .add_contacts(tokio_stream::iter(msgs))
        .await
        .expect("import")
        .into_inner();
    assert_eq!(reply.accepted, 3000, "{:?}", reply.rejected.first());
    run_to_completion(&mut tasks, &task.task_id, Duration::from_secs(180)).await;
    let x = expected(&cluster.sim, &e164(&phones), 1);
    let stats = wait_stats_settled(&cluster, &task.task_id, 3000, Duration::from_secs(60)).await;
    assert_stats_match(&stats, &x);
    // Every ContactsAdded event stayed far below NATS' 1 MiB max_payload.
    let sizes: Vec<i32> = sqlx::query_scalar(
        "SELECT octet_length(envelope) FROM events WHERE event_type = 'ContactsAdded'",
    )
    .fetch_all(&cluster.env.pool)
    .await
    .expect("sizes");
    assert!(sizes.len() > 10, "{} events", sizes.len());
    assert!(sizes.iter().all(|s| *s < 256 * 1024), "{sizes:?}");
    cluster.shutdown().await;
}

fn started(task: uuid::Uuid, version: u64) -> RecordedEvent {
    RecordedEvent::new(
        EventMeta::new("default", Aggregate::Task(task), version).with_task(task),
        Event::TaskStarted(pb::TaskStarted {
            task_id: task.to_string(),
        }),
    )
}

async fn stored(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_recreated_under_the_writer_halts_it_until_an_operator_rebases() {
    let mut cluster = Cluster::start(fast_sim(1), one_line(300)).await;
    // Only the record service matters here; the others would republish nothing anyway.
    let bus = cluster.env.bus.clone();
    let pool = cluster.env.pool.clone();
    let base = stored(&pool).await;
    for v in 1..=5 {
        bus.publish(&started(uuid::Uuid::new_v4(), v), waihu_bus::Expect::Any)
            .await
            .expect("publish");
    }
    waihu_testkit::eventually(Duration::from_secs(20), "5 events stored", || {
        let p = pool.clone();
        async move { (stored(&p).await == base + 5).then_some(()) }
    })
    .await;

    // The stream is deleted and created again: its sequences start at 1.
    bus.delete_streams().await.expect("delete");
    let bus = waihu_bus::Bus::connect(&waihu_bus::BusConfig::local(
        waihu_testkit::nats_url(),
        &cluster.env.prefix,
    ))
    .await
    .expect("recreate");
    for v in 1..=3 {
        bus.publish(&started(uuid::Uuid::new_v4(), v), waihu_bus::Expect::Any)
            .await
            .expect("publish");
    }
    let status = cluster
        .wait_store_status("the writer to halt", Duration::from_secs(30), |s| {
            !s.halted.is_empty()
        })
        .await;
    let mut admin = cluster.admin().await;
    assert!(status.halted.contains("recreated"), "{}", status.halted);
    waihu_testkit::eventually(
        Duration::from_secs(20),
        "record to report NOT_SERVING with the reason",
        || {
            let record = cluster
                .problems()
                .into_iter()
                .find(|(s, _)| *s == "record")
                .map(|r| r.1);
            async move {
                record?
                    .get("store-writer")
                    .is_some_and(|r| r.contains("recreated"))
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        stored(&pool).await,
        base + 5,
        "nothing stored over the old positions"
    );

    let status = admin
        .rebase_store(pb::RebaseStoreRequest { force: false })
        .await
        .expect("rebase")
        .into_inner();
    assert_eq!(status.base as i64, base + 5);
    // The new stream's three events, and the re-base's own audit record.
    waihu_testkit::eventually(Duration::from_secs(30), "the new stream's events", || {
        let p = pool.clone();
        async move { (stored(&p).await == base + 9).then_some(()) }
    })
    .await;
    let positions: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(&pool)
        .await
        .expect("positions");
    assert_eq!(positions, (1..=base + 9).collect::<Vec<i64>>());
    let audited: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM events WHERE position = $1")
            .bind(base + 9)
            .fetch_all(&pool)
            .await
            .expect("last event");
    assert_eq!(audited, ["AuditRecorded"]);
    waihu_testkit::eventually(Duration::from_secs(10), "record to serve again", || {
        let probs = cluster.problems();
        async move { probs.iter().all(|(_, p)| p.is_empty()).then_some(()) }
    })
    .await;
    // A second re-base with nothing to re-base is refused.
    let refused = admin
        .rebase_store(pb::RebaseStoreRequest { force: false })
        .await
        .expect_err("nothing to re-base");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    cluster.kill_dialer();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_lists_its_services_by_reflection_and_export_is_tenant_scoped() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let cluster = Cluster::start(fast_sim(2), one_line(300)).await;
    let channel = tonic::transport::Channel::from_shared(cluster.task_addr().to_string())
        .expect("address")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.next().await.expect("a reply").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("not a service list: {reply:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["waihu.v1.TaskService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }

    // Two tenants; each export sees only its own events.
    let mut tasks = cluster.tasks().await;
    for tenant in ["acme", "globex"] {
        let mut r = tonic::Request::new(pb::CreateTaskRequest {
            spec: Some(spec(&format!("{tenant}-task"), 0, 0)),
        });
        r.metadata_mut()
            .insert("x-tenant-id", tenant.parse().expect("ascii"));
        tasks.create_task(r).await.expect("create");
    }
    let mut records = cluster.records().await;
    let export = |tenant: &'static str| {
        let mut records = records.clone();
        async move {
            let mut r = tonic::Request::new(pb::ExportEventsRequest::default());
            r.metadata_mut()
                .insert("x-tenant-id", tenant.parse().expect("ascii"));
            let s = records.export_events(r).await.ok()?.into_inner();
            let all: Vec<pb::ExportedEvent> = s.filter_map(|e| async { e.ok() }).collect().await;
            (all.len() == 2).then_some(all)
        }
    };
    for tenant in ["acme", "globex"] {
        // Its task's creation and the audit record of the command.
        let events = waihu_testkit::eventually(Duration::from_secs(20), "two events each", || {
            export(tenant)
        })
        .await;
        let mut types = Vec::new();
        for e in &events {
            let env = e.envelope.as_ref().expect("envelope");
            assert_eq!(env.tenant_id, tenant);
            assert!(e.known);
            types.push(env.event_type.clone());
        }
        types.sort();
        assert_eq!(types, ["AuditRecorded", "TaskCreated"]);
    }
    let _ = &mut records;
    cluster.shutdown().await;
}
